"""The training result file (schema ``meprop-bench/training``, its fields in
:data:`meprop_bench.results.kinds.TRAINING` and docs/schemas.md): the checks beyond field
types, and :func:`load_training`, which reads one file into a tidy table for the report.

Version 1 files still load: their runs predate ``--recipe``, so they read as recipe
``torch``, without keep counts. Version 1 and 2 runs predate ``--train-size``: they read
the file's data set and its whole training split, without the per-epoch activation
figures.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from meprop_bench.errors import MePropInputError
from meprop_bench.results.files import read_json
from meprop_bench.results.kinds import EPOCH, RUN, TRAINING

LEGACY_RECIPE = "torch"  # what a version 1 file's runs used (it predates --recipe)
RUN_FIELDS = tuple(f.name for f in RUN)
EPOCH_FIELDS = tuple(f.name for f in EPOCH)


def _check_kept(run: dict[str, Any], where: str) -> None:
    for layer, counts in run["kept"].items():
        if not (isinstance(counts, list) and len(counts) == run["hidden"]):
            raise MePropInputError(f"{where}.kept.{layer} must hold one count per hidden unit")
        if not all(isinstance(c, int) and 0 <= c <= run["kept_of"] for c in counts):
            raise MePropInputError(f"{where}.kept.{layer} holds a count outside 0..kept_of")


def validate_training(doc: Any) -> None:
    """Raise MePropInputError naming the first field of ``doc`` that breaks the schema
    (of its own version, 1 or 2), or a value the types allow but the meaning does not."""
    version = TRAINING.check(doc)
    for i, run in enumerate(doc["runs"]):
        if version > 1:
            _check_kept(run, f"runs[{i}]")
        for j, epoch in enumerate(run["epochs"]):
            if epoch["epoch"] != j + 1:
                raise MePropInputError(
                    f"runs[{i}].epochs[{j}].epoch is {epoch['epoch']}, not {j + 1}"
                )
        if not 1 <= run["best_epoch"] <= len(run["epochs"]):
            raise MePropInputError(f"runs[{i}].best_epoch {run['best_epoch']} is out of range")


def _upgrade(run: dict[str, Any], version: int, data: dict[str, Any]) -> dict[str, Any]:
    """A run of an older version as version 3 reads it: v1 with recipe torch and no keep
    counts; v1 and v2 with the file's data set and training split size."""
    if version < 2:
        run = {"recipe": LEGACY_RECIPE, "kept": None, "kept_of": None, **run}
    if version < 3:
        run = {"data": data.get("name"), "train_size": data.get("train"), **run}
    return run


def load_training(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run x epoch: the file's ``experiment``, data set name and
    ``schema_version``, a ``run`` number, every run field but ``epochs`` (``kept``, the
    per-unit counts, as the same dict on each of a run's rows; None in a version 1
    file), and every epoch field."""
    path = Path(path)
    if not path.exists():
        raise MePropInputError(f"training result file not found: {path}")
    doc = read_json(path)
    try:
        validate_training(doc)
    except MePropInputError as err:
        raise MePropInputError(f"{path}: {err}") from None
    version = doc["schema_version"]
    runs = [_upgrade(run, version, doc["data"]) for run in doc["runs"]]
    rows = [
        {
            "experiment": doc["experiment"],
            "schema_version": version,
            "run": i,
            **{key: value for key, value in run.items() if key != "epochs"},
            **epoch,
        }
        for i, run in enumerate(runs)
        for epoch in run["epochs"]
    ]
    columns = [
        "experiment",
        "schema_version",
        "run",
        *(f for f in RUN_FIELDS if f != "epochs"),
        *EPOCH_FIELDS,
    ]
    return pd.DataFrame(rows, columns=columns)
