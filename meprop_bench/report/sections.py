"""The report's content, once, as a list of sections; ``summary.md`` and ``index.html``
are two renderings of it. The order is the reader's: the answer (:func:`answer_sections`),
the plots, then the details (every table, folded in the HTML)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from meprop_bench.report import claims, headline, starvation, tables, train_time
from meprop_bench.report.model import PlotFile, ReportData, Section
from meprop_bench.report.paper import published_accuracies
from meprop_bench.results.machine import describe
from meprop_bench.results.machine_state import describe_state
from meprop_bench.stats import (
    CONFIDENCE,
    LEVEL_MIN_RUNS,
    LEVEL_PENALTY,
    MIN_EFFECT,
    RESAMPLES,
    SEED,
)

# What ``meprop-bench profile`` writes per case, in the order they are linked.
PROFILE_FILES = ("flame.svg", "speedscope.json", "ops.csv", "ops.json", "trace.json",
                 "profile.json")  # fmt: skip

SUITE_TITLES = {
    "backward": "Speedups: backward kernel (dy, x, w, k) -> (dx, dw, db)",
    "layer": "Speedups: layer backward through autograd (nn.Linear vs MePropLinear)",
    "paper": "Speedups: the paper's layer shapes",
    "train_step": "Speedups: whole training step of the MLP 784-h-h-10",
}


def describe_machine(info: dict) -> str:
    """:func:`meprop_bench.results.machine.describe`, or what a foreign file's machine_info has."""
    try:
        return describe(info)
    except KeyError:
        cpu = (info.get("cpu") or {}).get("brand_raw", "unknown CPU")
        return f"{cpu} ({info.get('node', 'unknown host')}; no meprop-bench machine details)"


def machine_line(machines: dict[str, dict]) -> str:
    """The machines the inputs come from, in one line."""
    names = list(dict.fromkeys(describe_machine(info) for info in machines.values()))
    if not names:
        return "Machine: unknown (no machine details in the inputs)."
    return ("Machine: " if len(names) == 1 else "Machines: ") + "; ".join(names) + "."


def load_line(machines: dict[str, dict]) -> str:
    """How busy the machine was while each input was measured (``machine.state``, see
    :mod:`meprop_bench.results.machine_state`): the first thing to know before trusting a
    timing in this report."""
    states = {Path(path).name: info.get("state") for path, info in machines.items()}
    busy = {name: s for name, s in states.items() if s and s.get("quiet") is False}
    quiet = [name for name, s in states.items() if s and s.get("quiet")]
    unknown = [name for name in states if name not in busy and name not in quiet]
    parts = []
    if busy:
        named = "; ".join(f"{name}: {describe_state(s)}" for name, s in busy.items())
        parts.append(f"Load: the machine was BUSY while {len(busy)} of {len(states)} inputs "
                     f"ran ({named}); their timings carry that work's noise.")  # fmt: skip
    if quiet:
        most = max(states[name]["other_cores"] for name in quiet)
        parts.append(f"{'Load: q' if not busy else 'Q'}uiet while {len(quiet)} of "
                     f"{len(states)} inputs ran (other processes used at most {most:.2f} "
                     "cores).")  # fmt: skip
    if unknown:
        parts.append(f"Load not recorded for {len(unknown)} input(s) (written before "
                     "meprop-bench recorded it, or not on Linux).")  # fmt: skip
    return " ".join(parts)


ANSWER_NOTE = (
    "Does meProp pay off here, and by how much? For each method, the best of its "
    "strategies at each shape: speedup = dense median / sparse median at the same shape "
    "(a training step timed beside its dense partner: the median of their per-round "
    "ratios), its {confidence:.0%} bootstrap interval, and efficiency = speedup / ideal "
    "(ideal n/k; for a training step its bound 3n/(n+2k)). Faster or slower: the whole "
    "interval lies "
    "above or below 1x. The details below have every strategy."
)

NO_SPEEDUPS = (
    "The inputs hold no benchmark with a dense partner, so no speedup is answered here "
    "(run the suites: python -m pytest suites --benchmark-only --benchmark-json FILE)."
)


