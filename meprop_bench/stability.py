"""When a timing is noise: the rules that mark a case unstable or a speedup impossible,
and the one-line warning that names them with the likely cause and what to do.

A case is *unstable* when its speedup's interval is wider than a factor of
:data:`RATIO_SPREAD` (high / low), or when the dense baseline's own rounds vary by more
than :data:`TIME_SPREAD` (interquartile range over median): either way one more run could
tell another story. The ratio's interval is the test that separates a busy machine from
a quiet one, because a per-round ratio cancels what slows both sides of a round alike:
on a 2-core Zen 3 VM (``meprop-bench check``, B=256, 4096, k=1%, 15 rounds, 2 threads)
the kernels' intervals stayed within a factor of 1.3 quiet and reached 5.4 with a busy
loop on one core, while dense's own spread was 0.11-0.33 quiet and 0.17 busy: that
spread is only a backstop, for a baseline too erratic to compare against at all.

A kernel can also vary by itself: one whose fresh temporaries are mapped on some calls
and reused on others (``unified/scatter`` at B=50, n=500: 64 or 212 page faults a call,
0.17 or 0.6 ms; see :mod:`meprop_bench.core.allocator`). Its per-call fault counts say
so, and the warning then names memory, not load, as the cause. A kernel bound by
writing memory varies on a quiet VM too, with no such sign: ``unified/scatter`` at B=256,
n=4096 zeroes a fresh 64 MiB dW in 10-22 ms a call at a constant 544 faults, and was
flagged in 5 of 6 quiet default ``check`` runs.

A speedup *above its bound* (n/k for a backward, 3n/(n+2k) for a training step: the
arithmetic it saves, all of it), its whole interval above it, is not a finding but a
measurement error: the dense side was slowed by something else. The report never quotes
one as a result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

#: A speedup's interval (high / low) wider than this marks its case unstable.
RATIO_SPREAD = 2.0
#: The dense baseline's rounds varying more than this (IQR / median) mark its cases unstable.
TIME_SPREAD = 0.5
#: Page faults per call whose quartiles differ by more than this (16 MiB of 4 KiB pages)
#: name a case's own memory as the cause of its spread.
FAULT_SPREAD = 4096
#: Fewer timed rounds than this are named as a likely cause of instability.
FEW_ROUNDS = 10


def time_spread(samples: Sequence[float]) -> float:
    """Interquartile range over median of one side's rounds (nan for fewer than 2)."""
    values = np.asarray(samples, dtype=float)
    if len(values) < 2 or not np.median(values) > 0:
        return math.nan
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return float((q3 - q1) / median)


def faults_vary(faults: Sequence[int]) -> bool:
    """Whether one side's per-call page faults vary enough to explain a spread in its
    times (quartiles more than :data:`FAULT_SPREAD` apart)."""
    if len(faults) < 4:
        return False
    q1, q3 = np.percentile(np.asarray(faults, dtype=float), [25, 75])
    return bool(q3 - q1 > FAULT_SPREAD)


def instability(
    low: float, high: float, dense_spread: float = math.nan, faults: Sequence[int] = ()
) -> list[str]:
    """Why a speedup with interval [low, high] over a dense side whose rounds spread by
    ``dense_spread`` (:func:`time_spread`) is unstable; empty when it is not. ``faults``,
    the case's per-call page faults where counted, name its memory when they vary."""
    reasons = []
    if math.isfinite(low) and math.isfinite(high) and low > 0 and high / low > RATIO_SPREAD:
        reasons.append(f"interval {low:.3g}-{high:.3g}x wider than a factor of {RATIO_SPREAD:g}")
    if math.isfinite(dense_spread) and dense_spread > TIME_SPREAD:
        reasons.append(f"dense's rounds vary by {dense_spread:.0%} (IQR/median)")
    if reasons and faults_vary(faults):
        q1, q3 = np.percentile(np.asarray(faults, dtype=float), [25, 75])
        reasons.append(f"{MEMORY}: {q1:.0f} to {q3:.0f} page faults a call")
    return reasons


def above_bound(low: float, bound: float) -> bool:
    """Whether a speedup exceeds what the saved arithmetic allows beyond its noise: the
    low end of its interval (``low``) above the bound. A median just over the bound with
    an interval across it is not flagged: at 10% dense's fresh 64 MiB dW (16,385 page
    faults a call, which the sparse kernels skip) put ``unified/compact`` at 10.1x
    [9.8-10.6] against n/k = 9.99 on a quiet machine."""
    return math.isfinite(low) and math.isfinite(bound) and bound > 0 and low > bound


#: The reason :func:`instability` gives for a case whose page faults vary.
MEMORY = "its own memory (fresh pages on some calls, reused on others)"


