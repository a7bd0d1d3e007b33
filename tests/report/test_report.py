"""The report (meprop_bench.report): frames, pairing, intervals, plots, HTML, CLI errors.

The inputs are small pytest-benchmark and trainer JSON documents (tests/documents.py);
``built``, the report most tests read, is tests/report/conftest.py's."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from documents import (
    MACHINE,
    bench_doc,
    entry,
    full_sweep,
    kernel_case,
    model_doc,
    samples,
    train_step_case,
    training_doc,
    write,
)
from plot_files import stand_in_plot_files

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main
from meprop_bench.report import (
    bootstrap_ratio,
    find_inputs,
    load_benchmarks,
    load_trainings,
    pair_speedups,
    tables,
    time_split,
    training_runs,
    training_summary,
)
from meprop_bench.report.paper import TABLE7, TABLE8, published_speedups
from meprop_bench.report.plots import PLOTS
from meprop_bench.report.speedup import across_runs


def test_benchmark_frame_is_tidy(tmp_path):
    foreign = entry({}, 1e-3)  # a pytest-benchmark case from another project
    path = write(tmp_path / "b.json", bench_doc([*full_sweep()[:3], foreign]))
    frame = load_benchmarks([path])
    assert len(frame) == 4
    for column in ("source", "run_id", "machine", "device_name", "suite", "method", "n", "k",
                   "k_over_n", "pair_key", "median", "iqr", "rounds", "samples"):  # fmt: skip
        assert column in frame
    assert frame["run_id"].iloc[0] == "b.json@2026-01-01T00:00:00+00:00"
    assert frame["device_name"].iloc[0] == "cpu (Test CPU)"
    assert len(frame["samples"].iloc[0]) == 8
    assert frame["suite"].iloc[3] is None
    pairing = pair_speedups(frame)
    assert "not from a meprop-bench suite" in set(pairing.unpaired["reason"])


def test_pairing_picks_the_dense_case_of_the_same_shape_and_threads(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, median=8e-3),
        kernel_case("backward", "dense", "dense", 64, 64, threads=2, median=5e-3),
        kernel_case("backward", "dense", "dense", 128, 128, median=30e-3),
        kernel_case("layer", "dense", "dense", 64, 64, median=50e-3),
        kernel_case("backward", "unified", "compact", 64, 8, median=1e-3),
    ]
    frame = load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))])
    speedups = pair_speedups(frame).speedups
    assert len(speedups) == 1
    row = speedups.iloc[0]
    assert row["dense_median"] == pytest.approx(frame["median"].iloc[0])
    assert row["speedup"] == pytest.approx(frame["median"].iloc[0] / frame["median"].iloc[4])
    assert row["ci_low"] <= row["speedup"] <= row["ci_high"]
    assert row["ideal"] == pytest.approx(8.0)
    assert row["efficiency"] == pytest.approx(row["speedup"] / 8)


def test_a_step_timed_beside_its_dense_partner_is_judged_on_that_pairing(tmp_path):
    # The dense case ran in a slow stretch (8 ms: 4x across cases); the dense step timed
    # beside the sparse one, round for round, says 1.3x, and that is the step's speedup.
    beside = samples(2.6e-3, seed=3)
    sparse = train_step_case("topk", "native", 2e-3)
    ratios = np.asarray(beside) / np.asarray(sparse["stats"]["data"])
    sparse["extra_info"].update(paired_dense_s=beside, paired_speedup=float(np.median(ratios)),
                                paired_low=1.2, paired_high=1.4)  # fmt: skip
    older = train_step_case("unified", "compact", 2e-3)  # schema 4: no partner beside it
    cases = [train_step_case("dense", "dense", 8e-3), sparse, older]
    speedups = pair_speedups(load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))]))
    rows = speedups.speedups.set_index("kernel")
    paired, across = rows.loc["topk/native"], rows.loc["unified/compact"]
    assert paired["paired"] == "beside"
    assert paired["speedup"] == pytest.approx(np.median(ratios))
    assert (paired["ci_low"], paired["ci_high"]) == (1.2, 1.4)
    assert paired["dense_median"] == pytest.approx(np.median(beside))
    assert across["paired"] == "case" and across["speedup"] == pytest.approx(4, rel=0.1)


def test_speedup_table_says_the_threads_only_when_they_vary(tmp_path):
    def table(thread_counts):
        cases = [
            kernel_case(suite, method, strategy, 64, k, threads=t, median=median)
            for t in thread_counts
            for suite, method, strategy, k, median in (
                ("layer", "dense", "dense", 64, 8e-3 / t),
                ("layer", "unified", "compact", 8, 1e-3),
            )
        ]
        name = "-".join(map(str, thread_counts))
        frame = load_benchmarks([write(tmp_path / f"{name}.json", bench_doc(cases))])
        return tables.speedup_table(pair_speedups(frame).speedups, "layer")

    assert "threads" not in table([2]).columns
    both = table([1, 2])
    assert list(both["threads"]) == ["1", "2"]
    assert list(both["speedup"]) == ["8.00x", "4.00x"]


def test_repeated_runs_get_a_median_and_range_of_their_speedups(tmp_path):
    def run(name, sparse_median):
        cases = [
            kernel_case("layer", "dense", "dense", 64, 64, median=8e-3),
            kernel_case("layer", "unified", "compact", 64, 8, median=sparse_median),
        ]
        return write(tmp_path / f"{name}.json", bench_doc(cases))

    files = [run("a", 1e-3), run("b", 2e-3), run("c", 4e-3)]
    one = pair_speedups(load_benchmarks(files[:1])).speedups
    assert across_runs(one).empty  # a single run has no spread to show
    speedups = pair_speedups(load_benchmarks(files)).speedups
    repeats = across_runs(speedups)
    assert len(repeats) == 1
    row = repeats.iloc[0]
    assert row["runs"] == 3
    assert row["speedup"] == pytest.approx(4.0)  # the median of 8x, 4x and 2x
    assert (row["speedup_min"], row["speedup_max"]) == pytest.approx((2.0, 8.0))
    table = tables.across_runs_table(repeats)
    assert list(table["range over runs"]) == ["2.00-8.00x"]
    assert "dY" not in table.columns  # one gradient source: said once, not per row
    assert row["level_changes"] == 0  # three runs: too few to tell a level


def test_the_history_marks_the_run_where_a_speedup_changed_level(tmp_path):
    """Eight runs, named against their time order; the sparse kernel got 1.5x slower
    from the fifth on (each run 1% off, alternately)."""
    files = []
    for i, slower in enumerate([1, 1, 1, 1, 1.5, 1.5, 1.5, 1.5]):
        cases = [
            kernel_case("layer", "dense", "dense", 64, 64, median=8e-3),
            kernel_case("layer", "unified", "compact", 64, 8,
                        median=1e-3 * slower * (1 + 0.01 * (-1) ** i)),
        ]  # fmt: skip
        doc = {**bench_doc(cases), "datetime": f"2026-01-0{i + 1}T00:00:00+00:00"}
        files.append(write(tmp_path / f"{chr(ord('h') - i)}.json", doc))
    repeats = across_runs(pair_speedups(load_benchmarks(files)).speedups)
    row = repeats.iloc[0]
    assert row["level_changes"] == 1
    assert row["changed_at"] == "run 5/8 (d.json@2026-01-05T00:00:00+00:00): 8.00x -> 5.33x"
    assert list(tables.across_runs_table(repeats)["level changed at"]) == [row["changed_at"]]


def test_paper_comparison_names_each_rows_threads(tmp_path):
    cases = [
        kernel_case("paper", method, strategy, 500, k, batch=50, threads=t, median=median)
        for t in (1, 2)
        for method, strategy, k, median in (
            ("dense", "dense", 500, 1e-3),
            ("unified", "compact", 20, 1e-4),
        )
    ]
    frame = load_benchmarks([write(tmp_path / "p.json", bench_doc(cases))])
    table = tables.paper_comparison(pair_speedups(frame).speedups)
    mnist = table[table["paper"] == "Table 1 MNIST (adam)"]
    cases = list(mnist["measured case"])
    assert len(cases) == 2 and "threads=1" in cases[0] and "threads=2" in cases[1]


def test_pairing_stays_within_a_file(tmp_path):
    dense_cases = [kernel_case("backward", "dense", "dense", 64, 64, batch=8)]
    sparse_cases = [kernel_case("backward", "topk", "masked", 64, 8, batch=8)]
    dense = write(tmp_path / "a.json", bench_doc(dense_cases))
    sparse = write(tmp_path / "b.json", bench_doc(sparse_cases))
    with pytest.raises(Exception, match="none of the 1 sparse cases has a dense counterpart"):
        pair_speedups(load_benchmarks([dense, sparse]))
    both = write(tmp_path / "c.json", bench_doc(full_sweep()[:3] + sparse_cases))
    pairing = pair_speedups(load_benchmarks([both, sparse]))
    assert len(pairing.speedups) == 3
    assert list(pairing.unpaired["source"]) == [str(sparse)]


def test_bootstrap_interval_contains_the_ratio_and_is_seeded():
    dense, sparse = samples(10.0, 12, seed=1), samples(2.0, 12, seed=2)
    low, high = bootstrap_ratio(dense, sparse)
    point = float(pd.Series(dense).median() / pd.Series(sparse).median())
    assert low < point < high
    assert (low, high) == bootstrap_ratio(dense, sparse)
    assert all(v != v for v in bootstrap_ratio([1.0], sparse))  # NaN: one sample


def test_time_split_matches_selection_to_its_kernels(tmp_path):
    frame = load_benchmarks([write(tmp_path / "b.json", bench_doc(full_sweep()))])
    split = time_split(frame)
    assert set(split["selection"]) == {"topk", "unified"}
    assert (split["selection"] == split["kernel"].str.split("/").str[0]).all()
    row = split.iloc[0]
    assert row["selection_s"] + row["rest_s"] == pytest.approx(row["backward_s"])


def test_training_frames(tmp_path):
    epochs = load_trainings([write(tmp_path / "t.json", training_doc(epochs=3, seeds=(0, 1)))])
    assert len(epochs) == 4 * 2 * 3
    runs = training_runs(epochs)
    assert len(runs) == 8
    assert set(runs["family"]) == {"dense", "topk", "randk", "dense h=k"}
    assert runs.loc[runs["family"] == "dense h=k", "k_axis"].eq(20).all()
    summary = training_summary(runs)
    topk = summary[summary["family"] == "topk"].iloc[0]
    assert topk["seeds"] == 2
    assert topk["test_ci_low"] <= topk["test_acc"] <= topk["test_ci_high"]


def test_every_plot_is_a_valid_png_and_svg(built):
    for name in PLOTS:
        png, svg = built / "plots" / f"{name}.png", built / "plots" / f"{name}.svg"
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
        assert ET.parse(svg).getroot().tag.endswith("svg"), name


def test_summary_holds_the_tables(built):
    summary = (built / "summary.md").read_text()
    for title in ("Speedups: backward kernel", "Speedups: layer backward",
                  "Speedups: whole training step", "Selection vs the rest",
                  "Measured vs published speedups", "Overfitting", "Table 3"):  # fmt: skip
        assert title in summary
    assert "Table 7 synthetic | 8, 16, 32" in summary  # no matching shape: said plainly
    assert "no matching measurement" in summary
    assert "differs: paper C# on a Xeon" in summary  # MNIST B=50 matches Table 1
    assert (built / "speedups.csv").exists() and (built / "training_runs.csv").exists()


def test_html_is_self_contained_and_embeds_every_plot(built):
    page = (built / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(PLOTS)
    for marker in ("<link", 'src="http', 'href="http', "url(", "@import", "<script src"):
        assert marker not in page
    assert page.count("<script") == 1 and "<script>" in page  # the inline table sorter
    assert "default-src 'none'; img-src data:;" in page  # the page may load nothing
    assert 'href="profiles/unified-compact_case/flame.svg"' in page
    assert "Test GPU" in page and "Measured vs published speedups" in page


def test_the_page_opens_with_the_answer_then_the_plots_then_folded_tables(built):
    page = (built / "index.html").read_text()
    answer, plots, details = (page.index(f'id="{name}"') for name in ("answer", "plots",
                                                                       "details"))  # fmt: skip
    assert answer < page.index("<img") and answer < page.index("<table")
    assert answer < plots < page.index("<img") < details
    for where in ("cpu (Test CPU) on box (Test CPU)",
                  "cuda (Test GPU) on gpubox (Test CPU, Test GPU)"):  # fmt: skip
        assert f">{where}</h3>" in page
    assert "<strong>unified top-k pays.</strong> Backward kernel: faster than dense" in page
    assert "Training: the paper&#x27;s accuracy claims</h3>" in page
    tail = page[details:]
    folded = re.findall(r'<details id="[^"]+"><summary><h3>([^<]+)</h3>', tail)
    assert folded[:2] == [
        "The paper&#x27;s claims: verdicts",
        "Starvation: how often each hidden unit was kept",
    ]
    assert "Speedups: backward kernel (dy, x, w, k) -&gt; (dx, dw, db)" in folded
    assert tail.count("<table") == tail.count('<table class="dataframe sortable">')
    assert "<table" not in page[plots:details]
    assert "Machines: Test CPU (2 cores, AVX2), torch 2.13.0, MKL, 2 threads; " in page


def test_summary_opens_with_the_answer(built):
    summary = (built / "summary.md").read_text()
    headings = [line for line in summary.splitlines() if line.startswith("#")]
    assert headings[:6] == [
        "# meprop-bench report: r1",
        "## Answer",
        "### cpu (Test CPU) on box (Test CPU)",
        "### cpu (Test CPU) on gpubox (Test CPU, Test GPU)",  # its paper and train-step cases
        "### cuda (Test GPU) on gpubox (Test CPU, Test GPU)",
        "### Training: the paper's accuracy claims",
    ]
    assert headings[6:10] == ["## Your model", "## Plots", "## Details",
                              "### The paper's claims: verdicts"]  # fmt: skip
    assert summary.index("- **unified top-k pays.** Backward kernel:") < summary.index("![")
    assert "| B | n | k | k/n | ideal | unified top-k: best strategy | unified top-k: speedup" in (
        summary
    )
    best = pd.read_csv(built / "best_strategies.csv")
    assert set(best["suite"]) == {"backward", "layer", "paper", "train_step"}


@pytest.fixture(scope="module")
def one_epoch(tmp_path_factory) -> Path:
    """A report of one training file (one seed, one epoch) in ``<root>/r``; returns root.
    test_no_overwrite_without_force rebuilds it with --force, from the same input."""
    root = tmp_path_factory.mktemp("one-epoch")
    path = write(root / "t.json", training_doc(epochs=1, seeds=(0,)))
    with stand_in_plot_files():
        assert run_main(report_main, [str(path), "--out-root", str(root), "--name", "r"]) == 0
    return root


def test_a_missing_plot_input_is_skipped_and_said(one_epoch):
    summary = (one_epoch / "r" / "summary.md").read_text()
    assert "Speedup against batch size: skipped, no paired backward cases" in summary
    assert "Train and dev accuracy per epoch: skipped, one epoch per run" in summary
    assert not (one_epoch / "r" / "plots" / "speedup_vs_batch.png").exists()
    assert (one_epoch / "r" / "plots" / "accuracy_vs_k.png").exists()


def test_no_overwrite_without_force(one_epoch, capsys, plot_stand_ins):
    argv = [str(one_epoch / "t.json"), "--out-root", str(one_epoch), "--name", "r"]
    before = (one_epoch / "r" / "summary.md").read_text()
    capsys.readouterr()
    assert run_main(report_main, argv) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert (one_epoch / "r" / "summary.md").read_text() == before
    assert run_main(report_main, [*argv, "--force"]) == 0
    made = re.compile(r"Made \S+ by")  # the time it was made: all that may differ
    again = (one_epoch / "r" / "summary.md").read_text()
    assert made.sub("", again) == made.sub("", before)


def _bad_inputs(tmp: Path) -> dict[str, tuple[list[str], str]]:
    (tmp / "empty").mkdir()
    (tmp / "text.json").write_text("this is not json")
    write(tmp / "other.json", {"hello": [1, 2]})
    write(tmp / "lonely.json", bench_doc([kernel_case("backward", "topk", "masked", 64, 8)]))
    write(tmp / "broken.json", {**training_doc(), "runs": [{"label": "x"}]})
    crafted = bench_doc(full_sweep()[:3])
    crafted["benchmarks"][1]["stats"]["data"][0] = "abc"
    write(tmp / "crafted.json", crafted)
    return {
        "missing file": ([str(tmp / "nope.json")], "no such file"),
        "not JSON": ([str(tmp / "text.json")], "not a JSON file"),
        "other JSON": ([str(tmp / "other.json")], "neither pytest-benchmark output"),
        "no dense counterpart": ([str(tmp / "lonely.json")], "has a dense counterpart"),
        "empty directory": ([str(tmp / "empty")], "holds no JSON result files"),
        "bad training file": ([str(tmp / "broken.json")], "lacks the field"),
        "string sample": ([str(tmp / "crafted.json")], "benchmarks[1]: samples must be a list"),
    }


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for what, (paths, message) in _bad_inputs(tmp_path).items():
        code = run_main(report_main, [*paths, "--out-root", str(tmp_path / "out")])
        err = capsys.readouterr().err
        assert code == 2, what
        assert message in err and "Traceback" not in err, (what, err)
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and err.splitlines()[-1] == errors[0], (what, err)
    assert not (tmp_path / "out").exists()


def test_directory_search_passes_over_other_json(tmp_path):
    write(tmp_path / "b.json", bench_doc(full_sweep()[:3]))
    write(tmp_path / "profiles" / "case" / "trace.json", {"traceEvents": []})
    write(tmp_path / "sub" / "ops.json", {"ops": []})
    found = find_inputs([tmp_path])
    assert found.benchmarks == [tmp_path / "b.json"]
    assert [p.name for p, _ in found.ignored] == ["ops.json"]


def test_published_speedups_agree_with_their_times():
    for row in (*TABLE7, *TABLE8):
        assert row.dense / row.sparse == pytest.approx(row.speedup, abs=0.1)
    frame = published_speedups()
    assert {"Table 1", "Table 2", "Table 7", "Table 8"} == set(frame["table"])
    assert frame["source"].str.contains("arXiv 1706.06197").all()


def test_a_file_found_twice_is_read_once(tmp_path):
    a = write(tmp_path / "in" / "a.json", bench_doc(full_sweep()[:3]))
    copy = write(tmp_path / "elsewhere" / "copy.json", bench_doc(full_sweep()[:3]))
    train = write(tmp_path / "in" / "t.json", training_doc(epochs=1, seeds=(0,)))
    found = find_inputs([tmp_path / "in", a, tmp_path / "in" / "." / "a.json", copy, train])
    assert found.benchmarks == [a] and found.trainings == [train]
    assert found.ignored == [(copy, f"the same content as {a}; read once")]
    once = pair_speedups(load_benchmarks(find_inputs([tmp_path / "in"]).benchmarks))
    twice = pair_speedups(load_benchmarks(found.benchmarks))
    assert len(twice.speedups) == len(once.speedups) == 2
    assert across_runs(twice.speedups).empty


def varied_sweep() -> list[dict[str, Any]]:
    """Backward, layer, selection and training-step cases at 1 and 2 threads, B = 8 and
    16, on the CPU and on a GPU. One width: a panel per width and batch size as per
    setting, so a second width would double the panels (and the drawing time) and vary
    nothing that B does not already vary in the panels' titles."""
    out = []
    for t in (1, 2):
        for dev in ("cpu", "cuda"):
            for n in (64,):
                for b in (8, 16):
                    dense = n * b * 1e-6 / t
                    for suite in ("backward", "layer"):
                        out.append(kernel_case(suite, "dense", "dense", n, n, b, t, dev, dense))
                        for k in (0.05, 0.25):
                            median = dense * k * t
                            out.append(kernel_case(suite, "unified", "compact", n, k, b, t, dev,
                                                   median))  # fmt: skip
                    for k in (0.05, 0.25):
                        out.append(kernel_case("selection", "unified", None, n, k, b, t, dev,
                                               dense * 0.02, selection="unified"))  # fmt: skip
        out.append(train_step_case("dense", "dense", 4e-3, threads=t))
        out.append(train_step_case("unified", "compact", 2e-3 * t, threads=t))
    return out


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """ReportData of two runs on each of two machines, whose sweeps vary threads, batch
    and device."""
    from meprop_bench.report.model import ReportData

    root = tmp_path_factory.mktemp("varied")
    gpu = [{"name": "Test GPU", "cuda_runtime": "12", "driver": "1"}]
    files = [
        write(root / f"{node}-{run}.json", bench_doc(varied_sweep(), {**MACHINE, "node": node,
                                                                      "gpus": gpu}))
        for node in ("box", "other")
        for run in (1, 2)
    ]  # fmt: skip
    bench = load_benchmarks(files)
    speedups = pair_speedups(bench).speedups
    empty = pd.DataFrame()
    return ReportData(speedups, time_split(bench), empty, empty, across_runs(speedups))


