"""The partial results of a sweep: one JSON line per finished case, appended as it
finishes, so an interrupted sweep loses only the case in flight; read back here into
the document pytest-benchmark writes with ``--benchmark-json``."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest_benchmark

from meprop_bench.errors import MePropInputError


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
    return f"meprop-bench recover {shlex.quote(str(partial))} -o {target}"
