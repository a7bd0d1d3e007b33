"""Every backward kernel against an independent NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from reference import index_mask, masked_grads, per_example_mask, unified_mask

from meprop_bench import KERNELS, MePropInputError, RowGrad, backward, get_kernel
from meprop_bench.core import selection
from meprop_bench.core.kernels import strategies
from meprop_bench.core.selection import (
    batch_sum,
    randk_per_example,
    topk_per_example,
    unified_topk,
)
from meprop_bench.harness.options import DTYPES

ALL = sorted(KERNELS)
SHAPES = [(1, 1, 1), (7, 5, 13), (32, 64, 48), (16, 200, 300)]  # (B, d_in, n)
TOL = {torch.float32: dict(rtol=1e-4, atol=1e-4), torch.float64: dict(rtol=1e-10, atol=1e-10)}


def make(b, d_in, n, dtype=torch.float64, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    dy, x, w = (torch.randn(s, generator=g, dtype=dtype) for s in ((b, n), (b, d_in), (n, d_in)))
    return dy.to(device), x.to(device), w.to(device)


def widest_dtype(method, strategy, device):
    """float64 where the kernel takes it, else float32 (triton)."""
    kern = KERNELS[(method, strategy)]
    return torch.float64 if kern.runs_on(device, torch.float64) else torch.float32


def expected_mask(method, dy, k, seed):
    if method in ("topk", "dense"):
        return per_example_mask(dy, k if method == "topk" else dy.shape[1])
    if method == "unified":
        return unified_mask(dy, k)
    idx = randk_per_example(dy, k, torch.Generator(dy.device).manual_seed(seed))
    return index_mask(idx, tuple(dy.shape))


def assert_matches(grads, ref, dtype):
    for got, want in zip((grads.dx, grads.dense_dw(), grads.db), ref, strict=True):
        np.testing.assert_allclose(got.double().cpu().numpy(), want, **TOL[dtype])


@pytest.mark.parametrize("method,strategy", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("b,d_in,n", SHAPES)
def test_matches_reference(method, strategy, dtype, b, d_in, n, device):
    dy, x, w = make(b, d_in, n, dtype, device)
    for k in sorted({1, max(1, n // 4), n}):
        gen = torch.Generator(device).manual_seed(5)
        grads = backward(dy, x, w, k, method, strategy, generator=gen)
        assert_matches(grads, masked_grads(dy, x, w, expected_mask(method, dy, k, 5)), dtype)


@pytest.mark.parametrize("method,strategy", ALL)
def test_full_grads_give_the_weight_gradient_whole(method, strategy, device):
    # What MePropLinear hands autograd for a dense .grad: every kernel, written whole
    # (native) or made dense from its rows, matches the reference.
    dtype = widest_dtype(method, strategy, device)
    kern = KERNELS[(method, strategy)]
    if not kern.runs_on(device, dtype):
        pytest.skip(f"{kern.name} does not run on {device}")
    dy, x, w = make(16, 200, 300, dtype, device)
    grads = kern.full_grads(dy, x, w, 30, torch.Generator(device).manual_seed(5))
    assert isinstance(grads.dw, torch.Tensor) and grads.dw.shape == (300, 200)
    assert_matches(grads, masked_grads(dy, x, w, expected_mask(method, dy, 30, 5)), dtype)


#: (B, d_in, n, k) at the edges: an empty batch, one example, one output, one input,
#: every entry kept.
DEGENERATE = [(0, 12, 16, 4), (0, 1, 1, 1), (1, 12, 16, 4), (5, 12, 1, 1), (5, 1, 16, 4),
              (5, 12, 16, 16), (1, 1, 1, 1)]  # fmt: skip


@pytest.mark.parametrize("method,strategy", ALL)
@pytest.mark.parametrize("b,d_in,n,k", DEGENERATE)
def test_degenerate_shapes_match_reference(method, strategy, b, d_in, n, k, device):
    # An empty batch gives empty dx and zero dw and db, as nn.Linear does (the native
    # loops read the first row of an empty batch: a segfault, before).
    dtype = widest_dtype(method, strategy, device)
    dy, x, w = make(b, d_in, n, dtype, device)
    kern = KERNELS[(method, strategy)]
    ref = masked_grads(dy, x, w, expected_mask(method, dy, k, 5))
    for grads in (
        backward(dy, x, w, k, method, strategy, torch.Generator(device).manual_seed(5)),
        kern.full_grads(dy, x, w, k, torch.Generator(device).manual_seed(5)),
    ):
        assert grads.dx.shape == (b, d_in) and grads.dense_dw().shape == (n, d_in)
        assert_matches(grads, ref, dtype)


@pytest.mark.parametrize("method,strategy", [key for key in ALL if not KERNELS[key].triton])
@pytest.mark.parametrize("dtype", DTYPES.values(), ids=DTYPES)
def test_runs_on_says_which_dtypes_a_kernel_takes_on_the_cpu(method, strategy, dtype):
    # What runs_on promises, the kernel does; what it rules out, the kernel refuses.
    kern = KERNELS[(method, strategy)]
    dy, x, w = make(6, 8, 16, dtype)
    if kern.runs_on("cpu", dtype):
        kern.fn(dy, x, w, 4)
    else:
        with pytest.raises((MePropInputError, NotImplementedError, RuntimeError)):
            kern.fn(dy, x, w, 4)


@pytest.mark.parametrize("method,strategy", ALL)
def test_k_equal_n_is_dense_exactly(method, strategy, device):
    # Small integers make every product exact in any summation order, so each
    # strategy must reproduce dense bit for bit.
    g = torch.Generator().manual_seed(1)
    dy, x, w = (torch.randint(-4, 5, s, generator=g).float().to(device) for s in
                ((9, 12), (9, 6), (12, 6)))  # fmt: skip
    dense = backward(dy, x, w, 12, "dense")
    got = backward(dy, x, w, 12, method, strategy)
    for a, b in zip(dense, (got.dx, got.dense_dw(), got.db), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "method,strategy", [("topk", "masked"), ("topk", "rowunion"), ("unified", "compact")]
)
def test_k_equal_n_same_gemm_as_dense(method, strategy):
    # These strategies hand BLAS the very matrices dense does when k = n.
    dy, x, w = make(33, 40, 50, torch.float32)
    dense = backward(dy, x, w, 50, "dense")
    got = backward(dy, x, w, 1.0, method, strategy)
    assert torch.equal(dense.dx, got.dx) and torch.equal(dense.dw, got.dense_dw())


@pytest.mark.parametrize("method,strategy", ALL)
def test_non_contiguous_inputs(method, strategy, device):
    dy, x, w = make(12, 10, 30, widest_dtype(method, strategy, device), device)
    base = backward(dy, x, w, 7, method, strategy, torch.Generator(device).manual_seed(2))
    dy_nc = torch.cat([dy, dy], 1)[:, ::2]
    dy_nc.copy_(dy)
    x_nc = x.t().contiguous().t()
    w_nc = torch.cat([w, w], 1)[:, ::2].copy_(w)
    assert not (dy_nc.is_contiguous() or x_nc.is_contiguous() or w_nc.is_contiguous())
    got = backward(dy_nc, x_nc, w_nc, 7, method, strategy, torch.Generator(device).manual_seed(2))
    for a, b in zip(
        (base.dx, base.dense_dw(), base.db), (got.dx, got.dense_dw(), got.db), strict=True
    ):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("strategy", strategies("randk"))
def test_randk_reproducible_and_fresh(strategy, device):
    dy, x, w = make(16, 8, 64, widest_dtype("randk", strategy, device), device)

    def run(gen=None):
        return backward(dy, x, w, 4, "randk", strategy, generator=gen).dx

    same = [run(torch.Generator(device).manual_seed(9)) for _ in range(2)]
    assert torch.equal(*same)
    torch.manual_seed(3)
    first, second = run(), run()
    assert not torch.allclose(first, second), "random-k must draw anew at every backward"
    torch.manual_seed(3)
    assert torch.equal(first, run()), "torch.manual_seed must reproduce the global-RNG draw"


def test_randk_draws_uniformly_without_replacement():
    dy = torch.zeros(4000, 20)
    idx = randk_per_example(dy, 5, torch.Generator().manual_seed(0))
    assert all(row.unique().numel() == 5 for row in idx)
    counts = torch.bincount(idx.reshape(-1), minlength=20).double()
    # 20,000 draws over 20 columns: 1,000 each expected, sd about 27.
    assert (counts - 1000).abs().max() < 150


@pytest.mark.parametrize("method,strategy", [m for m in ALL if m[0] != "randk"])
def test_ties_keep_exactly_k(method, strategy):
    # All |dy| equal: a threshold mask would keep every entry; meProp keeps k.
    b, n, k = 6, 40, 7
    dy, x, w = torch.ones(b, n), torch.ones(b, 1), torch.ones(n, 1)
    grads = backward(dy, x, w, k, method, strategy)
    want = n if method == "dense" else k
    assert torch.equal(grads.dx.abs().sum(1), torch.full((b,), float(want)))
    again = backward(dy, x, w, k, method, strategy)
    assert torch.equal(grads.dense_dw(), again.dense_dw())


def test_tied_selection_is_repeatable():
    dy = torch.ones(50, 300)
    picks = [topk_per_example(dy, 17) for _ in range(3)]
    assert all(torch.equal(picks[0], p) for p in picks)
    assert all(row.unique().numel() == 17 for row in picks[0])
    unified = unified_topk(dy, 17)
    assert unified.unique().numel() == 17 and torch.equal(unified, unified.sort().values)


@pytest.mark.parametrize("method,strategy", ALL)
def test_unneeded_gradients_are_skipped(method, strategy):
    dy, x, w = make(12, 7, 30)
    seed = 3
    full = backward(dy, x, w, 5, method, strategy, torch.Generator().manual_seed(seed))
    part = backward(
        dy, x, w, 5, method, strategy, torch.Generator().manual_seed(seed),
        need_dx=False, need_db=False,
    )  # fmt: skip
    assert part.dx is None and part.db is None
    torch.testing.assert_close(part.dense_dw(), full.dense_dw(), rtol=0, atol=0)
    frozen = backward(
        dy, x, w, 5, method, strategy, torch.Generator().manual_seed(seed), need_dw=False
    )
    assert frozen.dw is None and frozen.dense_dw() is None
    torch.testing.assert_close(frozen.dx, full.dx, rtol=0, atol=0)
    torch.testing.assert_close(frozen.db, full.db, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_batch_sum_is_the_sum_over_the_batch(dtype):
    # 512 x 150 after slicing: over the 64K elements from which the GEMV path is taken
    t = torch.randn(512, 300, dtype=dtype, generator=torch.Generator().manual_seed(0))
    assert t[:, ::2].numel() >= selection._GEMV_MIN_ELEMENTS
    got = batch_sum(t[:, ::2])  # non-contiguous too
    assert got.dtype == dtype
    torch.testing.assert_close(got, t[:, ::2].sum(0), **TOL[dtype])


def test_half_precision_scores_cannot_overflow():
    """|dY| summed over a batch overflows float16 (max 65504); the score does not, so
    the column that really is largest is the one kept."""
    dy = torch.full((64, 6), 2000.0, dtype=torch.float16)
    dy[:, 3] = 3000.0
    assert torch.isinf(dy.abs().sum(0)).all()
    assert torch.isfinite(batch_sum(dy.abs(), dtype=torch.float32)).all()
    assert unified_topk(dy, 1).tolist() == [3]


def test_compact_strategies_return_sorted_unique_rows():
    dy, x, w = make(20, 9, 60)
    for key, kern in KERNELS.items():
        if not kern.runs_on(dy.device, dy.dtype):
            continue  # triton: tests/core/test_triton_kernels.py
        grads = kern.fn(dy, x, w, 6)
        assert isinstance(grads.dw, RowGrad) == kern.compact, key
        if kern.compact:
            idx = grads.dw.indices
            assert torch.equal(idx, idx.unique()), key
            full = grads.dense_dw()
            untouched = torch.ones(60, dtype=torch.bool)
            untouched[idx] = False
            assert full[untouched].abs().sum() == 0


def test_sparse_strategy_builds_valid_csr():
    dy, x, w = make(10, 4, 25)
    with torch.sparse.check_sparse_tensor_invariants():
        got = backward(dy, x, w, 3, "topk", "sparse")
    ref = masked_grads(dy, x, w, per_example_mask(dy, 3))
    np.testing.assert_allclose(got.dx.numpy(), ref[0], rtol=1e-10)


@pytest.mark.parametrize(
    "k,message",
    [(0, "out of range"), (-3, "out of range"), (31, "out of range"), (0.0, r"\(0, 1\]"),
     (1.5, r"\(0, 1\]"), (True, "must be an int"), ("3", "must be an int")],
)  # fmt: skip
def test_bad_k(k, message):
    dy, x, w = make(4, 3, 30)
    with pytest.raises(MePropInputError, match=message):
        backward(dy, x, w, k, "topk")


def test_fraction_k_resolves_against_n():
    dy, x, w = make(4, 3, 4096)
    assert backward(dy, x, w, 0.01, "unified").dw.indices.numel() == 41


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda dy, x, w: (dy[:-1], x, w), "batch mismatch"),
        (lambda dy, x, w: (dy, x, w[:-1]), "w must be n x d_in"),
        (lambda dy, x, w: (dy, x[:, :-1], w), "w must be n x d_in"),
        (lambda dy, x, w: (dy, x.float(), w), "dtype mismatch"),
        (lambda dy, x, w: (dy[0], x, w), "dy must be 2-D"),
        (lambda dy, x, w: (dy, x.long(), w), "x must be floating point"),
        (lambda dy, x, w: (dy, x.numpy(), w), "x must be a torch.Tensor"),
    ],
)
def test_bad_inputs(change, message):
    with pytest.raises(MePropInputError, match=message):
        backward(*change(*make(4, 3, 30)), 2, "unified")


def test_unknown_names():
    with pytest.raises(MePropInputError, match=r"unknown method 'topK'.*unified"):
        get_kernel("topK")
    with pytest.raises(MePropInputError, match=r"unknown strategy 'csr'.*masked, sparse, rowunion"):
        get_kernel("topk", "csr")
    with pytest.raises(MePropInputError, match=r"unknown strategy 'masked'.*compact, scatter"):
        get_kernel("unified", "masked")


@pytest.mark.cuda
@pytest.mark.parametrize(
    "key", [key for key, kern in KERNELS.items() if not (kern.syncs_on_cuda or kern.native)]
)
def test_no_host_sync_on_cuda(key):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU; none is present")
    dy, x, w = make(64, 128, 256, torch.float32, "cuda")
    KERNELS[key].fn(dy, x, w, 8)  # warm up lazy initialisation outside the check
    torch.cuda.set_sync_debug_mode("error")
    try:
        KERNELS[key].fn(dy, x, w, 8)
    finally:
        torch.cuda.set_sync_debug_mode("default")
