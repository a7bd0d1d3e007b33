"""meprop-bench run: the main job, end to end.

1. the benchmark sweep (the quick preset unless --meprop-preset names another; the CPU,
   and CUDA beside it when a GPU is present, unless --devices or --meprop-devices say
   otherwise): ``pytest suites --benchmark-only`` into ``<out-root>/<name>/bench.json``,
   with a progress bar per test;
2. the quick training set (``meprop-bench train --experiment quick``) into
   ``<out-root>/<name>/training.json``, with its own progress bar;
3. the report from both, in the same directory (see ``meprop-bench report``).

Its first lines say what it will measure and how long that should take here: a
calibration timed on this machine just before (a few seconds) costs every case, so
the estimate follows this CPU and its load; a first run says the native kernels will be
compiled. A sweep with unstable cases ends with a ``warning:`` line naming them.
``--skip-bench`` / ``--skip-train`` leave a step out (an existing bench.json or
training.json in the directory is then reused); ``--meprop-*`` options pass through to
the sweep.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.commands.common import folder_name, reports_root
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.estimate import minutes, say_minutes
from meprop_bench.harness.sweep import (
    check_sweep_options,
    estimate_sweep,
    estimate_training,
    run_sweep,
    run_training,
    sweep_options,
)
from meprop_bench.report.build import REPORT_FILES, RUN_FILES, build_report, ensure_free
from meprop_bench.training.experiments import EXPERIMENTS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench run",
        description=__doc__.split("\n\n")[0],
        epilog="Any --meprop-* option of the suites (e.g. --meprop-widths 2048, "
        "--meprop-preset paper) is passed to the sweep. Steps: "
        + " ".join(__doc__.split("\n\n")[1].split()),
    )
    parser.add_argument(
        "--name", type=folder_name, default="latest", help="report name (default: %(default)s)"
    )
    parser.add_argument(
        "--out-root", type=Path, default=reports_root(), help="(default: %(default)s)"
    )
    parser.add_argument(
        "--experiment", choices=EXPERIMENTS, help="training set to run (default: quick)"
    )
    parser.add_argument(
        "--devices",
        metavar="LIST",
        help="devices the sweep measures, e.g. cpu or cpu,cuda (default: the CPU, and CUDA "
        "beside it when a GPU is present)",
    )
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    parser.add_argument("--skip-bench", action="store_true", help="do not run the sweep")
    parser.add_argument("--skip-train", action="store_true", help="do not train")
    return parser


def refuse_unused(args: argparse.Namespace, options: Sequence[str]) -> None:
    """An option for a step that is left out is a mistake, not something to ignore."""
    if args.skip_bench and (options or args.devices):
        option = options[0].split("=", 1)[0] if options else "--devices"
        raise MePropInputError(f"{option} applies to the sweep, which --skip-bench leaves out")
    if args.skip_train and args.experiment is not None:
        raise MePropInputError(
            "--experiment applies to the training, which --skip-train leaves out"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:  # a bad option is a usage error, as argparse's own are
        checked = check_sweep_options(extra)
        refuse_unused(args, checked)
        options = [] if args.skip_bench else sweep_options(checked, args.devices)
    except MePropInputError as err:
        parser.error(str(err))
    experiment = args.experiment or "quick"
    out_dir = args.out_root / args.name
    ensure_free(out_dir, args.force, (*REPORT_FILES, *RUN_FILES))
    if not (args.skip_bench and args.skip_train):
        print("timing a calibration on this machine for the estimate (a few seconds)...",
              file=sys.stderr)  # fmt: skip
    steps = [] if args.skip_bench else [estimate_sweep(options)]
    steps += [] if args.skip_train else [estimate_training(experiment)]
    for number, step in enumerate(steps, 1):
        print(f"will measure ({number}/{len(steps)}): {step.line()}", file=sys.stderr)
    if len(steps) > 1:
        total = sum(minutes(step.seconds) for step in steps)
        print(f"in all {say_minutes(total)} (the parts above, from the calibration just "
              "now: a busier machine takes longer); then the report", file=sys.stderr)  # fmt: skip
    bench_json, training_json = out_dir / "bench.json", out_dir / "training.json"
    if not steps and not (bench_json.exists() or training_json.exists()):
        raise MePropInputError(f"nothing to report: no bench.json or training.json in {out_dir}")
    out_dir.mkdir(parents=True, exist_ok=True)
    if not args.skip_bench:
        run_sweep(bench_json, options)
    if not args.skip_train:
        run_training(training_json, experiment, args.force)
    inputs = [p for p in (bench_json, training_json) if p.exists()]
    report = build_report(inputs, out_dir, force=True, progress=lambda m: print(m, file=sys.stderr))
    print(f"report: {report.index.resolve()}")
    print(f"        {report.summary.resolve()}")
    return 0
