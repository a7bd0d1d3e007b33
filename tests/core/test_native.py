"""The native (numba) kernels: the same kept set and gradients as the torch strategies,
through every code path (prefiltered selection or not, serial and parallel), and clear refusals.

The kernels are also in ``KERNELS``, so test_kernels.py checks them against the NumPy
reference over dtypes, shapes, k, non-contiguous inputs and the need_* flags; here
are the paths and rules that generic tests cannot reach.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from reference import masked_grads, per_example_mask

from meprop_bench import KERNELS, MePropInputError, backward
from meprop_bench.core import native
from meprop_bench.core.selection import randk_per_example, topk_per_example
from meprop_bench.results.machine import threads

pytestmark = pytest.mark.skipif(not native.available(), reason="numba is not installed")


@pytest.fixture(params=["prefilter", "full"])
def selection(request, monkeypatch):
    """Bound each row from its group maxima first wherever that is valid, or never."""
    monkeypatch.setattr(native, "PREFILTER_FROM", 1 if request.param == "prefilter" else 1 << 30)
    return request.param


@pytest.fixture(params=["serial", "parallel"])
def parallelism(request, monkeypatch):
    """Force the serial or the parallel loops (2 threads) whatever the size."""
    if request.param == "parallel":
        monkeypatch.setattr(native, "PARALLEL_FROM", 0)
        with threads(2):
            yield request.param
    else:
        monkeypatch.setattr(native, "PARALLEL_FROM", 1 << 62)
        yield request.param


def tied(b: int, n: int, dtype=torch.float32, seed: int = 0) -> torch.Tensor:
    """dY whose magnitudes tie often: small signed integers."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, (b, n), generator=g).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("n", [23, 64, 65])
def test_same_kept_set_as_torch_for_every_k(selection, parallelism, dtype, n):
    # w = identity and x = 0 make dx the masked dY itself, so the kept set is visible.
    # Without the prefilter every entry is a candidate: up to 64 (and a multiple of 16
    # of room) they are ranked by counting, else by quickselect.
    b = 9
    dy = tied(b, n, dtype) + 0.0  # zeros too: ties at zero are kept by index like any other
    dy[dy == 0] = 0.5
    x, w = torch.zeros(b, n, dtype=dtype), torch.eye(n, dtype=dtype)
    for k in range(1, n + 1):
        want = torch.zeros(b, n, dtype=torch.bool).scatter_(1, topk_per_example(dy, k), True)
        got = backward(dy, x, w, k, "topk", "native").dx != 0
        assert torch.equal(got, want), k
        assert bool((got.sum(1) == k).all())


@pytest.mark.parametrize("dtype", [np.uint32, np.uint64])
def test_vector_compares_give_one_bit_per_lane(dtype):
    import numba

    from meprop_bench.core import native_simd as simd

    @numba.njit
    def compare(a, start, mask, v):
        return (
            simd.at_least(a, start, v),
            simd.above(a, start, v),
            simd.equal(a, start, v),
            simd.masked_at_least(a, start, mask, v),
        )

    sign = dtype(1) << dtype(8 * np.dtype(dtype).itemsize - 1)
    mask = ~sign
    rng = np.random.default_rng(5)
    a = rng.integers(0, 8, 40).astype(dtype)
    a[::3] |= sign  # the masked compare must ignore the top bit
    for start in (0, 7, 24):
        v = a[start + 3] & mask
        lanes = a[start : start + 16]
        want = [lanes >= v, lanes > v, lanes == v, (lanes & mask) >= v]
        for got, hits in zip(compare(a, start, mask, v), want, strict=True):
            assert got == sum(1 << i for i in range(16) if hits[i])


