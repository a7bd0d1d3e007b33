"""``MePropLinear``: a drop-in ``nn.Linear`` whose backward is a meProp kernel."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from meprop_bench.core.kernels import (
    KERNELS,
    Kernel,
    RowGrad,
    fastest_kernel,
    get_kernel,
    resolve_k,
)
from meprop_bench.errors import MePropInputError

_COMPACT = {key: kern for key, kern in KERNELS.items() if kern.compact}


def _autocast(*tensors: torch.Tensor | None) -> list[torch.Tensor | None]:
    """The tensors as ``F.linear`` sees them under autocast: cast to the autocast dtype
    of their device (float64 excepted, as autocast leaves it), so the kernel gets one
    dtype."""
    device = tensors[0].device.type
    if not torch.is_autocast_enabled(device):
        return list(tensors)
    dtype = torch.get_autocast_dtype(device)
    return [t if t is None or t.dtype == torch.float64 else t.to(dtype) for t in tensors]


class _MePropFunction(torch.autograd.Function):
    """Forward is F.linear (following autocast as it does); backward runs the chosen
    kernel on the flattened dY and returns each gradient in its input's own dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, method: str, strategy: str | None, k: int, sparse_grad):
        ctx.dtypes = (x.dtype, weight.dtype, None if bias is None else bias.dtype)
        x, weight, bias = _autocast(x, weight, bias)
        ctx.save_for_backward(x, weight)
        ctx.method, ctx.strategy, ctx.k, ctx.sparse_grad = method, strategy, k, sparse_grad
        return F.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, dy):
        x, weight = ctx.saved_tensors
        need_dx, need_dw, need_db = ctx.needs_input_grad[:3]
        x2 = x.reshape(-1, x.shape[-1])
        dy2 = dy.reshape(-1, dy.shape[-1])
        needs = dict(need_dx=need_dx, need_dw=need_dw, need_db=need_db)
        if ctx.strategy is None:  # the fastest for this gradient
            kernel = fastest_kernel(
                ctx.method, dy2, compact=ctx.sparse_grad, differentiable=torch.is_grad_enabled()
            )
        else:
            kernel = get_kernel(ctx.method, ctx.strategy)
        if ctx.sparse_grad:
            grads = kernel.fn(dy2, x2, weight, ctx.k, **needs)
        else:
            grads = kernel.full_grads(dy2, x2, weight, ctx.k, **needs)
        dw = grads.dw
        if isinstance(dw, RowGrad):
            dw = dw.to_sparse_coo()
        dx = grads.dx.reshape(x.shape) if need_dx else None
        dx, dw, db = (
            g if g is None else g.to(dtype)  # back from the autocast dtype, if any
            for g, dtype in zip((dx, dw, grads.db), ctx.dtypes, strict=True)
        )
        return dx, dw, db, None, None, None, None


