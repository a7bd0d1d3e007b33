"""Triton kernels for CUDA: per-example top-k / random-k, and unified top-k.

The ``triton`` strategy does on the GPU what the method asks for, in a few launches
(the @triton.jit code is in :mod:`meprop_bench.triton_jit`):

- ``topk`` / ``randk``: one program per example selects its k entries (a bisection on
  the bits of |score| for the k-th largest, then ties admitted in column order) and, in
  the same program, computes its row of dX from those k entries and k rows of W. The
  kept entries are regrouped by column (a stable sort), and one program per kept column
  and block of d_in writes that column's row of dW. dW comes back as a :class:`RowGrad`
  over the union of kept columns, whose size is read back to the host once, after
  every launch is queued (as ``rowunion`` does): the one synchronisation, and why these
  two kernels cannot be captured in a CUDA graph.
- ``unified``: the k columns are torch's (:func:`~meprop_bench.core.selection.unified_topk`,
  so exactly unified/compact's), then two GEMMs whose loads gather dY[:, idx] and W[idx]
  in place: no gathered copies, no host synchronisation.

The kept set is the one :mod:`meprop_bench.core.selection` picks (ties go to the lowest
column), random-k draws its scores from the caller's generator exactly as the torch
strategies do, and products accumulate in float32. float32 GEMMs follow torch's
``torch.backends.cuda.matmul.allow_tf32`` (off by default: full float32, as dense).

The kernels take CUDA tensors of float32, float16 or bfloat16. CPU tensors are refused
with the CPU strategies named, except under Triton's interpreter (``TRITON_INTERPRET=1``
set before the first triton kernel runs), where they run slowly on the CPU: that is how
the tests check them without a GPU. Without triton installed the strategy says so; the
others work as ever. Block sizes are fixed, untuned (the constants below): no GPU was at
hand to tune them.
"""

from __future__ import annotations

import functools
import os
from types import ModuleType

import torch

from meprop_bench.core.kernel_types import Gradients, KernelFn, RowGrad, not_differentiable
from meprop_bench.core.selection import batch_sum, random_scores, unified_topk
from meprop_bench.errors import MePropInputError

#: The dtypes the kernels take.
DTYPES = (torch.float32, torch.float16, torch.bfloat16)
#: Widest row chunk of the selection: rows up to this wide are held in registers once.
SELECT_BLOCK = 8192
#: Kept entries per step of a dX row, and the d_in block of dX and dW.
ENTRY_BLOCK = 16
D_BLOCK = 128
#: Tiles of the unified GEMMs (M x N output tile, T inner step; at least 16 each).
GEMM_BLOCK_M = 64
GEMM_BLOCK_N = 64
GEMM_BLOCK_T = 32

_CPU_ALTERNATIVES = (
    "on the CPU use native, masked, sparse or rowunion (topk, randk) or compact, scatter "
    "or native (unified), e.g. topk/native"
)


@functools.cache
def _jit() -> ModuleType:
    """The @triton.jit kernels; a one-line error naming triton when it cannot be imported."""
    try:
        from meprop_bench.core import triton_jit
    except ImportError as err:
        raise MePropInputError(
            f"the triton strategy needs the triton package ({err}); install it with: "
            "pip install triton"
        ) from None
    return triton_jit


def available() -> bool:
    """Whether triton can be imported, so the triton kernels can run (on CUDA)."""
    try:
        _jit()
    except MePropInputError:
        return False
    return True


def prepare() -> None:
    """Import triton (a one-line error when it is missing). Triton compiles each kernel
    at its first call for the shapes' block sizes: time only after a warm-up call."""
    _jit()


def _interpret_requested() -> bool:
    return os.environ.get("TRITON_INTERPRET", "").strip().lower() in ("1", "true", "on")


