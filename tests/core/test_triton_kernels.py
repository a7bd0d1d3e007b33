"""The triton strategy against the independent NumPy reference, and its refusals.

Without a GPU the kernels run under Triton's interpreter, which must be switched on
(``TRITON_INTERPRET=1``) before the kernels are defined: ``test_under_the_interpreter``
runs this file's kernel tests in a child pytest with it set, on the CPU at small shapes,
so the rest of the suite never sees the variable. With a GPU the same tests also run
compiled on CUDA (marked ``cuda``). Every test here is marked ``triton``; those that need
triton skip with the reason when it is not installed.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reference import index_mask, masked_grads, per_example_mask, unified_mask

from meprop_bench import MePropInputError, backward, get_kernel
from meprop_bench.core import triton_kernels
from meprop_bench.core.selection import randk_per_example
from meprop_bench.harness.grid import Grid

pytestmark = pytest.mark.triton

HAS_TRITON = importlib.util.find_spec("triton") is not None
INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"
NO_TRITON = "triton is not installed (pip install triton; Linux x86-64 wheels)"
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
ROOT = Path(__file__).resolve().parents[2]

METHODS = ("topk", "randk", "unified")
TOL = {
    torch.float32: dict(rtol=1e-4, atol=1e-4),
    torch.float16: dict(rtol=5e-3, atol=5e-3),
    torch.bfloat16: dict(rtol=3e-2, atol=3e-2),
}
# (dtype, (B, d_in, n)): three shapes in float32, one in each half precision.
CASES = [
    *((torch.float32, shape) for shape in ((1, 1, 1), (5, 3, 13), (8, 20, 64))),
    (torch.float16, (6, 16, 48)),
    (torch.bfloat16, (6, 16, 48)),
]


@pytest.fixture(
    params=[pytest.param("cpu", id="interpreter")]
    if INTERPRETED
    else [pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])]
)
def where(request) -> str:
    """The device of a kernel test: the CPU under the interpreter (in the child process
    of test_under_the_interpreter), else CUDA, compiled."""
    if not HAS_TRITON:
        pytest.skip(NO_TRITON)
    return request.param


@pytest.fixture(params=["wide", "narrow"])
def blocks(request, monkeypatch) -> str:
    """The kernels' block sizes as shipped (a small row fits one block), or narrow ones
    that make every loop take several steps: rows in chunks, dX over several entry and
    d_in blocks, dW over several example blocks, the GEMMs over several tiles."""
    if request.param == "narrow":
        narrow = dict(SELECT_BLOCK=16, ENTRY_BLOCK=2, D_BLOCK=8, GEMM_BLOCK_M=16,
                      GEMM_BLOCK_N=16, GEMM_BLOCK_T=16)  # fmt: skip
        for name, value in narrow.items():
            monkeypatch.setattr(triton_kernels, name, value)
    return request.param


def make(b, d_in, n, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    dy, x, w = (torch.randn(s, generator=g) for s in ((b, n), (b, d_in), (n, d_in)))
    return tuple(t.to(device, dtype) for t in (dy, x, w))


def gen(device, seed):
    return torch.Generator(device).manual_seed(seed)


def reference_mask(method, dy, k, seed):
    if method == "topk":
        return per_example_mask(dy, k)
    if method == "unified":
        return unified_mask(dy, k)
    return index_mask(randk_per_example(dy, k, gen(dy.device, seed)), tuple(dy.shape))


def assert_matches(grads, ref, dtype):
    for got, want in zip((grads.dx, grads.dense_dw(), grads.db), ref, strict=True):
        np.testing.assert_allclose(got.double().cpu().numpy(), want, **TOL[dtype])


def tied(b, n, device, dtype=torch.float32):
    """dY whose magnitudes tie often: small signed integers, no zeros."""
    dy = torch.randint(-3, 4, (b, n), generator=torch.Generator().manual_seed(0)).float()
    dy[dy == 0] = 0.5
    return dy.to(device, dtype)


# --- the kernels (interpreter or CUDA) -------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype,shape", CASES, ids=lambda v: str(v).removeprefix("torch."))
def test_matches_reference(where, method, dtype, shape):
    b, d_in, n = shape
    dy, x, w = make(b, d_in, n, dtype, where)
    for k in sorted({1, max(1, n // 4), n}):
        grads = backward(dy, x, w, k, method, "triton", gen(where, 5))
        want = masked_grads(dy, x, w, reference_mask(method, dy, k, 5))
        assert_matches(grads, want, dtype)
        assert grads.dx.dtype == grads.dw.values.dtype == dtype


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize(
    "b,d_in,n,k", [(0, 12, 16, 4), (1, 12, 16, 4), (5, 12, 1, 1), (5, 1, 16, 4), (5, 12, 16, 16)]
)
def test_degenerate_shapes_match_reference(where, method, b, d_in, n, k):
    # An empty batch, one example, one output, one input, every entry kept.
    dy, x, w = make(b, d_in, n, device=where)
    grads = backward(dy, x, w, k, method, "triton", gen(where, 5))
    assert grads.dx.shape == (b, d_in) and grads.dense_dw().shape == (n, d_in)
    assert_matches(grads, masked_grads(dy, x, w, reference_mask(method, dy, k, 5)), torch.float32)


@pytest.mark.parametrize("method", METHODS)
def test_every_loop_step_matches_reference(where, blocks, method):
    dy, x, w = make(4, 20, 40, device=where, seed=1)
    for k in (1, 13, 40):
        grads = backward(dy, x, w, k, method, "triton", gen(where, 2))
        want = masked_grads(dy, x, w, reference_mask(method, dy, k, 2))
        assert_matches(grads, want, torch.float32)


@pytest.mark.parametrize("method", ["topk", "unified"])
def test_ties_keep_the_lowest_columns(where, blocks, method):
    # w = identity and x = 0 make dx the masked dY itself, so the kept set is visible.
    b, n = 5, 23
    dy = tied(b, n, where)
    x, w = torch.zeros(b, n, device=where), torch.eye(n, device=where)
    masks = {"topk": per_example_mask, "unified": unified_mask}
    for k in (1, 5, 11, 22) if blocks == "narrow" else (1, 2, 5, 11, 22, 23):
        got = backward(dy, x, w, k, method, "triton").dx.cpu() != 0
        want = torch.from_numpy(masks[method](dy, k)).bool()
        assert torch.equal(got, want), k
        assert bool((got.sum(1) == k).all())


def test_all_equal_scores_keep_the_first_k(where):
    dy = torch.ones(4, 30, device=where)
    dy[:, 7] = 2.0
    x, w = torch.zeros(4, 30, device=where), torch.eye(30, device=where)
    grads = backward(dy, x, w, 5, "topk", "triton")
    assert torch.equal((grads.dx != 0)[0].nonzero().flatten().cpu(), torch.tensor([0, 1, 2, 3, 7]))
    assert grads.dw.indices.tolist() == [0, 1, 2, 3, 7]


@pytest.mark.parametrize("method", METHODS)
def test_k_equal_n_is_dense_exactly(where, method):
    # Small integers make every product exact in any summation order.
    g = torch.Generator().manual_seed(1)
    dy, x, w = (torch.randint(-4, 5, s, generator=g).float().to(where) for s in
                ((6, 12), (6, 5), (12, 5)))  # fmt: skip
    dense = backward(dy, x, w, 12, "dense")
    got = backward(dy, x, w, 12, method, "triton", gen(where, 0))
    for a, b in zip(dense, (got.dx, got.dense_dw(), got.db), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("method", METHODS)
def test_unneeded_gradients_are_skipped(where, method):
    dy, x, w = make(4, 5, 16, device=where)
    full = backward(dy, x, w, 3, method, "triton", gen(where, 3))
    for need_dx in (True, False):
        for need_dw in (True, False):
            for need_db in (True, False):
                needs = dict(need_dx=need_dx, need_dw=need_dw, need_db=need_db)
                part = backward(dy, x, w, 3, method, "triton", gen(where, 3), **needs)
                for flag, got, want in ((need_dx, part.dx, full.dx), (need_db, part.db, full.db),
                                        (need_dw, part.dense_dw(), full.dense_dw())):  # fmt: skip
                    assert (got is None) if not flag else torch.equal(got, want), needs


@pytest.mark.parametrize("method", METHODS)
def test_non_contiguous_inputs(where, method):
    dy, x, w = make(6, 10, 30, device=where)
    base = backward(dy, x, w, 7, method, "triton", gen(where, 2))
    dy_nc = torch.cat([dy, dy], 1)[:, ::2].copy_(dy)
    x_nc = x.t().contiguous().t()
    w_nc = torch.cat([w, w], 1)[:, ::2].copy_(w)
    assert not (dy_nc.is_contiguous() or x_nc.is_contiguous() or w_nc.is_contiguous())
    got = backward(dy_nc, x_nc, w_nc, 7, method, "triton", gen(where, 2))
    for a, b in zip((base.dx, base.dense_dw(), base.db), (got.dx, got.dense_dw(), got.db),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(a, b)


def test_randk_reproducible_from_a_seeded_generator_and_fresh_without(where):
    dy, x, w = make(4, 3, 24, device=where)

    def kept(generator=None):
        return backward(dy, x, w, 4, "randk", "triton", generator).dw.indices

    assert torch.equal(kept(gen(where, 9)), kept(gen(where, 9)))
    assert not torch.equal(kept(gen(where, 9)), kept(gen(where, 10)))
    torch.manual_seed(3)
    first, second = kept(), kept()
    assert not torch.equal(first, second), "random-k must draw anew at every backward"
    torch.manual_seed(3)
    assert torch.equal(first, kept()), "torch.manual_seed must reproduce the global-RNG draw"
    # the same draw as the torch strategies: the same kept set
    rowunion = backward(dy, x, w, 4, "randk", "rowunion", gen(where, 9))
    assert torch.equal(kept(gen(where, 9)), rowunion.dw.indices)


def test_weight_gradient_rows_are_the_union_of_kept_columns(where):
    dy = torch.zeros(3, 10, device=where)
    dy[0, [1, 4]] = 1.0
    dy[1, [4, 8]] = 2.0
    dy[2, [1, 8]] = 3.0
    x, w = torch.ones(3, 2, device=where), torch.ones(10, 2, device=where)
    grads = backward(dy, x, w, 2, "topk", "triton")
    assert grads.dw.indices.tolist() == [1, 4, 8]
    assert grads.dw.values[:, 0].tolist() == [4.0, 3.0, 5.0]
    assert grads.dw.num_rows == 10


def test_refuses_float64_and_a_backward_to_differentiate_again(where):
    dy, x, w = make(2, 3, 4, torch.float64, where)
    with pytest.raises(MePropInputError, match=r"float32, float16 or bfloat16, got torch.float64"):
        backward(dy, x, w, 2, "topk", "triton")
    dy, x, w = make(2, 3, 4, device=where)
    with pytest.raises(MePropInputError, match=r"but dy requires grad.*create_graph=True"):
        backward(dy.requires_grad_(), x, w, 2, "unified", "triton")


# --- in the parent process ---------------------------------------------------------------


@pytest.mark.slow  # about two minutes on 2 cores: the interpreter runs the kernels in Python
@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="this is the child process")
def test_under_the_interpreter():
    """This file's kernel tests on the CPU, in a child pytest with TRITON_INTERPRET=1."""
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "triton",
               "-W", "error::pytest.PytestUnknownMarkWarning", str(Path(__file__))]  # fmt: skip
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-8000:]
    assert " passed" in out and " failed" not in out, out[-2000:]


