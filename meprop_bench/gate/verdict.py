"""The gate's verdict: each benchmark of a candidate judged against its baseline, and
the run as a whole.

BASELINE and CANDIDATE are pytest-benchmark JSON files with raw samples (what
``pytest suites --benchmark-only --benchmark-json F`` writes), directories of them, or
quoted glob patterns (``'ab/*/base'``). A side's files are merged; a benchmark found in
several of them (repeated runs) keeps its samples grouped by file, one run each.

Two kinds of comparison, decided as :mod:`meprop_bench.stats` describes:

- **time**: every benchmark on both sides, matched by its pytest id (``fullname``, which
  holds the case_id and any thread count). Refused when the sides ran on different
  machines (host, CPU model or GPUs), unless ``--allow-machine-change``.
- **speedup**: every sparse benchmark's dense median / its own median, its dense
  counterpart being the benchmark of the same side, group, ``pair_key`` and thread
  count whose method is "dense". Within-run ratios survive a change of machine, so
  they are compared whatever the machines.

With one run a side, each kind is judged against the run's common shift (the median
log ratio over its benchmarks): a shift shared by the whole run is **undecided**, since
one run a side cannot tell it from machine state. The benchmarks of each method and of
each strategy are judged together as a group (:func:`meprop_bench.stats.judge_single_run`):
a group that moved beyond the shift and the noise is a **regression**, and its
benchmarks with it; one benchmark beyond the noise on its own is **undecided**, since
one run a side cannot tell it from a burst of interference. ``ab --rounds N`` resolves
both.

With **adaptive rounds** (``--sequential``, what ``ab --rounds auto`` gates after each
round), the comparisons are looked at together after every round from the second on
(:func:`meprop_bench.stats.sequential_family`): alpha, the whole A/B's false-alarm
budget, is spent over the looks, and each look's share is split over the comparisons by
Holm's step-down for a regression (or improvement); a comparison is ok when its own
interval at the look's alpha lies within the minimum effect, and **undecided** when no
look up to ``--max-rounds`` decides it. Each row records the rounds it used and the one
it decided at.

Markdown goes to stdout (and is appended to ``$GITHUB_STEP_SUMMARY`` when set);
``--json`` writes the verdict. Exit status: 0 pass, 1 regression, 2 unusable input or
nothing that could be decided, 3 undecided (one run a side: see above).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from meprop_bench.gate.inputs import Bench, Side
from meprop_bench.results.files import envelope
from meprop_bench.results.kinds import GATE
from meprop_bench.stats import (
    IMPROVEMENT,
    OK,
    REGRESSION,
    UNDECIDED,
    Comparison,
    Family,
    GroupChange,
    Rule,
    Sequential,
    Shift,
    compare_speedups,
    compare_times,
    judge_single_run,
    sequential_family,
    single_run_statuses,
    speedup_log_ratio,
    time_log_ratio,
)

REFUSED = "refused"
TIME, SPEEDUP = "time", "speedup"
KINDS = (TIME, SPEEDUP)
EXIT_CODES = {"pass": 0, "regression": 1, "unusable": 2, "undecided": 3}
RESOLVE = "python -m meprop_bench.ab BASE_REV --rounds auto"  # what resolves one run a side
_ORDER = (REGRESSION, UNDECIDED, REFUSED, IMPROVEMENT, OK)


# --- configuration --------------------------------------------------------------------


@dataclass(frozen=True)
class GateConfig:
    """The rule, its per-group minimum effects (fnmatch patterns, first match wins),
    whether absolute times may be compared across machines, and the looks of adaptive
    rounds (None: the runs are judged once)."""

    rule: Rule = field(default_factory=Rule)
    group_thresholds: tuple[tuple[str, float], ...] = ()
    allow_machine_change: bool = False
    sequential: Sequential | None = None

    def rule_for(self, group: str) -> Rule:
        for pattern, effect in self.group_thresholds:
            if fnmatchcase(group, pattern):
                return replace(self.rule, min_effect=effect)
        return self.rule


# --- comparing ------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One comparison: a benchmark's time, or a sparse benchmark's speedup."""

    kind: str
    key: str
    name: str
    group: str
    min_effect: float
    baseline: float  # median seconds, or speedup (x)
    candidate: float
    result: Comparison
    rounds: int | None = None  # adaptive rounds: the rounds it was looked at on
    decided: int | None = None  # and the round whose look decided it (None: open)


