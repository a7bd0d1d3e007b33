"""Every statistic meprop-bench computes, as pure functions of arrays: the regression
gate's (is a candidate slower than its baseline?), change points across runs, and the
report's intervals.

Two comparisons, both on raw samples (seconds per call), both deciding the same way:
a **regression** needs a significant one-sided test *and* a change beyond a minimum
effect; an **improvement** is the mirror image; too few samples give **undecided**,
never a guess.

Samples come grouped by run (one pytest process, one JSON file), and samples of one run
are not independent: they share that run's conditions (load, clocks, memory layout),
and on a busy machine whole runs shift by tens of percent. A rank test that treats them
as independent calls such a shift significant. So when both sides hold two or more
runs, the run is the unit of replication: a one-sided t-test on the runs' log medians
(Student, pooled variance) must agree too.

- :func:`compare_times`: absolute times of one benchmark. Significant means the
  Mann-Whitney U test on the pooled samples (a rank test: no normality assumed, robust
  to the long right tail of timings) rejects "not slower" at alpha, and so does the
  run-level t-test when there are runs to test; the reported p is the larger.
- :func:`compare_speedups`: the within-run speedup (dense median / sparse median) of a
  sparse benchmark, a ratio of medians: the run-level t-test on log speedups, or with
  one run a side a bootstrap (the fraction of resampled changes on the far side of 0).

With one run a side, run-to-run variation is not measured, and a whole run that moved
(a busy machine) looks like a change of every benchmark. So those comparisons are made
against the run's **common shift** (:func:`common_shift`): the median over all the
compared benchmarks of their log ratios, with a robust spread (scaled MAD). A shift
shared by every benchmark (:attr:`Shift.shared`) cannot be told from machine state with
one run a side: the gate calls it undecided.

Nor can one benchmark's change: identical sweeps on a shared machine move single small
benchmarks by 2x, and by 100x when another process wakes, far beyond any spread the
other benchmarks show. So with one run a side the benchmarks are the replicates:
:func:`judge_single_run` tests each **group** that one change of code moves together
(the cases of one method, of one strategy) against the other benchmarks, by ranks, with
the p-values adjusted over the groups; a group beyond the shift, the noise and the
minimum effect is a regression (or an improvement), and is left out of the shift. A
benchmark beyond the shift and the noise (the spread times a t quantile at alpha /
benchmarks) takes its group's verdict when the group changed the same way
(:func:`single_run_statuses`); alone, it is undecided when worse. So is a strategy
whose cases moved together while the rest of its method did not: one kernel's state in
one process (identical sweeps move every unified/compact case 1.5x together).

**Adaptive rounds** (``ab --rounds auto``): :func:`sequential_family` looks at all the
comparisons of one A/B after every round from :data:`MIN_ROUNDS` on, each look being
the ordinary comparison of the rounds so far (the run-level t-test, on each case's own
round-to-round spread). Alpha is the false-alarm budget of the whole A/B: a
**group-sequential design with an alpha-spending function** (Lan and DeMets 1983),
Pocock-type, gives each look its share alpha_r (the looks' shares add up to alpha), and
at each look **Holm's step-down** (Holm 1979) splits alpha_r over the A/B's comparisons
for a regression (or improvement), so the chance that an A/B of identical code fails,
at any look in any comparison, stays at or below alpha whatever the correlation between
looks and between comparisons. A comparison is **ok** when the upper end of its own
interval at alpha_r lies within the minimum effect: the A/B passes only when every one
did, so no correction is needed there (an intersection-union test). Neither, at
:attr:`Sequential.max_rounds`: undecided.

Across stored runs, :func:`level_changes` marks where a series (a case's speedup, run
after run) changed level: PELT change-point detection from ruptures.

Both report ``change``, the factor by which the candidate is *worse*, minus one
(+0.10: 10% slower, or a speedup 1.1x lower), with an interval of confidence
1 - 2 alpha (the two-sided twin of the one-sided tests): with runs, the change is the
t-test's own estimate (the ratio of the geometric means of the run values) and its
t-interval, so the change lies inside its interval; else the ratio of the pooled
medians and a bootstrap percentile interval.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

# scipy.stats and ruptures (which imports scipy.stats too) take over a second to import:
# each function below imports what it uses, so a process that never judges (a suite run,
# a command that only plans) does not pay for them.

REGRESSION = "regression"
IMPROVEMENT = "improvement"
OK = "ok"
UNDECIDED = "undecided"
_BEYOND = {REGRESSION, IMPROVEMENT}  # the statuses of a change beyond every limit

RESAMPLES = 2000  # bootstrap replicates; the smallest bootstrap p is 1/2001
SEED = 0  # fixed: the same input always gives the same verdict and interval
CONFIDENCE = 0.95  # of every interval the report shows
_CHUNK = 4_000_000  # resampled values held in memory at once
MAD_TO_SD = 1.4826  # MAD * this = standard deviation, for normal data
MEDIAN_SE = math.sqrt(math.pi / 2)  # standard error of a median / that of a mean (normal)
MAD_EFFICIENCY = 0.367  # the MAD's efficiency at the normal: its degrees of freedom per value
SHIFT_MIN_BENCHMARKS = 5  # fewer benchmarks: a run's noise (spread) is not estimated
GROUP_MIN_BENCHMARKS = 5  # smallest group of benchmarks judged together, and smallest rest
MIN_EFFECT = 0.05  # the smallest change that counts, by default (5%)
LEVEL_MODEL = "l1"  # ruptures cost: absolute deviations from each level's median
LEVEL_MIN_RUNS = 3  # a level holds at least this many runs, so one odd run cannot be one
LEVEL_PENALTY = 3.0  # PELT penalty per change point: this x noise x ln(runs)
LEVEL_NOISE_FLOOR = 0.01  # smallest run-to-run noise assumed (log units, about 1%)
MIN_ROUNDS = 2  # adaptive rounds: the first look, when every case has a spread of its own
MAX_ROUNDS = 10  # adaptive rounds: the last look, by default (docs/gate-calibration.md)


@dataclass(frozen=True)
class Rule:
    """When a change counts: significance level, minimum effect, minimum samples."""

    alpha: float = 0.01
    min_effect: float = MIN_EFFECT
    min_samples: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 0.5:
            raise ValueError(f"alpha must be in (0, 0.5), got {self.alpha}")
        if self.min_effect < 0:
            raise ValueError(f"the minimum effect must be >= 0, got {self.min_effect}")
        if self.min_samples < 2:
            raise ValueError(f"the minimum sample count must be >= 2, got {self.min_samples}")


@dataclass(frozen=True)
class Comparison:
    """The verdict on one case. ``change`` > 0 means the candidate is worse."""

    status: str
    reason: str
    n_base: int
    n_cand: int
    change: float | None = None
    low: float | None = None
    high: float | None = None
    p_value: float | None = None  # one-sided, in the direction of ``change``
    shift: float | None = None  # the common shift judged against (one run a side)


@dataclass(frozen=True)
class Shift:
    """The common shift of a single-run comparison: how far the benchmarks moved
    together (candidate against baseline) and how much they scatter around that.

    ``level`` and ``spread`` are in log units (> 0: the candidate is worse); ``noise``
    is the largest deviation from ``level`` one benchmark shows by chance (infinite with
    fewer than :data:`SHIFT_MIN_BENCHMARKS`); ``shared`` says the whole run changed,
    significantly and beyond the minimum effect."""

    level: float
    spread: float
    count: int
    noise: float
    p_value: float
    shared: bool
    left_out: int = 0  # benchmarks of changed groups, not counted (see judge_single_run)

    @property
    def change(self) -> float:
        """The shift as a fraction (+0.2: every benchmark 20% worse)."""
        return math.expm1(self.level)


Runs = Sequence[Sequence[float]]  # samples grouped by run; a single run is fine


def compare_times(base: Runs, cand: Runs, rule: Rule, shift: Shift | None = None) -> Comparison:
    """Is the candidate's time per call longer than the baseline's?

    ``shift`` (one run a side only) is the run's common shift to judge against: the
    baseline's samples are scaled by it before testing.
    """
    a_runs, b_runs = _runs(base), _runs(cand)
    a, b = np.concatenate(a_runs), np.concatenate(b_runs)
    floor = 1 / math.comb(len(a) + len(b), len(a))
    undecided = _too_few(rule, len(a), len(b), floor)
    if undecided:
        return undecided
    by_run = len(a_runs) > 1 and len(b_runs) > 1
    level = _level(shift, by_run)
    change = math.expm1(time_log_ratio(base, cand) - level)
    a = a * math.exp(level)
    p_worse, p_better = _mwu(b, a, "greater"), _mwu(b, a, "less")
    if by_run:
        log_medians = [np.log([np.median(r) for r in runs]) for runs in (a_runs, b_runs)]
        change, (run_worse, run_better), interval = _run_level(*log_medians, rule.alpha)
        p_worse, p_better = max(p_worse, run_worse), max(p_better, run_better)
    else:
        rng = np.random.default_rng(SEED)
        interval = _interval(bootstrap_medians(b, rng) / bootstrap_medians(a, rng) - 1, rule.alpha)
    return _decide(change, p_worse, p_better, interval, rule, len(a), len(b), shift)


def compare_speedups(
    base: tuple[Runs, Runs], cand: tuple[Runs, Runs], rule: Rule, shift: Shift | None = None
) -> Comparison:
    """Is the candidate's speedup (dense median / sparse median) lower than the
    baseline's? Each side is (dense runs, sparse runs), run i of both from one run.
    ``shift`` (one run a side only) is the common shift of all the speedups."""
    sides = [tuple(_runs(r) for r in side) for side in (base, cand)]
    for dense, sparse in sides:
        if len(dense) != len(sparse):
            raise ValueError("dense and sparse need the same runs")
    n_base, n_cand = (min(len(np.concatenate(r)) for r in side) for side in sides)
    by_run = all(len(dense) > 1 for dense, _ in sides)
    undecided = _too_few(rule, n_base, n_cand, 0.0 if by_run else 1 / (RESAMPLES + 1))
    if undecided:
        return undecided
    level = _level(shift, by_run)
    change = math.expm1(speedup_log_ratio(base, cand) - level)
    if by_run:
        slowness = [-np.log([_speedup(d, s) for d, s in zip(*side, strict=True)]) for side in sides]
        change, (p_worse, p_better), interval = _run_level(*slowness, rule.alpha)
    else:
        (bd, bs), (cd, cs) = ((np.concatenate(r) for r in side) for side in sides)
        rng = np.random.default_rng(SEED)
        base_boot = bootstrap_medians(bd, rng) / bootstrap_medians(bs, rng)
        cand_boot = bootstrap_medians(cd, rng) / bootstrap_medians(cs, rng)
        reps = np.log(base_boot / cand_boot) - level
        p_worse = (1 + np.count_nonzero(reps <= 0)) / (RESAMPLES + 1)
        p_better = (1 + np.count_nonzero(reps >= 0)) / (RESAMPLES + 1)
        interval = _interval(np.expm1(reps), rule.alpha)
    return _decide(change, p_worse, p_better, interval, rule, n_base, n_cand, shift)


@dataclass(frozen=True)
class Sequential:
    """Adaptive rounds: the rounds at which :func:`sequential_family` looks, and how it
    spends alpha over them."""

    max_rounds: int = MAX_ROUNDS
    min_rounds: int = MIN_ROUNDS

    def __post_init__(self) -> None:
        if self.min_rounds < MIN_ROUNDS:
            raise ValueError(f"the first look needs {MIN_ROUNDS} rounds, got {self.min_rounds}")
        if self.max_rounds < self.min_rounds:
            raise ValueError(
                f"--max-rounds must be at least {self.min_rounds} (the first look), "
                f"got {self.max_rounds}"
            )

    def spent(self, alpha: float, rounds: int) -> float:
        """Alpha spent by the look after ``rounds`` rounds, all looks before included:
        the Pocock-type spending function of Lan and DeMets (1983),
        alpha ln(1 + (e - 1) t) at the information fraction t = rounds / max_rounds."""
        fraction = min(rounds, self.max_rounds) / self.max_rounds
        return alpha * math.log1p(math.expm1(1.0) * fraction)

    def look_alpha(self, alpha: float, rounds: int) -> float:
        """The alpha the look after ``rounds`` rounds is tested at: what it spends.
        The first look spends everything up to it; the looks' alphas add up to alpha."""
        before = self.spent(alpha, rounds - 1) if rounds > self.min_rounds else 0.0
        return self.spent(alpha, rounds) - before


