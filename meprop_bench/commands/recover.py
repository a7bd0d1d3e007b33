"""``python -m meprop_bench.recover``: turn the JSON-lines results of an interrupted
sweep into a pytest-benchmark JSON file (what ``--benchmark-json`` would have written).

Every finished case is in the partial file; a last line cut off mid-write (the case in
flight when the run died) is dropped with a warning.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest_benchmark

from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import check_new_path, write_new_json


def read_partial(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """The header, the benchmarks, and the number of unreadable lines skipped."""
    path = Path(path)
    if not path.is_file():
        raise MePropInputError(f"{path}: no such file")
    header: dict[str, Any] | None = None
    benchmarks: dict[str, dict[str, Any]] = {}
    skipped = 0
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            skipped += 1
            continue
        if record.get("kind") == "header":
            header = record
        elif record.get("kind") == "benchmark":
            bench = record["benchmark"]
            benchmarks[bench["fullname"]] = bench  # a re-run case replaces the earlier one
    if header is None:
        raise MePropInputError(f"{path}: not a meprop-bench partial results file (no header)")
    return header, list(benchmarks.values()), skipped


def to_pytest_benchmark(header: dict[str, Any], benchmarks: list[dict[str, Any]]) -> dict:
    """The document pytest-benchmark writes with ``--benchmark-json``."""
    return {
        "machine_info": header["machine_info"],
        "commit_info": header["commit_info"],
        "benchmarks": benchmarks,
        "datetime": header["datetime"],
        "version": pytest_benchmark.__version__,
    }


def recover_command(partial: Path, out: Path | None = None) -> str:
    """The command that turns ``partial`` into pytest-benchmark JSON: into ``out`` (the
    run's --benchmark-json, which pytest-benchmark opened, empty, at the start; hence
    --force), else into OUT.json."""
    target = f"{shlex.quote(str(out))} --force" if out is not None else "OUT.json"
    return f"python -m meprop_bench.recover {shlex.quote(str(partial))} -o {target}"


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
    check_new_path(args.out, args.force)
    header, benchmarks, skipped = read_partial(args.partial)
    if skipped:
        print(f"warning: skipped {skipped} unreadable line(s) (a case cut off mid-write)",
              file=sys.stderr)  # fmt: skip
    out = write_new_json(args.out, to_pytest_benchmark(header, benchmarks), args.force)
    print(f"wrote {out}: {len(benchmarks)} benchmark(s)")
    return 0
