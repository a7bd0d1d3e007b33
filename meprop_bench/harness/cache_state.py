"""``meprop-bench check --cache shared|warm|cold``: the CPU caches each timed call finds.

Interleaved round by round, a kernel runs right after another one, on what that one
left in the caches. For small kernels that is a bias tied to the place in the round:
at B=50, n = d_in = 500, k=20 one ``topk/native`` call took 90 µs after dense and 205
after the three torch per-example kernels (no page faults either way), whose traffic
had pushed its operands out of cache. A 0.6 ms dense call barely notices.

- ``shared`` (the default): as they come, each call after the previous kernel's.
- ``warm``: each timed call right after an untimed call of the same kernel, so every
  kernel runs on caches it filled itself (what repeated calls of one layer see).
- ``cold``: each timed call after writing twice the last-level cache, so every kernel
  starts from memory (as CUDA's timer does with its L2 flush).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.timing import Fn

CACHE_STATES = ("shared", "warm", "cold")
#: Assumed last-level cache where sysfs does not say (32 MiB: a Zen 4 CCD's L3).
FALLBACK_LLC_BYTES = 32 << 20

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def last_level_cache_bytes(sysfs: Path = Path("/sys/devices/system/cpu/cpu0/cache")) -> int:
    """The size of CPU 0's highest-level cache, from sysfs; else :data:`FALLBACK_LLC_BYTES`."""
    best = (0, 0)
    for index in sysfs.glob("index*"):
        try:
            level = int((index / "level").read_text())
            size = (index / "size").read_text().strip()
            number = int(size.rstrip("KMG")) * _UNITS.get(size[-1:], 1)
        except (OSError, ValueError):
            continue
        best = max(best, (level, number))
    return best[1] or FALLBACK_LLC_BYTES


def before_each_call(state: str, device: torch.device) -> Callable[[Fn], None] | None:
    """What to run, untimed, before each timed call of a kernel: None for ``shared``,
    the kernel itself for ``warm``, a write over twice the last-level cache for
    ``cold``. CPU only: on CUDA the timer flushes L2 before every call."""
    if state not in CACHE_STATES:
        raise MePropInputError(f"--cache: choose one of {', '.join(CACHE_STATES)}, got {state!r}")
    if state == "shared":
        return None
    if device.type != "cpu":
        raise MePropInputError(
            f"--cache {state} applies to CPU timing; on {device.type} every timed call "
            "already follows an L2 flush"
        )
    if state == "warm":
        return lambda fn: fn()
    sweep = torch.empty(2 * last_level_cache_bytes(), dtype=torch.uint8)
    return lambda fn: sweep.add_(1)