Look = Callable[[int, Rule], Comparison]


def sequential_family(
    looks: Sequence[Look], rounds: Sequence[int], rules: Sequence[Rule], plan: Sequential
) -> list[tuple[Comparison, int | None]]:
    """The comparisons of one A/B, looked at together after every round; each stops at
    the first look that decides it, and the chance that *any* of them is a false
    regression, over every look, stays at or below alpha.

    Parameters
    ----------
    looks
        One per comparison: ``look(r, look_rule)`` is the comparison of the first ``r``
        rounds of each side (:func:`compare_times` or :func:`compare_speedups` on runs)
        under ``look_rule`` (its rule with another alpha).
    rounds
        Rounds measured for each comparison (runs a side); its looks go from
        ``plan.min_rounds`` to this, at most ``plan.max_rounds``.
    rules
        Each comparison's rule: they share one alpha, the whole A/B's false-alarm
        budget; the minimum effect may differ.
    plan
        The looks, and how alpha is spent over them.

    Returns
    -------
    list of (Comparison, round or None)
        For each comparison, the deciding look's comparison and its round, or the last
        look's as **undecided** and None. At the look after round r, alpha_r =
        ``plan.look_alpha(alpha, r)``, the m comparisons being all of ``looks``:

        - **regression** (improvement): Holm's step-down over the m comparisons at
          alpha_r on the one-sided p-values of that direction (the k-th smallest
          significant below alpha_r / (m - k + 1)), the comparisons already decided
          counting as not significant; and the change, at that level, beyond the
          minimum effect (:func:`_decide`);
        - **ok**: else, when the upper end of the comparison's own interval at alpha_r
          (confidence 1 - 2 alpha_r) lies within its minimum effect;
        - else open until the next look.

        Holm controls the family-wise rate of each look at alpha_r whatever the
        dependence between comparisons (cases of one process move together), and the
        looks' alphas add up to alpha (Bonferroni over the looks), so an A/B of
        identical code fails with probability at most alpha. The ok side needs no
        correction: the A/B passes only when every comparison passed, and a comparison
        worse by its minimum effect passes with probability at most alpha
        (intersection-union). A family of one is the single comparison's rule.
    """
    if not (len(looks) == len(rounds) == len(rules)):
        raise ValueError("need a look, a round count and a rule per comparison")
    if len({rule.alpha for rule in rules}) > 1:
        raise ValueError("the comparisons of one family share one alpha")
    family = len(looks)
    if not family:
        return []
    alpha = rules[0].alpha
    out: list[tuple[Comparison, int | None]] = [
        (Comparison(UNDECIDED, f"needs {plan.min_rounds} rounds a side; has {n}", 0, 0), None)
        for n in rounds
    ]
    decided = [False] * family
    last_look = min(max(rounds), plan.max_rounds)
    for r in range(plan.min_rounds, last_look + 1):
        spent = plan.look_alpha(alpha, r)
        now = {
            i: looks[i](r, replace(rules[i], alpha=spent))
            for i in range(family)
            if not decided[i] and rounds[i] >= r
        }
        worse = holm({i: _p_towards(c, worse=True) for i, c in now.items()}, spent, family)
        better = holm({i: _p_towards(c, worse=False) for i, c in now.items()}, spent, family)
        at = f"round {r}, alpha {spent:.2g}"
        for i, result in now.items():
            level = worse.get(i, better.get(i))
            if level is not None:
                strict = looks[i](r, replace(rules[i], alpha=level))
                if strict.status in _BEYOND:
                    holm_at = f"round {r}, Holm over {family}: alpha {level:.2g}"
                    out[i] = (replace(strict, reason=f"{strict.reason} ({holm_at})"), r)
                    decided[i] = True
                    continue
            effect = rules[i].min_effect
            if result.high is not None and result.high < effect:
                reason = (
                    f"at most {result.high:+.1%}: within the {effect:.0%} minimum effect ({at})"
                )
                out[i] = (replace(result, status=OK, reason=reason), r)
                decided[i] = True
                continue
            out[i] = (result, None)
    for i, (last, _) in enumerate(out):
        if decided[i] or last.change is None:
            continue
        n = min(rounds[i], plan.max_rounds)
        reason = (
            f"open after {n} of at most {plan.max_rounds} rounds: {last.reason}, and its "
            f"interval reaches past the {rules[i].min_effect:.0%} minimum effect"
        )
        out[i] = (replace(last, status=UNDECIDED, reason=reason), None)
    return out


