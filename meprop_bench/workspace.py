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

import torch


class _Slots(threading.local):
    def __init__(self) -> None:
        self.buffers: dict[tuple[str, torch.dtype], torch.Tensor] = {}


_SLOTS = _Slots()


def scratch(slot: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor | None:
    """An uninitialised ``shape`` tensor of ``like``'s dtype, reused across calls for
    the same ``slot`` on this thread; None where no scratch may be used: off the CPU,
    or when autograd would record the op writing into it (out= ops do not support it)."""
    if like.device.type != "cpu" or (torch.is_grad_enabled() and like.requires_grad):
        return None
    need = math.prod(shape)
    key = (slot, like.dtype)
    buf = _SLOTS.buffers.get(key)
    if buf is None or buf.numel() < need:
        buf = _SLOTS.buffers[key] = torch.empty(need, dtype=like.dtype)
    return buf[:need].view(shape)


def release() -> None:
    """Free this thread's scratch buffers (they are made again when next needed)."""
    _SLOTS.buffers.clear()


def held_bytes() -> int:
    """Bytes of scratch this thread holds."""
    return sum(b.numel() * b.element_size() for b in _SLOTS.buffers.values())


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


def zeros_like(t: torch.Tensor, slot: str) -> torch.Tensor:
    """A zero-filled tensor shaped like ``t``, in scratch where allowed."""
    out = scratch(slot, tuple(t.shape), t)
    return torch.zeros_like(t) if out is None else out.zero_()