@dataclass
class Verdict:
    rows: list[Row]
    only_in_baseline: list[str]
    only_in_candidate: list[str]
    notes: list[str]
    shifts: dict[str, Shift] = field(default_factory=dict)  # by kind, one run a side
    groups: list[GroupChange] = field(default_factory=list)  # one run a side
    sequential: Sequential | None = None  # adaptive rounds

    @property
    def status(self) -> str:
        """regression; else undecided when one run a side cannot tell a change from
        machine state, or a comparison of adaptive rounds is open; else pass when
        anything was decided; else unusable."""
        found = {row.result.status for row in self.rows} | {g.status for g in self.groups}
        if REGRESSION in found:
            return "regression"
        if self.shared or self.unresolved or self.unresolved_groups:
            return "undecided"
        return "pass" if found & {OK, IMPROVEMENT} else "unusable"

    @property
    def shared(self) -> list[str]:
        """The kinds whose common shift moved every benchmark (one run a side)."""
        return [kind for kind, shift in self.shifts.items() if shift.shared]

    @property
    def unresolved(self) -> list[Row]:
        """Rows that changed but cannot be told from noise: from one run a side, or
        after the rounds of adaptive rounds so far (too few samples is undecided too, but
        measured no change: its ``change`` is None)."""
        return [
            r for r in self.rows if r.result.status == UNDECIDED and r.result.change is not None
        ]

    @property
    def unresolved_groups(self) -> list[GroupChange]:
        """Groups that moved worse, but not as a whole kernel (one run a side)."""
        return [g for g in self.groups if g.status == UNDECIDED]

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def open(self) -> list[Row]:
        """Adaptive rounds: the comparisons no look decided (refused ones aside)."""
        return [r for r in self.rows if r.decided is None and r.result.status != REFUSED]

    @property
    def family(self) -> int:
        """Adaptive rounds: the comparisons judged together (refused ones aside)."""
        return sum(row.result.status != REFUSED for row in self.rows)

    @property
    def decided_by_round(self) -> Counter[int]:
        """Adaptive rounds: how many comparisons each round's look decided."""
        return Counter(row.decided for row in self.rows if row.decided)

    @property
    def rounds(self) -> int:
        """Adaptive rounds: the most rounds any comparison was looked at on."""
        return max((row.rounds or 0 for row in self.rows), default=0)


@dataclass(frozen=True)
class _Case:
    """A comparison to make: the benchmark naming its row, its two values, and the runs
    that :data:`_COMPARE` of its kind tests."""

    kind: str
    bench: Bench
    values: tuple[float, float]
    runs: tuple[Any, Any]
    fewest_runs: int


_COMPARE = {TIME: compare_times, SPEEDUP: compare_speedups}
_LOG_RATIO = {TIME: time_log_ratio, SPEEDUP: speedup_log_ratio}


