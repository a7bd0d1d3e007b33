"""Finding and reading the report's inputs into tidy pandas frames.

Two kinds of JSON are read: pytest-benchmark files (``--benchmark-json`` from
``suites/``, or a recovered partial file) and trainer files (schema
``meprop-bench/training``). :func:`find_inputs` sorts paths and directories into the two;
:func:`load_benchmarks` and :func:`load_trainings` each give one tidy frame, usable from
a notebook::

    from meprop_bench.report import find_inputs, load_benchmarks
    bench = load_benchmarks(find_inputs(["reports/latest"]).benchmarks)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import expand, json_files, read_benchmarks, read_json
from meprop_bench.results.kinds import MODEL, TRAINING
from meprop_bench.results.machine import identity
from meprop_bench.results.training import load_training
from meprop_bench.stats import as_samples

PathLike = str | os.PathLike[str]
STATS = ("median", "iqr", "q1", "q3", "min", "max", "mean", "stddev", "rounds")


@dataclass
class Inputs:
    """The result files found: benchmark files, training files, model-step files
    (``meprop-bench model``), and the JSON files a
    directory search passed over (neither kind), with why."""

    benchmarks: list[Path] = field(default_factory=list)
    trainings: list[Path] = field(default_factory=list)
    models: list[Path] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)


def kind_of(doc: Any) -> str | None:
    """``"benchmark"`` for pytest-benchmark output, ``"training"`` for trainer output,
    ``"model"`` for ``meprop-bench model`` output, None for anything else."""
    if not isinstance(doc, dict):
        return None
    if isinstance(doc.get("benchmarks"), list) and isinstance(doc.get("machine_info"), dict):
        return "benchmark"
    if doc.get("schema") == TRAINING.name:
        return "training"
    if doc.get("schema") == MODEL.name:
        return "model"
    return None


def find_inputs(paths: Iterable[PathLike]) -> Inputs:
    """Sort ``paths`` (files, directories searched recursively for ``*.json``, or quoted
    glob patterns) into
    benchmark and training files.

    A file named directly must be one of the two kinds; inside a directory, other JSON
    (profiler output, say) is passed over and listed in ``ignored``. A file found twice
    (named and inside a named directory, say) or a copy of one already found is read
    once, so no run counts twice. No file of either kind at all is an error.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise MePropInputError("no input paths given")
    found = Inputs()
    seen = _Seen()
    for path in paths:
        searched = path.is_dir()  # other JSON inside a directory is passed over
        if searched:
            candidates = json_files(path)
            if not candidates:
                raise MePropInputError(f"{path}: directory holds no JSON result files")
        elif path.exists():
            candidates = [path]
        else:
            ((_, candidates),) = expand([path])  # a quoted glob pattern
            if not candidates:
                raise MePropInputError(f"{path}: no such file, directory or matching pattern")
        for candidate in candidates:
            if seen.same_file(candidate):
                continue
            kind = kind_of(read_json(candidate))
            if (earlier := seen.same_content(candidate)) is not None:
                found.ignored.append((candidate, f"the same content as {earlier}; read once"))
            elif kind == "benchmark":
                found.benchmarks.append(candidate)
            elif kind == "training":
                found.trainings.append(candidate)
            elif kind == "model":
                found.models.append(candidate)
            elif not searched:
                raise MePropInputError(
                    f"{path}: JSON, but neither pytest-benchmark output (no 'benchmarks' "
                    f"and 'machine_info') nor a meprop-bench training or model file "
                    f"(schema {TRAINING.name!r} or {MODEL.name!r})"
                )
            else:
                found.ignored.append((candidate, "neither benchmark, training nor model output"))
    if not (found.benchmarks or found.trainings or found.models):
        where = ", ".join(str(p) for p in paths)
        raise MePropInputError(f"no pytest-benchmark, training or model JSON found in: {where}")
    return found


class _Seen:
    """The files found so far, by resolved path and by content hash."""

    def __init__(self) -> None:
        self.paths: set[Path] = set()
        self.contents: dict[str, Path] = {}

    def same_file(self, path: Path) -> bool:
        """Whether ``path`` is a file found before (under this name or another)."""
        resolved = path.resolve()
        if resolved in self.paths:
            return True
        self.paths.add(resolved)
        return False

    def same_content(self, path: Path) -> Path | None:
        """The file found before with the same bytes as ``path``, if any."""
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        earlier = self.contents.get(digest)
        if earlier is None:
            self.contents[digest] = path
        return earlier


