"""Result files: every one carries a schema name and version, the machine, the
command line and the time it was made, and none overwrites an earlier result; and the
one place that finds result files ("file, directory or glob") and reads them."""

from __future__ import annotations

import datetime as dt
import glob
import json
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from meprop_bench import __version__
from meprop_bench.errors import MePropInputError
from meprop_bench.results.kinds import BENCHMARK
from meprop_bench.results.machine import machine_info
from meprop_bench.results.schema import Schema

# Directories a search for result files passes over.
SKIP_DIRS = frozenset({"profiles", ".git", "__pycache__", "node_modules"})


def envelope(schema: Schema, *, machine: dict[str, Any] | None = None, **payload: Any) -> dict:
    """Wrap ``payload`` with what a reader needs to trust and reproduce it, checked
    against ``schema`` (a field it lacks or does not list is a bug in the writer).

    ``machine`` is the :func:`machine_info` taken while the work ran (inside its
    thread setting, so the thread counts it records are the ones used); by default,
    taken now.
    """
    doc = {
        "schema": schema.name,
        "schema_version": schema.version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "meprop_bench_version": __version__,
        "argv": list(sys.argv),
        "machine": machine_info() if machine is None else machine,
        **payload,
    }
    unknown = set(payload) - {f.name for f in schema.fields}
    try:
        if unknown:
            raise MePropInputError(f"fields {sorted(unknown)} are not in the schema")
        schema.check(json.loads(json.dumps(doc, default=str)))
    except MePropInputError as err:
        raise RuntimeError(f"bug: a {schema.name} document breaks its schema: {err}") from None
    return doc


def read_json(path: Path) -> Any:
    """The parsed JSON of ``path``; a missing or unparsable file is a MePropInputError."""
    if not path.exists():
        raise MePropInputError(f"{path}: no such file or directory")
    try:
        return json.loads(path.read_text())
    except UnicodeDecodeError:
        raise MePropInputError(f"{path}: not a JSON file (not text)") from None
    except json.JSONDecodeError as err:
        raise MePropInputError(f"{path}: not a JSON file ({err})") from None
    except OSError as err:
        raise MePropInputError(f"{path}: cannot be read ({err.strerror})") from None


def read_result(path: str | os.PathLike[str], schema: Schema) -> dict[str, Any]:
    """A result file of kind ``schema``, checked; anything else is a MePropInputError
    naming the file and the first field that is wrong."""
    path = Path(path)
    doc = read_json(path)
    schema.check(doc, where=str(path))
    return doc


def read_benchmarks(path: Path) -> dict[str, Any]:
    """A pytest-benchmark JSON file (``machine_info`` and a ``benchmarks`` list), of a
    ``meprop-bench/benchmark`` version this package knows when it names one (files from
    other pytest-benchmark suites name none and are read as they are)."""
    doc = read_json(path)
    if not (
        isinstance(doc, dict)
        and isinstance(doc.get("machine_info"), dict)
        and isinstance(doc.get("benchmarks"), list)
    ):
        raise MePropInputError(
            f"{path} is not a pytest-benchmark JSON file "
            "(expected 'machine_info' and a 'benchmarks' list)"
        )
    version = doc["machine_info"].get("meprop_schema_version", 1)
    if not (isinstance(version, int) and BENCHMARK.oldest <= version <= BENCHMARK.version):
        raise MePropInputError(
            f"{path}: {BENCHMARK.name} v{version!r}; this meprop-bench reads "
            f"v{BENCHMARK.oldest}..v{BENCHMARK.version} (upgrade it to read this file)"
        )
    return doc


def json_files(directory: Path) -> list[Path]:
    """Every ``*.json`` under ``directory``, sorted, passing over :data:`SKIP_DIRS`."""
    found = []
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found.extend(Path(root, f) for f in sorted(files) if f.endswith(".json"))
    return found


def expand(specs: Iterable[str | os.PathLike[str]]) -> list[tuple[Path, list[Path]]]:
    """Each spec with the JSON files it names: a file names itself, a directory every
    ``*.json`` under it, and a spec that is neither is a glob pattern (quoted on the
    command line), naming its matches (each a file or a directory, expanded likewise).
    A spec that names nothing gets an empty list: its caller says what it expected."""
    out = []
    for spec in specs:
        path = Path(spec)
        if path.exists():
            matches = [path]
        else:
            matches = [Path(p) for p in sorted(glob.glob(str(spec), recursive=True))]
        files: list[Path] = []
        for match in matches:
            files.extend(json_files(match) if match.is_dir() else [match])
        out.append((path, files))
    return out


def check_new_path(path: str | os.PathLike[str], force: bool = False) -> Path:
    """``path`` as a Path, if :func:`write_new_json` can write there: call it before the
    work whose result goes there. A directory, or a parent that is a file, is a
    MePropInputError; an existing file without ``force``, a FileExistsError."""
    path = Path(path)
    if path.is_dir():
        raise MePropInputError(f"{path} is a directory; give the path of a file")
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; choose another path or pass --force")
    parent = next((p for p in path.parents if p.exists()), None)  # the nearest that exists
    if parent is not None and not parent.is_dir():
        raise MePropInputError(f"cannot write {path}: {parent} is not a directory")
    return path


def write_new_json(path: str | os.PathLike[str], data: Any, force: bool = False) -> Path:
    """Write ``data`` as JSON to ``path`` (checked by :func:`check_new_path`). The file
    appears whole or not at all: written beside it, then renamed, the temporary removed
    whatever happens."""
    path = check_new_path(path, force)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