def _check_inputs(*tensors: torch.Tensor) -> ModuleType:
    """The jit module, after refusing what the kernels cannot take: tensors off CUDA
    (outside the interpreter), other dtypes, and a backward that autograd records to
    differentiate again (create_graph=True)."""
    off_cuda = next((t for t in tensors if t.device.type != "cuda"), None)
    if off_cuda is not None and not _interpret_requested():
        raise MePropInputError(
            f"the triton strategy runs on CUDA only, got a tensor on {off_cuda.device}; "
            + _CPU_ALTERNATIVES
        )
    jit = _jit()
    if off_cuda is not None and not (jit.INTERPRETED and off_cuda.device.type == "cpu"):
        raise MePropInputError(
            f"the triton strategy runs on CUDA only, got a tensor on {off_cuda.device} "
            "(TRITON_INTERPRET=1 takes effect only when set before the first triton kernel "
            "runs); " + _CPU_ALTERNATIVES
        )
    for t in tensors:
        if t.dtype not in DTYPES:
            raise MePropInputError(
                f"the triton strategy takes float32, float16 or bfloat16, got {t.dtype}; "
                "use masked, sparse or rowunion (per example) or compact (unified)"
            )
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        raise not_differentiable("triton", *tensors)
    return jit


def _pow2(value: int, cap: int) -> int:
    """The power of two at least ``value`` (and 1), at most ``cap``."""
    return min(cap, 1 << max(0, value - 1).bit_length())


def _precision(dtype: torch.dtype) -> str:
    """tl.dot's input precision: torch's own choice for float32 GEMMs (TF32 or not)."""
    if dtype == torch.float32 and torch.backends.cuda.matmul.allow_tf32:
        return "tf32"
    return "ieee"


def per_example(method: str) -> KernelFn:
    """The triton kernel for ``topk`` (scores |dY|) or ``randk`` (uniform noise)."""
    use_noise = method == "randk"

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        jit = _check_inputs(dy, x, w)
        db = batch_sum(dy) if need_db else None
        if not (need_dx or need_dw):
            return Gradients(None, None, db)
        score = random_scores(dy, generator) if use_noise else dy
        idx, vals, dx = _select_rows_dx(jit, score, dy, w, k, need_dx)
        dw = _union_rows(jit, idx, vals, x, dy.shape[1]) if need_dw else None
        return Gradients(dx, dw, db)

    return kernel


