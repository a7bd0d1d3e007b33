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
    """The header, the benchmarks, and the number of unreadable lines skipped (a line
    cut off mid-write, or one that is not a benchmark record). A file whose first line
    is not a sweep's header (pytest-benchmark or training JSON, a binary file) is a
    MePropInputError."""
    path = Path(path)
    lines = _lines(path)
    header = _record(lines[0]) if lines else None
    if not (
        isinstance(header, dict)
        and header.get("kind") == "header"
        and isinstance(header.get("machine_info"), dict)
    ):
        raise _not_partial(path, "its first line is not the header a sweep writes")
    benchmarks: dict[str, dict[str, Any]] = {}
    skipped = 0
    for line in lines[1:]:
        record = _record(line)
        is_bench = isinstance(record, dict) and record.get("kind") == "benchmark"
        bench = record.get("benchmark") if is_bench else None
        if isinstance(bench, dict) and "fullname" in bench:
            benchmarks[bench["fullname"]] = bench  # a re-run case replaces the earlier one
        else:
            skipped += 1
    return header, list(benchmarks.values()), skipped


def _lines(path: Path) -> list[str]:
    """The non-blank lines of ``path``, or a MePropInputError saying why there are none."""
    if path.is_dir():
        raise MePropInputError(f"{path} is a directory; give the .partial.jsonl file in it")
    if not path.is_file():
        raise MePropInputError(f"{path}: no such file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise _not_partial(path, "not text") from None
    except OSError as err:
        raise MePropInputError(f"{path}: cannot be read ({err.strerror})") from None
    return [line for line in text.splitlines() if line.strip()]


def _record(line: str) -> Any:
    """The JSON value of one line; None when it does not parse."""
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        return None


def _not_partial(path: Path, why: str) -> MePropInputError:
    return MePropInputError(f"{path}: not a meprop-bench partial results file ({why})")


def to_pytest_benchmark(header: dict[str, Any], benchmarks: list[dict[str, Any]]) -> dict:
    """The document pytest-benchmark writes with ``--benchmark-json``."""
    return {
        "machine_info": header["machine_info"],
        "commit_info": header.get("commit_info", {}),
        "benchmarks": benchmarks,
        "datetime": header.get("datetime"),
        "version": pytest_benchmark.__version__,
    }


def recover_command(partial: Path, out: Path | None = None) -> str:
    """The command that turns ``partial`` into pytest-benchmark JSON: into ``out`` (the
    run's --benchmark-json, which pytest-benchmark opened, empty, at the start; hence
    --force), else into OUT.json."""
    target = f"{shlex.quote(str(out))} --force" if out is not None else "OUT.json"
    return f"meprop-bench recover {shlex.quote(str(partial))} -o {target}"
