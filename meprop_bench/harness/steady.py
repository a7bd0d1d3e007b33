"""Blocks of consecutive training steps, and a warm-up that runs them until their time
stops moving: how ``meprop-bench model`` and the step suites time a training step.

A training run takes steps back to back, each leaving the caches, page mappings and
allocator state the next one finds. Timing single steps, or alternating single steps
of two models, measures other states than that (the paper MLP's step speedup moved by
40% between such runs; docs/model.md). So a round is a block of consecutive steps
lasting at least :data:`BLOCK_SECONDS`, and timing starts once each block's time is
within :data:`STEADY` of the one before it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

BLOCK_SECONDS = 0.2  # a block of steps lasts at least this long
MAX_BLOCK = 20  # steps in a block at most
STEADY = 0.1  # warm-up ends when each block's time moves by less than this
MIN_WARMUP_BLOCKS = 2
#: A warm-up ends when steady or after this long (at least MIN_WARMUP_BLOCKS blocks each).
#: LLaMA's MLP at one thread, a block of one 7-9 s step a side, ran a third pair of
#: blocks under a 20 s limit and was still not steady.
WARMUP_LIMIT_S = 10.0


def clamp(value: float, bounds: tuple[int, int]) -> int:
    """``value`` as an int within ``bounds``."""
    return int(min(max(value, bounds[0]), bounds[1]))


def block_size(step: Callable[[], float], tries: int = 3) -> int:
    """Steps in a block: enough for :data:`BLOCK_SECONDS`, 1 to :data:`MAX_BLOCK`, from
    the fastest of up to ``tries`` runs of ``step`` (a callable returning one step's
    seconds) while they take under :data:`BLOCK_SECONDS` in all (a first step is slow:
    lazy initialisation, first touches of memory)."""
    times = [step()]
    while len(times) < tries and sum(times) < BLOCK_SECONDS:
        times.append(step())
    return steps_in_block(min(times))


def steps_in_block(step_s: float) -> int:
    """Steps in a block of steps of ``step_s`` seconds each: enough for
    :data:`BLOCK_SECONDS`, 1 to :data:`MAX_BLOCK`."""
    return clamp(math.ceil(BLOCK_SECONDS / max(step_s, 1e-9)), (1, MAX_BLOCK))


def warm_up(blocks: Sequence[Callable[[], float]], limit_s: float) -> tuple[int, bool, list[float]]:
    """Run each of ``blocks`` (a callable running one block, returning its seconds) in
    turn until every one is steady, or ``limit_s`` passed after at least
    :data:`MIN_WARMUP_BLOCKS` each. Returns (blocks run each, steady, each one's last
    block seconds)."""
    history: list[list[float]] = [[] for _ in blocks]
    start = time.perf_counter()
    while True:
        for runs, block in zip(history, blocks, strict=True):
            runs.append(block())
        done = len(history[0])
        if done < MIN_WARMUP_BLOCKS:
            continue
        steady = all(abs(h[-1] / h[-2] - 1) < STEADY for h in history)
        if steady or time.perf_counter() - start > limit_s:
            return done, steady, [h[-1] for h in history]
