"""The numba-compiled loops behind the native CPU kernels (see :mod:`meprop_bench.core.native`).

Plain array code, no torch: selection, regrouping by column and the products over the
kept entries, with the vector loops numba's own compile poorly (the selection's
compares and maxima, the products' rows) taken from :mod:`meprop_bench.core.native_simd`.
Each loop is compiled twice from one Python function, parallel (``prange`` runs on
numba's thread pool) and serial (``prange`` is a plain ``range``), because a parallel
region costs tens of microseconds to start, more than the whole backward at
the paper's MNIST shape. Compiled code is cached on disk beside this file.

Tie rule, shared with :mod:`meprop_bench.core.selection`: an entry outranks another when its
score is larger, or equal with a lower column index. So a selection of k is one set,
whatever the algorithm.
"""

from __future__ import annotations

import types

import numba
import numpy as np
from numba.cpython.unsafe.numbers import trailing_zeros

from meprop_bench.core import native_simd as simd

_OPTIONS = dict(cache=True, nogil=True, fastmath={"contract"}, error_model="numpy")

#: SHA-256 of ``native_simd.py``. numba's disk cache is keyed on the source of the file
#: that defines a function, so an edit of the intrinsics alone would keep running the
#: machine code compiled from the old ones: this line changes with them
#: (``tests/core/test_native.py`` checks that it does).
SIMD_SOURCE = "e14233f238652f45fc3043f1ccc58aee73dcd4b66efd1f88f8279e31a9fabe36"


def _both(fn, fast=False):
    """``fn`` compiled parallel and serial: returns (parallel, serial). ``fast`` allows
    reassociating float arithmetic (fastmath), for the product loops.

    The serial one is compiled from a copy under another name: numba names its disk
    cache after the function, not its options, so two compilations of one function
    would load each other's machine code (the "serial" loops ran parallel ones).
    """
    serial = types.FunctionType(fn.__code__, fn.__globals__, f"{fn.__name__}_serial")
    serial.__qualname__ = f"{fn.__qualname__}_serial"
    options = dict(_OPTIONS, fastmath=True) if fast else _OPTIONS
    return numba.njit(parallel=True, **options)(fn), numba.njit(**options)(serial)


# Loops index with unsigned offsets (``np.uint64``) wherever an index is a sum such as
# ``base + i``: numba wraps a negative signed index around, and LLVM, unable to rule
# that out, turned such loops into gathers and scatters (the product loops ran 5x
# slower, the group maxima 4x). Unsigned, they are contiguous AVX-512 loops.


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
def _heap_select_row(score, k, hv, hi):
    """The k best entries of one row into (hv, hi), by a min-heap of size k.

    Entries are scanned in column order, so one that only ties the root comes later
    than it and ranks below it: a strict ``>`` against the root suffices.
    """
    n = score.shape[0]
    for j in range(k):
        hv[j] = score[j]
        hi[j] = j
    for j in range(k // 2 - 1, -1, -1):
        _sift_down(hv, hi, j, k)
    for j in range(k, n):
        v = score[j]
        if v > hv[0]:
            hv[0] = v
            hi[0] = j
            _sift_down(hv, hi, 0, k)


@numba.njit(**_OPTIONS)
def _kth_value(a, m, k):
    """The k-th largest of ``a[:m]`` (reordering ``a``), by quickselect on values.

    Each round splits into > pivot, == pivot and the rest with branch-free swaps (the
    comparisons of random scores are unpredictable), so repeated values cannot make it
    quadratic.
    """
    lo, hi = 0, m - 1
    t = k - 1
    while lo < hi:
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi]
        p = max(min(x, y), min(max(x, y), z))  # median of three
        s = lo
        for j in range(lo, hi + 1):
            aj = a[j]
            a[j] = a[s]
            a[s] = aj
            s += aj > p
        if t < s:
            hi = s - 1
            continue
        e = s
        for j in range(s, hi + 1):
            aj = a[j]
            a[j] = a[e]
            a[e] = aj
            e += aj == p
        if t < e:
            return p
        lo = e
    return a[t]