def _texts(fig) -> str:
    """Every piece of text a reader sees in ``fig``."""
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


TRAINING_PLOTS = ("overfit_curves", "accuracy_vs_k", "claims_vs_size", "activations",
                  "unit_keeps", "model_layers")  # not drawn from benchmark sweeps  # fmt: skip


@pytest.mark.parametrize("name", [n for n in PLOTS if n not in TRAINING_PLOTS])
def test_every_varying_axis_is_visible_in_every_plot(varied, name):
    import matplotlib.pyplot as plt

    fig = PLOTS[name][1](varied)
    text = _texts(fig)
    for shown in ("box (Test CPU, Test GPU)", "other (Test CPU, Test GPU)", "1 thread",
                  "2 threads"):  # fmt: skip
        assert shown in text, (name, shown)
    if name not in ("train_step", "speedup_vs_batch"):  # B: fixed there, or the x axis
        for b in (8, 16):
            assert re.search(rf"B ?= ?(\d+, )*{b}\b", text), (name, b)
    if name != "train_step":
        assert "(Test CPU, Test GPU) / cuda" in text and "(Test CPU, Test GPU) / cpu" in text, name
    for ax in fig.axes:
        for line in ax.get_lines():  # no line through two settings or runs at one x
            xs = list(line.get_xdata())
            if line.get_linestyle() not in ("None", "", " ") and len(set(xs)) > 1:  # not a rule
                assert len(xs) == len(set(xs)), (name, ax.get_title(), xs)
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        if name in ("time_split", "train_step"):  # no bar repeated under one label
            assert len(labels) == len(set(labels)), (name, ax.get_title(), labels)
    plt.close(fig)