def device_label(device: Any, info: dict[str, Any]) -> str:
    """What ran a case: the GPU's name for a CUDA device, the CPU model otherwise."""
    cpu = info.get("cpu_model") or (info.get("cpu") or {}).get("brand_raw") or "unknown CPU"
    if isinstance(device, str) and device.startswith("cuda"):
        gpus = info.get("gpus") or []
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        name = gpus[index]["name"] if index < len(gpus) else "unknown GPU"
        return f"{device} ({name})"
    return f"cpu ({cpu})"


def _benchmark_rows(path: Path, doc: dict[str, Any]) -> list[dict[str, Any]]:
    info = doc["machine_info"]
    run_id = f"{path.name}@{doc.get('datetime', '?')}"
    rows = []
    for i, bench in enumerate(doc["benchmarks"]):
        stats = bench.get("stats") if isinstance(bench, dict) else None
        if not isinstance(stats, dict) or not isinstance(stats.get("median"), int | float):
            raise MePropInputError(
                f"{path}: benchmarks[{i}] has no stats.median; not pytest-benchmark output"
            )
        extra = bench.get("extra_info") or {}
        samples = stats.get("data") or []
        try:
            samples = list(as_samples(samples)) if samples else []
        except ValueError as err:
            raise MePropInputError(f"{path}: benchmarks[{i}]: {err}") from None
        rows.append(
            {
                "source": str(path),
                "run_id": run_id,
                "datetime": doc.get("datetime"),
                "machine": identity(info),
                "device_name": device_label(extra.get("device"), info),
                "name": bench.get("name"),
                "group": bench.get("group"),
                "suite": extra.get("suite"),
                **{k: v for k, v in extra.items() if k != "suite"},
                **{k: stats.get(k) for k in STATS},
                "samples": samples,
            }
        )
    return rows


def load_benchmarks(paths: Sequence[PathLike]) -> pd.DataFrame:
    """One row per benchmark of the pytest-benchmark files ``paths``.

    Columns: ``source`` (file), ``run_id`` (file name @ its datetime), ``datetime``,
    ``machine`` (node: CPU model), ``device_name`` (the GPU's name for CUDA cases, else
    the CPU), ``name``, ``group``, every ``extra_info`` field flattened (``suite``,
    ``method``, ``strategy``, ``device``, ``B``, ``n``, ``k``, ``k_over_n``,
    ``ideal_speedup``, ``pair_key``, ...; missing ones are NaN), the stats in seconds
    (``median``, ``iqr``, ``q1``, ``q3``, ``min``, ``max``, ``mean``, ``stddev``,
    ``rounds``) and ``samples``, the raw per-call times in seconds (empty when not saved).
    Benchmarks without a ``suite`` (not from meprop-bench's suites) keep ``suite`` None.
    """
    rows: list[dict[str, Any]] = []
    for path in map(Path, paths):
        doc = read_benchmarks(path)
        rows.extend(_benchmark_rows(path, doc))
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["suite"] = frame["suite"].astype(object).where(frame["suite"].notna(), None)
    return frame


def load_trainings(paths: Sequence[PathLike]) -> pd.DataFrame:
    """One row per run x epoch of the trainer files ``paths`` (see
    :func:`meprop_bench.results.training.load_training`), with ``source`` (file) added and
    ``run`` numbered across all files."""
    frames = []
    for path in paths:
        try:
            frame = load_training(path)
        except MePropInputError as err:
            raise MePropInputError(f"{path}: {err}") from None
        frames.append(frame.assign(source=str(path)))
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True)
    frame["run"] = frame.groupby(["source", "run"], sort=False).ngroup()
    return frame


def machines(paths: Sequence[PathLike]) -> dict[str, dict[str, Any]]:
    """``machine_info`` of each benchmark file (``machine`` of each training file), by
    source path."""
    out = {}
    for path in map(Path, paths):
        doc = read_json(path)
        out[str(path)] = doc.get("machine_info") or doc.get("machine") or {}
    return out
