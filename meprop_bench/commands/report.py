"""meprop-bench report: turn benchmark and training JSON into a report.

Inputs are pytest-benchmark files (``pytest suites --benchmark-json``), trainer files
(``meprop-bench train``) and model-step files (``meprop-bench model --out``), given as
files or directories searched for
``*.json``; with none, reports/runs/ and .benchmarks/ are searched. The report goes to
``<out-root>/<name>/`` and never replaces another report unless --force.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.commands.common import folder_name, reports_root
from meprop_bench.errors import MePropInputError
from meprop_bench.report.build import build_report

DEFAULT_SEARCH = (reports_root() / "runs", Path(".benchmarks"))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench report",
        description=__doc__.split("\n\n")[0],
        epilog="Writes plots/*.png and *.svg, summary.md and index.html (the answer first: "
        "each method's best strategy per shape and device, the training verdicts; then the "
        "plots and the detail tables), speedups.csv, best_strategies.csv and "
        "training_runs.csv. Bad input is a one-line error and exit status 2.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        metavar="PATH",
        help="JSON files or directories to search (default: "
        + " and ".join(f"{p}/" for p in DEFAULT_SEARCH)
        + ", those that exist)",
    )
    parser.add_argument(
        "--name", type=folder_name, default="latest", help="report name (default: %(default)s)"
    )
    parser.add_argument(
        "--out-root", type=Path, default=reports_root(), help="(default: %(default)s)"
    )
    parser.add_argument("--force", action="store_true", help="replace an existing report")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    paths = args.paths or [p for p in DEFAULT_SEARCH if p.is_dir()]
    if not paths:
        raise MePropInputError(
            "no inputs given, and none of the default places exist ("
            + ", ".join(f"{p}/" for p in DEFAULT_SEARCH)
            + "); pass JSON files or directories"
        )
    report = build_report(
        paths,
        args.out_root / args.name,
        force=args.force,
        progress=lambda m: print(m, file=sys.stderr),
    )
    print(f"report written to {report.index} (and {report.summary.name})")
    return 0