def test_every_varying_axis_is_a_column_of_every_speedup_table(varied):
    for table in (
        tables.speedup_table(varied.speedups, "backward"),
        tables.across_runs_table(varied.repeats),
        tables.split_table(varied.split),
    ):
        for column in ("machine", "device", "threads", "B"):
            assert column in table, (column, list(table))
        keys = [c for c in table if c in ("file", *tables.CASE_KEYS)]
        assert not table.duplicated(keys).any(), table[table.duplicated(keys, keep=False)]


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


def test_the_model_section_opens_with_the_whole_step_then_its_layers(built):
    summary = (built / "summary.md").read_text()
    section = summary[summary.index("## Your model") : summary.index("## Plots")]
    assert section.index("tiny, topk k=0.01: the whole training step is 1.50x (1.35-1.65x, 95%), "
                         "faster than dense") < section.index("| fc1 |")  # fmt: skip
    assert "Forward 1.00x, backward 2.20x, optimizer 1.00x" in section
    assert "A step's peak memory above its start: dense 40 MiB, meProp 20 MiB." in section
    assert "| tiny, topk k=0.01 | fc1 | 512 x 768 -> 3072 | 31 | topk/native | 2.00x | " in section
    assert "| 4.00x | 3.60-4.40x | 99.10x | 0.300 | - |" in section  # alone, n/k, no dX
    assert "![Your model: layers in the step and alone](plots/model_layers.png)" in summary
    assert (built / "model_layers.csv").exists()