def answer_sections(data: ReportData, runs: pd.DataFrame) -> list[Section]:
    """The report's opening: per device and machine, one sentence per method and the
    lead suite's best strategy at each shape; then, with training results, the verdict
    on each of the paper's claims per setting."""
    best = headline.best_strategies(data.speedups)
    intro = ANSWER_NOTE.format(confidence=CONFIDENCE) if not best.empty else NO_SPEEDUPS
    sections = [Section("Answer", [intro], anchor="answer")]
    said = headline.answers(best)
    for (machine, device), here in best.groupby(headline.WHERE, sort=False):
        mine = said[(said["machine"] == machine) & (said["device_name"] == device)]
        lead = mine["suite"].iloc[0]
        bullets = [
            (row.lead, [line for line in (row.detail, row.others) if line])
            for row in mine.itertuples()
        ]
        sections.append(
            Section(
                f"{device} on {machine}",
                table=headline.shape_table(here, lead),
                level=3,
                bullets=bullets,
                caption=f"Each method's best strategy at each shape of the {headline.SUITES[lead]} "
                "(best_strategies.csv has every suite):",
            )
        )
    verdicts = claims.verdicts(runs) if not runs.empty else pd.DataFrame()
    summary = headline.claim_summary(verdicts, claims.SETTING)
    if not summary.empty:
        sections.append(
            Section(
                "Training: the paper's accuracy claims",
                [
                    "Per claim and setting (data set, training images, recipe), reproduced, "
                    "refuted or inconclusive by the 95% interval of the difference of means "
                    "over seeds (test accuracy, points); a setting short of the paper's (20 "
                    "epochs, 55,000 MNIST images) says so in its cell. Each comparison and "
                    "the rule are in the details below.",
                    *headline.size_sentences(verdicts),
                ],
                summary,
                level=3,
            )
        )
    elif not runs.empty:
        sections.append(
            Section(
                "Training: the paper's accuracy claims",
                ["No claim could be tested from these runs (see the details below)."],
                level=3,
            )
        )
    return sections


def inputs_section(machines: dict[str, dict], kinds: dict[str, str]) -> Section:
    table = pd.DataFrame(
        {
            "file": list(machines),
            "kind": [kinds[path] for path in machines],
            "machine": [describe_machine(info) for info in machines.values()],
        }
    )
    text = []
    if len({describe_machine(i) for i in machines.values()}) > 1:
        text.append("The inputs come from more than one machine; speedups pair within a file.")
    return Section("Inputs and machines", text, table)


def speedup_sections(data: ReportData, unpaired: pd.DataFrame) -> list[Section]:
    method = (
        f"Speedup = dense median / sparse median, the dense case taken from the same file, "
        f"suite, pair_key (shape, dtype, device, dY source) and thread count. Interval: "
        f"{CONFIDENCE:.0%} percentile bootstrap of that ratio, both sets of raw samples "
        f"resampled independently, {RESAMPLES} resamples, seed {SEED}. Ideal = n/k (for a "
        f"training step, its bound 3n/(n+2k)); efficiency = speedup / ideal. A training "
        f"step recorded with its dense partner timed beside it, block for block (benchmark "
        f"schema 5), is the median of the per-round ratios dense / sparse instead, with "
        f"that median's interval: its dense time is the one measured beside it."
    )
    sections = [Section("How speedups are computed", [method])]
    found = set(data.speedups["suite"]) if not data.speedups.empty else set()
    for suite, title in SUITE_TITLES.items():
        if suite in found:
            sections.append(Section(title, [], tables.speedup_table(data.speedups, suite)))
    if not data.repeats.empty:
        sections.append(
            Section(
                "Speedups across runs",
                [
                    "Cases measured in more than one input file on the same machine: the "
                    "median over the runs of each run's speedup, and their range (the "
                    "run-to-run variation that one run's interval cannot show). Level "
                    "changes: the runs in time order, the first run of each new level of "
                    "the speedup, found by PELT change-point detection (ruptures, cost l1 "
                    f"on log speedups, levels of {LEVEL_MIN_RUNS}+ runs, penalty "
                    f"{LEVEL_PENALTY:g} x noise x ln(runs)) and kept when the level moved "
                    f"by more than {MIN_EFFECT:.0%}; it needs {2 * LEVEL_MIN_RUNS} runs."
                ],
                tables.across_runs_table(data.repeats),
            )
        )
    if not data.split.empty:
        sections.append(
            Section(
                "Selection vs the rest of a sparse backward",
                [
                    "Selection median (selection suite) against the sparse backward's median "
                    "(backward suite) at the same case; the rest is the products, gathers and "
                    "writes."
                ],
                tables.split_table(data.split),
            )
        )
    if not unpaired.empty:
        sections.append(
            Section(
                "Benchmarks without a speedup",
                [f"{len(unpaired)} benchmarks could not be paired with a dense case."],
                tables.unpaired_table(unpaired),
            )
        )
    return sections