def _placed(rows: int, width: int, dtype, offset: int, rng) -> np.ndarray:
    """Rows of ``width`` random values starting ``offset`` bytes past a 64-byte
    boundary, a whole number of 64 bytes apart: the rows x stride grid, its columns
    past ``width`` (at least one whole vector) NaN."""
    item = np.dtype(dtype).itemsize
    stride = -(-width * item // 64) * 64 // item + 64 // item  # a spare line: no tail fits
    buf = np.full(rows * stride + 2 * 64 // item, np.nan, dtype)
    start = (-buf.ctypes.data % 64 + offset) // item
    grid = buf[start : start + rows * stride].reshape(rows, stride)
    grid[:, :width] = rng.standard_normal((rows, width))
    return grid


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("offset", [0, 16], ids=["aligned", "off-line"])
def test_row_sums_match_numpy_for_every_size_and_tail(dtype, offset):
    """Rows on a 64-byte boundary or off it, widths with whole vectors (8 floats, 4
    doubles), a tail, or both; nothing written outside the output row."""
    import numba

    from meprop_bench.core import native_simd as simd

    @numba.njit
    def add(out, r, src, at, vals, p, size, first):
        if size == 8:
            simd.add_rows_8(out, r, src, at, vals, p, first)
        elif size == 4:
            simd.add_rows_4(out, r, src, at, vals, p, first)
        elif size == 3:
            simd.add_rows_3(out, r, src, at, vals, p, first)
        elif size == 2:
            simd.add_rows_2(out, r, src, at, vals, p, first)
        else:
            simd.add_rows_1(out, r, src, at, vals, p, first)

    rng = np.random.default_rng(6)
    for width in (1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 40):
        src = _placed(9, width, dtype, offset, rng)[:, :width]
        at = rng.integers(0, 9, 12).astype(np.int64)
        vals = rng.standard_normal(12).astype(dtype)
        for size in (1, 2, 3, 4, 8):
            for first in (True, False):
                grid = _placed(3, width, dtype, offset, rng)
                out = grid[:, :width]
                others = out[[0, 2]].copy()
                out[1] = 1.0
                add(out, 1, src, at, vals, 2, size, first)
                want = (vals[2 : 2 + size, None] * src[at[2 : 2 + size]]).sum(0)
                want = want if first else want + 1.0
                np.testing.assert_allclose(out[1], want, rtol=1e-5, atol=1e-5)
                np.testing.assert_array_equal(out[[0, 2]], others)  # no other row written
                assert np.isnan(grid[:, width:]).all()  # nor past a row


def test_the_compiled_loops_are_recompiled_when_the_intrinsics_change():
    """numba's disk cache sees only native_jit.py, which pins native_simd.py's hash."""
    import hashlib
    from pathlib import Path

    from meprop_bench.core import native_jit, native_simd

    digest = hashlib.sha256(Path(native_simd.__file__).read_bytes()).hexdigest()
    assert digest == native_jit.SIMD_SOURCE, (
        f"native_simd.py changed: set native_jit.SIMD_SOURCE = {digest!r} so the cached "
        "machine code is compiled again"
    )


def test_the_selection_bound_is_below_the_kth_largest_and_close_to_it():
    jit = native._jit()
    rng = np.random.default_rng(0)
    m, k = 64, 20
    for dtype in (np.uint32, np.uint64):
        for _ in range(100):
            a = rng.integers(0, 1000, m).astype(dtype)  # keys: scores' bits, unsigned
            bound = jit._lower_bound(a.copy(), m, k)
            assert (a >= bound).sum() >= k and (a > bound).sum() < k + k // 4
    # The 32 entries it tries first all rank too high or too low: the exact k-th
    # largest (by quickselect) instead.
    tried = [(t * 2654435761) & (m - 1) for t in range(32)]
    others = [i for i in range(m) if i not in tried]
    a = np.empty(m, np.uint32)
    a[tried] = np.r_[np.arange(200, 219), np.arange(0, 13)]  # ranks 1-19 and 52-64
    a[others] = np.arange(50, 82)  # ranks 20-51
    assert jit._lower_bound(a.copy(), m, k) == np.sort(a)[-k]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_keys_order_like_magnitudes(selection, dtype):
    # The selection compares the bits of |dY| as unsigned integers: signed zeros,
    # subnormals and values of every exponent up to the largest must rank as |dY| does.
    info = torch.finfo(dtype)
    special = [0.0, -0.0, info.tiny / 4, -info.tiny / 2, info.tiny, -1e-30, 1e-30, 0.5,
               -0.5, 1.0, -2.0, 3e5, -3e5, info.max, -info.max]  # fmt: skip
    g = torch.Generator().manual_seed(4)
    n = 90
    picks = torch.randint(len(special), (7, n), generator=g)
    dy = torch.tensor(special, dtype=dtype)[picks]
    x, w = torch.zeros(7, n, dtype=dtype), torch.eye(n, dtype=dtype)
    for k in (1, 5, 30, 89):
        mask = per_example_mask(dy, k)
        got = backward(dy, x, w, k, "topk", "native").dx
        assert torch.equal(got, dy * torch.as_tensor(mask)), k


@pytest.mark.parametrize("order", ["ascending", "descending"])
def test_ordered_rows_keep_the_largest(selection, order):
    dy = torch.arange(3 * 700, dtype=torch.float32).reshape(3, 700) - 1000.0
    dy = dy if order == "ascending" else dy.flip(1)
    for k in (1, 7, 40, 300):
        got = backward(dy, torch.zeros(3, 700), torch.eye(700), k, "topk", "native").dx != 0
        want = torch.zeros(3, 700, dtype=torch.bool).scatter_(1, topk_per_example(dy, k), True)
        assert torch.equal(got, want), k


def test_ties_go_to_the_lowest_columns(selection):
    dy = torch.ones(4, 30)
    dy[:, 7] = 2.0
    grads = backward(dy, torch.zeros(4, 30), torch.eye(30), 5, "topk", "native")
    assert torch.equal((grads.dx != 0)[0].nonzero().flatten(), torch.tensor([0, 1, 2, 3, 7]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,d_in,n,k", [(1, 1, 1, 1), (5, 3, 40, 7), (64, 130, 50, 20)])
def test_gradients_match_reference(selection, parallelism, dtype, b, d_in, n, k):
    g = torch.Generator().manual_seed(1)
    dy, x, w = (torch.randn(s, generator=g, dtype=dtype) for s in ((b, n), (b, d_in), (n, d_in)))
    got = backward(dy, x, w, k, "topk", "native")
    ref = masked_grads(dy, x, w, per_example_mask(dy, k))
    tol = 1e-4 if dtype == torch.float32 else 1e-10
    for a, want in zip((got.dx, got.dense_dw(), got.db), ref, strict=True):
        np.testing.assert_allclose(a.double().numpy(), want, rtol=tol, atol=tol)


@pytest.mark.parametrize("method", ["topk", "randk"])
def test_inputs_are_read_where_their_views_start(parallelism, method):
    """The compiled loops read the tensors' memory by address: views that start inside
    a larger tensor (contiguous, or not) give what copies of them give."""
    g = torch.Generator().manual_seed(2)
    dy, x, w = (torch.randn(s, generator=g) for s in ((7, 41), (9, 10), (41, 9)))
    views = dy[2:5], x[3:6, 3:], w[:, 2:]  # a contiguous view at an offset, then two strided
    copies = tuple(v.clone() for v in views)
    got, want = (
        backward(*ts, 5, method, "native", torch.Generator().manual_seed(3))
        for ts in (views, copies)
    )
    for a, b in ((got.dx, want.dx), (got.dense_dw(), want.dense_dw()), (got.db, want.db)):
        assert torch.equal(a, b)


def test_a_kernel_called_directly_refuses_mixed_dtypes():
    """``backward`` checks dtypes before any kernel; the native kernel also refuses
    them itself, since it reads every input as dY's type."""
    dy, x, w = torch.randn(2, 4), torch.randn(2, 3, dtype=torch.float64), torch.randn(4, 3)
    mixed = r"dtype mismatch: dy torch\.float32, x torch\.float64"
    with pytest.raises(MePropInputError, match=mixed):
        KERNELS[("topk", "native")].fn(dy, x, w, 2)


@pytest.mark.parametrize("hot", [1, 2, 5])
def test_threads_share_skewed_columns(parallelism, hot):
    # Threads split the kept columns by their entries: one column holding every entry
    # (a share left empty), or a few holding most of them, must still sum correctly.
    g = torch.Generator().manual_seed(2)
    b, d_in, n, k = 40, 33, 30, hot + 1
    dy = torch.randn(b, n, generator=g) * 0.01
    dy[:, :hot] += 10.0  # every example keeps the hot columns
    x, w = torch.randn(b, d_in, generator=g), torch.randn(n, d_in, generator=g)
    for kk in (hot, k):
        got = backward(dy, x, w, kk, "topk", "native")
        ref = masked_grads(dy, x, w, per_example_mask(dy, kk))
        np.testing.assert_allclose(got.dx.double().numpy(), ref[0], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(got.dense_dw().double().numpy(), ref[1], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("method", ["topk", "randk"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("need_dx", [True, False])
def test_the_full_weight_gradient_is_the_rows_made_dense(parallelism, method, dtype, need_dx):
    # Bit for bit: the same products, written in place, and zeros in every other row,
    # however dirty the memory the full gradient lands in.
    kern = KERNELS[method, "native"]
    g = torch.Generator().manual_seed(3)
    b, d_in, n, k = 6, 37, 90, 4  # 24 kept entries at most: most rows untouched
    dy, x, w = (torch.randn(s, generator=g, dtype=dtype) for s in ((b, n), (b, d_in), (n, d_in)))
    for _ in range(3):
        torch.full((n, d_in), float("nan"), dtype=dtype)  # leave NaN in freed memory
        rows = kern.fn(dy, x, w, k, torch.Generator().manual_seed(5), need_dx=need_dx)
        full = kern.full_grads(dy, x, w, k, torch.Generator().manual_seed(5), need_dx=need_dx)
        assert isinstance(full.dw, torch.Tensor) and full.dw.shape == (n, d_in)
        assert torch.equal(full.dw, rows.dense_dw())
        assert (full.dx is None) != need_dx
        if need_dx:
            assert torch.equal(full.dx, rows.dx)
    nothing = kern.full_grads(dy, x, w, k, need_dw=False)
    assert nothing.dw is None


def test_weight_gradient_rows_are_the_union_of_kept_columns():
    dy = torch.zeros(3, 10)
    dy[0, [1, 4]] = 1.0
    dy[1, [4, 8]] = 2.0
    dy[2, [1, 8]] = 3.0
    grads = backward(dy, torch.ones(3, 2), torch.ones(10, 2), 2, "topk", "native")
    assert grads.dw.indices.tolist() == [1, 4, 8]
    assert grads.dw.values[:, 0].tolist() == [4.0, 3.0, 5.0]
    assert grads.dw.num_rows == 10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_randk_keeps_what_randk_masked_keeps(parallelism, dtype):
    b, n, k = 17, 64, 9
    dy = torch.randn(b, n, dtype=dtype) + 5.0  # no zeros: every kept entry shows in dx
    x, w = torch.zeros(b, n, dtype=dtype), torch.eye(n, dtype=dtype)
    got = backward(dy, x, w, k, "randk", "native", torch.Generator().manual_seed(4)).dx != 0
    idx = randk_per_example(dy, k, torch.Generator().manual_seed(4))
    assert torch.equal(got, torch.zeros(b, n, dtype=torch.bool).scatter_(1, idx, True))


def test_unified_native_keeps_unified_compact_columns():
    dy = tied(12, 40)
    dy[:, 5] = 9.0
    x = torch.randn(12, 6, generator=torch.Generator().manual_seed(0))
    w = torch.randn(40, 6, generator=torch.Generator().manual_seed(1))
    for k in (1, 3, 17, 40):
        want = backward(dy, x, w, k, "unified", "compact")
        got = backward(dy, x, w, k, "unified", "native")
        assert torch.equal(got.dw.indices, want.dw.indices), k
        torch.testing.assert_close(got.dw.values, want.dw.values)
        torch.testing.assert_close(got.dx, want.dx)


@pytest.mark.parametrize("method", ["topk", "randk", "unified"])
def test_refuses_other_devices_naming_the_alternatives(method):
    dy, x, w = (torch.empty(s, device="meta") for s in ((2, 4), (2, 3), (4, 3)))
    with pytest.raises(MePropInputError, match=r"CPU only.*on CUDA use"):
        backward(dy, x, w, 2, method, "native")


def test_refuses_a_backward_to_be_differentiated_again():
    dy, x, w = torch.randn(2, 4, requires_grad=True), torch.randn(2, 3), torch.randn(4, 3)
    with pytest.raises(MePropInputError, match=r"but dy requires grad.*create_graph=True"):
        backward(dy, x, w, 2, "topk", "native")


def test_an_input_that_requires_grad_is_named_as_the_cause():
    # Called directly, no create_graph anywhere: the message says what to do here.
    dy, x, w = torch.randn(2, 4), torch.randn(2, 3, requires_grad=True), torch.randn(4, 3)
    with pytest.raises(MePropInputError) as refused:
        backward(dy, x, w, 2, "topk", "native")
    assert "but x requires grad with grad mode on: detach it or call it under " in str(
        refused.value
    )
    with torch.no_grad():
        assert backward(dy, x, w, 2, "topk", "native").dx.shape == (2, 3)


def test_refuses_half_precision():
    dy, x, w = (torch.randn(s).bfloat16() for s in ((2, 4), (2, 3), (4, 3)))
    with pytest.raises(MePropInputError, match=r"float32 or float64.*bfloat16"):
        backward(dy, x, w, 2, "topk", "native")


def test_without_numba_native_says_so_and_the_rest_works():
    code = (
        "import sys; sys.modules['numba'] = None\n"
        "import torch\n"
        "from meprop_bench import backward, MePropInputError\n"
        "from meprop_bench.core import native\n"
        "dy, x, w = torch.randn(2, 4), torch.randn(2, 3), torch.randn(4, 3)\n"
        "backward(dy, x, w, 2, 'topk', 'masked')\n"
        "assert not native.available()\n"
        "try:\n"
        "    backward(dy, x, w, 2, 'topk', 'native')\n"
        "except MePropInputError as err:\n"
        "    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "needs numba" in out.stdout and "pip install numba" in out.stdout


def test_threads_follow_torch():
    import numba

    with threads(1):
        backward(torch.randn(4, 8), torch.randn(4, 3), torch.randn(8, 3), 2, "topk", "native")
        assert numba.get_num_threads() == 1
    if numba.config.NUMBA_NUM_THREADS >= 2:
        with threads(2):
            backward(torch.randn(4, 8), torch.randn(4, 3), torch.randn(8, 3), 2, "topk", "native")
            assert numba.get_num_threads() == 2


def test_starting_numbas_pool_leaves_torchs_thread_count():
    # In a fresh process: numba's OpenMP pool starts once per process, and starting it
    # reset OpenMP's (so torch's) thread count to the pool's size.
    code = (
        "import torch\n"
        "torch.set_num_threads(1)\n"
        "assert torch.get_num_threads() == 1\n"  # torch's OpenMP is initialised first
        "from meprop_bench.core import native\n"
        "native.compile_ahead()\n"
        "print(torch.get_num_threads())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"


def test_weight_gradient_memory_is_reused_only_once_released():
    # dW's kept rows come from allocator.recycled_tensor: a later call may take over
    # their memory only after every view of the earlier result is gone.
    from meprop_bench.core.allocator import HUGE_FROM

    n, d_in = 1024, 2048
    b, k = 64, 32  # room for min(n, b*k) = 1024 rows of 8 KiB: the size that recycles
    assert n * d_in * 4 >= HUGE_FROM
    g = torch.Generator().manual_seed(0)
    dy, x, w = (torch.randn(s, generator=g) for s in ((b, n), (b, d_in), (n, d_in)))
    first = backward(dy, x, w, k, "topk", "native").dw
    kept = first.values.clone()
    second = backward(dy, x, w, k, "topk", "native").dw
    assert first.values.data_ptr() != second.values.data_ptr()
    assert torch.equal(first.values, kept)  # untouched by the second call
    ptr = second.values.data_ptr()
    view = second.values[1:]
    del second
    third = backward(dy * 2, x, w, k, "topk", "native").dw
    released = {ptr, third.values.data_ptr()}
    assert ptr != third.values.data_ptr()  # a view still held it
    del view, third
    fourth = backward(dy, x, w, k, "topk", "native").dw
    assert fourth.values.data_ptr() in released
    assert torch.equal(first.values, kept)
    torch.testing.assert_close(fourth.values, kept)
