"""``python -m meprop_bench``: the main job, end to end.

1. the quick benchmark sweep: ``pytest suites --benchmark-only`` into
   ``<out-root>/<name>/bench.json``, with a progress bar per test;
2. the quick training set: ``python -m meprop_bench.train --experiment quick`` into
   ``<out-root>/<name>/training.json`` (the trainer shows its own progress);
3. the report from both, in the same directory (see ``python -m meprop_bench.report``).

``--skip-bench`` / ``--skip-train`` leave a step out (an existing bench.json or
training.json in the directory is then reused); ``--meprop-*`` options pass through to
the sweep. The kernel check that used to run here is ``python -m meprop_bench.check``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from tqdm import tqdm

import meprop_bench
from meprop_bench.commands.common import reports_root
from meprop_bench.core import allocator
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.grid import apply_overrides, select_preset
from meprop_bench.harness.options import grid_overrides
from meprop_bench.harness.plugin import PARTIAL_NOTICE, pytest_addoption
from meprop_bench.report.build import REPORT_FILES, RUN_FILES, build_report, ensure_free
from meprop_bench.training.experiments import EXPERIMENTS

REPO_ROOT = Path(meprop_bench.__file__).resolve().parent.parent
SUITES = REPO_ROOT / "suites"
# pytest -v prints one line per test ending in its outcome and the share done.
RESULT_LINE = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS)")
COLLECTED = re.compile(r"collected (\d+) items?")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench run",
        description=__doc__.split("\n\n")[0],
        epilog="Any --meprop-* option of the suites (e.g. --meprop-widths 2048, "
        "--meprop-preset paper) is passed to the sweep. Steps: "
        + " ".join(__doc__.split("\n\n")[1].split()),
    )
    parser.add_argument("--name", default="latest", help="report name (default: %(default)s)")
    parser.add_argument(
        "--out-root", type=Path, default=reports_root(), help="(default: %(default)s)"
    )
    parser.add_argument(
        "--experiment", choices=EXPERIMENTS, help="training set to run (default: quick)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    parser.add_argument("--skip-bench", action="store_true", help="do not run the sweep")
    parser.add_argument("--skip-train", action="store_true", help="do not train")
    return parser


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


def sweep_options(extra: Sequence[str]) -> list[str]:
    """The ``--meprop-*`` options (with their values) among unrecognised arguments,
    checked as the suites check them."""
    try:
        found, unknown = _SuiteOptions().parser.parse_known_args(extra)
    except argparse.ArgumentError as err:
        raise MePropInputError(str(err)) from None
    if unknown:
        raise MePropInputError(f"unrecognised argument {unknown[0]!r} (see --help)")
    overrides = grid_overrides(lambda dest: getattr(found, dest))
    apply_overrides(select_preset(found.meprop_preset), overrides).kernels()
    if found.meprop_malloc not in allocator.MODES:
        raise MePropInputError(
            f"--meprop-malloc: unknown mode {found.meprop_malloc!r}; choose one of: "
            + ", ".join(allocator.MODES)
        )
    return list(extra)


def refuse_unused(args: argparse.Namespace, options: Sequence[str]) -> None:
    """An option for a step that is left out is a mistake, not something to ignore."""
    if args.skip_bench and options:
        option = options[0].split("=", 1)[0]
        raise MePropInputError(f"{option} applies to the sweep, which --skip-bench leaves out")
    if args.skip_train and args.experiment is not None:
        raise MePropInputError(
            "--experiment applies to the training, which --skip-train leaves out"
        )


def run_sweep(bench_json: Path, options: Sequence[str]) -> None:
    """Run the suites into ``bench_json``, a progress bar advancing per test."""
    if not SUITES.is_dir():
        raise MePropInputError(
            f"the benchmark suites are not beside the package ({SUITES} is missing): run "
            "from a source checkout installed with pip install -e ., or pass --skip-bench"
        )
    cmd = [sys.executable, "-m", "pytest", "suites", "--benchmark-only", "-v", "-p",
           "no:cacheprovider", "--benchmark-json", str(bench_json.resolve()), *options]  # fmt: skip
    if not any(o.startswith("--meprop-preset") for o in options):
        cmd[5:5] = ["--meprop-preset", "quick"]
    print(f"sweep: {' '.join(cmd[1:])}", file=sys.stderr)
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
    naming the partial-results file, relayed at once (a killed job prints nothing after)."""

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
    print(f"training: {' '.join(cmd[1:])}", file=sys.stderr)
    code = subprocess.run(cmd, stdin=subprocess.DEVNULL, check=False).returncode
    if code != 0:
        raise MePropInputError(f"training failed (exit {code}); its message is above")


def main(argv: Sequence[str] | None = None) -> int:
    args, extra = build_parser().parse_known_args(argv)
    options = sweep_options(extra)
    refuse_unused(args, options)
    out_dir = args.out_root / args.name
    ensure_free(out_dir, args.force, (*REPORT_FILES, *RUN_FILES))
    out_dir.mkdir(parents=True, exist_ok=True)
    bench_json, training_json = out_dir / "bench.json", out_dir / "training.json"
    if not args.skip_bench:
        run_sweep(bench_json, options)
    if not args.skip_train:
        run_training(training_json, args.experiment or "quick", args.force)
    inputs = [p for p in (bench_json, training_json) if p.exists()]
    if not inputs:
        raise MePropInputError(f"nothing to report: no bench.json or training.json in {out_dir}")
    report = build_report(inputs, out_dir, force=True, progress=lambda m: print(m, file=sys.stderr))
    print(f"report: {report.index.resolve()}")
    print(f"        {report.summary.resolve()}")
    return 0