def sequential(
    first: Look, rounds: int, rule: Rule, plan: Sequential
) -> tuple[Comparison, int | None]:
    """One comparison looked at after every round (a family of one,
    :func:`sequential_family`): over every look, a candidate no slower than its baseline
    is a regression with probability at most ``rule.alpha``."""
    return sequential_family([first], [rounds], [rule], plan)[0]


def holm(p_values: Mapping[int, float], alpha: float, family: int) -> dict[int, float]:
    """Holm's step-down procedure (Holm 1979) over a family of ``family`` hypotheses of
    which ``p_values`` are tested (the others count as not rejected): the rejected ones,
    each with the level it was rejected at, alpha / (family - k + 1) for the k-th
    smallest p, stopping at the first that is not below its level."""
    if len(p_values) > family:
        raise ValueError(f"{len(p_values)} p-values in a family of {family}")
    rejected: dict[int, float] = {}
    for k, (i, p) in enumerate(sorted(p_values.items(), key=lambda item: item[1])):
        level = alpha / (family - k)
        if not p < level:
            break
        rejected[i] = level
    return rejected


def _p_towards(result: Comparison, worse: bool) -> float:
    """A comparison's one-sided p toward worse (or better): its p when its change goes
    that way, else 1 (a run-level p against the change is at least 0.5)."""
    if result.change is None or result.p_value is None:
        return 1.0
    return result.p_value if (result.change >= 0) == worse else 1.0


