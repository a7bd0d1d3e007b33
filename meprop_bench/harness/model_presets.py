"""The models ``meprop-bench model`` times: named presets with today's shapes, and a
user's own factory (``package.module:factory``).

Every model comes from a *factory*, a function of no arguments returning ``(model,
batch, loss_fn)``: ``model`` an ``nn.Module`` holding at least one ``nn.Linear``,
``batch`` anything ``loss_fn`` takes, and ``loss_fn(model, batch)`` a scalar tensor
whose ``.backward()`` is the step's backward (the optimizer step follows). The presets
are such factories; :func:`load_factory` finds a user's, :func:`checked` checks what
one returned and says in one line what is wrong.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from meprop_bench.errors import MePropInputError
from meprop_bench.training.models import build_mlp

LossFn = Callable[[nn.Module, Any], torch.Tensor]
Built = tuple[nn.Module, Any, LossFn]
Factory = Callable[[], Built]


class TransformerMLP(nn.Module):
    """A pre-norm transformer MLP block with its residual: ``x + fc2(gelu(fc1(ln(x))))``
    (BERT-base, GPT-2 small, ViT-B/16: d = 768, hidden 3072)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, hidden)
        self.fc2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.gelu(self.fc1(self.norm(x))))


class GatedMLP(nn.Module):
    """LLaMA's MLP block with its residual: ``x + down(silu(gate(h)) * up(h))``,
    ``h = rmsnorm(x)``, no biases (LLaMA-7B: d = 4096, hidden 11008)."""

    def __init__(self, d: int, hidden: int) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(d)
        self.gate = nn.Linear(d, hidden, bias=False)
        self.up = nn.Linear(d, hidden, bias=False)
        self.down = nn.Linear(hidden, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def _regression_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean squared error of the block's output against a fixed random target."""
    x, target = batch
    return F.mse_loss(model(x), target)


def _classification_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Cross-entropy of the logits against the labels."""
    x, y = batch
    return F.cross_entropy(model(x), y)


def _tokens(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """A block's input (which needs its gradient: the block sits in a residual stream,
    so its first layer computes dX) and a target of the same shape."""
    return torch.randn(shape).requires_grad_(), torch.randn(shape)


def _shrunk(value: int, shrink: int) -> int:
    return max(2, value // shrink)


@dataclass(frozen=True)
class Preset:
    """A named model: what it is, its default dense layers, the suite grids that time it
    (suites/test_model_step.py) and the FLOPs of its linear layers in a dense step (6 per
    multiply-add: forward, dX and dW), which the sharding weighs it by."""

    name: str
    summary: str
    build: Callable[[int], Built]  # shrink factor (1: the real shapes) -> (model, batch, loss)
    step_flops: float
    grids: tuple[str, ...] = ("full",)
    keep_dense: tuple[str, ...] = ()

    def factory(self, shrink: int = 1) -> Factory:
        """The preset as a factory, every width and token count divided by ``shrink``."""
        return lambda: self.build(shrink)


def _mlp(shrink: int) -> Built:
    batch = _shrunk(50, shrink)
    model = build_mlp(hidden=_shrunk(500, shrink))
    return model, (torch.rand(batch, 784), torch.randint(0, 10, (batch,))), _classification_loss


def _transformer(tokens: int) -> Callable[[int], Built]:
    def build(shrink: int) -> Built:
        d, hidden = _shrunk(768, shrink), _shrunk(3072, shrink)
        return TransformerMLP(d, hidden), _tokens((_shrunk(tokens, shrink), d)), _regression_loss

    return build


def _llama(shrink: int) -> Built:
    d, hidden = _shrunk(4096, shrink), _shrunk(11008, shrink)
    return GatedMLP(d, hidden), _tokens((_shrunk(512, shrink), d)), _regression_loss


def _vit(shrink: int) -> Built:
    d, hidden = _shrunk(768, shrink), _shrunk(3072, shrink)
    images = _shrunk(8, shrink)
    return TransformerMLP(d, hidden), _tokens((images, 197, d)), _regression_loss


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("mlp", "the paper's MNIST MLP 784-500-500-10, batch 50, output layer dense",
               _mlp, 6 * 50 * (784 * 500 + 500 * 500 + 500 * 10),
               grids=("quick", "paper", "full"), keep_dense=("out",)),
        Preset("transformer-mlp-512", "a transformer MLP block 768-3072-768 (BERT-base, "
               "GPT-2 small), 512 tokens", _transformer(512), 6 * 512 * 2 * 768 * 3072,
               grids=("paper", "full")),
        Preset("transformer-mlp-2048", "the same block at 2048 tokens", _transformer(2048),
               6 * 2048 * 2 * 768 * 3072),
        Preset("llama-mlp-512", "LLaMA-7B's gated MLP 4096-11008-4096, 512 tokens", _llama,
               6 * 512 * 3 * 4096 * 11008),
        Preset("vit-b16-mlp", "ViT-B/16's MLP block 768-3072-768, 8 images of 197 tokens",
               _vit, 6 * 8 * 197 * 2 * 768 * 3072, grids=("paper", "full")),
    )
}  # fmt: skip


def load_factory(spec: str) -> Factory:
    """The function ``spec`` names (``package.module:factory``), imported as ``python -m``
    would from the working directory; a spec that names none is a MePropInputError."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise MePropInputError(f"--model {spec}: expected package.module:factory")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as err:  # any failure to import is the user's to fix
        raise MePropInputError(
            f"--model {spec}: cannot import {module_name} ({type(err).__name__}: {err})"
        ) from None
    factory = getattr(module, attr, None)
    if factory is None:
        raise MePropInputError(f"--model {spec}: module {module_name} has no {attr!r}")
    if not callable(factory):
        raise MePropInputError(f"--model {spec}: {attr} is a {type(factory).__name__}, "
                               "not a function")  # fmt: skip
    return factory


def checked(built: Any, where: str) -> Built:
    """``built``, a factory's return value, if it keeps the contract; else a
    MePropInputError naming what is wrong (``where`` names the factory)."""
    if not (isinstance(built, tuple) and len(built) == 3):
        got = f"a tuple of {len(built)}" if isinstance(built, tuple) else type(built).__name__
        raise MePropInputError(f"{where} must return (model, batch, loss_fn), got {got}")
    model, _, loss_fn = built
    if not isinstance(model, nn.Module):
        raise MePropInputError(f"{where}: the model is a {type(model).__name__}, not an nn.Module")
    if not callable(loss_fn):
        raise MePropInputError(f"{where}: loss_fn is a {type(loss_fn).__name__}, not a function")
    if not any(type(m) is nn.Linear for m in model.modules()):
        raise MePropInputError(f"{where}: the model holds no nn.Linear for meProp to swap")
    return built


def call_factory(factory: Factory, where: str) -> Built:
    """Call a factory and check what it returns; its own exception is the user's bug,
    told in one line (running out of memory is left to the caller)."""
    try:
        built = factory()
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except RuntimeError as err:
        if "allocate" in str(err):
            raise
        raise MePropInputError(f"{where} raised {type(err).__name__}: {first_line(err)}") from None
    except Exception as err:  # the factory is the user's code
        raise MePropInputError(f"{where} raised {type(err).__name__}: {first_line(err)}") from None
    return checked(built, where)


def first_line(err: BaseException) -> str:
    """The first line of an error's message, for a one-line error."""
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"