@numba.njit(**_OPTIONS)
def _lower_bound(a, m, k):
    """A value ≤ the k-th largest of the unsigned keys ``a[:m]`` (m a multiple of 16)
    and close to it: one with at least k keys at or above it and fewer than k + k // 4
    above it.

    Found by counting, for a few entries picked in a scattered order, how many keys
    lie above them (vector compares into bit masks, counted); about one entry in eight
    qualifies when m = 2k. After 32 misses (ordered or unlucky data) the exact k-th
    largest by quickselect, which reorders ``a``. At B=50, n=500, k=20 this took 1.7 µs
    for the 50 rows against 14 for quickselect, and the looser bound let through 27
    candidates a row instead of 23.
    """
    slack = k // 4
    for t in range(min(m, 32)):
        v = a[(t * 2654435761) & (m - 1)]  # an odd multiplier: a permutation of 0..m-1
        ge = 0
        gt = 0
        for s in range(np.uint64(0), np.uint64(m), np.uint64(simd.LANES)):
            ge += simd.popcount(simd.at_least(a, s, v))
            gt += simd.popcount(simd.above(a, s, v))
        if ge >= k and gt < k + slack:
            return v
    return _kth_value(a, m, k)


#: Candidates ranked by counting (see ``_keep_by_rank``) up to this many; more go
#: through quickselect.
RANKED_UP_TO = 64


@numba.njit(inline="always", **_OPTIONS)
def _keep_by_rank(cv, ci, cnt, k, out):
    """``out`` = the columns ``ci`` of the k best of the ``cnt`` <= 64 candidate keys
    ``cv`` (in column order, room for a multiple of 16): a candidate is kept when fewer
    than k others outrank it, larger or equal and earlier, counted from vector
    compares. 3 µs for B=50 rows of 27 candidates against 6 for quickselect and the tie
    pass."""
    one = np.uint64(1)
    valid = ~np.uint64(0) if cnt == 64 else (one << np.uint64(cnt)) - one
    o = 0
    for j in range(cnt):
        v = cv[j]
        larger = np.uint64(0)
        same = np.uint64(0)
        for s in range(np.uint64(0), np.uint64(cnt), np.uint64(simd.LANES)):
            larger |= simd.above(cv, s, v) << s
            same |= simd.equal(cv, s, v) << s
        earlier = (one << np.uint64(j)) - one
        if simd.popcount(larger & valid) + simd.popcount(same & earlier) < k:
            out[o] = ci[j]
            o += 1


@numba.njit(inline="always", **_OPTIONS)
def _keep_by_quickselect(cv, sv, ci, cnt, k, out):
    """``out`` = the columns ``ci`` of the k best of the ``cnt`` candidate keys ``cv``
    (in column order): the k-th largest T by quickselect on a copy (``sv``), then one
    pass keeping those above T and the first ones equal to it."""
    for j in range(cnt):
        sv[j] = cv[j]
    top = _kth_value(sv, cnt, k)
    ties = k
    for j in range(cnt):
        ties -= cv[j] > top
    o = 0
    for j in range(cnt):
        v = cv[j]
        if v > top or (v == top and ties > 0):
            ties -= v == top
            out[o] = ci[j]
            o += 1