@pytest.mark.skipif(INTERPRETED, reason="the interpreter takes CPU tensors by design")
@pytest.mark.parametrize("method", METHODS)
def test_cpu_tensors_are_refused_in_one_line_naming_the_cpu_strategies(method):
    dy, x, w = make(2, 3, 4)
    with pytest.raises(MePropInputError, match=r"runs on CUDA only.*on the CPU use.*topk/native"):
        backward(dy, x, w, 2, method, "triton")
    try:
        backward(dy, x, w, 2, method, "triton")
    except MePropInputError as err:
        assert "\n" not in str(err)


def test_without_triton_the_strategy_says_so_and_the_rest_works():
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import torch\n"
        "from meprop_bench import backward, get_kernel, MePropInputError\n"
        "from meprop_bench.core import triton_kernels\n"
        "dy, x, w = torch.randn(2, 4), torch.randn(2, 3), torch.randn(4, 3)\n"
        "for key in ('topk/masked', 'unified/compact', 'randk/rowunion'):\n"
        "    backward(dy, x, w, 2, *key.split('/'))\n"
        "assert not triton_kernels.available()\n"
        "for call in (lambda: get_kernel('unified', 'triton').prepare(),\n"
        "             lambda: backward(dy, x, w, 2, 'topk', 'triton')):\n"
        "    try:\n"
        "        call()\n"
        "    except MePropInputError as err:\n"
        "        print(err)\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "1"}  # past the CPU refusal, to the import
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env=env, cwd=ROOT)  # fmt: skip
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2, out.stdout
    for line in lines:
        assert "needs the triton package" in line and "pip install triton" in line, line


