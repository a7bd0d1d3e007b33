"""The paper's accuracy claims, judged from the seeds of training runs: one verdict per
claim and setting (data set, training-set size, recipe, optimizer, minibatch, layers,
epochs), each a difference with its 95% interval, the test and its p-value, and one
word. The rule is :data:`RULE`. Runs are chosen by configuration (method, k, hidden
width), never by what else a file holds; a setting far from the paper's (fewer epochs,
fewer training images) says so beside its verdict (:func:`caveat`).

(a) Table 3: top-k k=20 beats a dense MLP of h=20 (test accuracy at the best dev epoch).
(b) Figure 4: top-k beats random-k at each k both were run at.
(c) Table 1: top-k k=20 is within 0.5 points of dense at the full width, or better.
(d) Reduced overfitting: top-k k=20's final train - dev gap is smaller than dense's, at
    a final dev accuracy within 0.5 points of dense's, or better.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from meprop_bench import stats
from meprop_bench.report.training import FULL_WIDTH

NON_INFERIORITY = -0.005  # Table 1's claim: within 0.5 points of dense, or better
REPRODUCED, REFUTED, INCONCLUSIVE = "reproduced", "refuted", "inconclusive"
TEST = "Welch t, one-sided"
# What one judged setting holds in common; runs that differ in any of these are not pooled.
SETTING = ["data", "train_size", "recipe", "optimizer", "batch_size", "layers", "epochs"]
K_CLAIMED = 20  # the k of the paper's MNIST claims (Tables 1-3)
PAPER_EPOCHS, PAPER_TRAIN_SIZE = 20, 55_000  # the paper's MNIST runs: 60,000 less 5,000 dev
# The paper's own differences (points), top-k minus the baseline: Table 3 (98.01 - 95.77)
# and Table 1, Adam (98.01 - 97.82).
PAPER_DIFFERENCE = {"a": 98.01 - 95.77, "c": 98.01 - 97.82}
CLAIM_NAMES = {
    "a": "(a) top-k k=20 beats dense h=20",
    "b": "(b) top-k beats random-k at each k",
    "c": "(c) top-k k=20 within 0.5 points of dense h=500",
    "d": "(d) reduced overfitting",
}
RULE = (
    "Each claim compares means over seeds, A - B, with a margin m (0 for 'beats'; -0.5 "
    "points for 'within 0.5 points, or better'): the claim is A - B > m. Test: Welch's t "
    "(unequal variances; the seeds of A and of B as independent samples), one-sided "
    "against H0: A - B <= m, beside the two-sided 95% interval of A - B. reproduced: the "
    "whole interval lies above m (p < 0.025); refuted: the whole interval lies below m; "
    "inconclusive: the interval contains m, or a side has fewer than 2 seeds. A claim of "
    "several parts is reproduced when every part is, refuted when any part is, and its "
    "p is the largest. Settings that differ in data set, training-set size, recipe, "
    "optimizer, minibatch, layers or epochs are judged apart; runs with dropout take no "
    "part. A run found twice (same data, size, recipe, configuration, epochs and seed) "
    "counts once."
)


@dataclass(frozen=True)
class Comparison:
    """A - B (means over seeds), its two-sided interval, and the one-sided p of
    H0: A - B <= margin."""

    diff: float
    low: float
    high: float
    p: float
    margin: float
    n_a: int
    n_b: int

    @property
    def word(self) -> str:
        if self.low > self.margin:
            return REPRODUCED
        if self.high < self.margin:
            return REFUTED
        return INCONCLUSIVE


def welch(a: np.ndarray, b: np.ndarray, margin: float = 0.0) -> Comparison:
    """Welch's comparison of the means of ``a`` and ``b`` against ``margin`` (see the
    module docstring); NaN interval and p when a side has fewer than 2 values."""
    diff, low, high, p = stats.welch(a, b, margin)
    return Comparison(diff, low, high, p, margin, len(a), len(b))


def combined(words: list[str]) -> str:
    """The word for a claim that needs every part to hold: refuted when any part is,
    reproduced when all are, else inconclusive."""
    if REFUTED in words:
        return REFUTED
    return REPRODUCED if set(words) == {REPRODUCED} else INCONCLUSIVE


def _pts(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value * 100:+.2f}"


def _p(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.3g}"


def _row(claim: str, compared: str, what: str, c: Comparison) -> dict[str, str]:
    interval = "-" if not math.isfinite(c.low) else f"{_pts(c.low)} to {_pts(c.high)}"
    return {
        "claim": claim,
        "compared (seeds)": f"{compared} ({c.n_a} vs {c.n_b})",
        "difference (points)": f"{what} = {_pts(c.diff)}",
        "95% interval": interval,
        "test": f"{TEST}, H0: difference <= {_pts(c.margin)}",
        "p": _p(c.p),
        "verdict": c.word,
    }


def _overall(claim: str, compared: str, rule: str, p: float, parts: list[Comparison]) -> dict:
    return {
        "claim": claim,
        "compared (seeds)": compared,
        "difference (points)": "parts above",
        "95% interval": "-",
        "test": rule,
        "p": _p(p),
        "verdict": combined([c.word for c in parts]),
    }


def _pick(
    runs: pd.DataFrame, method: str, k: int | None = None, hidden: int = FULL_WIDTH
) -> pd.DataFrame:
    """Runs without dropout of one configuration: ``method`` at ``hidden`` units (and
    keeping ``k``, for a meProp method; any k when None)."""
    plain = runs[(runs["dropout"] == 0) & (runs["method"] == method) & (runs["hidden"] == hidden)]
    return plain if k is None else plain[plain["k"] == k]


def _judge(runs: pd.DataFrame) -> Iterator[dict[str, str]]:
    """The verdict rows of one setting's runs, for each claim they can test."""
    acc, k = "test_acc_at_best", K_CLAIMED
    topk, dense = _pick(runs, "topk", k), _pick(runs, "dense")
    small = _pick(runs, "dense", hidden=k)
    if len(topk) and len(small):
        yield _row(
            "(a) Table 3: top-k k=20 beats dense h=20",
            f"topk k={k} vs dense h={k}",
            "test acc A - B",
            welch(topk[acc], small[acc]),
        )
    ks = sorted(set(_pick(runs, "topk")["k_axis"]) & set(_pick(runs, "randk")["k_axis"]))
    per_k = [welch(_pick(runs, "topk", j)[acc], _pick(runs, "randk", j)[acc]) for j in ks]
    for j, c in zip(ks, per_k, strict=True):
        yield _row(
            f"(b) Figure 4: top-k beats random-k at k={int(j)}",
            f"topk vs randk k={int(j)}",
            "test acc A - B",
            c,
        )
    if len(per_k) > 1:
        yield _overall(
            "(b) Figure 4: top-k beats random-k at each k",
            "k = " + ", ".join(str(int(j)) for j in ks),
            "every k reproduced; refuted if any k is",
            math.nan,
            per_k,
        )
    if len(topk) and len(dense):
        yield _row(
            "(c) Table 1: top-k k=20 within 0.5 points of dense h=500, or better",
            f"topk k={k} vs dense h=500",
            "test acc A - B",
            welch(topk[acc], dense[acc], NON_INFERIORITY),
        )
        gap = welch(dense["gap"], topk["gap"])
        dev = welch(topk["final_dev_acc"], dense["final_dev_acc"], NON_INFERIORITY)
        yield _row(
            "(d) reduced overfitting, part 1: smaller final train - dev gap",
            f"dense h=500 vs topk k={k}",
            "gap A - B",
            gap,
        )
        yield _row(
            "(d) part 2: at equal or better final dev accuracy",
            f"topk k={k} vs dense h=500",
            "dev acc A - B",
            dev,
        )
        yield _overall(
            "(d) reduced overfitting: both parts",
            f"topk k={k} vs dense h=500",
            "intersection-union: p = the larger",
            max(gap.p, dev.p),
            [gap, dev],
        )


