"""The report's Your model section: a report of model files alone, and the notes on a
step's page faults and on a step above its bound."""

from __future__ import annotations

from documents import (
    model_doc,
    write,
)

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main


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
