"""The GPU proof's summary, from a fake OUTDIR: statuses and times from the recorded
steps, each log's last line, and the Table 7 figures beside the paper's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meprop_bench.gpu_proof.__main__ import main
from meprop_bench.gpu_proof.steps import TABLE7_KS, TIMERS, steps, table7_json
from meprop_bench.gpu_proof.summary import RECORD, SUMMARY, outcomes, read_record


def fake_check(path: Path, timer: str, dense_ms: float, compact_ms: float, best: float) -> None:
    """A check JSON as `meprop-bench check --json` writes it, cut to what is read."""
    rows = [("dense/dense", dense_ms, 1.0), ("unified/compact", compact_ms, dense_ms / compact_ms),
            ("unified/triton", dense_ms / best, best), ("topk/masked", dense_ms, 0.9)]  # fmt: skip
    doc = {"schema": "meprop-bench/check", "params": {"timer": timer},
           "results": [{"kernel": name, "median_s": ms / 1e3, "speedup": speedup}
                       for name, ms, speedup in rows]}  # fmt: skip
    path.write_text(json.dumps(doc))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Three steps recorded (passed, failed, timed out) with their logs, the rest not run;
    one Table 7 check JSON per timer."""
    (tmp_path / "logs").mkdir()
    recorded = [("tests", 0, 95_300, "301 passed, 47 skipped in 90.1s"),
                ("t7-events-k8", 0, 12_000, "wrote t7-events-k8.json"),
                ("t7-events-k32", 1, 9_500, "error: topk/triton | failed"),
                ("t7-events-k128", 124, 18_004, "[ 40%] still going")]  # fmt: skip
    lines = [json.dumps({"step": name, "exit": code, "ms": ms}) for name, code, ms, _ in recorded]
    (tmp_path / RECORD).write_text("\n".join([*lines, '{"step": "cut off']) + "\n")
    for name, _, _, last in recorded:
        (tmp_path / "logs" / f"{name}.log").write_text(f"$ command\n{last}\n\n")
    fake_check(tmp_path / table7_json("events", 8), "cuda-events", 6.0, 0.5, 20.0)
    fake_check(tmp_path / table7_json("graph", 512), "cuda-graph", 5.0, 1.25, 4.5)
    return tmp_path


def test_each_step_gets_its_status_time_and_last_log_line(out):
    found = {o.step.name: o for o in outcomes(out)}
    assert list(found) == [step.name for step in steps(out)]
    assert (found["tests"].status, found["tests"].seconds) == ("passed", 95.3)
    assert found["tests"].last_line == "301 passed, 47 skipped in 90.1s"
    assert found["t7-events-k32"].status == "failed"
    assert found["t7-events-k128"].status == "timed out"
    sweep = found["sweep"]
    assert (sweep.status, sweep.seconds, sweep.last_line) == ("not run", None, "")


def test_a_line_cut_off_while_written_counts_as_no_record(out):
    assert set(read_record(out)) == {"tests", "t7-events-k8", "t7-events-k32", "t7-events-k128"}


def test_the_summary_renders_the_steps_and_the_table7_figures(out, capsys):
    assert main(["summary", str(out)]) == 1  # a step failed, one timed out, most never ran
    printed = capsys.readouterr().out
    assert (out / SUMMARY).read_text() == printed
    lines = printed.splitlines()
    assert lines[0] == f"# GPU proof: 2 of {len(steps(out))} steps passed"
    assert "| tests | passed | 95.3 s | 150 s | 301 passed, 47 skipped in 90.1s |" in lines
    # A pipe in a log line is escaped, so the table keeps its columns.
    assert "| t7-events-k32 | failed | 9.5 s | 18 s | error: topk/triton \\| failed |" in lines
    assert "| t7-events-k128 | timed out | 18.0 s | 18 s | [ 40%] still going |" in lines
    assert "| gate | not run | - | 12 s | - |" in lines
    # Measured beside published: dense and unified/compact ms, the fastest kernel.
    measured = {
        "| 8 | cuda-events | 6.00 | 0.50 | 12.0x | unified/triton | 20.0x | 8.37 | 36.8x |",
        "| 512 | cuda-graph | 5.00 | 1.25 | 4.0x | unified/triton | 4.5x | 69.95 | 4.4x |",
    }
    assert measured <= set(lines)
    assert "| 32 | cuda-events | not measured | - | - | - | - | 11.20 | 27.5x |" in lines
    rows = [line for line in lines if line.startswith("| ") and line.split()[1].isdigit()]
    assert len(rows) == len(TABLE7_KS) * len(TIMERS)


def test_every_step_passed_is_exit_zero(out):
    record = [json.dumps({"step": step.name, "exit": 0, "ms": 1000}) for step in steps(out)]
    (out / RECORD).write_text("\n".join(record) + "\n")
    assert main(["summary", str(out)]) == 0
    assert f"{len(record)} of {len(record)} steps passed" in (out / SUMMARY).read_text()


def test_the_summary_says_where_it_ran_from_the_recorded_versions(out, capsys):
    from meprop_bench.gpu_proof.environment import versions
    from meprop_bench.results.machine import describe

    main(["summary", str(out)])
    assert "Where it ran is unknown: versions.json is missing" in capsys.readouterr().out
    found = versions()
    (out / "versions.json").write_text(json.dumps(found))
    main(["summary", str(out)])
    line = f"Ran on {describe(found['machine'])}; triton {found['triton']}."
    assert line in capsys.readouterr().out.splitlines()
