"""The backward passes under test: dense and each sparsified (meProp) form.

A linear layer computes y = x Wᵀ + b with x: B x d_in and W: n x d_in. Given the
output gradient dy (B x n), every kernel returns ``Gradients(dx, dw, db)``:

- ``dense``: dx = dy W, dw = dyᵀ x, db = Σ dy. The reference.
- ``topk`` / ``randk``: each example (row of dy) keeps its own k entries, chosen by
  magnitude or at random; dx and dw are the dense products of that masked dy.
- ``unified``: one set of k columns for the whole batch (top-k of Σ|dy|), so both
  products are dense GEMMs of width k.

A method may be computed by several strategies (the product forms), so the suites
can time them side by side; ``KERNELS`` lists them all. The bias gradient is always
dense, as in the paper. A strategy is "compact" when its weight gradient comes back
as a :class:`RowGrad` (the touched rows and their indices) instead of a full n x d_in
tensor, whose zero-filling alone costs a memset of n x d_in values whatever k is.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import torch

from meprop_bench.core import native, triton_kernels, workspace
from meprop_bench.core.kernel_types import Gradients, KernelFn, RowGrad
from meprop_bench.core.selection import (
    batch_sum,
    randk_per_example,
    resolve_k,
    topk_per_example,
    unified_topk,
)
from meprop_bench.errors import MePropInputError

# torch warns once per process that CSR support is beta and that sparse invariant
# checks are off by default; both are known here (tests turn the checks on).
warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
warnings.filterwarnings("ignore", message="Sparse invariant checks are implicitly disabled")


def _db(dy, need_db):
    """The bias gradient Σ dy over the batch (always dense), if it is needed."""
    return batch_sum(dy) if need_db else None


def _dense(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
    dx = dy @ w if need_dx else None
    return Gradients(dx, dy.t() @ x if need_dw else None, _db(dy, need_db))


def _with_scratch(kernel: KernelFn) -> KernelFn:
    """``kernel`` with its CPU temporaries in reused scratch buffers (see
    :mod:`meprop_bench.core.workspace`), unless autograd could record its ops."""

    @functools.wraps(kernel)
    def run(dy, x, w, k, generator=None, **needs):
        with workspace.enabled_for(dy, x, w):
            return kernel(dy, x, w, k, generator, **needs)

    return run


def _select_per_example(method, dy, k, generator):
    if method == "randk":
        return randk_per_example(dy, k, generator)
    return topk_per_example(dy, k)


def _per_example_masked(method):
    """Zero all but the kept entries of dy, then the dense products (the authors' form)."""

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        idx = _select_per_example(method, dy, k, generator)
        masked = workspace.zeros_like(dy, "masked").scatter_(1, idx, dy.gather(1, idx))
        dx = masked @ w if need_dx else None
        dw = masked.t() @ x if need_dw else None
        return Gradients(dx, dw, _db(dy, need_db))

    return _with_scratch(kernel)


def _per_example_sparse(method):
    """The kept entries as CSR matrices (dy and its transpose), then torch.sparse.mm.

    Both CSR layouts are built directly from the selection, with row pointers from
    arithmetic and ``searchsorted`` rather than ``bincount``, so no size is read back.
    """

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        b, n = dy.shape
        idx = _select_per_example(method, dy, k, generator).sort(dim=1).values
        vals = dy.gather(1, idx).reshape(-1)
        cols = idx.reshape(-1)
        dx = dw = None
        if need_dx:
            crow = torch.arange(0, b * k + 1, k, device=dy.device)
            dx = torch.sparse.mm(torch.sparse_csr_tensor(crow, cols, vals, (b, n)), w)
        if need_dw:
            rows = torch.arange(b, device=dy.device).repeat_interleave(k)
            order = torch.argsort(cols, stable=True)
            crow_t = torch.searchsorted(cols[order], torch.arange(n + 1, device=dy.device))
            dyt_csr = torch.sparse_csr_tensor(crow_t, rows[order], vals[order], (n, b))
            dw = torch.sparse.mm(dyt_csr, x)
        return Gradients(dx, dw, _db(dy, need_db))

    return _with_scratch(kernel)


def _per_example_rowunion(method):
    """Dense GEMMs over the union U of the columns any example kept: exact.

    On real gradients the examples' top-k sets overlap, so |U| is far below n.
    ``torch.unique`` reads |U| back to the host: the one strategy that synchronises
    on CUDA.
    """

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        idx = _select_per_example(method, dy, k, generator)
        union = torch.unique(idx)
        pos = torch.searchsorted(union, idx)
        sub = dy.new_zeros((dy.shape[0], union.numel())).scatter_(1, pos, dy.gather(1, idx))
        rows = RowGrad(union, sub.t() @ x, dy.shape[1]) if need_dw else None
        dx = sub @ workspace.index_select(w, 0, union, "rows") if need_dx else None
        return Gradients(dx, rows, _db(dy, need_db))

    return _with_scratch(kernel)


def _unified(compact):
    """Gather the k shared columns of dy and rows of W, then two k-wide dense GEMMs."""

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        idx = unified_topk(dy, k)
        sub = dy.index_select(1, idx)
        dw = None
        if need_dw:
            rows = RowGrad(idx, sub.t() @ x, dy.shape[1])
            dw = rows if compact else rows.to_dense()
        dx = sub @ workspace.index_select(w, 0, idx, "rows") if need_dx else None
        return Gradients(dx, dw, _db(dy, need_db))

    return _with_scratch(kernel)


@dataclass(frozen=True)
class Kernel:
    """One (method, strategy) backward and what a caller needs to know about it."""

    method: str
    strategy: str
    fn: KernelFn
    compact: bool
    syncs_on_cuda: bool
    summary: str
    native: bool = False  # compiled CPU code: float32/float64 on the CPU, see prepare()
    triton: bool = False  # Triton code: CUDA only, float32/float16/bfloat16
    #: The dtypes it takes on the CPU, where not every floating dtype (None).
    cpu_dtypes: frozenset[torch.dtype] | None = None
    #: The same kernel writing dW whole (untouched rows zeroed as it goes), where that
    #: beats building it from the RowGrad; see :meth:`full_grads`.
    full_dw_fn: KernelFn | None = None

    @property
    def name(self) -> str:
        return f"{self.method}/{self.strategy}"

    def runs_on(self, device: str | torch.device, dtype: torch.dtype) -> bool:
        """Whether this kernel takes tensors of ``dtype`` on ``device``."""
        kind = torch.device(device).type
        if self.triton:
            return kind == "cuda" and dtype in triton_kernels.DTYPES
        if kind != "cpu":
            return not self.native
        return self.cpu_dtypes is None or dtype in self.cpu_dtypes

    def full_grads(
        self,
        dy: torch.Tensor,
        x: torch.Tensor,
        w: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        **needs: bool,
    ) -> Gradients:
        """The gradients with dW as a full tensor, what a dense ``.grad`` takes: from
        :attr:`full_dw_fn` when the kernel has one, else :attr:`fn`'s RowGrad made dense."""
        if self.full_dw_fn is not None:
            return self.full_dw_fn(dy, x, w, k, generator, **needs)
        grads = self.fn(dy, x, w, k, generator, **needs)
        return grads._replace(dw=grads.dense_dw())

    def prepare(self) -> None:
        """Compile ahead (or load from the disk cache) whatever this kernel compiles, so
        no timed call does; a no-op for the torch strategies. Harnesses call it before
        timing."""
        if self.native:
            native.compile_ahead()
        if self.triton:
            triton_kernels.prepare()  # a one-line error when triton is missing


#: float32 and float64: what the native kernels take, and torch's CSR products on the CPU
#: (MKL's, with no half-precision kernel).
SINGLE_DOUBLE = frozenset((torch.float32, torch.float64))


def _per_example_kernels(method: str, chooser: str) -> list[Kernel]:
    return [
        Kernel(method, "masked", _per_example_masked(method), False, False,
               f"{chooser} per example, zero the rest, dense GEMMs (authors' form)"),
        Kernel(method, "sparse", _per_example_sparse(method), False, False,
               f"{chooser} per example as CSR, torch.sparse.mm", cpu_dtypes=SINGLE_DOUBLE),
        Kernel(method, "rowunion", _per_example_rowunion(method), True, True,
               f"{chooser} per example, dense GEMMs over the union of kept columns"),
        Kernel(method, "native", native.per_example(method), True, False,
               f"{chooser} per example in compiled CPU code, products over kept entries only",
               native=True, cpu_dtypes=SINGLE_DOUBLE,
               full_dw_fn=native.per_example(method, full_dw=True)),
        Kernel(method, "triton", triton_kernels.per_example(method), True, True,
               f"{chooser} per example in Triton (CUDA): selection fused with dX, dW rows "
               "over the union of kept columns", triton=True),
    ]  # fmt: skip


KERNELS: dict[tuple[str, str], Kernel] = {
    (kern.method, kern.strategy): kern
    for kern in [
        Kernel("dense", "dense", _dense, False, False, "full dense backward (reference)"),
        *_per_example_kernels("topk", "top-k"),
        *_per_example_kernels("randk", "random k"),
        Kernel("unified", "compact", _unified(True), True, False,
               "one top-k column set per batch, k-wide GEMMs, dW as k rows + indices"),
        Kernel("unified", "scatter", _unified(False), False, False,
               "one top-k column set per batch, k-wide GEMMs, dW scattered into n x d_in"),
        Kernel("unified", "native", native.unified, True, False,
               "one top-k column set per batch, selection and products in one compiled "
               "CPU call (small shapes)", native=True, cpu_dtypes=SINGLE_DOUBLE),
        Kernel("unified", "triton", triton_kernels.unified, True, False,
               "one top-k column set per batch, Triton GEMMs that gather dY and W in their "
               "loads (CUDA)", triton=True),
    ]
}  # fmt: skip

METHODS: tuple[str, ...] = tuple(dict.fromkeys(method for method, _ in KERNELS))

DEFAULT_STRATEGY: dict[str, str] = {
    "dense": "dense",
    "topk": "masked",
    "randk": "masked",
    "unified": "compact",
}


def fastest_kernel(
    method: str, dy: torch.Tensor, *, compact: bool = False, differentiable: bool = False
) -> Kernel:
    """The fastest exact kernel for ``method`` on a gradient like ``dy`` (its device,
    dtype and shape); with ``compact``, the fastest that returns dW as rows; with
    ``differentiable``, one whose result autograd can differentiate again (a backward
    with ``create_graph=True``), which rules the compiled native code out.

    Native where it runs (CPU, float32/float64, numba installed), except unified top-k
    above :data:`~meprop_bench.core.native.UNIFIED_SMALL` elements of dY, where BLAS's GEMMs
    win; otherwise the method's default, or its compact strategy when asked for one.
    """
    _check_method(method)
    candidate = KERNELS.get((method, "native"))
    usable = (
        candidate is not None
        and not differentiable
        and (method != "unified" or dy.numel() <= native.UNIFIED_SMALL)
        and candidate.runs_on(dy.device, dy.dtype)
    )
    if usable and native.available():
        return candidate
    if compact and method != "dense":
        return next(kern for (m, _), kern in KERNELS.items() if m == method and kern.compact)
    return get_kernel(method)


def strategies(method: str) -> tuple[str, ...]:
    """The strategies that compute ``method``."""
    _check_method(method)
    return tuple(s for m, s in KERNELS if m == method)


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise MePropInputError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")


def get_kernel(method: str, strategy: str | None = None) -> Kernel:
    """The kernel for ``method`` computed by ``strategy`` (default: the method's default)."""
    _check_method(method)
    strategy = DEFAULT_STRATEGY[method] if strategy is None else strategy
    try:
        return KERNELS[(method, strategy)]
    except KeyError:
        raise MePropInputError(
            f"unknown strategy {strategy!r} for method {method!r}; "
            f"choose one of: {', '.join(strategies(method))}"
        ) from None


def check_inputs(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor, k: int | float) -> int:
    """Validate the shapes, dtypes and devices of a backward's inputs; return k as a count."""
    for name, t, ndim in (("dy", dy, 2), ("x", x, 2), ("w", w, 2)):
        if not isinstance(t, torch.Tensor):
            raise MePropInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != ndim:
            raise MePropInputError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise MePropInputError(f"{name} must be floating point, got {t.dtype}")
    if dy.shape[0] != x.shape[0]:
        raise MePropInputError(f"batch mismatch: dy has {dy.shape[0]} rows, x has {x.shape[0]}")
    if w.shape != (dy.shape[1], x.shape[1]):
        raise MePropInputError(
            f"w must be n x d_in = {dy.shape[1]} x {x.shape[1]} for dy {tuple(dy.shape)} "
            f"and x {tuple(x.shape)}, got {tuple(w.shape)}"
        )
    if len({dy.dtype, x.dtype, w.dtype}) != 1:
        raise MePropInputError(f"dtype mismatch: dy {dy.dtype}, x {x.dtype}, w {w.dtype}")
    if len({dy.device, x.device, w.device}) != 1:
        raise MePropInputError(
            f"device mismatch: dy on {dy.device}, x on {x.device}, w on {w.device}"
        )
    return resolve_k(k, dy.shape[1])


def backward(
    dy: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    k: int | float,
    method: str = "topk",
    strategy: str | None = None,
    generator: torch.Generator | None = None,
    *,
    need_dx: bool = True,
    need_dw: bool = True,
    need_db: bool = True,
) -> Gradients:
    """Run one backward kernel after validating its inputs.

    ``k`` is a count, or a float in (0, 1] meaning a fraction of n (ignored by
    ``dense`` beyond validation). ``generator`` feeds ``randk``. ``need_dx``,
    ``need_dw`` and ``need_db`` False skip that gradient (returned as None).
    """
    kernel = get_kernel(method, strategy)
    k = check_inputs(dy, x, w, k)
    needs = dict(need_dx=need_dx, need_dw=need_dw, need_db=need_db)
    return kernel.fn(dy, x, w, k, generator, **needs)