def compare(base: Side, cand: Side, config: GateConfig) -> Verdict:
    """Every time and speedup comparison between the two sides; with one run a side,
    each against the common shift of its kind; with adaptive rounds, each looked at
    round by round."""
    common = [key for key in base.benches if key in cand.benches]
    pairs = [(base.benches[k], cand.benches[k]) for k in common]
    refused = [_refused_row(b, c, config) for b, c in pairs if _refuses(b, c, config)]
    cases = [
        *(_time_case(b, c) for b, c in pairs if not _refuses(b, c, config)),
        *_speedup_cases(base, cand, common),
    ]
    notes = _notes(base, cand, config)
    only = (sorted(set(base.benches) - set(cand.benches)),
            sorted(set(cand.benches) - set(base.benches)))  # fmt: skip
    if config.sequential:
        rows = refused + _sequential_rows(cases, config, config.sequential)
        rows.sort(key=_row_order)
        return Verdict(rows, *only, notes, sequential=config.sequential)
    rows = refused + [_row(c, config, None) for c in cases if c.fewest_runs > 1]
    singles = {kind: [c for c in cases if c.kind == kind and c.fewest_runs < 2] for kind in KINDS}
    singles = {kind: single for kind, single in singles.items() if single}
    families = [
        Family(kind, [_LOG_RATIO[kind](*c.runs) for c in single], _groups(single))
        for kind, single in singles.items()
    ]
    shifts, groups = judge_single_run(families, config.rule)
    for kind, single in singles.items():
        judged = [_row(c, config, shifts[kind]) for c in single]
        mine = [[g for g in groups if g.kind == kind and g.name in _labels(c)] for c in single]
        rules = [config.rule_for(c.bench.group) for c in single]
        results = single_run_statuses([row.result for row in judged], mine, rules)
        rows += [replace(row, result=r) for row, r in zip(judged, results, strict=True)]
    rows.sort(key=_row_order)
    groups.sort(key=lambda g: (_ORDER.index(g.status), g.kind != TIME, g.p_value))
    return Verdict(rows, *only, notes, shifts, groups)


def _row_order(row: Row) -> tuple[int, bool, str]:
    """Rows in the verdict's order: by status (regressions first), times before
    speedups, then by benchmark."""
    return _ORDER.index(row.result.status), row.kind != TIME, row.key


def _labels(case: _Case) -> list[str]:
    """The groups a benchmark belongs to: its method's and its strategy's."""
    info = case.bench.info
    if "method" not in info:
        return []
    method = str(info["method"])
    labels = [f"method {method}"]
    if info.get("strategy"):
        labels.append(f"strategy {method}/{info['strategy']}")
    return labels


def _groups(cases: list[_Case]) -> dict[str, tuple[bool, ...]]:
    """The groups of one kind's benchmarks, each a member mask (a strategy that is its
    method's only one is its method)."""
    labels = [_labels(c) for c in cases]
    groups: dict[str, tuple[bool, ...]] = {}
    for name in sorted({label for own in labels for label in own}):
        members = tuple(name in own for own in labels)
        if members not in groups.values():
            groups[name] = members
    return groups


def _refuses(b: Bench, c: Bench, config: GateConfig) -> bool:
    return b.machines != c.machines and not config.allow_machine_change


def _refused_row(b: Bench, c: Bench, config: GateConfig) -> Row:
    result = Comparison(
        REFUSED,
        "measured on different machines (--allow-machine-change to compare)",
        len(b.samples),
        len(c.samples),
    )
    rule = config.rule_for(b.group)
    return Row(TIME, b.key, b.name, b.group, rule.min_effect, b.median, c.median, result)


def _time_case(b: Bench, c: Bench) -> _Case:
    runs = (list(b.runs.values()), list(c.runs.values()))
    return _Case(TIME, b, (b.median, c.median), runs, min(len(b.runs), len(c.runs)))


def _speedup_cases(base: Side, cand: Side, common: list[str]) -> list[_Case]:
    """A case per sparse benchmark with one dense partner on each side."""
    base_dense, cand_dense = dense_partners(base), dense_partners(cand)
    cases = []
    for key in common:
        if key in base_dense and key in cand_dense:
            (bd, bs) = base.benches[base_dense[key]], base.benches[key]
            (cd, cs) = cand.benches[cand_dense[key]], cand.benches[key]
            runs = (_paired_runs(bd, bs), _paired_runs(cd, cs))
            values = (bd.median / bs.median, cd.median / cs.median)
            fewest = min(len(runs[0][0]), len(runs[1][0]))
            cases.append(_Case(SPEEDUP, bs, values, runs, fewest))
    return cases


def _row(case: _Case, config: GateConfig, shift: Shift | None) -> Row:
    b = case.bench
    rule = config.rule_for(b.group)
    result = _COMPARE[case.kind](*case.runs, rule, shift)
    return Row(case.kind, b.key, b.name, b.group, rule.min_effect, *case.values, result)


