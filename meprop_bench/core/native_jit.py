"""The numba-compiled loops behind the native CPU kernels (see :mod:`meprop_bench.core.native`).

Plain array code, no torch: selection, regrouping by column and the products over the
kept entries. Each loop is compiled twice from one Python function, parallel (``prange``
runs on numba's thread pool) and serial (``prange`` is a plain ``range``), because a
parallel region costs tens of microseconds to start, more than the whole backward at
the paper's MNIST shape. Compiled code is cached on disk beside this file.

Tie rule, shared with :mod:`meprop_bench.core.selection`: an entry outranks another when its
score is larger, or equal with a lower column index. So a selection of k is one set,
whatever the algorithm.
"""

from __future__ import annotations

import types

import numba
import numpy as np

_OPTIONS = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")


def _both(fn):
    """``fn`` compiled parallel and serial: returns (parallel, serial).

    The serial one is compiled from a copy under another name: numba names its disk
    cache after the function, not its options, so two compilations of one function
    would load each other's machine code (the "serial" loops ran parallel ones).
    """
    serial = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_serial")
    serial.__qualname__ = f"{fn.__qualname__}_serial"
    return numba.njit(parallel=True, **_OPTIONS)(fn), numba.njit(**_OPTIONS)(serial)


@numba.njit(inline="always", **_OPTIONS)
def _worse(va, ia, vb, ib):
    """Whether (va, ia) ranks below (vb, ib): smaller score, or equal and later index."""
    return va < vb or (va == vb and ia > ib)


@numba.njit(inline="always", **_OPTIONS)
def _sift_down(hv, hi, pos, size):
    """Restore the min-heap (worst entry at the root) below ``pos``."""
    while True:
        child = 2 * pos + 1
        if child >= size:
            return
        right = child + 1
        if right < size and _worse(hv[right], hi[right], hv[child], hi[child]):
            child = right
        if not _worse(hv[child], hi[child], hv[pos], hi[pos]):
            return
        hv[pos], hv[child] = hv[child], hv[pos]
        hi[pos], hi[child] = hi[child], hi[pos]
        pos = child