def caveat(setting: dict) -> str:
    """How far a setting is from the paper's, to say beside its verdict: e.g. "at 5
    epochs on 3,000 images (the paper: 20 epochs, 55,000)"; empty at the paper's."""
    epochs, size = int(setting["epochs"]), setting["train_size"]
    short = pd.notna(size) and int(size) < PAPER_TRAIN_SIZE
    if epochs >= PAPER_EPOCHS and not short:
        return ""
    parts = [f"at {epochs} epochs" if epochs < PAPER_EPOCHS else "",
             f"on {int(size):,} images" if short else ""]  # fmt: skip
    said = " ".join(p for p in parts if p)
    return f"{said} (the paper: {PAPER_EPOCHS} epochs, {PAPER_TRAIN_SIZE:,})"


def verdicts(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per claim and setting (data set, training-set size, recipe, optimizer,
    minibatch, layers, epochs) that the runs of
    :func:`meprop_bench.report.training.runs` can test, with the setting's
    :func:`caveat`."""
    if runs.empty:
        return pd.DataFrame()
    rows = []
    for key, group in runs.groupby(SETTING, sort=False, dropna=False):
        setting = dict(zip(SETTING, key, strict=True))
        note = caveat(setting)
        rows.extend({**setting, **row, "caveat": note} for row in _judge(group))
    return pd.DataFrame(rows)


def needs(runs: pd.DataFrame) -> list[str]:
    """What the runs lack for each claim they cannot test: one line per claim."""
    have = {
        "topk": len(_pick(runs, "topk", K_CLAIMED)) > 0,
        "small": len(_pick(runs, "dense", hidden=K_CLAIMED)) > 0,
        "dense": len(_pick(runs, "dense")) > 0,
        "randk": len(_pick(runs, "randk")) > 0,
    }
    wanted = {
        CLAIM_NAMES["a"]: ("topk", "small"),
        CLAIM_NAMES["b"]: ("topk", "randk"),
        CLAIM_NAMES["c"]: ("topk", "dense"),
        CLAIM_NAMES["d"]: ("topk", "dense"),
    }
    names = {"topk": "top-k k=20 h=500", "small": "dense h=20", "dense": "dense h=500",
             "randk": "random-k h=500 at the same k as top-k"}  # fmt: skip
    lines = []
    for claim, parts in wanted.items():
        missing = [names[p] for p in parts if not have[p]]
        if missing:
            lines.append(f"{claim} needs {' and '.join(missing)}, each with 2+ seeds, in the "
                         "same setting (data, training size, recipe, epochs).")  # fmt: skip
    return lines


def differences(runs: pd.DataFrame) -> pd.DataFrame:
    """Claims (a) and (c) as numbers per setting, for the plot against training-set
    size: ``letter``, top-k minus the baseline (``diff``) and its 95% interval (``low``,
    ``high``) in points, the claim's ``margin`` and the paper's own difference
    (``paper``)."""
    rows = []
    for key, group in runs.groupby(SETTING, sort=False, dropna=False) if len(runs) else ():
        topk = _pick(group, "topk", K_CLAIMED)["test_acc_at_best"]
        baselines = {
            "a": (_pick(group, "dense", hidden=K_CLAIMED)["test_acc_at_best"], 0.0),
            "c": (_pick(group, "dense")["test_acc_at_best"], NON_INFERIORITY),
        }
        for letter, (base, margin) in baselines.items():
            if len(topk) and len(base):
                c = welch(topk.to_numpy(), base.to_numpy(), margin)
                rows.append({**dict(zip(SETTING, key, strict=True)), "letter": letter,
                             "diff": 100 * c.diff, "low": 100 * c.low, "high": 100 * c.high,
                             "margin": 100 * margin, "paper": PAPER_DIFFERENCE[letter],
                             "seeds": min(c.n_a, c.n_b)})  # fmt: skip
    return pd.DataFrame(rows)