def _select_rows_dx(
    jit: ModuleType,
    score: torch.Tensor,
    dy: torch.Tensor,
    w: torch.Tensor,
    k: int,
    need_dx: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Each row's kept columns (B x k int32, ascending) and dY there (float32), and dX
    when asked for: one launch, one program per row."""
    batch, n = dy.shape
    d_in = w.shape[1]
    idx = torch.empty((batch, k), dtype=torch.int32, device=dy.device)
    vals = torch.empty((batch, k), dtype=torch.float32, device=dy.device)
    dx = torch.empty((batch, d_in), dtype=dy.dtype, device=dy.device) if need_dx else None
    if batch == 0:
        return idx, vals, dx
    block_n = _pow2(n, SELECT_BLOCK)
    out = dx if dx is not None else vals  # any tensor: NEED_DX=False never touches it
    jit.select_rows_dx[(batch,)](
        score, score.stride(0), score.stride(1),
        dy, dy.stride(0), dy.stride(1),
        w, w.stride(0), w.stride(1),
        idx, vals,
        out, out.stride(0), out.stride(1),
        n, d_in, k,
        NEED_DX=need_dx and d_in > 0, ONE_BLOCK=n <= block_n,
        BLOCK_N=block_n, BLOCK_K=_pow2(k, ENTRY_BLOCK), BLOCK_D=_pow2(d_in, D_BLOCK),
        num_warps=min(16, max(4, block_n // 512)),  # 8192 wide: 16 warps, 128 registers
        enable_fp_fusion=True,
    )  # fmt: skip
    return idx, vals, dx


def _union_rows(
    jit: ModuleType, idx: torch.Tensor, vals: torch.Tensor, x: torch.Tensor, n: int
) -> RowGrad:
    """dW over the union of kept columns: the entries regrouped by column with a stable
    sort (examples ascending within a column), then one program per column and d_in
    block. The union's size is read back last, after every launch is queued."""
    batch, k = idx.shape
    d_in = x.shape[1]
    device = x.device
    cols = idx.reshape(-1)
    order = torch.argsort(cols, stable=True)
    rows = torch.div(order, k, rounding_mode="floor").to(torch.int32)
    by_col = cols[order]
    bounds = torch.arange(n + 1, dtype=torch.int32, device=device)
    starts = torch.searchsorted(by_col, bounds, out_int32=True)
    kept = starts[1:] > starts[:-1]
    slots = torch.cumsum(kept, 0, dtype=torch.int32) - 1
    room = min(n, batch * k)
    union = torch.empty(room, dtype=torch.int64, device=device)
    dw = torch.empty((room, d_in), dtype=x.dtype, device=device)
    if room and d_in:
        block_d = _pow2(d_in, D_BLOCK)
        jit.union_rows_dw[(n, _cdiv(d_in, block_d))](
            starts, slots, rows, vals.reshape(-1)[order],
            x, x.stride(0), x.stride(1),
            union, dw, dw.stride(0), dw.stride(1),
            d_in,
            BLOCK_E=_pow2(batch, ENTRY_BLOCK), BLOCK_D=block_d, enable_fp_fusion=True,
        )  # fmt: skip
    elif room:  # d_in == 0: no rows to write, but the union is still the kept columns
        union = torch.nonzero(kept).flatten()
    used = int(slots[-1]) + 1 if room else 0  # the one read back to the host
    return RowGrad(union[:used], dw[:used], n)


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def unified(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
    """Unified top-k: torch's selection (unified/compact's columns), then the two k-wide
    GEMMs in Triton with the gathers in their loads."""
    jit = _check_inputs(dy, x, w)
    db = batch_sum(dy) if need_db else None
    if not (need_dx or need_dw):
        return Gradients(None, None, db)
    batch, n = dy.shape
    d_in = x.shape[1]
    idx = unified_topk(dy, k)
    precision = _precision(dy.dtype)
    dx = dw = None
    if need_dx:
        dx = torch.empty((batch, d_in), dtype=dy.dtype, device=dy.device)
        # dX = dY[:, idx] @ W[idx]: A = dY (B x k through idx), B = W (k rows through idx)
        _gemm(jit, dy, dy.stride(0), dy.stride(1), w, w.stride(0), w.stride(1), idx, dx,
              batch, d_in, k, gather_m=False, gather_t=True, precision=precision)  # fmt: skip
    if need_dw:
        values = torch.empty((k, d_in), dtype=dy.dtype, device=dy.device)
        # dW[idx] = dY[:, idx]ᵀ @ x: A = dYᵀ (k rows through idx), B = x
        _gemm(jit, dy, dy.stride(1), dy.stride(0), x, x.stride(0), x.stride(1), idx, values,
              k, d_in, batch, gather_m=True, gather_t=False, precision=precision)  # fmt: skip
        dw = RowGrad(idx, values, n)
    return Gradients(dx, dw, db)


def _gemm(jit, a, stride_am, stride_at, b, stride_bt, stride_bn, idx, c, m, n, t, *,
          gather_m, gather_t, precision) -> None:  # fmt: skip
    if m == 0 or n == 0:
        return
    if t == 0:
        c.zero_()
        return
    grid = (_cdiv(m, GEMM_BLOCK_M), _cdiv(n, GEMM_BLOCK_N))
    jit.gathered_gemm[grid](
        a, stride_am, stride_at,
        b, stride_bt, stride_bn,
        idx,
        c, c.stride(0), c.stride(1),
        m, n, t,
        GATHER_M=gather_m, GATHER_T=gather_t, PRECISION=precision,
        UPCAST=jit.INTERPRETED and c.dtype == torch.bfloat16,
        BLOCK_M=GEMM_BLOCK_M, BLOCK_N=GEMM_BLOCK_N, BLOCK_T=GEMM_BLOCK_T,
        enable_fp_fusion=True,  # triton's default, said aloud: it warns when left unsaid
    )  # fmt: skip
