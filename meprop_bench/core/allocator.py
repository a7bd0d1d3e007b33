"""The C allocator under torch's CPU tensors: the page faults it costs, and a steady
setting that removes them.

torch allocates CPU tensors with the C library's malloc. glibc serves a block over its
mmap threshold (128 KiB at first, then raised to the size of each such block freed, up
to 32 MiB) with a fresh mmap and may trim the heap top back to the kernel, so the
first write to every 4 KiB page of a new multi-MB tensor takes a page fault. Which
blocks do depends on what the process allocated before: one kernel's time can change
by 3x with the case that ran ahead of it (on the development machine
``unified/scatter`` at B=50, n=500 took 0.17 or 0.6 ms, 64 or 212 faults a call).

The CPU timer therefore counts minor page faults per call (every result records the
median), and ``set_mode("steady")`` fixes glibc's thresholds (mmap only from 32 MiB,
never trim) so that freed blocks under 32 MiB stay in the heap for reuse. That made the
faults of every kernel at that shape vanish (0.6 ms back to 0.16 for the one above),
but it is no guarantee: a block that fits no freed hole (heap fragmentation) still gets
fresh pages, and blocks over 32 MiB (a dense 4096 x 4096 float32 weight gradient is 64
MiB) are mmapped and fault on every call whatever the mode. jemalloc or tcmalloc
through ``LD_PRELOAD`` are the other cure; what is preloaded is recorded.
"""

from __future__ import annotations

import ctypes
import math
import os
import platform
import threading
import weakref
from typing import Any

try:
    import resource
except ImportError:  # Windows: no getrusage, so no fault counts
    resource = None  # type: ignore[assignment]

import torch

from meprop_bench.errors import MePropInputError

MODES = ("default", "steady")

# mallopt parameters (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit
_NEVER_TRIM = (1 << 31) - 1

_mode = "default"


def minor_faults() -> int | None:
    """Minor page faults this process (all its threads) has taken so far; None where
    the system does not count them."""
    if resource is None:
        return None
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _glibc() -> ctypes.CDLL | None:
    if platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_free_memory() -> None:
    """Hand the C allocator's free memory back to the system (glibc's ``malloc_trim``),
    so the resident set holds live data only: a step's peak above it is then what the
    step allocated. Nothing elsewhere."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def set_mode(mode: str) -> None:
    """Apply an allocator mode: ``default`` changes nothing (after ``steady`` the
    process stays steady: it cannot be undone); ``steady`` fixes glibc's mmap threshold
    at 32 MiB and turns heap trimming off, for this process.

    ``steady`` needs glibc malloc: it refuses on another C library, or when a malloc
    replacement (jemalloc, tcmalloc, mimalloc...) is preloaded.
    """
    global _mode
    if mode not in MODES:
        choices = ", ".join(MODES)
        raise MePropInputError(f"unknown allocator mode {mode!r}; choose one of: {choices}")
    if mode == "default" or _mode == "steady":
        return
    libc = _glibc()
    if libc is None:
        raise MePropInputError("the steady allocator setting needs glibc malloc; this is not glibc")
    preload = os.environ.get("LD_PRELOAD", "")
    if "malloc" in preload:
        raise MePropInputError(
            f"LD_PRELOAD={preload} replaces malloc; the steady setting tunes glibc's and "
            "would not apply (leave it at default)"
        )
    if not libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX):
        raise MePropInputError("glibc refused the steady allocator setting (M_MMAP_THRESHOLD)")
    _mode = "steady"  # the threshold alone already changed how malloc behaves
    if not libc.mallopt(_M_TRIM_THRESHOLD, _NEVER_TRIM):
        raise MePropInputError(
            "glibc took the 32 MiB mmap threshold but refused to stop trimming "
            "(M_TRIM_THRESHOLD); the process is steady in part"
        )


_MADV_HUGEPAGE = 14  # linux/mman.h
_HUGE_PAGE = 2 << 20
#: Outputs from this size on ask for huge pages (smaller ones gain little).
HUGE_FROM = 8 << 20


def _thp_on_request() -> bool:
    """Whether Linux hands out transparent huge pages to regions that ask for them."""
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            return "[never]" not in f.read()
    except OSError:
        return False


_HUGE = _thp_on_request() and _glibc() is not None
_libc = _glibc() if _HUGE else None


def _fresh_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A new, uninitialised CPU tensor for a large kernel output, backed by transparent
    huge pages where Linux offers them on request.

    A fresh 64 MB tensor costs 16,384 page faults on its first write: 25 ms on the
    development machine, against 7 ms with 2 MB pages and 2 ms to write memory already
    mapped. The tensor is an ordinary one (torch frees it); only its first touch is
    cheaper. Below :data:`HUGE_FROM`, or without THP, it is ``torch.empty``.
    """
    out = torch.empty(shape, dtype=dtype)
    nbytes = out.numel() * out.element_size()
    if _libc is not None and nbytes >= HUGE_FROM:
        start = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (out.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_HUGEPAGE)
    return out


#: Idle buffers :func:`recycled_tensor` keeps per size: a training step's ``zero_grad``
#: frees every swapped layer's dW and the next backward takes them back, one per layer
#: (a 12-block transformer's two layers have dWs of one size: 24). Idle memory is never
#: more than what was in use before it went idle.
RECYCLE_KEEP = 32
_idle: dict[int, list[torch.Tensor]] = {}
_idle_lock = threading.Lock()


def _give_back(nbytes: int, buffer: torch.Tensor) -> None:
    with _idle_lock:
        idle = _idle.setdefault(nbytes, [])
        if len(idle) < RECYCLE_KEEP:
            idle.append(buffer)


def recycled_tensor(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A new, uninitialised CPU tensor for a large kernel output, in memory that an
    earlier output of the same size left behind once nothing referred to it any more
    (its tensor and every view of it gone), as a caching allocator does; else a
    :func:`_fresh_tensor`.

    A fresh output costs the kernel zeroing every page before the first write, huge
    pages or not: at n = d_in = 4096, k/n = 1% the 62 MB of dW's kept rows took 4.4 ms
    to fault in and 2.4 ms to write on the development machine. Recycled memory is
    already mapped. Below :data:`HUGE_FROM` (where malloc's own free lists reuse
    memory) it is ``torch.empty``; at most :data:`RECYCLE_KEEP` idle buffers of a size
    are kept.
    """
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes < HUGE_FROM:
        return torch.empty(shape, dtype=dtype)
    with _idle_lock:
        idle = _idle.get(nbytes)
        buffer = idle.pop() if idle else None
    if buffer is None:
        buffer = _fresh_tensor((nbytes,), torch.uint8)
    # A NumPy view carries the buffer: torch keeps the array that a tensor was made
    # from alive exactly as long as the tensor's storage, so the array's end is the
    # moment the output (with all its views) is gone.
    array = buffer.numpy()[:]
    weakref.finalize(array, _give_back, nbytes, buffer)
    return torch.from_numpy(array).view(dtype).view(shape)


def recycled_idle_bytes() -> int:
    """Bytes of idle output buffers held for reuse."""
    with _idle_lock:
        return sum(n * len(v) for n, v in _idle.items())


def info() -> dict[str, Any]:
    """What a result file records of the allocator."""
    name, version = platform.libc_ver()
    return {
        "libc": f"{name} {version}".strip() or "unknown",
        "mode": _mode,
        "ld_preload": os.environ.get("LD_PRELOAD", ""),
        # glibc.malloc.hugetlb=1 puts every large block on huge pages (docs/model.md)
        "glibc_tunables": os.environ.get("GLIBC_TUNABLES", ""),
    }