def _sequential_rows(cases: list[_Case], config: GateConfig, plan: Sequential) -> list[Row]:
    """The comparisons looked at together after each round, one family
    (:func:`meprop_bench.stats.sequential_family`: Holm across them at each look)."""

    def look(case: _Case) -> Callable[[int, Rule], Comparison]:
        def first(rounds: int, rule: Rule) -> Comparison:
            return _COMPARE[case.kind](*(_first_rounds(side, rounds) for side in case.runs), rule)

        return first

    rules = [config.rule_for(c.bench.group) for c in cases]
    rounds = [c.fewest_runs for c in cases]
    results = sequential_family([look(c) for c in cases], rounds, rules, plan)
    return [
        Row(c.kind, c.bench.key, c.bench.name, c.bench.group, rule.min_effect, *c.values,
            result, min(n, plan.max_rounds), decided)
        for c, rule, n, (result, decided) in zip(cases, rules, rounds, results, strict=True)
    ]  # fmt: skip


def _first_rounds(runs: Any, rounds: int) -> Any:
    """The first ``rounds`` runs of one side: a list of runs (times), or a (dense runs,
    sparse runs) pair (speedups)."""
    if isinstance(runs, tuple):
        return tuple(r[:rounds] for r in runs)
    return runs[:rounds]


def _paired_runs(dense: Bench, sparse: Bench) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The two benchmarks' samples from each file that holds both, run by run."""
    files = [f for f in sparse.runs if f in dense.runs]
    return [dense.runs[f] for f in files], [sparse.runs[f] for f in files]


def dense_partners(side: Side) -> dict[str, str]:
    """Key of each sparse benchmark -> key of its one dense counterpart on ``side``."""

    def pairing(bench: Bench) -> tuple[str, str, str] | None:
        if "pair_key" not in bench.info or "method" not in bench.info:
            return None
        return bench.group, str(bench.info["pair_key"]), str(bench.info.get("threads"))

    dense: defaultdict[tuple[str, str, str], list[str]] = defaultdict(list)
    for bench in side.benches.values():
        if bench.info.get("method") == "dense" and (key := pairing(bench)):
            dense[key].append(bench.key)
    return {
        bench.key: dense[key][0]
        for bench in side.benches.values()
        if bench.info.get("method") != "dense"
        and (key := pairing(bench))
        and len(dense.get(key, ())) == 1
    }


def _notes(base: Side, cand: Side, config: GateConfig) -> list[str]:
    notes = []
    if base.machines != cand.machines:
        what = (
            "compared anyway (--allow-machine-change)"
            if config.allow_machine_change
            else "not compared where they differ; speedups are"
        )
        notes.append(
            f"Different machines: baseline on {', '.join(sorted(base.machines))}; "
            f"candidate on {', '.join(sorted(cand.machines))}. Absolute times {what}."
        )
    if min(base.fewest_runs, cand.fewest_runs) < 2:
        notes.append(
            "A side holds a single run: run-to-run variation is not measured, so each "
            "benchmark is judged against the run's common shift, and a change of the whole "
            f"run cannot be told from machine state. `{RESOLVE}` gives runs to test."
        )
        threaded = len(_threaded(base) | _threaded(cand))
        if threaded:
            notes.append(
                f"{threaded} CPU benchmarks ran on more than one thread. Torch's thread pool "
                "puts a state on each process: on a 2-core machine whole strategies moved "
                "1.3-2x between identical single runs, which one run a side cannot tell from "
                "a change. Sweeps with `--meprop-threads 1` were steady there (20 A/A "
                "comparisons, no false alarm; a 20% slowdown of one method caught 10 of 10: "
                "docs/gate-calibration.md)."
            )
    plan = config.sequential
    if plan and max(base.most_runs, cand.most_runs) > plan.max_rounds:
        notes.append(
            f"Some benchmarks hold more runs than --max-rounds {plan.max_rounds}: only "
            f"their first {plan.max_rounds} rounds are looked at."
        )
    for label, side in (("baseline", base), ("candidate", cand)):
        if side.slowdowns:
            fractions = ", ".join(f"{s:.0%}" for s in sorted(side.slowdowns))
            slowed = sum(bool(b.info.get("injected_slowdown")) for b in side.benches.values())
            notes.append(
                f"The {label} ran with an injected slowdown of {fractions} "
                f"({slowed} of {len(side.benches)} benchmarks)."
            )
    return notes