def time_log_ratio(base: Runs, cand: Runs) -> float:
    """log(candidate median / baseline median) over the pooled samples.

    Returns
    -------
    float
        > 0 when the candidate is slower; what :func:`common_shift` takes, benchmark
        by benchmark.
    """
    a, b = (np.concatenate(_runs(runs)) for runs in (base, cand))
    return float(np.log(np.median(b) / np.median(a)))


def speedup_log_ratio(base: tuple[Runs, Runs], cand: tuple[Runs, Runs]) -> float:
    """log(baseline speedup / candidate speedup), each side's (dense runs, sparse runs)
    pooled.

    Returns
    -------
    float
        > 0 when the candidate's speedup is lower (worse).
    """
    (bd, bs), (cd, cs) = ((np.concatenate(_runs(r)) for r in side) for side in (base, cand))
    return float(np.log(_speedup(bd, bs) / _speedup(cd, cs)))


def common_shift(log_ratios: Sequence[float], rule: Rule) -> Shift:
    """The run-wide shift of a single-run comparison and the noise around it.

    Parameters
    ----------
    log_ratios
        One log ratio per compared benchmark (:func:`time_log_ratio` or
        :func:`speedup_log_ratio`), > 0 meaning worse; at least one.
    rule
        Its alpha sets the noise limit and the shift's significance, its minimum
        effect the smallest shift that counts as shared.

    Returns
    -------
    Shift
        ``level``: the median log ratio; ``spread``: 1.4826 x their median absolute
        deviation (a standard deviation robust to the benchmarks that did change);
        ``noise``: spread x the Student t quantile at 1 - alpha / count with
        0.367 x count degrees of freedom (a MAD of n values is as good as a standard
        deviation of 0.367 n), so that over the whole run an unchanged benchmark
        exceeds it with probability below alpha, however few the benchmarks (infinite
        with fewer than :data:`SHIFT_MIN_BENCHMARKS`);
        ``p_value``: one-sided normal p of the level (standard error of a median,
        1.2533 spread / sqrt(count)); ``shared``: that p below alpha and the level
        beyond the minimum effect.
    """
    from scipy.stats import norm
    from scipy.stats import t as student_t

    ratios = np.asarray(log_ratios, dtype=float)
    if ratios.ndim != 1 or not len(ratios) or not np.all(np.isfinite(ratios)):
        raise ValueError("need one finite log ratio per benchmark, at least one")
    level = float(np.median(ratios))
    spread = MAD_TO_SD * float(np.median(np.abs(ratios - level)))
    count = len(ratios)
    enough = count >= SHIFT_MIN_BENCHMARKS
    quantile = float(student_t.isf(rule.alpha / count, MAD_EFFICIENCY * count))
    noise = spread * quantile if enough else math.inf
    error = MEDIAN_SE * spread / math.sqrt(count)
    p_value = float(norm.sf(abs(level) / error)) if error else float(level == 0)
    shared = p_value < rule.alpha and abs(level) > math.log1p(rule.min_effect)
    return Shift(level, spread, count, noise, p_value, shared)