def test_grids_take_triton_on_cuda_only():
    grid = Grid(widths=(64,), batches=(8,), ks=(4,), methods=("topk", "randk", "unified"),
                devices=("cpu", "cuda"), dtypes=("float32", "float64", "bfloat16"))  # fmt: skip
    triton = {(c.device, c.dtype) for c in grid.cases() if c.strategy == "triton"}
    assert triton == {("cuda", "float32"), ("cuda", "bfloat16")}
    assert not get_kernel("topk", "triton").runs_on("cpu", torch.float32)
    assert get_kernel("unified", "triton").runs_on("cuda:1", torch.float16)


@pytest.mark.slow  # Triton's whole compiler, nine times: 7-9 s of one core here
@needs_triton
@pytest.mark.skipif(INTERPRETED, reason="the interpreter does not compile")
def test_kernels_compile_for_a_gpu(tmp_path, monkeypatch):
    """Each kernel through Triton's whole compiler (PTX and cubin for sm_90): the
    interpreter runs the Python, not what the compiler accepts. No GPU needed."""
    try:
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource, compile
    except ImportError as err:
        pytest.skip(f"this triton has no ahead-of-time compile API: {err}")
    from meprop_bench.core import triton_jit as jit

    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path))
    target = GPUTarget("cuda", 90, 32)

    def build(fn, pointers, constexprs, **options):
        signature = {name: "constexpr" if name in constexprs else pointers.get(name, "i32")
                     for name in fn.arg_names}  # fmt: skip
        kernel = compile(ASTSource(fn, signature, constexprs), target=target,
                         options={"enable_fp_fusion": True, **options})  # fmt: skip
        assert kernel.asm["cubin"], fn.__name__

    for dt in ("fp32", "bf16"):
        for one_block in (True, False) if dt == "fp32" else (True,):
            build(jit.select_rows_dx,
                  {"score_ptr": "*fp32", "dy_ptr": f"*{dt}", "w_ptr": f"*{dt}", "idx_ptr": "*i32",
                   "val_ptr": "*fp32", "dx_ptr": f"*{dt}"},
                  dict(NEED_DX=True, ONE_BLOCK=one_block, BLOCK_N=8192 if one_block else 1024,
                       BLOCK_K=16, BLOCK_D=128), num_warps=16 if one_block else 4)  # fmt: skip
        build(jit.union_rows_dw,
              {"starts_ptr": "*i32", "slots_ptr": "*i32", "rows_ptr": "*i32", "vals_ptr": "*fp32",
               "x_ptr": f"*{dt}", "union_ptr": "*i64", "dw_ptr": f"*{dt}"},
              dict(BLOCK_E=16, BLOCK_D=128))  # fmt: skip
        for gather_m in (False, True):
            build(jit.gathered_gemm,
                  {"a_ptr": f"*{dt}", "b_ptr": f"*{dt}", "idx_ptr": "*i64", "c_ptr": f"*{dt}"},
                  dict(GATHER_M=gather_m, GATHER_T=not gather_m, PRECISION="ieee",
                       UPCAST=False, BLOCK_M=64, BLOCK_N=64, BLOCK_T=32))  # fmt: skip