def test_a_report_of_model_files_alone(tmp_path, capsys, plot_stand_ins):
    paths = [write(tmp_path / f"m{i}.json", model_doc(f"m{i}")) for i in range(2)]
    out = tmp_path / "out"
    assert run_main(report_main, [*map(str, paths), "--out-root", str(out), "--name", "r"]) == 0
    summary = (out / "r" / "summary.md").read_text()
    assert "## Answer" not in summary and summary.count("the whole training step is") == 2
    assert (out / "r" / "plots" / "model_layers.png").exists()


def test_a_model_step_whose_sides_fault_unalike_says_so(tmp_path):
    from meprop_bench.report.your_model import load_models, step_sentence

    doc = model_doc("faulting")
    step = next(p for p in doc["parts"] if p["part"] == "step")
    step.update(dense_faults=132_000.0, meprop_faults=40.0)
    steps, _ = load_models(
        [write(tmp_path / "f.json", doc), write(tmp_path / "q.json", model_doc())]
    )
    said = [step_sentence(row) for _, row in steps.iterrows()]
    assert "Page faults a step differ, dense 132,000 against meProp 40" in said[0]
    assert "Page faults" not in said[1]  # no counts: nothing said


def test_a_model_step_above_its_bound_says_where_dense_lost_the_time(tmp_path):
    from meprop_bench.report.your_model import load_models, step_sentence

    doc = model_doc("above")
    doc.update(step_speedup=3.4, step_speedup_low=2.65, step_speedup_high=3.65)
    optimizer = next(p for p in doc["parts"] if p["part"] == "optimizer")
    optimizer.update(speedup=1.5, low=1.3, high=1.7)
    steps, _ = load_models(
        [write(tmp_path / "a.json", doc), write(tmp_path / "b.json", model_doc())]
    )
    said = [step_sentence(row) for _, row in steps.iterrows()]
    assert (
        "The whole step's interval lies above its bound (2.65x > 2.40x): dense also lost "
        "time outside the swapped layers' backward (optimizer 1.50x [1.30-1.70])" in said[0]
    )
    assert "above its bound" not in said[1]