def paper_sections(data: ReportData, summary: pd.DataFrame) -> list[Section]:
    sections = [
        Section(
            "Measured vs published speedups",
            [tables.PAPER_NOTE],
            tables.paper_comparison(data.speedups),
        )
    ]
    if not summary.empty:
        sections.append(
            Section(
                "Overfitting: test accuracy per configuration",
                [
                    "Mean over seeds of the test accuracy at each run's best dev epoch (the "
                    "paper's protocol), its 95% Student-t interval, and the train - dev gap "
                    "at the last epoch (train accuracy measured on the fly, in training mode)."
                ],
                tables.training_table(summary),
            )
        )
        sections.append(
            Section(
                "Measured vs published accuracy (Table 3, Figure 4)",
                [
                    "The paper trains on the full MNIST for 20 epochs; these runs use the data "
                    "and epochs named in the inputs, so expect lower absolute accuracy. Figure 4 "
                    "values are read off the plot."
                ],
                tables.accuracy_comparison(summary, published_accuracies()),
            )
        )
    return sections


def _varying(frame: pd.DataFrame, always: tuple[str, ...] = headline.ALWAYS_SHOWN) -> pd.DataFrame:
    """``frame`` without the setting columns that hold one value (bar ``always``)."""
    fixed = [c for c in claims.SETTING if c in frame and c not in always and frame[c].nunique() < 2]
    return frame.drop(columns=fixed)


def _repeats_text(repeats: pd.DataFrame) -> list[str]:
    """One line naming the runs dropped as repeats of runs found earlier."""
    if repeats.empty:
        return []
    named = "; ".join(
        f"{Path(r.source).name}: {r.recipe} {r.label} seed {r.seed} (as in "
        f"{Path(r.kept_from).name})"
        for r in repeats.itertuples()
    )
    return [f"{len(repeats)} run(s) were found twice and count once: {named}."]


def claim_sections(runs: pd.DataFrame, repeats: pd.DataFrame | None = None) -> list[Section]:
    """The verdict on each of the paper's accuracy claims, then the starvation
    diagnostic and training time beside Table 2: the top of the training report.
    ``repeats`` are the runs dropped as copies of others (named here)."""
    if runs.empty:
        return []
    text = [claims.RULE, *_repeats_text(pd.DataFrame() if repeats is None else repeats)]
    legacy = runs.loc[runs["schema_version"] < 2, "source"].unique()
    if len(legacy):
        text.append(
            f"{len(legacy)} training file(s) predate schema v2 ({', '.join(legacy)}): their "
            "runs are read as recipe torch, the only recipe then, and record no keep counts."
        )
    verdicts = claims.verdicts(runs)
    if verdicts.empty:
        text.append("No claim could be tested from these runs (the paper set runs them all):")
    text += claims.needs(runs)
    sections = [Section("The paper's claims: verdicts", text, _varying(verdicts))]
    table = starvation.starvation(starvation.keep_rates(runs))
    if not table.empty:
        shown = _varying(table).assign(
            never=table["never"].map("{:.1%}".format),
            top_share=table["top_share"].map("{:.1%}".format),
            median=table["median"].map("{:.2%}".format),
        )
        shown = shown.rename(columns={
            "label": "configuration", "never": "units never kept",
            "top_share": f"share of keeps in the top {starvation.TOP_SHARE:.0%} of units",
            "median": "median keep rate"})  # fmt: skip
        sections.append(Section("Starvation: how often each hidden unit was kept",
                                [starvation.NOTE],
                                shown))  # fmt: skip
    times = train_time.time_table(runs)
    if not times.empty:
        sections.append(Section("Training time per epoch (Table 2)", [train_time.NOTE],
                                _varying(times)))  # fmt: skip
    return sections


def plots_section(plots: list[PlotFile]) -> Section:
    skipped = [f"{p.title}: skipped, {p.skipped}." for p in plots if p.skipped]
    return Section("Plots", skipped, figures=True, anchor="plots")


DETAILS_NOTE = (
    "The tables behind the answer and the plots: every strategy at every case, the "
    "method, the inputs, the training runs."
)


def details_sections(sections: list[Section]) -> list[Section]:
    """``sections`` under a "Details" heading, one level down, each folded in the HTML."""
    return [
        Section("Details", [DETAILS_NOTE], anchor="details"),
        *(replace(section, level=3, fold=True) for section in sections),
    ]


def profile_links(out_dir: Path) -> dict[str, list[Path]]:
    """Per case under ``out_dir/profiles/``, the profiler files that exist there
    (relative to ``out_dir``)."""
    root = out_dir / "profiles"
    if not root.is_dir():
        return {}
    return {
        case.name: [f.relative_to(out_dir) for f in map(case.joinpath, PROFILE_FILES) if f.exists()]
        for case in sorted(root.iterdir())
        if case.is_dir()
    }
