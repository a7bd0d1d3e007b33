"""Result files: every one carries a schema name and version, the machine, the
command line and the time it was made, and none overwrites an earlier result."""

from __future__ import annotations

import datetime as dt
import json
import os
import sys
from pathlib import Path
from typing import Any

from meprop_bench import __version__
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.machine import machine_info


def envelope(
    schema: str, version: int, *, machine: dict[str, Any] | None = None, **payload: Any
) -> dict[str, Any]:
    """Wrap ``payload`` with what a reader needs to trust and reproduce it.

    ``machine`` is the :func:`machine_info` taken while the work ran (inside its
    thread setting, so the thread counts it records are the ones used); by default,
    taken now.
    """
    return {
        "schema": schema,
        "schema_version": version,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "meprop_bench_version": __version__,
        "argv": list(sys.argv),
        "machine": machine_info() if machine is None else machine,
        **payload,
    }


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