def level_changes(values: Sequence[float], min_effect: float = MIN_EFFECT) -> list[int]:
    """Where a series of positive values, in time order, changed level.

    PELT (``ruptures.Pelt``) on the log values with the ``l1`` cost (each level's
    absolute deviations from its median: one outlying run moves a median little) and a
    penalty per change point of :data:`LEVEL_PENALTY` x noise x ln(n), the noise of one
    run being 1.4826 x the MAD of successive differences / sqrt(2) (robust to the level
    changes themselves), at least :data:`LEVEL_NOISE_FLOOR`. Every level holds at least
    :data:`LEVEL_MIN_RUNS` values, and a change point is kept only when the medians of
    the levels either side of it differ by more than ``min_effect``. On noise alone
    (3%, 8 to 30 runs) about 1% of series get a mark, 3-5% when one run in ten is 1.5x
    off; a 20% step is found, at its run, 95-99% of the time.

    Parameters
    ----------
    values
        One positive value per run (a speedup, a median time), oldest first.
    min_effect
        Smallest change of level that counts, as a fraction (0.05: 5%).

    Returns
    -------
    list of int
        The index of the first value of each new level; empty when there are fewer
        than 2 x :data:`LEVEL_MIN_RUNS` values.
    """
    import ruptures

    logs = np.log(as_samples(values))
    if len(logs) < 2 * LEVEL_MIN_RUNS:
        return []
    noise = MAD_TO_SD * float(np.median(np.abs(np.diff(logs)))) / math.sqrt(2)
    penalty = LEVEL_PENALTY * max(noise, LEVEL_NOISE_FLOOR) * math.log(len(logs))
    pelt = ruptures.Pelt(model=LEVEL_MODEL, min_size=LEVEL_MIN_RUNS, jump=1).fit(logs)
    ends = pelt.predict(pen=penalty)  # the end of each level, the last being len(logs)
    kept = [0]
    for start, end in itertools.pairwise(ends):
        before, after = np.median(logs[kept[-1] : start]), np.median(logs[start:end])
        if abs(after - before) > math.log1p(min_effect):
            kept.append(start)
    return kept[1:]


def as_samples(values: Sequence[float]) -> np.ndarray:
    """``values`` as a float array; ValueError unless all are positive finite numbers."""
    try:
        out = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        out = np.array([np.nan])
    if out.ndim != 1 or not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError("samples must be a list of positive, finite numbers (seconds)")
    return out


def _runs(runs: Runs) -> list[np.ndarray]:
    out = [as_samples(run) for run in runs if len(run)]
    return out or [np.empty(0)]


@dataclass(frozen=True)
class GroupChange:
    """The verdict on a group of benchmarks that one change of code would move
    together (the cases of one method, or of one strategy), in a single-run comparison.

    ``change`` is the group's median change beyond the common shift (> 0: worse);
    ``versus_rest`` the Hodges-Lehmann shift of its log ratios against those of the
    other benchmarks of its kind, as a fraction; ``p_value`` the two-sided Mann-Whitney
    p of that shift, adjusted over every group of the comparison (Benjamini-Hochberg)."""

    kind: str
    name: str
    count: int
    status: str
    reason: str
    change: float
    versus_rest: float
    p_value: float


@dataclass(frozen=True)
class Family:
    """One kind's benchmarks of a single-run comparison: their log ratios (as
    :func:`common_shift` takes them) and the groups to judge, each a name and a member
    mask over them."""

    kind: str
    log_ratios: Sequence[float]
    groups: Mapping[str, Sequence[bool]]


def judge_single_run(
    families: Sequence[Family], rule: Rule
) -> tuple[dict[str, Shift], list[GroupChange]]:
    """The common shift of each kind and which groups of benchmarks moved together
    beyond it: the whole judgement of a single-run comparison but each benchmark's own.

    The benchmarks of a run are the replicates here. With one run a side a single
    benchmark's change cannot be told from a burst of interference (identical sweeps
    move single small benchmarks by 2x, and by 100x when another process wakes), but a
    code change to a kernel moves every case that runs it. Each group's log ratios are
    compared with those of the other benchmarks of its kind (but those of groups found
    changed, see below) by a two-sided Mann-Whitney U test (ranks: a few benchmarks 100x
    off weigh no more than any other), the p-values
    adjusted over every group tested (``scipy.stats.false_discovery_control``,
    Benjamini-Hochberg: with no change anywhere, the chance of any flag stays below
    alpha). A group changed when its adjusted p is below alpha, its Hodges-Lehmann shift
    against the rest (the median of all pairwise differences) is beyond the minimum
    effect, and so is its median change beyond the common shift, the same way; and a
    group holding others (a method, its strategies) only when each of them moved that
    way too, a part only with its whole (:func:`_whole_kernels_only`): identical sweeps
    here move one strategy's cases 1.3-2x together. What moved but not as a whole is
    undecided when worse.

    A changed group drags the median that the common shift is (unified cases 20% slower
    move it by 5-8%), so the rest would look changed the other way. So the judgement is
    repeated with the most changed group's benchmarks left out of the common shift
    (first among the groups that changed the same way in the other kind too), until no
    further group changes: the shift is then that of the benchmarks no change of code
    explains. Groups with fewer than :data:`GROUP_MIN_BENCHMARKS` members, or
    that many outside them, are not tested, and the shift keeps at least
    :data:`SHIFT_MIN_BENCHMARKS` benchmarks.

    Returns
    -------
    tuple
        The shift of each kind (by :attr:`Family.kind`) and every group tested, with
        its verdict.
    """
    ratios = {f.kind: np.asarray(f.log_ratios, dtype=float) for f in families}
    masks = {
        (f.kind, name): np.asarray(members, dtype=bool)
        for f in families
        for name, members in f.groups.items()
    }
    left_out = {kind: np.zeros(len(r), dtype=bool) for kind, r in ratios.items()}
    while True:
        shifts = {
            kind: replace(
                common_shift(r[~left_out[kind]], rule), left_out=int(left_out[kind].sum())
            )
            for kind, r in ratios.items()
        }
        groups = _judge_groups(ratios, masks, shifts, left_out, rule)
        candidates = []
        for g in groups:
            members, out = masks[g.kind, g.name], left_out[g.kind]
            kept = np.count_nonzero(~(out | members))
            if g.status in _BEYOND and np.any(members & ~out) and kept >= SHIFT_MIN_BENCHMARKS:
                candidates.append(g)
        if not candidates:
            return shifts, groups
        worst = max(candidates, key=lambda g: (_twinned(g, groups), abs(math.log1p(g.change))))
        left_out[worst.kind] |= masks[worst.kind, worst.name]