@numba.njit(inline="always", **_OPTIONS)
def _select_row(key, mask, k, prefilter, cv, sv, ci, out):
    """The columns of the k best entries of one row into ``out`` (ascending).

    Scores are compared as unsigned integers: ``key`` holds each score's bits, and
    ``mask`` clears the sign bit, which turns dY into |dY| (random-k's scores are never
    negative). Non-negative floats order as their bits do, so the kept set is the one
    float comparisons give, NaN (above every number) aside, and the group maxima are
    vector integer maxima (:func:`~meprop_bench.core.native_simd.group_maxima`); as
    floats numba's loop compiled to a compare and a masked store.

    With ``prefilter``, a lower bound comes first: split the row into m ≥ 2k strided
    groups (element j in group j mod m, so the pass is one vector max per 16 lanes of
    each m-wide slice); k groups each hold an entry at least as large as the k-th largest of the m
    group maxima, so any value at or below that one is ≤ the row's k-th largest
    (:func:`_lower_bound`). Only entries at or above it are candidates (about 1.4k at
    k/n = 1%): each 16 keys are compared with it in one vector compare into a bit
    mask, and the set bits, in column order, are the candidates. Then the tie rule,
    exactly: by counting ranks for up to 64 candidates, else by quickselect. ``cv``,
    ``sv`` (keys) and ``ci`` (columns) have room for the whole row. At B=50, n=500,
    k=20 the selection took 11 µs, against 22 with float scores, numba's loops and
    quickselect.
    """
    n = key.shape[0]
    cnt = 0
    m = 16
    while m < 2 * k:
        m *= 2
    if prefilter and m <= n:
        simd.group_maxima(key, mask, m, cv)
        steps = n // m
        base = np.uint64(steps * m)
        for i in range(np.uint64(n - steps * m)):
            cv[i] = max(cv[i], key[base + i] & mask)
        low = _lower_bound(cv, m, k)
        full = n - n % simd.LANES
        for j0 in range(np.uint64(0), np.uint64(full), np.uint64(simd.LANES)):
            bits = simd.masked_at_least(key, j0, mask, low)
            while bits:
                j = j0 + trailing_zeros(bits)
                bits &= bits - np.uint64(1)
                cv[cnt] = key[j] & mask
                ci[cnt] = j
                cnt += 1
        for j in range(full, n):
            v = key[j] & mask
            cv[cnt] = v
            ci[cnt] = j
            cnt += v >= low
    if cnt < k:  # no prefilter: every entry is a candidate
        for j in range(n):
            cv[j] = key[j] & mask
            ci[j] = j
        cnt = n
    room = cv.shape[0] - cv.shape[0] % simd.LANES
    if cnt <= RANKED_UP_TO and cnt <= room:
        _keep_by_rank(cv, ci, cnt, k, out)
    else:
        _keep_by_quickselect(cv, sv, ci, cnt, k, out)


def _select(key, mask, k, prefilter, cv, sv, ci, idx):
    """Per-row top-k of the scores whose bits are ``key`` (B x n unsigned; see
    :func:`_select_row` for ``mask``) into ``idx`` (B x k), each row's columns
    ascending; ``cv``, ``sv`` (unsigned, like ``key``) and ``ci`` are B x n scratch.

    The row's selection is inlined: as a call it cost 50 ns a row in argument passing,
    a tenth of the selection at B=50, n=500, k=20."""
    for b in numba.prange(key.shape[0]):
        _select_row(key[b], mask, k, prefilter, cv[b], sv[b], ci[b], idx[b])


select_parallel, select_serial = _both(_select)


