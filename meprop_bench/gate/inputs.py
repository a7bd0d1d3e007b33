"""The gate's inputs: pytest-benchmark JSON files read into two sides (baseline and
candidate) of benchmarks, each holding its raw samples run by run (file by file).

A file holding a run read before (a copy, byte for byte or rewritten: the same machine,
start time and samples) is read once, as the report does, so a copied file never passes
for a second run."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import expand, read_benchmarks
from meprop_bench.results.machine import identity
from meprop_bench.stats import as_samples


@dataclass
class Bench:
    """One benchmark of one side: its samples from each of that side's files (runs)."""

    key: str
    name: str
    group: str
    info: dict[str, Any]
    runs: dict[str, np.ndarray]
    machines: set[str]

    @property
    def samples(self) -> np.ndarray:
        return np.concatenate(list(self.runs.values()))

    @property
    def median(self) -> float:
        return float(np.median(self.samples))


@dataclass
class Side:
    """What one side (baseline or candidate) measured, from one or more files."""

    files: list[Path]
    benches: dict[str, Bench]

    @property
    def machines(self) -> set[str]:
        return set().union(*(b.machines for b in self.benches.values()))

    @property
    def fewest_runs(self) -> int:
        return min(len(b.runs) for b in self.benches.values())

    @property
    def most_runs(self) -> int:
        return max(len(b.runs) for b in self.benches.values())

    @property
    def slowdowns(self) -> set[float]:
        """Injected slowdowns (MEPROP_BENCH_SLOWDOWN) its benchmarks ran with."""
        found = (b.info.get("injected_slowdown") for b in self.benches.values())
        return {float(s) for s in found if s}


def load_side(spec: str) -> Side:
    """Read every pytest-benchmark JSON named by ``spec`` (file, directory or glob),
    each run once: a copy of a run already read is noted on stderr and passed over."""
    side = Side([], {})
    runs: dict[str, Path] = {}
    for path in _json_files(spec):
        data = read_benchmarks(path)
        machine = identity(data["machine_info"])
        benches = [_bench(path, raw, machine) for raw in data["benchmarks"]]
        earlier = runs.setdefault(_run_identity(machine, data.get("datetime"), benches), path)
        if earlier != path:
            print(f"note: {path}: the same run as {earlier}; counted once", file=sys.stderr)
            continue
        side.files.append(path)
        for bench in benches:
            known = side.benches.get(bench.key)
            if known is None:
                side.benches[bench.key] = bench
            elif str(path) in known.runs:
                raise MePropInputError(f"{path}: {bench.key} appears twice")
            else:
                known.runs.update(bench.runs)
                known.machines |= bench.machines
    if not side.benches:
        raise MePropInputError(f"{spec}: no benchmarks in {len(side.files)} file(s)")
    return side


def _run_identity(machine: str, started: Any, benches: list[Bench]) -> str:
    """What tells one run from another whatever its file looks like: the machine, the
    start time and every benchmark's samples."""
    digest = hashlib.sha256(json.dumps([machine, str(started)]).encode())
    for bench in benches:
        (samples,) = bench.runs.values()
        digest.update(f"{bench.key}\0{samples.size}\0".encode() + samples.tobytes())
    return digest.hexdigest()


def _json_files(spec: str) -> list[Path]:
    ((_, files),) = expand([spec])
    if not files:
        raise MePropInputError(
            f"{spec}: no pytest-benchmark JSON found (no such file, or no *.json in it)"
        )
    return files


def _bench(path: Path, raw: Any, machine: str) -> Bench:
    if not (isinstance(raw, dict) and "fullname" in raw and isinstance(raw.get("stats"), dict)):
        raise MePropInputError(f"{path}: a benchmark without 'fullname' and 'stats'")
    key = str(raw["fullname"])
    data = raw["stats"].get("data")
    if not data:
        raise MePropInputError(
            f"{path}: {key} has no raw samples (stats.data); re-run with them saved: "
            "--benchmark-json (the suites always save them) or --benchmark-save-data"
        )
    try:
        samples = as_samples(data)
    except ValueError as err:
        raise MePropInputError(f"{path}: {key}: {err}") from None
    info = raw.get("extra_info") if isinstance(raw.get("extra_info"), dict) else {}
    name = str(raw.get("name") or key)
    return Bench(key, name, str(raw.get("group") or ""), info, {str(path): samples}, {machine})
