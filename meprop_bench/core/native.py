"""Native CPU kernels: per-example top-k / random-k, and unified top-k at small shapes.

PyTorch has no per-row sparse product, so the torch strategies for per-example meProp
either multiply a masked dense dY (``masked``: dense cost) or go through CSR
(``sparse``). These kernels do what the method asks for, compiled with numba:

1. select each row's k entries, comparing scores as unsigned integers (their bits, the
   sign cleared): a lower bound from strided group maxima, the entries at or above it
   as candidates (about 1.4k of them at k/n = 1%), then the tie rule exactly, by
   counting ranks among up to 64 candidates, by quickselect beyond (vector compares
   written as LLVM intrinsics in :mod:`meprop_bench.core.native_simd`);
2. regroup the kept entries by column (a counting sort, like a transposed CSR);
3. dW: each kept column's row, Σ v·x[b] over its entries, written once; dX: each
   example's row, Σ v·W[c] over its kept entries, written once (or, once columns hold
   many entries, W's kept rows added column by column); up to eight source rows a
   pass, in one vector loop (an intrinsic as well). Each thread takes a share of the
   kept columns or of the examples and writes whole rows (by columns into its own copy
   of dx, summed at the end), so threads never write the same memory. dX and dW
   (its kept rows, or the full dW) come from
   :func:`~meprop_bench.core.allocator.recycled_tensor`: a fresh 62 MB buffer at
   n = d_in = 4096, k/n = 1% costs 4.4 ms of page zeroing before the first write, and
   in a training step, whose ``zero_grad`` frees
   ``.grad`` before the next backward, a fresh full 180 MB dW (LLaMA's 11008 x 4096)
   took 36 ms on huge pages and up to 840 ms when the kernel had to compact memory to
   find them, against 17-23 ms to write memory already mapped.

The kept set is the one :mod:`meprop_bench.core.selection` picks (ties go to the lowest
column), random-k draws its scores from the caller's generator exactly as the torch
strategies do, and the weight gradient comes back as a :class:`RowGrad` over the union
of kept columns. Temporaries live in :mod:`meprop_bench.core.workspace`. numba's thread count
follows ``torch.get_num_threads()`` at every call. Compilation happens in
:func:`compile_ahead` (the harness calls it before timing) and is cached on disk.
"""

from __future__ import annotations

import functools
import threading
from types import ModuleType

import numpy as np
import torch

from meprop_bench.core import workspace
from meprop_bench.core.allocator import HUGE_FROM, recycled_tensor
from meprop_bench.core.kernel_types import Gradients, KernelFn, RowGrad, not_differentiable
from meprop_bench.core.selection import batch_sum, random_scores, unified_score
from meprop_bench.errors import MePropInputError

#: The selection's prefilter (see ``native_jit._select_row``) splits a row into m
#: groups, m the power of two >= max(16, 2k), and runs where n >= PREFILTER_FROM * m
#: (with fewer than two entries a group it bounds nothing).
PREFILTER_FROM = 2
#: Below this many multiply-adds (B * k * d_in) one thread beats waking the pool. Two
#: threads, meprop-bench check, per call: B=16, n=d_in=128, k=4 (8K) 24 µs serial
#: against 28; B=32, n=d_in=256, k=8 (66K) 41 against 40; B=50, n=d_in=500, k=20
#: (500K) 117 against 82.
PARALLEL_FROM = 1 << 16
#: Largest dY (B * n elements) for which the automatic choice takes unified/native: one
#: thread, B=50, n=500 (25,000) it ran at 4.2x of dense against unified/compact's 3.2x,
#: B=256, n=4096 (1M) at 39.9x against 57.3x. The kernel is exact at every shape.
UNIFIED_SMALL = 1 << 16


@functools.cache
def _jit() -> ModuleType:
    """The compiled loops, with numba's thread pool started; a one-line error naming
    numba when it cannot be imported.

    Starting the pool (numba's OpenMP layer shares torch's OpenMP runtime) resets
    OpenMP's thread count to the pool's size, which silently moved torch from 1 thread
    to 2 here: torch's setting is put back.
    """
    try:
        import numba

        from meprop_bench.core import native_jit
    except ImportError as err:
        raise MePropInputError(
            f"the native strategy needs numba ({err}); install it with: pip install numba"
        ) from None
    before = torch.get_num_threads()
    numba.get_num_threads()  # starts the pool
    torch.set_num_threads(before)
    return native_jit


def available() -> bool:
    """Whether numba can be imported, so the native kernels can run."""
    try:
        _jit()
    except MePropInputError:
        return False
    return True