def _twinned(group: GroupChange, groups: Sequence[GroupChange]) -> bool:
    """Whether the same group changed the same way in another kind (its times and its
    speedups): when two groups split a kind's benchmarks in halves, the median of that
    kind cannot say which of them moved, and the other kind can."""
    return any(
        g.name == group.name and g.kind != group.kind and g.status == group.status for g in groups
    )


def _judge_groups(
    ratios: Mapping[str, np.ndarray],
    masks: Mapping[tuple[str, str], np.ndarray],
    shifts: Mapping[str, Shift],
    left_out: Mapping[str, np.ndarray],
    rule: Rule,
) -> list[GroupChange]:
    """Every group judged against its kind's shift and the benchmarks of its kind outside
    it and outside the groups left out of the shift (see :func:`judge_single_run`)."""
    from scipy.stats import false_discovery_control

    judged = []
    for (kind, name), members in masks.items():
        inside = ratios[kind][members]
        outside = ratios[kind][~members & ~left_out[kind]]
        if len(outside) < GROUP_MIN_BENCHMARKS:  # only changed groups outside it
            outside = ratios[kind][~members]
        if min(len(inside), len(outside)) < GROUP_MIN_BENCHMARKS:
            continue
        p = _mwu(inside, outside, "two-sided")
        versus = float(np.median(np.subtract.outer(inside, outside)))
        change = float(np.median(inside)) - shifts[kind].level
        judged.append((kind, name, len(inside), p, versus, change))
    if not judged:
        return []
    adjusted = false_discovery_control([j[3] for j in judged], method="bh")
    limit = math.log1p(rule.min_effect)
    out = []
    for (kind, name, count, _, versus, change), p in zip(judged, adjusted, strict=True):
        p = float(p)
        status = OK
        if p >= rule.alpha:
            reason = f"not apart from the other benchmarks (adjusted p={p:.2g} >= {rule.alpha:g})"
        elif abs(versus) <= limit:
            reason = f"apart from the others but within the {rule.min_effect:.0%} minimum effect"
        elif abs(change) <= limit or (change > 0) != (versus > 0):
            reason = (
                f"apart from the others ({math.expm1(versus):+.1%}), but at the common shift: "
                "the others moved"
            )
        else:
            status = REGRESSION if change > 0 else IMPROVEMENT
            word = "worse" if change > 0 else "better"
            reason = (
                f"{count} benchmarks {_factor(math.expm1(change))} {word} than the common "
                f"shift, together (adjusted p={p:.2g} < {rule.alpha:g})"
            )
        change, versus = math.expm1(change), math.expm1(versus)
        out.append(GroupChange(kind, name, count, status, reason, change, versus, p))
    return _whole_kernels_only(out, masks, rule)


def _whole_kernels_only(
    groups: list[GroupChange], masks: Mapping[tuple[str, str], np.ndarray], rule: Rule
) -> list[GroupChange]:
    """Groups that moved, kept only where every part moved with them.

    A group holding smaller groups (a method, its strategies) changed only when each of
    its parts moved beyond the common shift and the minimum effect the same way: a code
    change to a method moves all of its strategies. One strategy's cases moving together
    alone are what a process-level state of one kernel does (identical sweeps here move
    every unified/compact and unified/scatter case by 1.3-2x together, and the
    unified/native ones not at all): undecided when worse, with the group that holds it.
    """
    limit = math.log1p(rule.min_effect)
    tested = {(g.kind, g.name): g for g in groups}

    def parts(g: GroupChange) -> list[GroupChange]:
        mask = masks[g.kind, g.name]
        return [
            h
            for (kind, name), h in tested.items()
            if kind == g.kind and name != g.name and _inside(masks[kind, name], mask)
        ]

    def holders(g: GroupChange) -> list[GroupChange]:
        return [h for h in groups if g in parts(h)]

    def moved_with(g: GroupChange, status: str) -> bool:
        return g.status == status or (
            abs(math.log1p(g.change)) > limit and (g.change > 0) == (status == REGRESSION)
        )

    final = dict(tested)
    for g in sorted(groups, key=lambda g: -g.count):  # each holder before its parts
        if g.status not in _BEYOND:
            continue
        laggards = [h for h in parts(g) if not moved_with(h, g.status)]
        parents = [final[h.kind, h.name] for h in holders(g)]
        if laggards:
            moves = ", ".join(f"{h.name} {h.change:+.1%}" for h in laggards)
            final[g.kind, g.name] = _unjudged(g, f"; but not all of it moved ({moves})")
        elif parents and not any(h.status == g.status for h in parents):
            moves = ", ".join(f"{h.name} {h.change:+.1%}" for h in parents)
            final[g.kind, g.name] = _unjudged(g, f"; but alone in {moves}")
    return [final[g.kind, g.name] for g in groups]


