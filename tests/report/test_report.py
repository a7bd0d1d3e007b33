"""The report as a whole (meprop_bench.report, ``meprop-bench report``): the built
report's files, plots and page, its inputs, and its one-line errors.

``built``, the report most tests read, is tests/report/conftest.py's; the inputs are
small pytest-benchmark, trainer and model documents (tests/documents.py)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pandas as pd
import pytest
from documents import (
    bench_doc,
    full_sweep,
    kernel_case,
    training_doc,
    write,
)
from plot_files import stand_in_plot_files

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main
from meprop_bench.report import (
    find_inputs,
    load_benchmarks,
    pair_speedups,
)
from meprop_bench.report.paper import TABLE7, TABLE8, published_speedups
from meprop_bench.report.plots import PLOTS
from meprop_bench.report.speedup import across_runs


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
