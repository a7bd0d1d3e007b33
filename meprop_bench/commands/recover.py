"""meprop-bench recover: turn the JSON-lines results of an interrupted
sweep into a pytest-benchmark JSON file (what ``--benchmark-json`` would have written).

Every finished case is in the partial file; a last line cut off mid-write (the case in
flight when the run died) is dropped with a warning.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import check_new_path, write_new_json
from meprop_bench.results.partial import read_partial, to_pytest_benchmark


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meprop-bench recover",
        description=__doc__.split("\n\n")[0],
        allow_abbrev=False,
    )
    parser.add_argument("partial", help="the .partial.jsonl file a sweep left behind")
    parser.add_argument("-o", "--out", required=True, help="pytest-benchmark JSON to write")
    parser.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = check_new_path(args.out, args.force)
    if out.resolve() == Path(args.partial).resolve():
        raise MePropInputError("--out is the partial file itself; give another path")
    header, benchmarks, skipped = read_partial(args.partial)
    if skipped:
        print(f"warning: skipped {skipped} unreadable line(s) (a case cut off mid-write, "
              "or a line that is no benchmark record)", file=sys.stderr)  # fmt: skip
    write_new_json(out, to_pytest_benchmark(header, benchmarks), args.force)
    print(f"wrote {out}: {len(benchmarks)} benchmark(s)")
    return 0