def _check_inputs(dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor) -> None:
    """Refuse what the compiled loops cannot take: other devices, other or mixed dtypes,
    and a backward that autograd records to differentiate again (create_graph=True).

    The accepted case is one expression (a loop over the three tensors cost 1.1 µs a
    call); the loop runs only to name what is wrong."""
    if torch.is_grad_enabled() and (dy.requires_grad or x.requires_grad or w.requires_grad):
        raise not_differentiable("native", dy, x, w)
    dtype = dy.dtype
    if dy.is_cpu and x.is_cpu and w.is_cpu and x.dtype == dtype == w.dtype and dtype in _FLOATS:
        return
    for t in (dy, x, w):
        if not t.is_cpu:
            raise MePropInputError(
                f"the native strategy runs on the CPU only, got a tensor on {t.device}; "
                "on CUDA use masked, sparse or rowunion (per example) or compact/scatter "
                "(unified)"
            )
        if t.dtype not in _FLOATS:
            raise MePropInputError(
                f"the native strategy takes float32 or float64, got {t.dtype}; "
                "use masked or rowunion for half precision"
            )
    raise MePropInputError(f"dtype mismatch: dy {dy.dtype}, x {x.dtype}, w {w.dtype}")


_FLOATS = frozenset((torch.float32, torch.float64))


class _NumbaThreads(threading.local):
    """The torch thread count numba's (per-thread) count was last set from."""

    torch_count = 0
    count = 1


_NUMBA_THREADS = _NumbaThreads()