def _threaded(side: Side) -> set[str]:
    """The side's CPU benchmarks that ran on more than one thread."""
    return {
        key
        for key, b in side.benches.items()
        if b.info.get("device", "cpu") == "cpu" and (b.info.get("threads") or 1) > 1
    }


def unmatched_patterns(config: GateConfig, *sides: Side) -> list[str]:
    """--group-threshold patterns that match no benchmark group (likely typos)."""
    groups = {b.group for side in sides for b in side.benches.values()}
    return [p for p, _ in config.group_thresholds if not any(fnmatchcase(g, p) for g in groups)]


# --- reporting ------------------------------------------------------------------------


def to_markdown(verdict: Verdict, config: GateConfig) -> str:
    """The verdict as GitHub-flavoured Markdown (fit for $GITHUB_STEP_SUMMARY)."""
    rule = config.rule
    counts = Counter(row.result.status for row in verdict.rows)
    tally = ", ".join(f"{counts[s]} {s}" for s in _ORDER if counts[s]) or "nothing compared"
    effects = "".join(f", `{p}`: {e:.0%}" for p, e in config.group_thresholds)
    lines = [
        f"### Benchmark gate: {verdict.status.upper()}",
        "",
        f"{tally} ({len(verdict.rows)} comparisons).",
        f"Rule: one-sided alpha {rule.alpha:g} (times: Mann-Whitney U, and a t-test on "
        f"run medians given runs; speedups: that t-test, or a bootstrap), minimum effect "
        f"{rule.min_effect:.0%}{effects}, at least {rule.min_samples} samples a side.",
        "",
    ]
    if verdict.sequential:
        lines += [_rounds_line(verdict, verdict.sequential, rule), ""]
    if verdict.shifts:
        lines += [*(_shift_line(kind, shift) for kind, shift in verdict.shifts.items()), ""]
    if verdict.groups:
        lines += [*_group_lines(verdict.groups), ""]
    if verdict.status == "undecided":
        lines += [f"**Undecided (exit {verdict.exit_code}):** {why_undecided(verdict)}.", ""]
    lines += [f"> {note}\n" for note in verdict.notes]
    flagged = [row for row in verdict.rows if row.result.status != OK]
    passed = [row for row in verdict.rows if row.result.status == OK]
    sequential = verdict.sequential is not None
    if flagged:
        lines += [*_table(flagged, rule.alpha, sequential), ""]
    if passed:
        lines += [f"<details><summary>{len(passed)} within limits</summary>", ""]
        lines += [*_table(passed, rule.alpha, sequential), "", "</details>", ""]
    for label, keys in (
        ("Only in the baseline", verdict.only_in_baseline),
        ("Only in the candidate", verdict.only_in_candidate),
    ):
        if keys:
            lines += [f"**{label} ({len(keys)}):** " + ", ".join(f"`{k}`" for k in keys), ""]
    return "\n".join(lines).rstrip() + "\n"


def _rounds_line(verdict: Verdict, plan: Sequential, rule: Rule) -> str:
    """Adaptive rounds: the looks, the rounds run, and how many comparisons each round
    decided."""
    decided = verdict.decided_by_round
    by_round = ", ".join(f"round {r}: {decided[r]}" for r in sorted(decided)) or "none"
    return (
        f"Adaptive rounds: {verdict.rounds} run (looks after rounds {plan.min_rounds} to "
        f"{plan.max_rounds}; alpha {rule.alpha:g} for the whole A/B, spent over the looks "
        f"Pocock-type and at each look split over the {verdict.family} comparisons by "
        f"Holm's step-down for a regression; a comparison passes on its own interval at "
        f"the look's alpha; each on its own round-to-round spread). Decided by round: "
        f"{by_round}; not decided: {len(verdict.open)}."
    )