@numba.njit(**_OPTIONS)
def group_by_column(idx, dy, starts, rows, vals, union, ev):
    """Regroup the kept entries (row b keeps columns ``idx[b]``) by column.

    A counting sort: afterwards column c's entries are ``rows[starts[c]:starts[c + 1]]``
    (ascending rows) with values ``vals[...]`` taken from ``dy``; ``starts`` has n + 1
    slots. ``union`` receives the kept columns in ascending order; returns their count.
    ``ev`` (B * k) receives the values in example order, ``ev[b * k + j] = dy[b,
    idx[b, j]]``, for dX's rows.
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
            vals[p] = ev[b * k + j] = dy[b, c]
            starts[c] = p + 1
    for c in range(n, 0, -1):  # ends back to starts
        starts[c] = starts[c - 1]
    starts[0] = 0
    return used


@numba.njit(inline="always", **_OPTIONS)
def _sum_rows(out, r, src, at, vals, p, end):
    """``out[r] = Σ vals[q]·src[at[q]]`` over q in [p, end) (end > p): up to eight
    source rows a pass over the output row, the first pass writing (no zero pass)."""
    first = True
    while p < end:
        left = end - p
        if left >= 8:
            simd.add_rows_8(out, r, src, at, vals, p, first)
            p += 8
        elif left >= 4:
            simd.add_rows_4(out, r, src, at, vals, p, first)
            p += 4
        elif left == 3:
            simd.add_rows_3(out, r, src, at, vals, p, first)
            p += 3
        elif left == 2:
            simd.add_rows_2(out, r, src, at, vals, p, first)
            p += 2
        else:
            simd.add_rows_1(out, r, src, at, vals, p, first)
            p += 1
        first = False


def _weight_rows(x, starts, rows, vals, union, used, full, parts, dw):
    """``dw[u] = Σ v·x[b]`` over the entries (b, v) of kept column ``c = union[u]``
    (:func:`_sum_rows`). With ``full``, ``dw`` is the whole n x d_in gradient: row c is
    written instead of row u, and the rows of columns nobody kept are zeroed, so each
    row is written once.

    ``parts`` threads each take a contiguous share of the kept columns and write whole
    rows: long streams. Splitting d_in instead (each thread half of every row) took 3.4
    against 2.5 ms on two threads at B=256, n=d_in=4096, k=41.
    """
    d_in = np.uint64(x.shape[1])
    n = starts.shape[0] - 1
    for t in numba.prange(parts):
        if full:
            for c in range(t * n // parts, (t + 1) * n // parts):
                if starts[c] == starts[c + 1]:
                    for i in range(d_in):
                        dw[c, i] = 0
        for u in range(t * used // parts, (t + 1) * used // parts):
            c = union[u]
            _sum_rows(dw, c if full else u, x, rows, vals, starts[c], starts[c + 1])


weight_rows_parallel, weight_rows_serial = _both(_weight_rows, fast=True)


def _input_rows(w, cols, ev, k, parts, dx):
    """``dx[b] = Σ dy[b, c]·w[c]`` over example b's kept columns ``cols[b * k:(b + 1) *
    k]`` with their values ``ev[...]`` (:func:`_sum_rows`): each example's row of dx is
    written once and stays in cache, W's kept rows are read once per entry. Eight a pass
    instead of four took 25.3 against 27.2 µs at B=50, n=d_in=500, k=20. ``parts``
    threads each take a contiguous share of the examples."""
    batch = dx.shape[0]
    for t in numba.prange(parts):
        for b in range(t * batch // parts, (t + 1) * batch // parts):
            _sum_rows(dx, b, w, cols, ev, b * k, (b + 1) * k)


input_rows_parallel, input_rows_serial = _both(_input_rows, fast=True)


@numba.njit(**_OPTIONS)
def _shares_by_entries(starts, union, used, parts):
    """Split the kept columns ``union[:used]`` into ``parts`` contiguous shares holding
    about equal numbers of entries: share t is ``union[cuts[t]:cuts[t + 1]]``."""
    cuts = np.empty(parts + 1, np.int64)
    total = starts[starts.shape[0] - 1]
    t = 1
    for u in range(used):
        while t < parts and starts[union[u]] * parts >= t * total:
            cuts[t] = u
            t += 1
    while t < parts:
        cuts[t] = used
        t += 1
    cuts[0] = 0
    cuts[parts] = used
    return cuts


def _input_columns(w, starts, rows, vals, union, used, parts, dx, spare):
    """The same dx column by column: each kept row of W is read once and added to its
    entries' rows of dx. Better once columns have many entries (at k/n = 10% W's rows
    would otherwise be read 26 times each) or W's kept rows come from memory.

    ``parts`` threads each take a share of the kept columns (about equal entries) and
    add into their own copy of dx (``dx`` for the first, ``spare[t - 1]`` for the
    others), summed at the end: each reads W's rows whole. Splitting d_in instead
    (each thread adding into its half of every dx row) took 5.6-5.8 against 3.2 ms at
    B=256, n=d_in=4096, k=41 on two threads.
    """
    d_in = np.uint64(w.shape[1])
    batch = dx.shape[0]
    cuts = _shares_by_entries(starts, union, used, parts)
    for t in numba.prange(parts):
        out = dx if t == 0 else spare[t - 1]
        for b in range(batch):
            for i in range(d_in):
                out[b, i] = 0
        for u in range(cuts[t], cuts[t + 1]):
            c = union[u]
            for p in range(starts[c], starts[c + 1]):
                b = rows[p]
                v = vals[p]
                for i in range(d_in):
                    out[b, i] += v * w[c, i]
    if parts > 1:
        for b in numba.prange(batch):
            for s in range(parts - 1):
                for i in range(d_in):
                    dx[b, i] += spare[s, b, i]


input_columns_parallel, input_columns_serial = _both(_input_columns, fast=True)

#: dX goes column by column (W's kept rows read once, dX's rows added to) rather than
#: example by example (each dX row written once, W's rows read once per entry) from
#: this many entries per kept column, or once W's kept rows exceed ROWS_CACHED bytes
#: (read again from memory rather than cache). B=256, n=d_in=4096, one thread: 5.9
#: against 6.4 ms at k=41 (2.8 entries a column, 62 MB), 42 against 61 ms at k=410;
#: two threads: 3.2 against 3.4-3.6 ms at k=41, 18 against 34 ms at k=410; B=50,
#: n=d_in=500, k=20, one thread: 47 against 28 µs (2.3 entries a column, 0.9 MB).
COLUMNS_FROM = 4
ROWS_CACHED = 4 << 20


@numba.njit(**_OPTIONS)
def per_example_backward(
    parts, key_at, mask, k, prefilter, work_v, ints, vals, dy_at, union, x_at, w_at, dx, spare,
    full, dw, db,
):  # fmt: skip
    """Per-example top-k's whole backward in one call: select, regroup by column, then
    the products, with the parallel loops split into ``parts`` shares (one per thread)
    or, for ``parts == 1``, the serial ones; ``db`` (n, or empty when not needed) gets
    the bias gradient, Σ over the batch of dy. ``dw`` has room for every kept column, or with
    ``full`` is the whole n x d_in gradient (see ``_weight_rows``). Returns the number
    of kept columns (the rows of ``dw`` written unless ``full``).

    The inputs come as the addresses of C-contiguous memory (``Tensor.data_ptr()``),
    which the caller keeps alive: the scores' bits (``key_at``: B x n, ``work_v``'s
    unsigned type) and dy (B x n), x (B x d_in), w (n x d_in) in ``vals``' float type.
    ``mask`` turns the bits into the selection's keys (see :func:`_select_row`).
    ``work_v`` (2 x B x n keys) and ``ints`` (B * (n + 2k) + n + 1 int64) are scratch,
    carved here so the caller asks for few buffers; their shapes give B and n, ``dx``'s
    (rows or not) d_in. ``vals`` (2 * B * k) holds the values regrouped by column, then
    in example order; ``spare`` (parts - 1 x B x d_in) the other threads' dx when dx
    goes by columns.
    """
    _, batch, n = work_v.shape
    d_in = dx.shape[1]
    key = numba.carray(simd.pointer(key_at, work_v), (batch, n))
    dy = numba.carray(simd.pointer(dy_at, vals), (batch, n))
    x = numba.carray(simd.pointer(x_at, vals), (batch, d_in))
    w = numba.carray(simd.pointer(w_at, vals), (n, d_in))
    if db.shape[0] > 0:
        db[:] = dy[0]
        for b in range(1, batch):
            db += dy[b]
    parallel = parts > 1
    cut = np.cumsum(np.array([batch * n, batch * k, n + 1, batch * k]))
    work_i = ints[: cut[0]].reshape((batch, n))
    cols = ints[cut[0] : cut[1]]  # each example's kept columns, flat
    idx = cols.reshape((batch, k))
    starts = ints[cut[1] : cut[2]]
    rows = ints[cut[2] : cut[3]]
    if parallel:
        select_parallel(key, mask, k, prefilter, work_v[0], work_v[1], work_i, idx)
    else:
        select_serial(key, mask, k, prefilter, work_v[0], work_v[1], work_i, idx)
    vals, ev = vals[: batch * k], vals[batch * k :]
    used = group_by_column(idx, dy, starts, rows, vals, union, ev)
    if dw.shape[0] > 0:
        if parallel:
            weight_rows_parallel(x, starts, rows, vals, union, used, full, parts, dw)
        else:
            weight_rows_serial(x, starts, rows, vals, union, used, full, 1, dw)
    if dx.shape[0] > 0:
        dense_columns = batch * k >= COLUMNS_FROM * used
        rows_missed = used * w.shape[1] * w.itemsize > ROWS_CACHED
        if (dense_columns or rows_missed) and parallel:
            input_columns_parallel(w, starts, rows, vals, union, used, parts, dx, spare)
        elif dense_columns or rows_missed:
            input_columns_serial(w, starts, rows, vals, union, used, 1, dx, spare)
        elif parallel:
            input_rows_parallel(w, cols, ev, k, parts, dx)
        else:
            input_rows_serial(w, cols, ev, k, 1, dx)
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
    _heap_select_row(score, k, heap_v, idx)
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
