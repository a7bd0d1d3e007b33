"""The journal of a training set in progress: one JSON line per finished run, next to the
result file, so an interrupted set resumes (``--resume``) without losing or repeating a
finished run.

The first line is a header naming the set (its runs' keys, the data and the device); a
resume must ask for the same set. Each further line is ``{"key": ..., "run": ...}``,
written whole, flushed and synced by the one process that writes the journal; a last
line cut short by a crash is dropped (that run trains again) and a key met twice keeps
its first run: a resume rewrites the journal clean before it appends. The command
deletes the journal once the result file is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

from meprop_bench.errors import MePropInputError

KIND = "meprop-bench/training-journal"


def journal_path(out: Path) -> Path:
    """Where the journal of the result file ``out`` lives."""
    return out.with_name(f"{out.stem}.journal.jsonl")


def run_key(config: Any) -> str:
    """A run's identity in the journal: its configuration (a dataclass) as sorted JSON."""
    return json.dumps(asdict(config), sort_keys=True)


class Journal:
    """Finished runs of one set, on disk; :attr:`done` maps run keys to run records."""

    def __init__(self, path: Path, done: dict[str, dict[str, Any]]) -> None:
        self.path = path
        self.done = done

    @classmethod
    def open(cls, path: Path, header: dict[str, Any], *, resume: bool) -> Journal:
        """The journal at ``path`` for the set ``header`` describes: a new one, or with
        ``resume`` the runs an interrupted set finished. An existing journal without
        ``resume``, or one written for another set, is a MePropInputError."""
        header = {"kind": KIND, **header}
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_lines(path, [header])
            return cls(path, {})
        if not resume:
            raise MePropInputError(
                f"{path} holds an interrupted set's finished runs; pass --resume to continue "
                "it, or delete the file to start over"
            )
        found, done = _read(path)
        if found != header:
            raise MePropInputError(
                f"{path} was written for another set of runs ({_difference(found, header)}); "
                "resume with the options it was started with (its finished runs are kept), "
                "or delete it"
            )
        _write_lines(path, [header, *({"key": k, "run": r} for k, r in done.items())])
        return cls(path, done)

    def add(self, key: str, run: dict[str, Any]) -> None:
        """Record a finished run durably (one whole line, flushed and synced)."""
        self.done.setdefault(key, run)
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "run": run}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _difference(found: dict[str, Any], asked: dict[str, Any]) -> str:
    """What differs between the journal's header and the set asked for, in words: the
    data set, a run setting (e.g. train_size 3000 -> 10000) or the device."""
    said = []
    was, now = found.get("data") or {}, asked.get("data") or {}
    if was.get("name") != now.get("name"):
        said.append(f"data {was.get('name')} -> {now.get('name')}")
    elif was != now:
        said.append("the data's files or normalisation")
    if found.get("device") != asked.get("device"):
        said.append(f"device {found.get('device')} -> {asked.get('device')}")
    old = [json.loads(k) for k in found.get("runs", [])]
    new = [json.loads(k) for k in asked.get("runs", [])]
    for field in sorted({f for run in (*old, *new) for f in run}):
        before = sorted({repr(r.get(field)) for r in old})
        after = sorted({repr(r.get(field)) for r in new})
        if before != after:
            said.append(f"{field} {', '.join(before)} -> {', '.join(after)}")
    if not said and old != new:
        said.append(f"{len(old)} runs -> {len(new)} runs")
    return "; ".join(said) or "another header"


def _read(path: Path) -> tuple[Any, dict[str, dict[str, Any]]]:
    """The header and the finished runs (first of each key) of the journal ``path``."""
    lines = path.read_text().splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        try:
            records.append(json.loads(line))
        except ValueError:
            if number == len(lines):
                break  # cut short by a crash while it was written: that run trains again
            raise MePropInputError(f"{path}:{number} is not a JSON line; delete it") from None
    if not records or not isinstance(records[0], dict):
        raise MePropInputError(f"{path} has no header line; delete it to start over")
    done: dict[str, dict[str, Any]] = {}
    for number, record in enumerate(records[1:], 2):
        if not (isinstance(record, dict) and isinstance(record.get("run"), dict)):
            raise MePropInputError(f"{path}:{number} is not a finished run; delete it")
        done.setdefault(record["key"], record["run"])
    return records[0], done


def _write_lines(path: Path, records: list[dict[str, Any]]) -> None:
    """Replace ``path`` with one JSON line per record, whole or not at all."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    os.replace(tmp, path)