def _shift_line(kind: str, shift: Shift) -> str:
    """The common shift of one kind, on its own line."""
    shared = " **shared by the whole run**" if shift.shared else ""
    noise = "unknown (too few)" if math.isinf(shift.noise) else f"{_fraction(shift.noise)}"
    left_out = f", those of changed groups ({shift.left_out}) left out" if shift.left_out else ""
    return (
        f"Common shift of the {kind}s (one run a side): **{shift.change:+.1%}**{shared} "
        f"over {shift.count} benchmarks{left_out} (p={shift.p_value:.2g}); spread "
        f"{_fraction(shift.spread)}; each benchmark is judged against it, beyond a noise "
        f"limit of {noise} either way.  "
    )


def _group_lines(groups: list[GroupChange]) -> list[str]:
    """The groups judged together (one run a side): those that changed in a table, the
    others folded."""
    changed = [g for g in groups if g.status != OK]
    head = (
        f"Groups (one run a side): {len(groups)} tested, each method's and each strategy's "
        "benchmarks against the others (Mann-Whitney, Benjamini-Hochberg over the groups); "
        f"{len(changed) or 'none'} changed."
    )
    table = [
        "| verdict | kind | group | n | change beyond the shift | against the rest | p (adjusted) "
        "| why |",
        "|---|---|---|---:|---:|---:|---:|---|",
    ]
    for g in groups:
        cells = [
            g.status, g.kind, g.name, str(g.count), f"{g.change:+.1%}",
            f"{g.versus_rest:+.1%}", f"{g.p_value:.2g}", g.reason,
        ]  # fmt: skip
        table.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines = [head, ""]
    if changed:
        lines += [*table[:2], *table[2 : 2 + len(changed)], ""]
    if len(groups) > len(changed):
        lines += [f"<details><summary>{len(groups) - len(changed)} groups unchanged</summary>", ""]
        lines += [*table[:2], *table[2 + len(changed) :], "", "</details>"]
    return lines


def _fraction(log_value: float) -> str:
    return f"{math.expm1(log_value):.1%}"


def _table(rows: list[Row], alpha: float, sequential: bool = False) -> list[str]:
    """The rows' table; with adaptive rounds, each interval is at the alpha its row was
    decided at (a regression's: its Holm level; else its deciding or last look's), and a
    column says at which round it decided."""
    interval = "interval at its decision's alpha" if sequential else f"{1 - 2 * alpha:.0%} interval"
    out = [
        f"| verdict | kind | benchmark | baseline | candidate | change | {interval} | p | n "
        f"|{' round |' if sequential else ''} why |",
        f"|---|---|---|---:|---:|---:|---|---:|---:|{'---:|' if sequential else ''}---|",
    ]
    for row in rows:
        r = row.result
        decided = [_decided(row)] if sequential else []
        cells = [
            r.status,
            row.kind,
            f"`{row.name}`",
            _value(row.kind, row.baseline),
            _value(row.kind, row.candidate),
            "" if r.change is None else f"{r.change:+.1%}",
            "" if r.low is None else f"[{r.low:+.1%}, {r.high:+.1%}]",
            "" if r.p_value is None else f"{r.p_value:.2g}",
            f"{r.n_base}/{r.n_cand}",
            *decided,
            r.reason,
        ]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return out


def _decided(row: Row) -> str:
    """When an adaptive-rounds row decided: its round, or the rounds it stayed open."""
    if row.decided:
        return str(row.decided)
    return f"open after {row.rounds}" if row.rounds else "none"


