"""``.ci/gpu-proof`` itself: its plan, its one-line refusal without a GPU, its run of the
steps (continue on failure, time limits, the record, the exit status) with a stand-in
for python that pretends a GPU, and shellcheck."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from meprop_bench.gpu_proof.steps import plan, steps

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / ".ci" / "gpu-proof"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env=env)  # fmt: skip


def test_plan_prints_the_steps_from_any_directory_and_runs_nothing(tmp_path):
    done = run("--plan", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == plan(Path("OUTDIR")) + "\n"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [(), ("--frobnicate",)])
def test_no_outdir_is_a_usage_error(args):
    done = run(*args)
    assert done.returncode == 2 and done.stdout == ""
    assert "bash .ci/gpu-proof OUTDIR" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present: it would run")
@pytest.mark.parametrize("existing", [False, True])
def test_without_a_gpu_it_says_so_in_one_line_and_touches_nothing(tmp_path, existing):
    out = tmp_path / "out"
    if existing:
        out.mkdir()
        (out / "kept.txt").write_text("as it was")
    done = run(str(out))
    assert done.returncode == 2
    assert done.stdout == "" and done.stderr.count("\n") == 1
    assert done.stderr.startswith("gpu-proof: no CUDA GPU here")
    if existing:
        assert [p.name for p in out.iterdir()] == ["kept.txt"]
        assert (out / "kept.txt").read_text() == "as it was"
    else:
        assert not out.exists()


# Stands in for python: a GPU, three real step names with stand-in commands (one
# passes, one fails, one outlives its limit), anything else to the real interpreter.
FAKE_PYTHON = """#!/usr/bin/env bash
case "$*" in
  "-c import torch; print(torch.cuda.is_available())") echo True ;;
  "-m meprop_bench.gpu_proof versions") echo '{{}}' ;;
  "-m meprop_bench.gpu_proof steps "*)
    printf 'tests\\t6\\techo ran; true\\n'
    printf 't7-events-k8\\t6\\techo broke >&2; exit 3\\n'
    printf 't7-events-k32\\t6\\tsleep 60\\n' ;;
  *) exec {python} "$@" ;;
esac
"""


@pytest.fixture
def fake_gpu(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python"
    fake.write_text(FAKE_PYTHON.format(python=sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_a_failed_or_timed_out_step_does_not_stop_the_others(tmp_path, fake_gpu):
    out = tmp_path / "out"
    done = run(str(out), env=fake_gpu)
    assert done.returncode == 1  # a step failed
    record = [json.loads(line) for line in (out / "steps.jsonl").read_text().splitlines()]
    assert [(r["step"], r["exit"]) for r in record] == [
        ("tests", 0), ("t7-events-k8", 3), ("t7-events-k32", 124)]  # fmt: skip
    assert 500 <= record[2]["ms"] < 6000  # SIGTERM 5 s before the 6 s limit
    assert (out / "logs" / "tests.log").read_text() == "$ echo ran; true\nran\n"
    assert (out / "logs" / "t7-events-k8.log").read_text().endswith("broke\n")
    for name in ("versions.json", "nvidia-smi-q.txt", "plan.txt", "summary.md"):
        assert (out / name).is_file()
    assert (out / "plan.txt").read_text() == plan(out) + "\n"
    summary = (out / "summary.md").read_text()
    assert done.stdout.endswith(summary)
    assert f"# GPU proof: 1 of {len(steps(out))} steps passed" in summary
    assert "| t7-events-k32 | timed out |" in summary


def test_an_outdir_in_use_is_refused_before_anything_runs(tmp_path, fake_gpu):
    (tmp_path / "earlier.txt").write_text("a previous run")
    done = run(str(tmp_path), env=fake_gpu)
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "is not an empty folder" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "earlier.txt"]


NO_SHELLCHECK = "shellcheck is not installed (pip install -e '.[test]' brings it)"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason=NO_SHELLCHECK)
def test_the_scripts_pass_shellcheck():
    done = subprocess.run(["shellcheck", str(SCRIPT), str(ROOT / ".ci" / "bench"),
                           str(ROOT / ".ci" / "run")], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout
