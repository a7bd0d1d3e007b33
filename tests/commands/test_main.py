"""The main job (python -m meprop_bench): its steps' wiring, with the sweep and the
training replaced by writers of small JSON files (the real ones take minutes)."""

from __future__ import annotations

import shlex
import sys

import pytest
from documents import bench_doc, full_sweep, training_doc, write

import meprop_bench.commands.run as job
import meprop_bench.harness.sweep as sweep_engine
from meprop_bench.commands.common import run_main
from meprop_bench.harness import estimate
from meprop_bench.harness.plugin import partial_notice
from meprop_bench.results.partial import recover_command

# A made-up machine for the estimate: the calibration that times this one takes seconds
# and is checked by tests/harness/test_estimate.py.
CALIBRATION = estimate.Calibration(
    flop_rate=20e9, call_s=2e-5, serial_call_s=1e-5, select_s=3e-9, step_s=8e-3,
    compiled=True, seconds=1.0,
)  # fmt: skip


@pytest.fixture
def steps(monkeypatch, plot_stand_ins):
    """Replace the sweep and the training; record what they were asked to do. The
    estimate's calibration is :data:`CALIBRATION`; the report's plots are drawn but
    saved as stand-ins (tests/plot_files.py)."""
    monkeypatch.setattr(estimate, "calibrate", lambda thread_count=None: CALIBRATION)
    calls = []

    def sweep(path, options):
        calls.append(("sweep", path.name, list(options)))
        write(path, bench_doc(full_sweep()[:3]))

    def train(path, experiment, force):
        calls.append(("train", path.name, experiment))
        write(path, training_doc(epochs=1, seeds=(0,)))

    monkeypatch.setattr(job, "run_sweep", sweep)
    monkeypatch.setattr(job, "run_training", train)
    return calls


def test_runs_the_sweep_the_training_and_the_report(tmp_path, steps, capsys):
    argv = ["--out-root", str(tmp_path), "--name", "q", "--meprop-widths", "64"]
    assert run_main(job.main, argv) == 0
    sweep = ["--meprop-preset", "quick", "--meprop-widths", "64", "--meprop-devices", "cpu"]
    assert steps == [("sweep", "bench.json", sweep),
                     ("train", "training.json", "quick")]  # fmt: skip
    out = tmp_path / "q"
    assert (out / "index.html").exists() and (out / "summary.md").exists()
    assert "bench.json" in (out / "summary.md").read_text()
    assert str((out / "index.html").resolve()) in capsys.readouterr().out


def test_refuses_an_existing_run_without_force(tmp_path, steps, capsys):
    argv = ["--out-root", str(tmp_path), "--name", "q"]
    assert run_main(job.main, argv) == 0
    steps.clear()
    capsys.readouterr()
    assert run_main(job.main, argv) == 2
    assert "already holds a report" in capsys.readouterr().err
    assert steps == []
    assert run_main(job.main, [*argv, "--force", "--skip-bench", "--skip-train"]) == 0


def test_skip_flags_and_nothing_to_report(tmp_path, steps, capsys):
    argv = ["--out-root", str(tmp_path), "--name", "q", "--skip-bench", "--skip-train"]
    assert run_main(job.main, argv) == 2
    assert "nothing to report" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # no empty folder left behind
    assert run_main(job.main, ["--out-root", str(tmp_path), "--name", "t", "--skip-bench"]) == 0
    assert [c[0] for c in steps] == ["train"]


def test_only_meprop_options_pass_through(tmp_path, steps, capsys):
    with pytest.raises(SystemExit) as exit:
        job.main(["--out-root", str(tmp_path), "--bogus"])
    assert exit.value.code == 2
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err
    assert steps == []


def test_says_so_when_the_suites_are_not_beside_the_package(tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_engine, "SUITES", tmp_path / "nowhere")
    with pytest.raises(job.MePropInputError, match="suites are not beside the package"):
        sweep_engine.run_sweep(tmp_path / "bench.json", [])


class KilledSweep:
    """A pytest child that printed the suites' partial-results line, then was killed."""

    def __init__(self, lines: list[str]) -> None:
        self.stdout = iter(lines)
        self.returncode = -9

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_a_killed_sweep_names_its_partial_file_and_the_recover_command(
    tmp_path, monkeypatch, capsys
):
    bench_json = tmp_path / "q" / "bench.json"
    partial = tmp_path / "q" / "bench.json.partial.jsonl"
    partial.parent.mkdir()
    partial.write_text('{"kind": "header"}\n')
    notice = partial_notice(partial, bench_json)
    lines = ["collected 3 items\n", "suites/a.py::test[x] PASSED [ 33%]\n", notice + "\n"]
    monkeypatch.setattr(sweep_engine.subprocess, "Popen", lambda *a, **kw: KilledSweep(lines))
    with pytest.raises(job.MePropInputError) as failed:
        sweep_engine.run_sweep(bench_json, [])
    message = str(failed.value)
    assert "pytest exit -9" in message and f"the finished cases are in {partial}" in message
    assert recover_command(partial, bench_json) in message
    assert notice in capsys.readouterr().err  # relayed as it came, before the failure