def _inside(part: np.ndarray, whole: np.ndarray) -> bool:
    """Whether ``part`` is a strict subset of ``whole`` (masks of one kind)."""
    return bool(np.all(whole[part]) and np.count_nonzero(part) < np.count_nonzero(whole))


def _unjudged(group: GroupChange, why: str) -> GroupChange:
    """A group that moved but cannot count: undecided when worse, else ok."""
    if group.status == REGRESSION:
        why += ": with one run a side, one kernel's state cannot be told from a change"
        return replace(group, status=UNDECIDED, reason=group.reason + why)
    return replace(group, status=OK, reason=group.reason + why + ", not judged")


def single_run_statuses(
    results: Sequence[Comparison],
    groups: Sequence[Sequence[GroupChange]],
    rules: Sequence[Rule],
) -> list[Comparison]:
    """The single-run comparisons of one kind, each benchmark's own verdict weighed
    with its groups'.

    Parameters
    ----------
    results
        Every comparison of one kind judged against the same :class:`Shift`.
    groups
        For each of them, the judged groups it belongs to (its method's, its
        strategy's), of the same kind.
    rules
        For each of them, the rule it was judged by.

    Returns
    -------
    list of Comparison
        A benchmark of a group that changed takes that group's verdict when its own
        change points the same way, significant and beyond the minimum effect. A
        benchmark beyond the run's noise on its own (no group of its moved that way) is
        **undecided** when worse: one run a side cannot tell one benchmark's change from
        a burst of interference, which on a shared machine moves single benchmarks 2x
        to 100x; runs a side can. Alone and better, it is ok. Other verdicts stand.
    """
    out = []
    for result, mine, rule in zip(results, groups, rules, strict=True):
        change = result.change
        same = [
            g
            for g in mine
            if g.status in _BEYOND and change is not None and (g.change > 0) == (change > 0)
        ]
        own = (
            change is not None
            and result.p_value is not None
            and result.p_value < rule.alpha
            and abs(math.log1p(change)) > math.log1p(rule.min_effect)
        )
        if same and own:
            names = ", ".join(f"{g.name} {g.change:+.1%}" for g in same)
            reason = f"{_factor(change)} {'worse' if change > 0 else 'better'} than the common "
            reason += f"shift, with its group ({names})"
            result = replace(result, status=same[0].status, reason=reason)
        elif result.status == REGRESSION:
            why = "; but alone: one run a side cannot tell it from a burst of interference"
            result = replace(result, status=UNDECIDED, reason=result.reason + why)
        elif result.status == IMPROVEMENT:
            result = replace(result, status=OK, reason=result.reason + "; alone, not judged")
        out.append(result)
    return out


def _level(shift: Shift | None, by_run: bool) -> float:
    """The log shift to judge against: the common shift, or none."""
    if shift is None:
        return 0.0
    if by_run:
        raise ValueError("a common shift is for one run a side; runs are tested as runs")
    return shift.level


def _speedup(dense: np.ndarray, sparse: np.ndarray) -> float:
    return float(np.median(dense) / np.median(sparse))


def _too_few(rule: Rule, n_base: int, n_cand: int, p_floor: float) -> Comparison | None:
    """An undecided verdict when the samples cannot support a decision, else None.

    ``p_floor`` is the smallest p-value the test can give at these sizes (as asv does,
    a test that cannot reach alpha is not run at all).
    """
    if min(n_base, n_cand) < rule.min_samples:
        reason = (
            f"too few samples to decide: {n_base} baseline, {n_cand} candidate "
            f"(need {rule.min_samples} each)"
        )
    elif p_floor >= rule.alpha:
        reason = (
            f"too few samples to decide: with {n_base} and {n_cand} samples no test "
            f"can reach alpha={rule.alpha:g} (smallest p {p_floor:.3g})"
        )
    else:
        return None
    return Comparison(UNDECIDED, reason, n_base, n_cand)


def _mwu(x: np.ndarray, y: np.ndarray, alternative: str) -> float:
    """One-sided Mann-Whitney p-value; 1.0 when undefined (e.g. every value tied)."""
    from scipy.stats import mannwhitneyu

    p = float(mannwhitneyu(x, y, alternative=alternative).pvalue)
    return 1.0 if math.isnan(p) else p


