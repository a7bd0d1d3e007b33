"""How often each hidden unit's gradient is kept during training: the starvation
diagnostic (units that top-k never or rarely selects learn nothing through meProp).

A unit's count is the number of training examples whose backward passed it a nonzero
gradient: its entry of dY was kept by the layer's selection (per example for
``topk``/``randk``, the minibatch's shared set for ``unified``, every entry for a dense
layer) and was not zero (an inactive ReLU or dropout zeroes it whatever is selected).
Each hidden layer's dY is taken from its output's gradient hook, exactly what its
backward kernel receives; the selection is recomputed after the optimizer step with
:mod:`meprop_bench.core.selection`, the functions whose picks every kernel reproduces
(random-k replays the draw from the RNG state saved just before the kernel ran), so the
timed passes only gain one hook call per layer.
"""

from __future__ import annotations

from types import TracebackType

import torch
from torch import nn

from meprop_bench.core.layer import MePropLinear
from meprop_bench.core.selection import randk_per_example, topk_per_example, unified_topk
from meprop_bench.training.models import hidden_layers


def _rng_state(device: torch.device) -> torch.Tensor:
    """The state of the generator that draws random-k's scores on ``device``."""
    return torch.cuda.get_rng_state(device) if device.type == "cuda" else torch.get_rng_state()


def kept_mask(layer: nn.Linear, dy: torch.Tensor, rng_state: torch.Tensor | None) -> torch.Tensor:
    """Boolean B x n: which entries of ``dy`` reach ``layer``'s weight and input
    gradients (kept by its selection and nonzero)."""
    method = layer.method if isinstance(layer, MePropLinear) else "dense"
    nonzero = dy != 0
    if method == "dense":
        return nonzero
    k = layer.k
    if method == "unified":
        chosen = torch.zeros(dy.shape[1], dtype=torch.bool, device=dy.device)
        return nonzero & chosen.index_fill_(0, unified_topk(dy, k), True)
    if method == "topk":
        idx = topk_per_example(dy, k)
    else:
        replay = torch.Generator(device=dy.device)
        replay.set_state(rng_state)
        idx = randk_per_example(dy, k, replay)
    return nonzero & torch.zeros_like(nonzero).scatter_(1, idx, True)


class KeepCounter:
    """Counts, per hidden unit of ``model``, the examples whose gradient reached it.

    Use as a context manager around training and call :meth:`collect` after each
    optimizer step; :attr:`counts` (layer name -> int64 tensor of the layer's width) and
    :attr:`examples` (examples back-propagated) hold the totals.
    """

    def __init__(self, model: nn.Module) -> None:
        self._layers = dict(hidden_layers(model))
        self.counts = {
            name: torch.zeros(layer.out_features, dtype=torch.int64)
            for name, layer in self._layers.items()
        }
        self.examples = 0
        self._pending: list[tuple[str, torch.Tensor, torch.Tensor | None]] = []
        self._handles = [
            layer.register_forward_hook(self._tap(name)) for name, layer in self._layers.items()
        ]

    def _tap(self, name: str):
        replay = getattr(self._layers[name], "method", "dense") == "randk"

        def on_forward(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not output.requires_grad:
                return  # an evaluation pass

            def on_grad(dy: torch.Tensor) -> None:
                state = _rng_state(dy.device) if replay else None
                self._pending.append((name, dy.detach(), state))

            output.register_hook(on_grad)

        return on_forward

    def collect(self) -> None:
        """Add the last backward's kept entries to the counts."""
        steps = [(name, dy.reshape(-1, dy.shape[-1]), state) for name, dy, state in self._pending]
        if steps:
            self.examples += steps[0][1].shape[0]
        for name, dy, state in steps:
            self.counts[name] += kept_mask(self._layers[name], dy, state).sum(0).cpu()
        self._pending.clear()

    def record(self) -> dict[str, list[int]]:
        """The counts as plain lists, for a result file."""
        return {name: counts.tolist() for name, counts in self.counts.items()}

    def __enter__(self) -> KeepCounter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for handle in self._handles:
            handle.remove()
        self._pending.clear()