class MePropLinear(nn.Linear):
    """``nn.Linear`` with a sparsified backward (meProp, Sun et al. 2017).

    Same parameters, same forward and same ``state_dict`` as ``nn.Linear``. In the
    backward, only k entries of dY (per example for ``topk``/``randk``, per batch for
    ``unified``) reach the weight and input gradients; the bias gradient stays dense.

    Args:
        k: entries kept, an int in [1, out_features] or a float in (0, 1] meaning
            that fraction of out_features.
        method: ``dense``, ``topk``, ``unified`` or ``randk``.
        strategy: how the kernel computes it (see ``meprop_bench.core.kernels.KERNELS``).
            Left out (``auto``), each backward takes the fastest exact kernel for its
            gradient (:func:`~meprop_bench.core.kernels.fastest_kernel`): ``native`` on
            the CPU in float32/float64 (unified top-k: at small shapes), else
            ``masked`` per example and ``compact`` for unified, or with
            ``sparse_grad`` the method's compact strategy.
        sparse_grad: make ``weight.grad`` a row-sparse COO tensor holding only the
            touched rows (as ``nn.Embedding(sparse=True)``), for optimizers that take
            sparse gradients such as ``torch.optim.SparseAdam`` and ``SGD``. Needs a
            compact strategy (``native``, ``unified/compact``, ``topk/rowunion``,
            ``randk/rowunion``).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        k: int | float,
        method: str = "topk",
        strategy: str | None = None,
        sparse_grad: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self.k = resolve_k(k, out_features)
        if method == "dense" and strategy is None:
            strategy = "dense"
        kernel = get_kernel(method, strategy)
        if sparse_grad and not (kernel.compact or strategy is None):
            compact = ", ".join(kern.name for kern in _COMPACT.values())
            raise MePropInputError(
                f"sparse_grad=True needs a compact strategy ({compact}); "
                f"{kernel.name} returns a full weight gradient"
            )
        # Names, not the kernel object: its function is a closure, which would keep the
        # layer from pickling, deep-copying and torch.save-ing as nn.Linear does.
        self.method, self.strategy = kernel.method, strategy
        self.sparse_grad = sparse_grad

    @property
    def kernel(self) -> Kernel:
        """The backward kernel for this layer's weight (device, dtype; with ``auto``,
        the fastest at a batch of one row), looked up by (method, strategy)."""
        if self.strategy is None:
            probe = self.weight.new_empty((1, self.out_features), device=self.weight.device)
            return fastest_kernel(self.method, probe, compact=self.sparse_grad)
        return get_kernel(self.method, self.strategy)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.in_features:
            raise MePropInputError(
                f"input's last dimension is {x.shape[-1]}, expected in_features={self.in_features}"
            )
        return _MePropFunction.apply(
            x, self.weight, self.bias, self.method, self.strategy, self.k, self.sparse_grad
        )

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, k={self.k}, method={self.method}, "
            f"strategy={self.strategy or 'auto'}, sparse_grad={self.sparse_grad}"
        )

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs) -> MePropLinear:
        """A MePropLinear sharing ``linear``'s parameter objects (so optimizers built
        on the old layer keep working); ``kwargs`` as for the constructor."""
        layer = cls(
            linear.in_features,
            linear.out_features,
            linear.bias is not None,
            device="meta",
            dtype=linear.weight.dtype,
            **kwargs,
        )
        layer.weight = linear.weight
        layer.bias = linear.bias
        return layer


def swap_linear(
    model: nn.Module,
    *,
    k: int | float,
    method: str = "topk",
    strategy: str | None = None,
    sparse_grad: bool = False,
    skip: Callable[[str, nn.Linear], bool] | None = None,
    replace: bool = False,
) -> nn.Module:
    """Replace, in place, every ``nn.Linear`` of ``model`` with a ``MePropLinear``.

    Parameters are shared, not copied. ``skip(name, layer)`` returning True keeps that
    layer dense; the paper's MLP keeps its output layer dense, e.g.
    ``skip=lambda name, layer: name == "out"``. A layer reachable under several names
    (``net.b = net.a``) stays one layer: every name gets the same MePropLinear, or,
    when ``skip`` is True for any of its names, the layer stays dense. A layer that is
    already a MePropLinear is refused, since a second swap with other options would
    silently keep the first, unless ``replace=True``, which swaps it with these options.
    Returns ``model``, or the new layer when ``model`` is itself a linear layer.
    """
    options = dict(k=k, method=method, strategy=strategy, sparse_grad=sparse_grad)
    found: dict[int, tuple[nn.Linear, list[str]]] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        if type(mod) in (nn.Linear, MePropLinear):
            found.setdefault(id(mod), (mod, []))[1].append(name)
    targets = [
        (layer, names)
        for layer, names in found.values()
        if not (skip and any(skip(name, layer) for name in names))
    ]
    _refuse_second_swap(
        [names[0] for layer, names in targets if type(layer) is MePropLinear], replace
    )
    for linear, names in targets:
        layer = MePropLinear.from_linear(linear, **options)
        if names == [""]:
            return layer  # ``model`` is the layer itself
        for name in names:
            parent_name, _, attr = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, attr, layer)
    return model


def _refuse_second_swap(swapped: list[str], replace: bool) -> None:
    if not swapped or replace:
        return
    what = (
        "the layer is already a MePropLinear"
        if swapped == [""]
        else f"the model already holds MePropLinear layers ({', '.join(swapped)})"
    )
    raise MePropInputError(f"{what}; pass replace=True to swap again with these options")