def _run_level(
    base: np.ndarray, cand: np.ndarray, alpha: float
) -> tuple[float, tuple[float, float], tuple[float, float]]:
    """A pooled-variance t-test on per-run log values: the change it estimates,
    exp(difference of the means) - 1 (so that the change always lies inside its own
    interval), its one-sided p-values (candidate larger, smaller) and the 1 - 2 alpha
    interval of the change."""
    from scipy.stats import t as student_t
    from scipy.stats import ttest_ind

    diff = float(cand.mean() - base.mean())
    if not (np.ptp(base) or np.ptp(cand)):  # no spread within either side
        p = (0.0, 1.0) if diff > 0 else (1.0, 0.0) if diff < 0 else (1.0, 1.0)
        return math.expm1(diff), p, (math.expm1(diff), math.expm1(diff))
    result = ttest_ind(cand, base, equal_var=True)
    t, df = float(result.statistic), float(result.df)
    low, high = result.confidence_interval(1 - 2 * alpha)
    p_values = (float(student_t.sf(t, df)), float(student_t.cdf(t, df)))
    return math.expm1(diff), p_values, (math.expm1(low), math.expm1(high))


def bootstrap_medians(
    x: np.ndarray, rng: np.random.Generator, resamples: int = RESAMPLES
) -> np.ndarray:
    """Medians of ``resamples`` bootstrap resamples (with replacement) of ``x``,
    generated in chunks so memory stays bounded for large sample sets."""
    rows = max(1, _CHUNK // len(x))
    out = np.empty(resamples)
    for start in range(0, resamples, rows):
        stop = min(start + rows, resamples)
        out[start:stop] = np.median(x[rng.integers(0, len(x), (stop - start, len(x)))], axis=1)
    return out


def _interval(reps: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(reps, [alpha, 1 - alpha])
    return float(low), float(high)


def _decide(
    change: float,
    p_worse: float,
    p_better: float,
    interval: tuple[float, float],
    rule: Rule,
    n_base: int,
    n_cand: int,
    shift: Shift | None = None,
) -> Comparison:
    """Apply the rule to an effect (beyond ``shift``, if given) and its one-sided
    p-values: significant, beyond the minimum effect and beyond the run's noise."""
    worse = change >= 0
    p = p_worse if worse else p_better
    size = abs(math.log1p(change))
    word = "worse" if worse else "better"
    beyond = f" than the common shift ({shift.change:+.1%})" if shift else ""
    status = OK
    if p >= rule.alpha:
        reason = f"not significant (p={p:.2g} >= {rule.alpha:g})"
    elif size <= math.log1p(rule.min_effect):
        reason = f"significant but within the {rule.min_effect:.0%} minimum effect"
    elif shift and math.isinf(shift.noise):
        status = UNDECIDED
        reason = (
            f"{_factor(change)} {word}{beyond}, but one run a side of only {shift.count} "
            f"benchmarks cannot tell it from the run's noise"
        )
    elif shift and size <= shift.noise:
        reason = f"within the run's noise ({_factor(math.expm1(shift.noise))} either way)"
    else:
        status = REGRESSION if worse else IMPROVEMENT
        reason = f"{_factor(change)} {word}{beyond}, significant (p={p:.2g} < {rule.alpha:g})"
    shifted = shift.change if shift else None
    return Comparison(status, reason, n_base, n_cand, change, *interval, p, shifted)


def _factor(change: float) -> str:
    """+0.25 -> '1.25x', -0.2 -> '1.25x' (the size of a change, either way)."""
    return f"{math.exp(abs(math.log1p(change))):.3g}x"


# --- intervals for the report ----------------------------------------------------------


def bootstrap_ratio(
    dense: np.ndarray,
    sparse: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of median(dense) / median(sparse).

    Both sample sets are resampled independently with replacement (they are separate
    runs), ``resamples`` times, seeded. NaNs when either set has fewer than two samples.
    """
    dense, sparse = np.asarray(dense, float), np.asarray(sparse, float)
    if len(dense) < 2 or len(sparse) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    d = bootstrap_medians(dense, rng, resamples)
    s = bootstrap_medians(sparse, rng, resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(d / s, [tail, 100 - tail])
    return float(low), float(high)


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval of the mean of ``values`` (NaNs for fewer than two)."""
    from scipy.stats import sem
    from scipy.stats import t as student_t

    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    half = student_t.ppf((1 + confidence) / 2, len(values) - 1) * sem(values)
    return float(values.mean() - half), float(values.mean() + half)


def welch(
    a: np.ndarray, b: np.ndarray, margin: float = 0.0, confidence: float = CONFIDENCE
) -> tuple[float, float, float, float]:
    """Welch's comparison of the means of ``a`` and ``b``.

    Returns
    -------
    (diff, low, high, p): mean(a) - mean(b), its two-sided interval, and the one-sided
    p of H0: diff <= margin. NaN interval and p when a side has fewer than 2 values;
    an exact answer when every value on both sides is alike.
    """
    from scipy.stats import t as student_t

    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if len(a) < 2 or len(b) < 2:
        return diff, math.nan, math.nan, math.nan
    if np.ptp(a) == 0 and np.ptp(b) == 0:
        p = 0.0 if diff > margin else (0.5 if diff == margin else 1.0)
        return diff, diff, diff, p
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = student_t.ppf((1 + confidence) / 2, df) * se
    p = float(student_t.sf((diff - margin) / se, df))
    return diff, diff - half, diff + half, p


def median_interval(
    values: np.ndarray,
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the median of ``values`` (e.g. per-round
    ratios of two interleaved measurements), seeded; NaNs for fewer than two values."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float("nan"), float("nan")
    reps = bootstrap_medians(values, np.random.default_rng(seed), resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return float(low), float(high)