def test_the_steps_log_commands_that_can_be_pasted(tmp_path, monkeypatch, capsys):
    started = []

    def popen(cmd, **kwargs):
        started.append((cmd, kwargs))
        return KilledSweep([])

    monkeypatch.setattr(sweep_engine.subprocess, "Popen", popen)
    with pytest.raises(job.MePropInputError):
        sweep_engine.run_sweep(tmp_path / "my run" / "bench.json", ["--meprop-widths", "64"])
    monkeypatch.setattr(
        sweep_engine.subprocess, "run", lambda cmd, **kw: started.append((cmd, kw)) or Done()
    )
    sweep_engine.run_training(tmp_path / "my run" / "training.json", "quick", False)
    err = capsys.readouterr().err.splitlines()
    logged = [line for line in err if line.startswith(("sweep: ", "training: "))][:2]
    (sweep_cmd, sweep_kw), (train_cmd, _) = started
    assert logged[0] == f"sweep: cd {shlex.quote(str(sweep_kw['cwd']))} && {shlex.join(sweep_cmd)}"
    assert logged[1] == f"training: {shlex.join(train_cmd)}"
    assert sweep_cmd[0] == train_cmd[0] == sys.executable


class Done:
    returncode = 0


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--experiment", "bogus"], "--experiment: invalid choice: 'bogus'"),
        (["--meprop-ks", "0.01,abc"], "--meprop-ks"),
        (["--meprop-preset", "huge"], "unknown preset 'huge'"),
        (["--meprop-methods", "unified/nope"], "unified/nope"),
        (["--meprop-malloc", "fast"], "--meprop-malloc"),
        (["--meprop-widths"], "--meprop-widths: expected one argument"),
        (["--meprop-bogus", "1"], "unrecognized arguments: --meprop-bogus 1"),
        (["--meprop-widths", "64", "--meprop-ks", "100"], "k=100 is larger than every width"),
        (["--devices", "gpu"], "--devices: unknown device 'gpu'; use cpu, cuda or cuda:N"),
        (["--skip-bench", "--meprop-widths", "999"], "--meprop-widths applies to the sweep"),
        (["--skip-train", "--experiment", "paper"], "--experiment applies to the training"),
    ],
)
def test_every_option_is_checked_before_any_step(argv, message, tmp_path, steps, capsys):
    try:
        code = run_main(job.main, ["--out-root", str(tmp_path), *argv])
    except SystemExit as exit:  # argparse's usage error
        code = exit.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("error:") == 1
    assert steps == [] and list(tmp_path.iterdir()) == []


def test_a_sweep_that_cannot_be_collected_is_one_error_line_with_pytests_reason(capsys):
    # Whatever the checks before it miss: pytest's usage error, not an empty message.
    with pytest.raises(job.MePropInputError) as failed:
        sweep_engine.estimate_sweep(["--meprop-devices", "gpu"])
    assert str(failed.value) == (
        "the sweep's cases could not be collected: --meprop-devices: unknown device 'gpu'; "
        "use cpu, cuda or cuda:N"
    )
    assert capsys.readouterr().err == ""


def test_the_first_lines_say_what_it_will_measure_and_how_long(tmp_path, steps, capsys):
    argv = ["--out-root", str(tmp_path), "--name", "q", "--meprop-widths", "64",
            "--meprop-batches", "8", "--meprop-ks", "0.25"]  # fmt: skip
    assert run_main(job.main, argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("timing a calibration on this machine")
    assert err[1].startswith("will measure (1/2): ") and " benchmark cases on cpu, about " in err[1]
    assert err[2].startswith("will measure (2/2): 15 training runs of 5 epochs (quick set)")
    assert err[3].startswith("in all about ")

    def shown(line: str) -> float:
        return float(line.split("about ")[1].split(" min")[0])

    assert shown(err[3]) == shown(err[1]) + shown(err[2])  # the total is the parts' sum
    count = int(err[1].split(": ")[1].split()[0])
    assert count > 0
    sweep = next(c for c in steps if c[0] == "sweep")
    assert sweep[2][:2] == ["--meprop-preset", "quick"]
    assert sweep[2][-2:] == ["--meprop-devices", "cpu"]


def test_cuda_is_measured_beside_the_cpu_when_present(monkeypatch):
    monkeypatch.setattr(sweep_engine.torch.cuda, "is_available", lambda: True)
    assert sweep_engine.sweep_options([])[-2:] == ["--meprop-devices", "cpu,cuda"]
    assert sweep_engine.sweep_options([], "cpu")[-2:] == ["--meprop-devices", "cpu"]
    given = sweep_engine.sweep_options(["--meprop-devices", "cuda"])
    assert given.count("--meprop-devices") == 1 and given[-1] == "cuda"
    with pytest.raises(job.MePropInputError, match="--devices and --meprop-devices"):
        sweep_engine.sweep_options(["--meprop-devices", "cuda"], "cpu")
