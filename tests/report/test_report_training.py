"""The report's training sections: verdicts per recipe, the dense h=20 baseline, runs
counted once, one run, training-set sizes; and the paper comparison across machines."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
from documents import (
    MACHINE,
    bench_doc,
    kernel_case,
    training_doc,
    write,
)

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main
from meprop_bench.report import (
    load_benchmarks,
    load_trainings,
    pair_speedups,
    tables,
    training_runs,
)


def test_paper_comparison_tells_machines_and_runs_apart(tmp_path):
    cases = [
        kernel_case("paper", method, strategy, 500, k, batch=50, median=median)
        for method, strategy, k, median in (("dense", "dense", 500, 1e-3),
                                            ("unified", "compact", 20, 1e-4))
    ]  # fmt: skip
    files = [
        write(tmp_path / f"{node}-{run}.json", bench_doc(cases, {**MACHINE, "node": node}))
        for node in ("box", "other")
        for run in (1, 2)
    ]
    table = tables.paper_comparison(pair_speedups(load_benchmarks(files)).speedups)
    measured = list(table[table["paper"] == "Table 1 MNIST (adam)"]["measured case"])
    assert len(measured) == 4 == len(set(measured))
    assert "other (Test CPU)" in measured[-1] and "other-2.json" in measured[-1]


def test_an_old_schema_file_loads_as_recipe_torch(tmp_path):
    old = load_trainings([write(tmp_path / "v1.json", training_doc(seeds=(0,), version=1))])
    assert set(old["recipe"]) == {"torch"} and old["kept"].isna().all()
    assert set(old["schema_version"]) == {1}
    runs = training_runs(old)
    assert len(runs) == 4 and set(runs["recipe"]) == {"torch"}


def test_the_verdicts_open_the_report_per_recipe_with_the_diagnostics(tmp_path, plot_stand_ins):
    both = write(tmp_path / "in" / "v2.json", training_doc(recipes=("torch", "authors")))
    old = write(tmp_path / "in" / "v1.json", training_doc(seeds=(5, 6), version=1))
    assert run_main(report_main, [str(both), str(old), "--out-root", str(tmp_path),
                                  "--name", "r"]) == 0  # fmt: skip
    summary = (tmp_path / "r" / "summary.md").read_text()
    sections = [line for line in summary.splitlines() if line.startswith("#")]
    assert sections[:5] == [
        "# meprop-bench report: r",
        "## Answer",
        "### Training: the paper's accuracy claims",
        "## Plots",
        "## Details",
    ]
    assert sections[5:8] == ["### The paper's claims: verdicts",
                             "### Starvation: how often each hidden unit was kept",
                             "### Training time per epoch (Table 2)"]  # fmt: skip
    assert "The inputs hold no benchmark with a dense partner, so no speedup" in summary
    assert f"1 training file(s) predate schema v2 ({old})" in summary
    details = summary[summary.index("## Details") :]
    verdict_rows = [line for line in details.splitlines() if "| (a) Table 3" in line]
    assert [row.split(" | ")[2] for row in verdict_rows] == ["torch", "authors"]
    assert all(any(f"| {word} | at 3 epochs on 3,000 images" in row for word in
                   ("reproduced", "refuted", "inconclusive")) for row in verdict_rows)  # fmt: skip
    assert "18.4x" in summary and "3.33x" in summary  # authors: dense 0.2 s / topk 0.06 s
    assert "| 40.0% |" in summary  # topk's units with no keeps in the synthetic counts
    assert (tmp_path / "r" / "plots" / "unit_keeps.png").exists()


def _only(doc: dict[str, Any], label: str) -> dict[str, Any]:
    """``doc`` with the runs of one configuration only (a file of its own)."""
    return {**doc, "runs": [r for r in doc["runs"] if r["label"] == label]}


def _verdict_rows(summary: str) -> list[str]:
    details = summary[summary.index("## Details") :]
    return [line for line in details.splitlines() if re.search(r" \| \([a-d]\) ", line)]


def test_a_dense_h20_file_is_judged_as_dense_h20_not_as_the_full_width(tmp_path, plot_stand_ins):
    doc = training_doc()
    topk = write(tmp_path / "tk.json", _only(doc, "topk k=20 h=500"))
    d20 = write(tmp_path / "d20.json", _only(doc, "dense h=20"))
    d500 = write(tmp_path / "d500.json", _only(doc, "dense h=500"))
    assert run_main(report_main, [str(topk), str(d20), "--out-root", str(tmp_path),
                                  "--name", "a"]) == 0  # fmt: skip
    alone = (tmp_path / "a" / "summary.md").read_text()
    rows = _verdict_rows(alone)
    assert "backward speedup" not in alone  # Table 2's baseline is dense h=500, not h=20
    assert (
        len(rows) == 1
        and "(a) Table 3" in rows[0]
        and "topk k=20 vs dense h=20 (3 vs 3)" in rows[0]
    )
    assert run_main(report_main, [str(topk), str(d20), str(d500), "--out-root", str(tmp_path),
                                  "--name", "b"]) == 0  # fmt: skip
    summary = (tmp_path / "b" / "summary.md").read_text()
    assert "topk k=20 vs dense h=500 (3 vs 3)" in summary and "(3 vs 6)" not in summary
    assert "(a) Table 3" in summary


def test_the_same_run_in_two_files_counts_once_and_is_named(tmp_path, plot_stand_ins):
    first = write(tmp_path / "one.json", training_doc())
    again = training_doc()
    again["created"] = "2026-02-02"  # another file, the same runs
    second = write(tmp_path / "two.json", again)
    assert run_main(report_main, [str(first), str(second), "--out-root", str(tmp_path),
                                  "--name", "r"]) == 0  # fmt: skip
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "(3 vs 3)" in summary and "(6 vs 6)" not in summary
    said = "12 run(s) were found twice and count once: two.json: torch dense h=500 seed 0"
    assert f"{said} (as in one.json)" in summary
    runs = pd.read_csv(tmp_path / "r" / "training_runs.csv")
    assert len(runs) == 12


def test_a_report_of_one_run_shows_it_and_names_what_each_claim_needs(
    tmp_path, capsys, plot_stand_ins
):
    one = training_doc(seeds=(0,))
    one = {**one, "runs": one["runs"][1:2]}  # topk k=20, one seed
    path = write(tmp_path / "t.json", one)
    assert run_main(report_main, [str(path), "--out-root", str(tmp_path), "--name", "r"]) == 0
    summary = (tmp_path / "r" / "summary.md").read_text()
    assert "No claim could be tested from these runs" in summary
    assert "(a) top-k k=20 beats dense h=20 needs dense h=20" in summary
    assert "(b) top-k beats random-k at each k needs random-k" in summary
    assert "| topk k=20 h=500 | 1 |" in summary  # the run itself, in the accuracy table


def test_sizes_are_settings_of_their_own_with_the_plots_against_size(
    built, tmp_path, plot_stand_ins
):
    summary = (built / "summary.md").read_text()  # two sizes, two recipes
    answer = summary[: summary.index("## Plots")]
    for size in ("3,000", "55,000"):
        for recipe in ("torch", "authors"):
            assert f"fashion, {size} train images, {recipe} recipe" in answer
    assert "(largest measured: 55,000 images)" in answer
    plots = built / "plots"
    for name in ("claims_vs_size", "activations", "unit_keeps"):
        assert (plots / f"{name}.png").stat().st_size > 10_000, name
    one_size = write(tmp_path / "u.json", training_doc(data="fashion"))
    assert run_main(report_main, [str(one_size), "--out-root", str(tmp_path), "--name", "s"]) == 0
    assert not (tmp_path / "s" / "plots" / "claims_vs_size.png").exists()
    assert (
        "claims (a) and (c) were not measured at two or more"
        in (tmp_path / "s" / "summary.md").read_text()
    )