def _threads() -> int:
    """Set numba's thread count to torch's (capped by numba's pool) and return it.

    Set when torch's count changes, not at every call: asking numba costs 0.8 µs, a
    percent of the whole backward at the paper's MNIST shape.
    """
    last = _NUMBA_THREADS
    wanted = torch.get_num_threads()
    if wanted != last.torch_count:
        import numba

        last.count = max(1, min(wanted, numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(last.count)
        last.torch_count = wanted
    return last.count


def _numpy(t: torch.Tensor) -> np.ndarray:
    """A NumPy view of ``t`` (a contiguous copy when it is not), for the compiled loops."""
    if t.requires_grad or not t.is_contiguous():
        return t.contiguous().detach().numpy()
    return t.numpy()


def per_example(method: str, full_dw: bool = False) -> KernelFn:
    """The native kernel for ``topk`` (scores |dY|) or ``randk`` (uniform noise).

    With ``full_dw`` the weight gradient comes back as the whole n x d_in tensor, the
    untouched rows zeroed in the same pass (what a dense ``.grad`` takes); otherwise as
    a :class:`RowGrad`. Building the full one from the RowGrad instead zeroes and copies
    it again: at B=50, n=500 that doubled the layer's backward in a training step.
    """

    def kernel(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
        _check_inputs(dy, x, w)
        if not (need_dx or need_dw):
            return Gradients(None, None, batch_sum(dy) if need_db else None)
        if method == "topk":
            score = dy
        else:
            out = workspace.scratch("noise", tuple(dy.shape), dy, torch.float32, always=True)
            score = random_scores(dy, generator, out)
        return _per_example_products(score, dy, x, w, k, need_dx, need_dw, need_db, full_dw)

    return kernel


def _prefilter(n: int, k: int) -> bool:
    """Whether the selection bounds each row from its group maxima first."""
    return n >= PREFILTER_FROM * max(16, 1 << (2 * k - 1).bit_length())


def _per_example_products(
    score: torch.Tensor,
    dy: torch.Tensor,
    x: torch.Tensor,
    w: torch.Tensor,
    k: int,
    need_dx: bool,
    need_dw: bool,
    need_db: bool,
    full_dw: bool = False,
    parts: int | None = None,
    prefilter: bool | None = None,
) -> Gradients:
    """Select the k largest of each row of ``score`` (|dY| when it is ``dy``, else
    random-k's noise), regroup and multiply, in one compiled call, dW whole with
    ``full_dw``, else its kept rows. The loops run on torch's thread count where the
    work is large enough (:data:`PARALLEL_FROM`) and bound the selection where groups
    are large enough (:func:`_prefilter`), unless ``parts`` and ``prefilter`` say.

    The inputs go in by address (``data_ptr()``, 0.2 µs a tensor against 1 for a NumPy
    view), made contiguous first and held here until the call returns. The outputs
    are NumPy arrays, wrapped as tensors on the way out: at B=50, n=500 making them as
    tensors and viewing them from NumPy cost 15 of a 128 µs call. For the kept rows dW
    gets room for every column that could be kept (min(n, B*k) rows) and comes back as
    a view of the rows written. Every step here is paid at each call: at B=50, n=500
    this Python is 11 µs of an 80 µs call.
    """
    jit = _jit()
    batch, n = dy.shape
    d_in = x.shape[1]
    threads = _threads()
    if parts is None:
        parts = threads if batch * k * d_in >= PARALLEL_FROM else 1
    if prefilter is None:
        prefilter = _prefilter(n, k)
    room = min(n, batch * k)
    key_dtype, mask = _KEYS[score.dtype]
    dtype = dy.dtype
    spares = parts - 1 if need_dx else 0
    work_v, ints, vals, spare = workspace.bundle(
        ("native", batch, n, d_in, k, key_dtype, dtype, spares),
        lambda: (
            _scratch("native_v", (2, batch, n), dy, key_dtype),
            _scratch("native_i", (batch * (n + 2 * k) + n + 1,), dy, torch.int64),
            _scratch("native_vals", (2 * batch * k,), dy),
            _scratch("native_dx", (spares, batch, d_in), dy),
        ),
    )
    union = np.empty(room, np.int64)  # returned: never scratch
    dx = _output(batch if need_dx else 0, d_in, dtype)
    dw = _output((n if full_dw else room) if need_dw else 0, d_in, dtype)
    db = np.empty(n if need_db else 0, dx.dtype)
    dy_c = dy.contiguous()
    key = dy_c if score is dy else score.contiguous()
    x_c, w_c = x.contiguous(), w.contiguous()
    if batch:
        used = jit.per_example_backward(
            parts, key.data_ptr(), mask, k, prefilter, work_v, ints, vals, dy_c.data_ptr(),
            union, x_c.data_ptr(), w_c.data_ptr(), dx, spare, full_dw, dw, db,
        )  # fmt: skip
    else:  # an empty batch keeps nothing; the loops would read its first row
        used = 0
        dw.fill(0)
        db.fill(0)
    if need_dw and not full_dw:
        dw_out = RowGrad(torch.from_numpy(union[:used]), torch.from_numpy(dw[:used]), n)
    else:
        dw_out = torch.from_numpy(dw) if need_dw else None
    return Gradients(
        torch.from_numpy(dx) if need_dx else None, dw_out, torch.from_numpy(db) if need_db else None
    )


_scratch = functools.partial(workspace.empty_array, always=True)
"""Scratch for the compiled loops. Autograd never records them (:func:`_check_inputs`
refuses), so no :func:`workspace.enabled_for` block is needed."""


def _output(rows: int, cols: int, dtype: torch.dtype) -> np.ndarray:
    """An uninitialised rows x cols array for a returned gradient: NumPy's memory when
    small, else :func:`~meprop_bench.core.allocator.recycled_tensor`'s, which saves
    large outputs their page faults once an earlier one of the size was released."""
    if rows * cols * dtype.itemsize < HUGE_FROM:
        return np.empty((rows, cols), _NUMPY_DTYPES[dtype])
    return recycled_tensor((rows, cols), dtype).numpy()


_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
#: The selection compares scores as unsigned integers (see ``native_jit._select_row``):
#: for each score dtype, the integer type of its bits and the mask clearing the sign.
_KEYS = {
    torch.float32: (torch.uint32, np.uint32(0x7FFF_FFFF)),
    torch.float64: (torch.uint64, np.uint64(0x7FFF_FFFF_FFFF_FFFF)),
}


def unified(dy, x, w, k, generator=None, *, need_dx=True, need_dw=True, need_db=True):
    """Unified top-k with the selection and both products in one compiled call.

    The column score is torch's (:func:`~meprop_bench.core.selection.unified_score`), so the
    kept columns are exactly unified/compact's; the rest costs one dispatch instead
    of a dozen operators, which is what dominates at the paper's MNIST shape.
    """
    _check_inputs(dy, x, w)
    jit = _jit()
    db = batch_sum(dy) if need_db else None
    if not (need_dx or need_dw):
        return Gradients(None, None, db)
    score = unified_score(dy)
    heap = _scratch("unified_heap", (k,), dy, score.dtype)
    idx = torch.empty(k, dtype=torch.int64)  # returned as the RowGrad's indices
    d_in = x.shape[1]
    dx = torch.empty((dy.shape[0] if need_dx else 0, d_in), dtype=dy.dtype)
    dw = torch.empty((k if need_dw else 0, d_in), dtype=dy.dtype)
    jit.unified_backward(_numpy(score), _numpy(dy), _numpy(x), _numpy(w), heap,
                         idx.numpy(), dx.numpy(), dw.numpy())  # fmt: skip
    rows = RowGrad(idx, dw, dy.shape[1]) if need_dw else None
    return Gradients(dx if need_dx else None, rows, db)


@functools.cache
def compile_ahead() -> None:
    """Compile (or load from the disk cache) every native loop for float32 and float64,
    serial and parallel, so no timed call ever compiles."""
    gen = torch.Generator().manual_seed(0)
    for dtype in (torch.float32, torch.float64):
        dy, x, w = (torch.randn(s, generator=gen, dtype=dtype) for s in ((4, 8), (4, 3), (8, 3)))
        for score in (dy, random_scores(dy, gen)):
            for parts in (2, 1):
                for prefilter in (True, False):
                    _per_example_products(
                        score, dy, x, w, 2, True, True, True, parts=parts, prefilter=prefilter
                    )
        unified(dy, x, w, 2)