def _value(kind: str, value: float) -> str:
    if kind == SPEEDUP:
        return f"{value:.3g}x"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def to_json(verdict: Verdict, config: GateConfig, base: Side, cand: Side) -> dict[str, Any]:
    """The verdict as a JSON-ready document (schema meprop-bench/gate)."""
    rows = [
        {
            "kind": row.kind,
            "key": row.key,
            "name": row.name,
            "group": row.group,
            "min_effect": row.min_effect,
            "baseline": row.baseline,
            "candidate": row.candidate,
            "unit": "x" if row.kind == SPEEDUP else "s",
            **asdict(row.result),
            "rounds": row.rounds,
            "decided_round": row.decided,
        }
        for row in verdict.rows
    ]
    return envelope(
        GATE,
        verdict=verdict.status,
        exit_code=verdict.exit_code,
        rule={**asdict(config.rule), "group_thresholds": dict(config.group_thresholds)},
        allow_machine_change=config.allow_machine_change,
        baseline={"files": [str(f) for f in base.files], "machines": sorted(base.machines)},
        candidate={"files": [str(f) for f in cand.files], "machines": sorted(cand.machines)},
        notes=verdict.notes,
        shifts={kind: _shift_json(shift) for kind, shift in verdict.shifts.items()},
        groups=[asdict(g) for g in verdict.groups],
        sequential=_sequential_json(verdict, config),
        rows=rows,
        only_in_baseline=verdict.only_in_baseline,
        only_in_candidate=verdict.only_in_candidate,
    )


def _shift_json(shift: Shift) -> dict[str, Any]:
    """A shift for JSON: its change as a fraction, an unknown noise limit as null."""
    noise = shift.noise if math.isfinite(shift.noise) else None
    return {**asdict(shift), "noise": noise, "change": shift.change}


def _sequential_json(verdict: Verdict, config: GateConfig) -> dict[str, Any] | None:
    """Adaptive rounds for JSON: the looks, the rounds run, decisions by round."""
    plan = verdict.sequential
    if plan is None:
        return None
    decided = verdict.decided_by_round
    return {
        "min_rounds": plan.min_rounds,
        "max_rounds": plan.max_rounds,
        "spending": "pocock",
        "correction": "holm",
        "family": verdict.family,
        "look_alpha": [
            plan.look_alpha(config.rule.alpha, r)
            for r in range(plan.min_rounds, plan.max_rounds + 1)
        ],
        "rounds": verdict.rounds,
        "decided_by_round": {str(r): decided[r] for r in sorted(decided)},
        "open": len(verdict.open),
    }


def why_undecided(verdict: Verdict) -> str:
    """Why the gate could not decide, and what resolves it."""
    if verdict.sequential:
        plan = verdict.sequential
        return (
            f"{len(verdict.unresolved)} comparisons open after {verdict.rounds} rounds "
            f"(at most {plan.max_rounds}): neither a change nor one within the minimum effect "
            "is shown at the alpha spent; their spread is in the table (a higher "
            "--max-rounds or a quieter runner decides more)"
        )
    parts = [
        f"all {kind}s moved together by {verdict.shifts[kind].change:+.1%}"
        for kind in verdict.shared
    ]
    if verdict.unresolved_groups:
        names = ", ".join(f"{g.kind}s of {g.name}" for g in verdict.unresolved_groups)
        parts.append(f"{names} moved, but not all of their method")
    if verdict.unresolved:
        parts.append(
            f"{len(verdict.unresolved)} benchmarks changed on their own, beyond the run's "
            "noise or where it is unknown"
        )
    return (
        f"{'; '.join(parts)}: with one run a side this cannot be told from machine state; "
        f"`{RESOLVE}` resolves it"
    )


def why_unusable(verdict: Verdict) -> str:
    if not verdict.rows:
        return "no benchmark is present in both the baseline and the candidate"
    counts = Counter(row.result.status for row in verdict.rows)
    parts = [f"{counts[UNDECIDED]} with too few samples"] if counts[UNDECIDED] else []
    if counts[REFUSED]:
        parts.append(f"{counts[REFUSED]} refused: different machines (--allow-machine-change)")
    return "nothing could be decided: " + "; ".join(parts)
