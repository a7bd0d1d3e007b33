"""meprop-bench profile: where the time of one benchmark case goes.

One case, with the suites' parameters and inputs, runs over and over for ``--duration``
seconds under torch.profiler (an operator table by category, and a Chrome trace), then
twice more in a child process under ``py-spy record`` (a flame graph and a speedscope
profile). Everything lands in ``<out-root>/<name>/profiles/<case id>/``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.commands.common import folder_name, reports_root
from meprop_bench.core.kernels import KERNELS, METHODS
from meprop_bench.harness.cases import GRAD_SOURCES, Case
from meprop_bench.harness.options import (
    add_case_options,
    add_threads_option,
    case_widths,
    positive_float,
    resolve_device,
)
from meprop_bench.profiling.categories import CATEGORIES
from meprop_bench.profiling.runner import (
    FILES,
    WINDOW,
    make_step,
    profile_case,
    profile_dir,
    serve,
)
from meprop_bench.results.machine import threads

EPILOG = (
    f"""\
outputs, in <out-root>/<name>/profiles/<case id>/:
  ops.csv, ops.json   torch.profiler operators: category, calls, self and total time, share
  categories.csv      the backward's time by category (also in ops.json and profile.json)
  trace.json          Chrome trace of the first {WINDOW} profiled iterations
                      (open in chrome://tracing or https://ui.perfetto.dev)
  flame.svg           py-spy flame graph (open in a browser; the workload is under `serve`)
  speedscope.json     py-spy profile for https://www.speedscope.app
  profile.json        manifest: the case, duration, iterations, files, py-spy status

categories (each operator counts toward the category of the kernel-level call it is in):
"""
    + "\n".join(f"  {name:<16}{text}" for name, text in CATEGORIES.items())
    + """

py-spy needs permission to ptrace the child it starts. When it cannot, a message says
how to allow it, the torch.profiler files are still written, and the exit status is 0;
profile.json records whether py-spy ran. Exit status 2: a bad argument or an existing
profile directory without --force."""
)


def build_parser() -> argparse.ArgumentParser:
    """The command line: the suites' case parameters, then the profiling options."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench profile",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_case_options(parser, k=0.01)
    case = parser.add_argument_group("what is timed")
    case.add_argument(
        "--method",
        default="unified",
        choices=METHODS,
        help="backward method (default: %(default)s)",
    )
    case.add_argument(
        "--strategy",
        help="product strategy (default: the method's default); known: "
        + ", ".join(k.name for k in KERNELS.values()),
    )
    case.add_argument(
        "--grads",
        default="gaussian",
        choices=GRAD_SOURCES,
        help="the inputs (default: %(default)s)",
    )
    run = parser.add_argument_group("profiling")
    run.add_argument(
        "--duration",
        type=positive_float,
        default=5.0,
        help="seconds each of the three profiles runs the case (default: %(default)s)",
    )
    add_threads_option(run)
    run.add_argument("--native", action="store_true", help="py-spy: show ATen/MKL frames too")
    run.add_argument("--no-py-spy", action="store_true", help="torch.profiler only")
    run.add_argument(
        "--py-spy", default="py-spy", metavar="EXE", help="py-spy executable (default: %(default)s)"
    )
    run.add_argument(
        "--name",
        type=folder_name,
        default="latest",
        help="report directory under --out-root (default: %(default)s)",
    )
    run.add_argument(
        "--out-root",
        default=reports_root(),
        type=Path,
        help="root of the reports (default: %(default)s)",
    )
    run.add_argument("--force", action="store_true", help="replace an existing profile")
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def case_from_args(args: argparse.Namespace) -> Case:
    """The Case the arguments name, validated exactly as the suites validate theirs."""
    device = str(resolve_device(args.device, "--device"))
    d_in, n = case_widths(args)
    return Case.make(args.method, args.strategy, args.batch, d_in, n, args.k, args.dtype,
                     device, args.grads)  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    case = case_from_args(args)
    if args.worker:  # the child py-spy records
        step = make_step(case)
        with threads(args.threads):
            serve(step, args.duration)
        return 0
    out_dir = profile_dir(args.out_root, args.name, case)
    manifest, summary = profile_case(
        case, out_dir, force=args.force, duration=args.duration, thread_count=args.threads,
        py_spy=None if args.no_py_spy else args.py_spy, native=args.native,
    )  # fmt: skip
    print(summary)
    if not manifest["py_spy"]["ran"]:
        print(f"py-spy: {manifest['py_spy']['message']}", file=sys.stderr)
    print(f"wrote {out_dir}/ ({', '.join([*manifest['files'].values(), FILES['manifest']])})")
    return 0