@numba.njit(**_OPTIONS)
def _heap_select_row(score, use_abs, k, hv, hi):
    """The k best entries of one row into (hv, hi), by a min-heap of size k.

    Entries are scanned in column order, so one that only ties the root comes later
    than it and ranks below it: a strict ``>`` against the root suffices.
    """
    n = score.shape[0]
    for j in range(k):
        hv[j] = abs(score[j]) if use_abs else score[j]
        hi[j] = j
    for j in range(k // 2 - 1, -1, -1):
        _sift_down(hv, hi, j, k)
    for j in range(k, n):
        v = abs(score[j]) if use_abs else score[j]
        if v > hv[0]:
            hv[0] = v
            hi[0] = j
            _sift_down(hv, hi, 0, k)


@numba.njit(**_OPTIONS)
def _partition_select_row(score, use_abs, k, sv, si):
    """The k best entries of one row into (sv[:k], si[:k]), by quickselect.

    ``sv`` and ``si`` have room for the whole row. Expected O(n): faster than the heap
    once k is a sizeable fraction of n. Pivots are medians of three, compared under the
    full tie rule, so equal scores cannot degrade it.
    """
    n = score.shape[0]
    for j in range(n):
        sv[j] = abs(score[j]) if use_abs else score[j]
        si[j] = j
    lo, hi = 0, n - 1
    while lo < hi:
        mid = (lo + hi) // 2
        # median of three, moved to hi; "better" sorts first
        if _worse(sv[lo], si[lo], sv[mid], si[mid]):
            sv[lo], sv[mid] = sv[mid], sv[lo]
            si[lo], si[mid] = si[mid], si[lo]
        if _worse(sv[lo], si[lo], sv[hi], si[hi]):
            sv[lo], sv[hi] = sv[hi], sv[lo]
            si[lo], si[hi] = si[hi], si[lo]
        if _worse(sv[hi], si[hi], sv[mid], si[mid]):
            sv[mid], sv[hi] = sv[hi], sv[mid]
            si[mid], si[hi] = si[hi], si[mid]
        pv, pi = sv[hi], si[hi]
        store = lo
        for j in range(lo, hi):
            if _worse(pv, pi, sv[j], si[j]):
                sv[store], sv[j] = sv[j], sv[store]
                si[store], si[j] = si[j], si[store]
                store += 1
        sv[store], sv[hi] = sv[hi], sv[store]
        si[store], si[hi] = si[hi], si[store]
        if store == k - 1 or store == k:
            return
        if store > k:
            hi = store - 1
        else:
            lo = store + 1


def _select(score, use_abs, k, quick, work_v, work_i, idx):
    """Per-row top-k of ``score`` (B x n; |score| when ``use_abs``) into ``idx`` (B x k).

    ``quick`` picks quickselect over the heap; ``work_v`` and ``work_i`` are B x k
    (heap) or B x n (quickselect) scratch.
    """
    rows = score.shape[0]
    for b in numba.prange(rows):
        if quick:
            _partition_select_row(score[b], use_abs, k, work_v[b], work_i[b])
        else:
            _heap_select_row(score[b], use_abs, k, work_v[b], work_i[b])
        for j in range(k):
            idx[b, j] = work_i[b, j]


select_parallel, select_serial = _both(_select)


@numba.njit(**_OPTIONS)
def group_by_column(idx, dy, starts, rows, vals, union):
    """Regroup the kept entries (row b keeps columns ``idx[b]``) by column.

    A counting sort: afterwards column c's entries are ``rows[starts[c]:starts[c + 1]]``
    (ascending rows) with values ``vals[...]`` taken from ``dy``; ``starts`` has n + 1
    slots. ``union`` receives the kept columns in ascending order; returns their count.
    """
    batch, k = idx.shape
    n = starts.shape[0] - 1
    starts[:] = 0
    for b in range(batch):
        for j in range(k):
            starts[idx[b, j] + 1] += 1
    used = 0
    for c in range(n):
        if starts[c + 1] > 0:
            union[used] = c
            used += 1
        starts[c + 1] += starts[c]
    for b in range(batch):  # starts[c] is column c's cursor: it ends at c's end
        for j in range(k):
            c = idx[b, j]
            p = starts[c]
            rows[p] = b
            vals[p] = dy[b, c]
            starts[c] = p + 1
    for c in range(n, 0, -1):  # ends back to starts
        starts[c] = starts[c - 1]
    starts[0] = 0
    return used


def _products(x, w, starts, rows, vals, union, used, chunk, dx, dw):
    """dx = masked dY @ W and the kept rows of dW = masked dYᵀ @ x, over kept entries only.

    Work is split over column blocks of d_in (``chunk`` wide, one per thread), so threads
    never write the same memory. ``dx`` or ``dw`` may be empty (0 rows) when not needed.
    """
    d_in = x.shape[1]
    blocks = (d_in + chunk - 1) // chunk
    need_dx = dx.shape[0] > 0
    need_dw = dw.shape[0] > 0
    for t in numba.prange(blocks):
        lo = t * chunk
        hi = min(lo + chunk, d_in)
        if need_dw:
            for u in range(used):
                c = union[u]
                out = dw[u, lo:hi]
                p = starts[c]
                src = x[rows[p], lo:hi]
                v = vals[p]
                for i in range(hi - lo):
                    out[i] = v * src[i]
                p += 1
                end = starts[c + 1]
                while p + 4 <= end:  # four entries per pass: one load and store of out
                    x0, x1 = x[rows[p], lo:hi], x[rows[p + 1], lo:hi]
                    x2, x3 = x[rows[p + 2], lo:hi], x[rows[p + 3], lo:hi]
                    v0, v1, v2, v3 = vals[p], vals[p + 1], vals[p + 2], vals[p + 3]
                    for i in range(hi - lo):
                        out[i] += v0 * x0[i] + v1 * x1[i] + v2 * x2[i] + v3 * x3[i]
                    p += 4
                for q in range(p, end):
                    src = x[rows[q], lo:hi]
                    v = vals[q]
                    for i in range(hi - lo):
                        out[i] += v * src[i]
        if need_dx:
            dx[:, lo:hi] = 0
            for u in range(used):
                c = union[u]
                src = w[c, lo:hi]
                for p in range(starts[c], starts[c + 1]):
                    out = dx[rows[p], lo:hi]
                    v = vals[p]
                    for i in range(hi - lo):
                        out[i] += v * src[i]


products_parallel, products_serial = _both(_products)


@numba.njit(**_OPTIONS)
def per_example_backward(
    parallel, score, use_abs, k, quick, work_v, ints, vals, dy, union, x, w, block, dx, dw
):
    """Per-example top-k's whole backward in one call: select, regroup by column, then
    the products (``dw`` has room for every kept column), with the parallel or the
    serial loops. Returns the number of kept columns, the rows of ``dw`` written.

    ``work_v`` (B x width, width = n for quickselect, else k) and ``ints`` (B * (width +
    2k) + n + 1 int64) are scratch, carved here so the caller asks for few buffers;
    ``vals`` holds the B * k regrouped values.
    """
    batch, n = dy.shape
    width = work_v.shape[1]
    cut = np.cumsum(np.array([batch * width, batch * k, n + 1, batch * k]))
    work_i = ints[: cut[0]].reshape((batch, width))
    idx = ints[cut[0] : cut[1]].reshape((batch, k))
    starts = ints[cut[1] : cut[2]]
    rows = ints[cut[2] : cut[3]]
    if parallel:
        select_parallel(score, use_abs, k, quick, work_v, work_i, idx)
    else:
        select_serial(score, use_abs, k, quick, work_v, work_i, idx)
    used = group_by_column(idx, dy, starts, rows, vals, union)
    if parallel:
        products_parallel(x, w, starts, rows, vals, union, used, block, dx, dw[:used])
    else:
        products_serial(x, w, starts, rows, vals, union, used, block, dx, dw[:used])
    return used


@numba.njit(**_OPTIONS)
def unified_backward(score, dy, x, w, heap_v, idx, dx, dw):
    """Unified top-k in one serial call: the k (= ``idx.shape[0]``) best columns of
    ``score`` into ``idx`` (ascending), then the products over those columns.

    ``dw[u] = Σ_b dy[b, idx[u]] x[b]`` and ``dx[b] = Σ_u dy[b, idx[u]] w[idx[u]]``; either
    may be empty (0 rows) when not needed. For small shapes, where a dozen dispatched
    torch operators cost more than the arithmetic.
    """
    batch = dy.shape[0]
    k = idx.shape[0]
    d_in = x.shape[1]
    _heap_select_row(score, False, k, heap_v, idx)
    idx.sort()
    if dw.shape[0] > 0:
        for u in range(k):
            out = dw[u]
            out[:] = 0
            c = idx[u]
            for b in range(batch):
                v = dy[b, c]
                src = x[b]
                for i in range(d_in):
                    out[i] += v * src[i]
    if dx.shape[0] > 0:
        for b in range(batch):
            out = dx[b]
            out[:] = 0
            for u in range(k):
                c = idx[u]
                v = dy[b, c]
                src = w[c]
                for i in range(d_in):
                    out[i] += v * src[i]
