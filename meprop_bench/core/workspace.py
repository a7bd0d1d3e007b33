"""Scratch buffers that the CPU backward kernels reuse from call to call.

glibc malloc serves a block over its mmap threshold (a few MB) with a fresh mmap and
returns it to the kernel when freed, so a 4 MB temporary costs about a thousand page
faults on every call: at B = 256, n = 4096 that was a fifth of the unified top-k backward.
Internal temporaries (|dY| for the selection score, gathered rows of W, the masked dY)
therefore come from here. A returned gradient never does: each call's results are new
tensors, as nn.Linear's are.

Buffers are per thread (concurrent backwards never share one) and grow to the largest
request seen; :func:`release` frees this thread's. CUDA tensors get no scratch: torch's
caching allocator already reuses device memory.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import numpy as np
import torch

T = TypeVar("T")


class _Slot:
    """One growable buffer and the shaped views of it handed out so far."""

    def __init__(self, numel: int, dtype: torch.dtype) -> None:
        with torch.inference_mode(False):  # a normal tensor, usable in and out of it
            self.buffer = torch.empty(numel, dtype=dtype)
        self.views: dict[tuple[int, ...], torch.Tensor] = {}
        self.arrays: dict[tuple[int, ...], np.ndarray] = {}  # NumPy views of views


class _Slots(threading.local):
    def __init__(self) -> None:
        self.slots: dict[tuple[str, torch.dtype], _Slot] = {}
        self.bundles: dict[Hashable, Any] = {}  # see bundle()
        self.enabled = False


_SLOTS = _Slots()
_MAX_VIEWS = 32


class enabled_for:
    """Allow scratch within the block, for a computation on ``inputs``, unless autograd
    could record it: with grad mode on and an input that requires grad, an op may save
    a scratch tensor for its backward, which the next call would overwrite. Outside
    such a block :func:`scratch` gives nothing, so only code written for it reuses
    memory."""

    __slots__ = ("_allow", "_before")

    def __init__(self, *inputs: torch.Tensor) -> None:
        self._allow = not (torch.is_grad_enabled() and any(t.requires_grad for t in inputs))

    def __enter__(self) -> None:
        self._before = _SLOTS.enabled
        _SLOTS.enabled = self._allow

    def __exit__(self, *exc: object) -> None:
        _SLOTS.enabled = self._before


def scratch(
    slot: str,
    shape: tuple[int, ...],
    like: torch.Tensor,
    dtype: torch.dtype | None = None,
    *,
    always: bool = False,
) -> torch.Tensor | None:
    """An uninitialised ``shape`` tensor of ``dtype`` (default ``like``'s), reused across
    calls for the same ``slot`` on this thread; None off the CPU (``like``'s device) and
    outside an :class:`enabled_for` block that allows it, unless ``always``: for code
    that autograd never records (the native kernels refuse to run where it could), which
    saves the block's cost (2 µs of a 120 µs native call at B=50, n=500).

    A repeated request is a dictionary look-up (the view is kept), since the kernels
    ask on every call and at small shapes every microsecond shows.
    """
    if not ((always or _SLOTS.enabled) and like.is_cpu):
        return None
    dtype = like.dtype if dtype is None else dtype
    entry = _SLOTS.slots.get((slot, dtype))
    if entry is not None:
        view = entry.views.get(shape)
        if view is not None:
            return view
    need = math.prod(shape)
    if entry is None or entry.buffer.numel() < need:
        entry = _SLOTS.slots[(slot, dtype)] = _Slot(need, dtype)
        _SLOTS.bundles.clear()  # they may hold views of the buffer this one replaces
    if len(entry.views) >= _MAX_VIEWS:  # shapes that vary call to call (rowunion's union)
        entry.views.clear()
        entry.arrays.clear()
    with torch.inference_mode(False):
        view = entry.views[shape] = entry.buffer[:need].view(shape)
    return view


def bundle(key: Hashable, make: Callable[[], T]) -> T:
    """``make()`` (several scratch views a kernel needs together), made once for ``key``
    on this thread and kept until a scratch buffer is replaced or released.

    One look-up instead of one per buffer: the native kernel's four took 2.6 µs of a
    96 µs call at B=50, n=500."""
    found = _SLOTS.bundles.get(key)
    if found is None:
        found = make()
        _SLOTS.bundles[key] = found
    return found


def release() -> None:
    """Free this thread's scratch buffers (they are made again when next needed)."""
    _SLOTS.slots.clear()
    _SLOTS.bundles.clear()


def held_bytes() -> int:
    """Bytes of scratch this thread holds."""
    return sum(e.buffer.numel() * e.buffer.element_size() for e in _SLOTS.slots.values())


def abs_of(t: torch.Tensor, slot: str = "abs") -> torch.Tensor:
    """|t|, written into scratch where allowed. The result is only valid until the
    next request for ``slot`` on this thread: use it and drop it."""
    out = scratch(slot, tuple(t.shape), t)
    return t.abs() if out is None else torch.abs(t, out=out)


def index_select(src: torch.Tensor, dim: int, index: torch.Tensor, slot: str) -> torch.Tensor:
    """``src.index_select(dim, index)`` into scratch where allowed (valid until the
    next request for ``slot`` on this thread)."""
    shape = list(src.shape)
    shape[dim] = index.numel()
    out = scratch(slot, tuple(shape), src)
    if out is None:
        return src.index_select(dim, index)
    return torch.index_select(src, dim, index, out=out)


def empty(
    slot: str, shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An uninitialised ``shape`` tensor of ``dtype`` (default ``like``'s), in scratch
    where allowed (valid until the next request for ``slot`` on this thread)."""
    out = scratch(slot, shape, like, dtype)
    if out is None:
        return torch.empty(shape, dtype=like.dtype if dtype is None else dtype, device=like.device)
    return out


def empty_array(
    slot: str,
    shape: tuple[int, ...],
    like: torch.Tensor,
    dtype: torch.dtype | None = None,
    *,
    always: bool = False,
) -> np.ndarray:
    """:func:`empty` as a NumPy array, for compiled (numba) loops (``always`` as for
    :func:`scratch`). A repeated request is a dictionary look-up: viewing a tensor from
    NumPy costs about 0.8 µs, and the native kernels ask for four buffers a call."""
    dtype = like.dtype if dtype is None else dtype
    allowed = (always or _SLOTS.enabled) and like.is_cpu
    entry = _SLOTS.slots.get((slot, dtype)) if allowed else None
    if entry is not None:
        array = entry.arrays.get(shape)
        if array is not None:
            return array
    out = scratch(slot, shape, like, dtype, always=always)
    if out is None:
        return torch.empty(shape, dtype=dtype).numpy()
    array = _SLOTS.slots[(slot, dtype)].arrays[shape] = out.numpy()
    return array


def zeros_like(t: torch.Tensor, slot: str) -> torch.Tensor:
    """A zero-filled tensor shaped like ``t``, in scratch where allowed."""
    out = scratch(slot, tuple(t.shape), t)
    return torch.zeros_like(t) if out is None else out.zero_()
