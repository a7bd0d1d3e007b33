"""The main job's engine: check the suites' options, estimate the work, run the sweep
in a child pytest with a progress bar, then the training set, each into the report
directory. ``meprop-bench run`` is its command."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

import meprop_bench
from meprop_bench.core import allocator
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.estimate import Estimate, sweep_estimate, training_estimate
from meprop_bench.harness.grid import apply_overrides, parse_devices, select_preset
from meprop_bench.harness.options import PRESET_ALIAS, grid_overrides
from meprop_bench.harness.plugin import PARTIAL_NOTICE, grid_of, pytest_addoption

REPO_ROOT = Path(meprop_bench.__file__).resolve().parent.parent
SUITES = REPO_ROOT / "suites"
# pytest -v prints one line per test ending in its outcome and the share done.
RESULT_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
COLLECTED = re.compile(r"collected (\d+) items?")


class _SuiteOptions:
    """The suites' options as the plugin declares them (its ``pytest_addoption`` fills
    this instead of pytest's parser), so they are checked before any step runs."""

    def __init__(self) -> None:
        self.parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False,
                                              exit_on_error=False)  # fmt: skip
        pytest_addoption(self)

    def getgroup(self, *args: object, **kwargs: object) -> _SuiteOptions:
        return self

    def addoption(self, *names: str, **kwargs: object) -> None:
        self.parser.add_argument(*names, **kwargs)


def sweep_options(checked: Sequence[str], devices: str | None = None) -> list[str]:
    """The sweep's options: ``checked`` (what :func:`check_sweep_options` returned), the
    quick preset unless one is named, and ``--meprop-devices`` from ``devices`` (None:
    every device here, CUDA beside the CPU when a GPU is present) unless ``checked``
    names them."""
    options = list(checked)
    if devices is not None:
        parse_devices(devices, "--devices")
    named = {option.split("=", 1)[0] for option in options}
    if not named & {"--meprop-preset", PRESET_ALIAS}:
        options = ["--meprop-preset", "quick", *options]
    if "--meprop-devices" in named:
        if devices is not None:
            raise MePropInputError("--devices and --meprop-devices both set the devices; give one")
    else:
        options += ["--meprop-devices", devices or default_devices()]
    return options


def default_devices() -> str:
    """What the main job measures by default: the CPU, and CUDA beside it when present."""
    return "cpu,cuda" if torch.cuda.is_available() else "cpu"


def check_sweep_options(extra: Sequence[str]) -> list[str]:
    """The ``--meprop-*`` options (with their values) among unrecognised arguments,
    checked as the suites check them."""
    try:
        found, unknown = _SuiteOptions().parser.parse_known_args(extra)
    except argparse.ArgumentError as err:
        raise MePropInputError(str(err)) from None
    if unknown:
        raise MePropInputError(f"unrecognized arguments: {' '.join(unknown)}")
    overrides = grid_overrides(lambda dest: getattr(found, dest))
    apply_overrides(select_preset(found.meprop_preset), overrides).check()
    if found.meprop_malloc not in allocator.MODES:
        raise MePropInputError(
            f"--meprop-malloc: unknown mode {found.meprop_malloc!r}; choose one of: "
            + ", ".join(allocator.MODES)
        )
    return list(extra)


class _Collected:
    """Collects the sweep's cases in this process (no test runs) to count and cost them."""

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        grid = grid_of(session.config)
        self.items = list(session.items)
        self.calls = grid.rounds + grid.warmup + 1  # the case's first call is untimed too
        self.devices = grid.devices


def estimate_sweep(options: Sequence[str]) -> Estimate:
    """The sweep's cases, counted by collecting them as the sweep will, and their time
    on this machine now (:func:`~meprop_bench.harness.estimate.sweep_estimate`)."""
    found = _Collected()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        code = pytest.main([str(SUITES), "--co", "-q", "-p", "no:cacheprovider", *options],
                           plugins=[found])  # fmt: skip
    if code != 0:
        lines = [line.strip() for line in printed.getvalue().splitlines() if line.strip()]
        errors = [line.removeprefix("ERROR: ") for line in lines if line.startswith("ERROR: ")]
        why = (errors or lines or [f"pytest exit {code}"])[-1]
        raise MePropInputError(f"the sweep's cases could not be collected: {why}")
    return sweep_estimate(found.items, found.calls, found.devices)


