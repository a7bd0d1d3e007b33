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
from meprop_bench.machine import machine_info


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


def write_new_json(path: str | os.PathLike[str], data: Any, force: bool = False) -> Path:
    """Write ``data`` as JSON to ``path``, refusing to replace an existing file unless
    ``force``. The file appears whole or not at all (written beside it, then renamed)."""
    path = Path(path)
    if path.exists() and not force:
        raise FileExistsError(f"{path} already exists; choose another path or pass --force")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path
