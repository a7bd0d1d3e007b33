"""When a timing is noise: the rules that mark a case unstable or a speedup impossible,
and the one-line warning that names them with the likely cause and what to do.

A case is *unstable* when its speedup's interval is wider than a factor of
:data:`RATIO_SPREAD` (high / low), or when the dense baseline's own rounds vary by more
than :data:`TIME_SPREAD` (interquartile range over median): either way one more run could
tell another story. On a quiet 2-core Zen 3 VM at the default rounds the widest seen were
a factor of 1.3 and 0.20 (docs/reports/check-2026-11-26, every shape and thread count),
so these thresholds are loose enough never to fire on a quiet machine and tight enough
to catch a busy one (an interval of 16.5-61.8x under load 3).

A speedup *above its bound* (n/k for a backward, 3n/(n+2k) for a training step: the
arithmetic it saves, all of it) is not a finding but a measurement error: the dense side
was slowed by something else. The report never quotes one as a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: A speedup's interval (high / low) wider than this marks its case unstable.
RATIO_SPREAD = 2.0
#: The dense baseline's rounds varying more than this (IQR / median) mark its cases unstable.
TIME_SPREAD = 0.3
#: Fewer timed rounds than this are named as a likely cause of instability.
FEW_ROUNDS = 10


def time_spread(samples: Sequence[float]) -> float:
    """Interquartile range over median of one side's rounds (nan for fewer than 2)."""
    values = np.asarray(samples, dtype=float)
    if len(values) < 2 or not np.median(values) > 0:
        return math.nan
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float((q3 - q1) / median)


def instability(low: float, high: float, dense_spread: float = math.nan) -> list[str]:
    """Why a speedup with interval [low, high] over a dense side whose rounds spread by
    ``dense_spread`` (:func:`time_spread`) is unstable; empty when it is not."""
    reasons = []
    if math.isfinite(low) and math.isfinite(high) and low > 0 and high / low > RATIO_SPREAD:
        reasons.append(f"interval {low:.3g}-{high:.3g}x wider than a factor of {RATIO_SPREAD:g}")
    if math.isfinite(dense_spread) and dense_spread > TIME_SPREAD:
        reasons.append(f"dense's rounds vary by {dense_spread:.0%} (IQR/median)")
    return reasons


def above_bound(speedup: float, bound: float) -> bool:
    """Whether a measured speedup exceeds what the saved arithmetic allows."""
    return math.isfinite(speedup) and math.isfinite(bound) and bound > 0 and speedup > bound


def likely_cause(state: dict[str, Any] | None, rounds: int | None) -> str:
    """The likely cause of unstable timings, from the machine state and the rounds."""
    causes = []
    if state and state.get("quiet") is False:
        causes.append(
            f"the machine was busy (other processes used {state['other_cores']:.2f} of "
            f"{state['cpus']} cores)"
        )
    if rounds is not None and rounds < FEW_ROUNDS:
        causes.append(f"too few rounds ({rounds})")
    return " and ".join(causes) or "noise on this machine (it looked quiet)"


def warning(
    names: Sequence[str],
    total: int,
    state: dict[str, Any] | None,
    rounds: int | None,
    rounds_option: str = "--rounds",
    threads_option: str = "--threads 1",
) -> str:
    """The ``warning:`` line naming the unstable cases, the likely cause and the remedy."""
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    more = f"{rounds_option} {max(2 * (rounds or FEW_ROUNDS), FEW_ROUNDS)}"
    return (
        f"warning: {len(names)} of {total} cases unstable ({shown}); likely cause: "
        f"{likely_cause(state, rounds)}; rerun with {more}, {threads_option}, on a quiet "
        "machine; their speedups are not findings"
    )
