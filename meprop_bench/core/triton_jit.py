"""The Triton kernels behind the triton strategy (see :mod:`meprop_bench.triton_kernels`).

Imported only when a triton kernel first runs, so the rest of the package works without
triton. With ``TRITON_INTERPRET=1`` set before this module is imported, ``triton.jit``
gives interpreted functions that run on CPU tensors (:data:`INTERPRETED`): that is how
the tests check these kernels on a machine without a GPU.

- :func:`select_rows_dx`: one program per example (row of dY). It finds the k-th
  largest score of its row by bisection on the score's bits, keeps the entries above it
  and then the tied ones in column order up to k (the lowest-index rule of
  :mod:`meprop_bench.core.selection`), writes the kept columns (ascending) and their dY, and
  computes its row of dX from those k entries and k rows of W only.
- :func:`union_rows_dw`: one program per (column, block of d_in). The kept entries come
  regrouped by column (the caller sorts them); a column that any example kept writes its
  row of dW, Σ dY[b, c] x[b], into the compact output at its rank among kept columns.
- :func:`gathered_gemm`: C = A B with rows or the inner dimension taken through an
  index vector inside the loads, so unified top-k's k-wide GEMMs read dY[:, idx] and
  W[idx] in place, without gathered copies.

Products accumulate in float32 whatever the input dtype (float32, float16, bfloat16).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _score_bits(row_ptr, cols, stride, mask):
    """|score| of ``cols`` as float32 bits (int32): for non-negative floats the bits are
    ordered as the values are, so a bisection on them finds the k-th largest exactly."""
    score = tl.load(row_ptr + cols * stride, mask=mask, other=0.0).to(tl.float32)
    return tl.abs(score).to(tl.int32, bitcast=True)


@triton.jit
def _count_above(row_ptr, n, stride, t, BLOCK_N: tl.constexpr):
    """How many |scores| of a row have bits above ``t``, streaming it in BLOCK_N chunks."""
    count = tl.full((), 0, tl.int32)
    for start in range(0, n, BLOCK_N):
        cols = start + tl.arange(0, BLOCK_N)
        mask = cols < n
        count += tl.sum(((_score_bits(row_ptr, cols, stride, mask) > t) & mask).to(tl.int32))
    return count


@triton.jit
def select_rows_dx(
    score_ptr, stride_sb, stride_sn,
    dy_ptr, stride_yb, stride_yn,
    w_ptr, stride_wn, stride_wd,
    idx_ptr, val_ptr,
    dx_ptr, stride_xb, stride_xd,
    n, d_in, k,
    NEED_DX: tl.constexpr, ONE_BLOCK: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """Per-example selection of k entries by |score|, fused with that example's dX.

    ``idx_ptr`` / ``val_ptr`` (B x k, contiguous, int32 / float32) receive each row's
    kept columns in ascending order and dY there. With ``ONE_BLOCK`` (n <= BLOCK_N) the
    row's scores are loaded once and every bisection step reduces registers; otherwise
    each step streams the row in BLOCK_N chunks.
    """
    row = tl.program_id(0).to(tl.int64)
    s_row = score_ptr + row * stride_sb
    y_row = dy_ptr + row * stride_yb
    offs = tl.arange(0, BLOCK_N)
    in_row = offs < n
    if ONE_BLOCK:
        bits_all = _score_bits(s_row, offs, stride_sn, in_row)

    # The k-th largest bits: the largest t with #{bits >= t} >= k, one bit at a time.
    kth = tl.full((), 0, tl.int32)
    for i in range(31):
        cand = kth | (1 << (30 - i))
        if ONE_BLOCK:
            count = tl.sum(((bits_all >= cand) & in_row).to(tl.int32))
        else:
            count = _count_above(s_row, n, stride_sn, cand - 1, BLOCK_N)
        kth = tl.where(count >= k, cand, kth)

    # Entries strictly above kth are all kept; ties at kth fill the rest, lowest first.
    if ONE_BLOCK:
        above_kth = tl.sum(((bits_all > kth) & in_row).to(tl.int32))
    else:
        above_kth = _count_above(s_row, n, stride_sn, kth, BLOCK_N)
    room = k - above_kth
    written = tl.full((), 0, tl.int32)
    ties = tl.full((), 0, tl.int32)
    for start in range(0, n, BLOCK_N):
        cols = start + offs
        mask = cols < n
        if ONE_BLOCK:  # noqa: SIM108 (a ternary would name bits_all where it is undefined)
            bits = bits_all
        else:
            bits = _score_bits(s_row, cols, stride_sn, mask)
        tie = ((bits == kth) & mask).to(tl.int32)
        tie_rank = ties + tl.cumsum(tie, 0) - tie
        keep = (((bits > kth) & mask) | ((tie != 0) & (tie_rank < room))).to(tl.int32)
        pos = written + tl.cumsum(keep, 0) - keep
        kept = keep != 0
        value = tl.load(y_row + cols * stride_yn, mask=kept, other=0.0).to(tl.float32)
        tl.store(idx_ptr + row * k + pos, cols, mask=kept)
        tl.store(val_ptr + row * k + pos, value, mask=kept)
        written += tl.sum(keep)
        ties += tl.sum(tie)

    if NEED_DX:
        tl.debug_barrier()  # this program's kept entries, written above, are read back
        x_row = dx_ptr + row * stride_xb
        for d0 in range(0, d_in, BLOCK_D):
            d = d0 + tl.arange(0, BLOCK_D)
            d_mask = d < d_in
            acc = tl.zeros((BLOCK_D,), tl.float32)
            for j0 in range(0, k, BLOCK_K):
                j = j0 + tl.arange(0, BLOCK_K)
                j_mask = j < k
                col = tl.load(idx_ptr + row * k + j, mask=j_mask, other=0).to(tl.int64)
                value = tl.load(val_ptr + row * k + j, mask=j_mask, other=0.0)
                w_rows = tl.load(
                    w_ptr + col[:, None] * stride_wn + d[None, :] * stride_wd,
                    mask=j_mask[:, None] & d_mask[None, :],
                    other=0.0,
                ).to(tl.float32)
                acc += tl.sum(value[:, None] * w_rows, axis=0)
            tl.store(x_row + d * stride_xd, acc.to(dx_ptr.dtype.element_ty), mask=d_mask)


@triton.jit
def union_rows_dw(
    starts_ptr, slots_ptr, rows_ptr, vals_ptr,
    x_ptr, stride_xb, stride_xd,
    union_ptr, dw_ptr, stride_wr, stride_wd,
    d_in,
    BLOCK_E: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    """dW's row for one column c and one block of d_in: Σ over the examples that kept c.

    The kept entries of column c are ``rows_ptr`` / ``vals_ptr`` [starts[c], starts[c+1])
    (examples ascending); ``slots_ptr[c]`` is c's rank among the kept columns, the row
    it is written to; block 0 also records c in ``union_ptr`` there.
    """
    col = tl.program_id(0)
    block = tl.program_id(1)
    start = tl.load(starts_ptr + col)
    end = tl.load(starts_ptr + col + 1)
    if end > start:
        slot = tl.load(slots_ptr + col).to(tl.int64)
        d = block * BLOCK_D + tl.arange(0, BLOCK_D)
        d_mask = d < d_in
        acc = tl.zeros((BLOCK_D,), tl.float32)
        for e0 in range(start, end, BLOCK_E):
            e = e0 + tl.arange(0, BLOCK_E)
            e_mask = e < end
            example = tl.load(rows_ptr + e, mask=e_mask, other=0).to(tl.int64)
            value = tl.load(vals_ptr + e, mask=e_mask, other=0.0)
            x_rows = tl.load(
                x_ptr + example[:, None] * stride_xb + d[None, :] * stride_xd,
                mask=e_mask[:, None] & d_mask[None, :],
                other=0.0,
            ).to(tl.float32)
            acc += tl.sum(value[:, None] * x_rows, axis=0)
        tl.store(dw_ptr + slot * stride_wr + d * stride_wd, acc.to(dw_ptr.dtype.element_ty),
                 mask=d_mask)  # fmt: skip
        if block == 0:
            tl.store(union_ptr + slot, col.to(tl.int64))


@triton.jit
def gathered_gemm(
    a_ptr, stride_am, stride_at,
    b_ptr, stride_bt, stride_bn,
    idx_ptr,
    c_ptr, stride_cm, stride_cn,
    M, N, T,
    GATHER_M: tl.constexpr, GATHER_T: tl.constexpr, PRECISION: tl.constexpr,
    UPCAST: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    """C (M x N) = Σ_t A[m', t'] B[t', n], float32 accumulation, with m' = idx[m] when
    GATHER_M (else m) and t' = idx[t] when GATHER_T (else t) for A's and B's index alike.

    Unified dX: A = dY, B = W, GATHER_T (T = k). Unified dW rows: A = dYᵀ (strides
    swapped), B = x, GATHER_M (M = k, T = B). ``UPCAST`` multiplies float32 copies of
    the tiles: the interpreter's tl.dot (triton 3.9) multiplies bfloat16 tiles' raw bits.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask = rm < M
    n_mask = rn < N
    if GATHER_M:
        a_rows = tl.load(idx_ptr + rm, mask=m_mask, other=0).to(tl.int64)
    else:
        a_rows = rm.to(tl.int64)
    acc = tl.zeros((BLOCK_M, BLOCK_N), tl.float32)
    for t0 in range(0, T, BLOCK_T):
        rt = t0 + tl.arange(0, BLOCK_T)
        t_mask = rt < T
        if GATHER_T:
            inner = tl.load(idx_ptr + rt, mask=t_mask, other=0).to(tl.int64)
        else:
            inner = rt.to(tl.int64)
        a = tl.load(
            a_ptr + a_rows[:, None] * stride_am + inner[None, :] * stride_at,
            mask=m_mask[:, None] & t_mask[None, :],
            other=0.0,
        )
        b = tl.load(
            b_ptr + inner[:, None] * stride_bt + rn[None, :] * stride_bn,
            mask=t_mask[:, None] & n_mask[None, :],
            other=0.0,
        )
        if UPCAST:
            a = a.to(tl.float32)
            b = b.to(tl.float32)
        acc = tl.dot(a, b, acc, input_precision=PRECISION)
    c = c_ptr + rm[:, None].to(tl.int64) * stride_cm + rn[None, :] * stride_cn
    tl.store(c, acc.to(c_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


#: Whether ``triton.jit`` gave interpreted functions (TRITON_INTERPRET=1 when this
#: module was imported): then the kernels take CPU tensors.
INTERPRETED: bool = type(select_rows_dx).__name__ == "InterpretedFunction"

__all__ = ["INTERPRETED", "gathered_gemm", "select_rows_dx", "triton", "union_rows_dw"]