def likely_cause(
    state: dict[str, Any] | None, rounds: int | None, memory: Sequence[str] = ()
) -> str:
    """The likely cause of unstable timings, from the machine state, the rounds and the
    cases whose own page faults varied (``memory``)."""
    causes = []
    if memory:
        causes.append(
            f"page faults that vary from call to call in {', '.join(memory[:4])} "
            "(see meprop_bench.core.allocator)"
        )
    if state and state.get("quiet") is False:
        causes.append(
            f"the machine was busy (other processes used {state['other_cores']:.2f} of "
            f"{state['cpus']} cores)"
        )
    if rounds is not None and rounds < FEW_ROUNDS:
        causes.append(f"too few rounds ({rounds})")
    return " and ".join(causes) or "noise on this machine (it looked quiet)"


def memory_cases(rows: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """The names, among (name, instability reasons) pairs, whose memory was named."""
    return [name for name, reasons in rows if any(r.startswith(MEMORY) for r in reasons)]


def warning(
    names: Sequence[str],
    total: int,
    state: dict[str, Any] | None,
    rounds: int | None,
    rounds_option: str = "--rounds",
    threads_option: str = "--threads 1",
    memory: Sequence[str] = (),
) -> str:
    """The ``warning:`` line naming the unstable cases, the likely cause and the remedy;
    ``memory`` names those whose own page faults varied (:func:`memory_cases`)."""
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    more = f"{rounds_option} {max(2 * (rounds or FEW_ROUNDS), FEW_ROUNDS)}"
    remedy = f"rerun with {more}, {threads_option}, on a quiet machine"
    if memory:
        remedy += " (a kernel's own page faults stay: read its time as a range)"
    return (
        f"warning: {len(names)} of {total} cases unstable ({shown}); likely cause: "
        f"{likely_cause(state, rounds, memory)}; {remedy}; their speedups are not findings"
    )


def busy_warning(state: dict[str, Any] | None) -> str | None:
    """The ``warning:`` line for a run on a busy machine whose cases all looked stable,
    else None: sharing the cores biases a whole run alike (at 2 threads with another
    job taking 1.5 of 2 cores, unified/compact measured 7.1x [6.5-7.5] where a quiet run
    gave 41x), which no interval shows."""
    if not state or state.get("quiet") is not False:
        return None
    return (
        f"warning: the machine was busy (other processes used {state['other_cores']:.2f} "
        f"of {state['cpus']} cores): timings shared the cores with that work and can be "
        "biased even where their intervals are tight; rerun on a quiet machine before "
        "quoting them"
    )


def faults_note(dense: float | None, sparse: float | None, tunables: str = "") -> str | None:
    """A line when one side of a training step takes far more page faults a step than
    the other (``dense`` and ``sparse``; None: not counted): part of its time is then
    the memory it maps afresh, not the arithmetic meProp removes. ``tunables``: the
    GLIBC_TUNABLES the run had."""
    if dense is None or sparse is None or abs(dense - sparse) < 1000:
        return None
    if max(dense, sparse) < 2 * max(min(dense, sparse), 1):
        return None
    line = (f"note: page faults a step differ, dense {dense:,.0f} against meProp {sparse:,.0f}: "
            "one side maps fresh memory for its gradients every step, the other reuses "
            "memory (meProp's kernels reuse the last step's)")  # fmt: skip
    if "hugetlb" not in tunables:
        line += "; GLIBC_TUNABLES=glibc.malloc.hugetlb=1 puts both sides' on huge pages"
    return line + " (docs/model.md)"


def model_faults_note(doc: dict[str, Any]) -> str | None:
    """:func:`faults_note` for a ``meprop-bench/model`` document's whole step."""
    step = next(p for p in doc["parts"] if p["part"] == "step")
    tunables = doc["machine"].get("allocator", {}).get("glibc_tunables", "")
    return faults_note(step.get("dense_faults"), step.get("meprop_faults"), tunables)


def model_bound_note(doc: dict[str, Any]) -> str | None:
    """A line when a ``meprop-bench/model`` step's whole interval lies above its bound
    (:func:`above_bound`; the bound counts only the swapped layers' backward): dense
    lost time elsewhere too. It names the parts outside the backward where meProp's
    step was faster beyond their interval (on LLaMA's MLP: dense's ``zero_grad``
    unmapping three fresh 180 MB gradients a step, which meProp's reused buffers do not
    pay), or else says the rounds disagree."""
    if not above_bound(doc["step_speedup_low"], doc["step_bound"]):
        return None
    outside = [p for p in doc["parts"] if p["part"] in ("forward", "optimizer") and p["low"] > 1]
    faster = [f"{p['part']} {p['speedup']:.2f}x [{p['low']:.2f}-{p['high']:.2f}]" for p in outside]
    low, bound = doc["step_speedup_low"], doc["step_bound"]
    head = f"note: the whole step's interval lies above its bound ({low:.2f}x > {bound:.2f}x): "
    if faster:
        return head + (f"dense also lost time outside the swapped layers' backward ("
                       f"{', '.join(faster)}), which meProp's arithmetic does not explain; "
                       "read the page faults a step beside it")  # fmt: skip
    return head + ("no part outside the backward explains it: the rounds disagree; rerun "
                   "with more --rounds on a quiet machine")  # fmt: skip