def estimate_training(experiment: str) -> Estimate:
    """The training set's runs, timed from a calibrated training step here."""
    return training_estimate(experiment)


def run_sweep(bench_json: Path, options: Sequence[str]) -> None:
    """Run the suites into ``bench_json``, a progress bar advancing per test."""
    if not SUITES.is_dir():
        raise MePropInputError(
            f"the benchmark suites are not beside the package ({SUITES} is missing): run "
            "from a source checkout installed with pip install -e ., or pass --skip-bench"
        )
    cmd = [sys.executable, "-m", "pytest", "suites", "--benchmark-only", "-v", "-p",
           "no:cacheprovider", "--benchmark-json", str(bench_json.resolve()), *options]  # fmt: skip
    print(f"sweep: cd {shlex.quote(str(REPO_ROOT))} && {shlex.join(cmd)}", file=sys.stderr)
    output = SweepOutput()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # lines as they come, for the bar
    try:
        with subprocess.Popen(
            cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, env=env,
        ) as proc:  # fmt: skip
            output.follow(proc.stdout)
    except KeyboardInterrupt:
        print(f"sweep interrupted; {output.recover_hint()}", file=sys.stderr)
        raise
    if proc.returncode != 0:
        sys.stderr.write("".join(output.lines[-40:]))
        raise MePropInputError(
            f"the benchmark sweep failed (pytest exit {proc.returncode}); {output.recover_hint()}"
        )
    print(f"sweep: {output.outcome()} -> {bench_json}", file=sys.stderr)


class SweepOutput:
    """What the sweep printed: a progress bar advancing per test, and the suites' line
    naming the partial-results file and their noise warning, relayed at once (a killed job
    prints nothing after)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.partial: re.Match[str] | None = None

    def follow(self, stream: Iterable[str]) -> None:
        with tqdm(desc="benchmarks", unit="test", file=sys.stderr, mininterval=1) as bar:
            for line in stream:
                self.lines.append(line)
                if found := COLLECTED.search(line):
                    bar.total = int(found.group(1))
                    bar.refresh()
                elif found := RESULT_LINE.match(line):
                    bar.set_postfix_str(found.group(1).split("::")[-1][-50:], refresh=False)
                    bar.update()
                elif found := PARTIAL_NOTICE.match(line.rstrip("\n")):
                    self.partial = found
                    bar.write(found.group(0), file=sys.stderr)
                elif line.startswith("warning: "):  # the suites' noise warning
                    bar.write(line.rstrip("\n"), file=sys.stderr)

    def outcome(self) -> str:
        summary = [line for line in self.lines if line.startswith("=") and " in " in line]
        return summary[-1].strip("= \n") if summary else "done"

    def recover_hint(self) -> str:
        """Where an interrupted sweep's finished cases are, and how to recover them."""
        if self.partial is None or not Path(self.partial["path"]).exists():
            return "no finished case was saved"
        return (
            f"the finished cases are in {self.partial['path']}; recover them with "
            f"{self.partial['command']} (then --skip-bench --force reports from it)"
        )


def run_training(training_json: Path, experiment: str, force: bool) -> None:
    """Run the trainer's experiment set into ``training_json`` (its own progress bar)."""
    cmd = [sys.executable, "-m", "meprop_bench.train", "--experiment", experiment,
           "--out", str(training_json)] + (["--force"] if force else [])  # fmt: skip
    print(f"training: {shlex.join(cmd)}", file=sys.stderr)
    code = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False).returncode
    if code != 0:
        raise MePropInputError(f"training failed (exit {code}); its message is above")
