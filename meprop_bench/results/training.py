"""The training result file (schema ``meprop-bench/training``): its fields, a validator,
and :func:`load_training`, which reads one file into a tidy table for the report.

Version 2 (version 1 files still load: their runs predate ``--recipe``, so they read as
recipe ``torch``, without keep counts). Accuracies are fractions in [0, 1], times seconds.

- the envelope of :func:`meprop_bench.results.files.envelope`: ``schema``, ``schema_version``,
  ``created`` (UTC, ISO 8601), ``meprop_bench_version``, ``argv``, ``machine``;
- ``experiment``: the set's name, or null for a single configuration;
- ``config``: every command-line option after defaults are applied (``epochs``,
  ``seeds``, ``lr`` resolved; ``recipe`` null when a set ran several; for a set,
  ``method``/``k``/``hidden``/``dropout`` are null because each run carries its own);
- ``data``: ``name`` (embedded or mnist), ``source``, ``split_seed`` and the
  ``train``/``dev``/``test`` sizes;
- ``runs``: one per (recipe, configuration, seed), in the order asked for, each with
  ``label`` (e.g. "topk k=20 h=500"), ``recipe`` (torch or authors), ``method``,
  ``kernel`` (the kernel of the hidden layers' backward, e.g. ``topk/native``), ``k``
  (the count kept per layer; null for dense), ``hidden``, ``layers``, ``dropout``,
  ``seed``, ``optimizer``, ``lr``, ``batch_size``, ``best_epoch`` (1-based; the first
  epoch of highest dev accuracy), ``best_dev_acc``, ``test_acc_at_best``, ``wall_s``,
  ``kept`` (per hidden layer name, per unit: the training examples whose backward passed
  that unit a nonzero gradient, :mod:`meprop_bench.training.unit_keeps`), ``kept_of`` (examples
  back-propagated in all), and ``epochs``: a list of {``epoch``, ``train_loss`` (mean
  over the epoch's examples), ``train_acc`` (on the fly, in training mode), ``dev_acc``,
  ``test_acc``, ``forward_s``, ``backward_s``, ``step_s``} where the three times are
  summed over the epoch's minibatches (``time.perf_counter``, after a CUDA synchronise
  on a GPU; ``step_s`` includes the recipe's gradient clip).
"""

from __future__ import annotations

import json
import os
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd

from meprop_bench.errors import MePropInputError

SCHEMA = "meprop-bench/training"
SCHEMA_VERSION = 2
OLDEST_VERSION = 1
LEGACY_RECIPE = "torch"  # what a version 1 file's runs used (it predates --recipe)

_NUM = (Real,)
_TOP_FIELDS: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "schema_version": (int,),
    "created": (str,),
    "meprop_bench_version": (str,),
    "argv": (list,),
    "machine": (dict,),
    "experiment": (str, type(None)),
    "config": (dict,),
    "data": (dict,),
    "runs": (list,),
}
RUN_FIELDS: dict[str, tuple[type, ...]] = {
    "label": (str,),
    "recipe": (str,),
    "method": (str,),
    "k": (int, type(None)),
    "hidden": (int,),
    "layers": (int,),
    "dropout": _NUM,
    "seed": (int,),
    "optimizer": (str,),
    "lr": _NUM,
    "batch_size": (int,),
    "best_epoch": (int,),
    "best_dev_acc": _NUM,
    "test_acc_at_best": _NUM,
    "wall_s": _NUM,
    "kept": (dict,),
    "kept_of": (int,),
    "epochs": (list,),
}
_ADDED_IN_2 = ("recipe", "kept", "kept_of")
EPOCH_FIELDS: dict[str, tuple[type, ...]] = {
    "epoch": (int,),
    "train_loss": _NUM,
    "train_acc": _NUM,
    "dev_acc": _NUM,
    "test_acc": _NUM,
    "forward_s": _NUM,
    "backward_s": _NUM,
    "step_s": _NUM,
}


def _check_fields(record: Any, fields: dict[str, tuple[type, ...]], where: str) -> None:
    if not isinstance(record, dict):
        raise MePropInputError(f"{where} must be an object, got {type(record).__name__}")
    for name, types in fields.items():
        if name not in record:
            raise MePropInputError(f"{where} lacks the field {name!r}")
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, types):
            raise MePropInputError(f"{where}.{name} has the wrong type: {value!r}")


def _check_kept(run: dict[str, Any], where: str) -> None:
    for layer, counts in run["kept"].items():
        if not (isinstance(counts, list) and len(counts) == run["hidden"]):
            raise MePropInputError(f"{where}.kept.{layer} must hold one count per hidden unit")
        if not all(isinstance(c, int) and 0 <= c <= run["kept_of"] for c in counts):
            raise MePropInputError(f"{where}.kept.{layer} holds a count outside 0..kept_of")


def validate_training(doc: Any) -> None:
    """Raise MePropInputError naming the first field of ``doc`` that breaks the schema
    (of its own version, 1 or 2)."""
    _check_fields(doc, _TOP_FIELDS, "file")
    version = doc["schema_version"]
    if doc["schema"] != SCHEMA or not OLDEST_VERSION <= version <= SCHEMA_VERSION:
        raise MePropInputError(
            f"not a {SCHEMA} v{OLDEST_VERSION}..v{SCHEMA_VERSION} file: "
            f"schema {doc['schema']!r} v{version!r}"
        )
    run_fields = RUN_FIELDS
    if version == 1:
        run_fields = {f: t for f, t in RUN_FIELDS.items() if f not in _ADDED_IN_2}
    for i, run in enumerate(doc["runs"]):
        _check_fields(run, run_fields, f"runs[{i}]")
        if version > 1:
            _check_kept(run, f"runs[{i}]")
        for j, epoch in enumerate(run["epochs"]):
            _check_fields(epoch, EPOCH_FIELDS, f"runs[{i}].epochs[{j}]")
            if epoch["epoch"] != j + 1:
                raise MePropInputError(
                    f"runs[{i}].epochs[{j}].epoch is {epoch['epoch']}, not {j + 1}"
                )
        if not 1 <= run["best_epoch"] <= len(run["epochs"]):
            raise MePropInputError(f"runs[{i}].best_epoch {run['best_epoch']} is out of range")


def _upgrade(run: dict[str, Any]) -> dict[str, Any]:
    """A version 1 run as version 2 reads it: recipe torch, no keep counts."""
    return {"recipe": LEGACY_RECIPE, "kept": None, "kept_of": None, **run}


def load_training(path: str | os.PathLike[str]) -> pd.DataFrame:
    """One row per run x epoch: the file's ``experiment``, data set name and
    ``schema_version``, a ``run`` number, every run field but ``epochs`` (``kept``, the
    per-unit counts, as the same dict on each of a run's rows; None in a version 1
    file), and every epoch field."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise MePropInputError(f"training result file not found: {path}") from None
    except (OSError, ValueError) as err:
        raise MePropInputError(f"{path} is not a readable JSON file: {err}") from None
    validate_training(doc)
    version = doc["schema_version"]
    runs = doc["runs"] if version > 1 else [_upgrade(run) for run in doc["runs"]]
    rows = [
        {
            "experiment": doc["experiment"],
            "data": doc["data"].get("name"),
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
        "data",
        "schema_version",
        "run",
        *(f for f in RUN_FIELDS if f != "epochs"),
        *EPOCH_FIELDS,
    ]
    return pd.DataFrame(rows, columns=columns)
