"""The report's "Your model" section: ``meprop-bench model`` files (schema
``meprop-bench/model``) read into two frames, one row per file (the whole step) and one
per swapped layer, and the section that opens with the whole-step answer."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from meprop_bench.report.model import Section
from meprop_bench.report.tables import _interval, _x
from meprop_bench.results.files import read_result
from meprop_bench.results.kinds import MODEL
from meprop_bench.results.machine_state import describe_state
from meprop_bench.stability import model_bound_note, model_faults_note

MIB = 2**20


def _label(doc: dict) -> str:
    p = doc["params"]
    return f"{p['model']}, {p['method']} k={p['k']}"


def load_models(paths: Sequence[str | os.PathLike[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(steps, layers): per file its params, whole-step speedup, interval and bound, each
    part's speedup, peak memory and load; per swapped layer its in-step and isolated
    speedups with intervals, ideal n/k and cosines. ``label`` (model, method, k) names a
    file's rows in both."""
    steps, layers = [], []
    for path in map(Path, paths):
        doc = read_result(path, MODEL)
        label = _label(doc)
        parts = {p["part"]: p for p in doc["parts"]}
        memory = doc["memory"]
        steps.append({
            "source": str(path), "label": label, **doc["params"],
            "step_speedup": doc["step_speedup"], "step_low": doc["step_speedup_low"],
            "step_high": doc["step_speedup_high"], "step_bound": doc["step_bound"],
            **{f"{name}_speedup": part["speedup"] for name, part in parts.items()},
            **{f"{name}_dense_s": part["dense_s"] for name, part in parts.items()},
            **{f"{name}_meprop_s": part["meprop_s"] for name, part in parts.items()},
            "unstable": "; ".join(doc["unstable"]),
            "dense_step_bytes": memory["dense_step_bytes"],
            "meprop_step_bytes": memory["meprop_step_bytes"],
            "state": describe_state(doc["machine"].get("state")),
            "faults_note": model_faults_note(doc) or "",
            "bound_note": model_bound_note(doc) or "",
        })  # fmt: skip
        for lay in doc["layers"]:
            layers.append({"source": str(path), "label": label, **lay})
    return pd.DataFrame(steps), pd.DataFrame(layers)


def _memory(row: pd.Series) -> str:
    if row["dense_step_bytes"] is None or pd.isna(row["dense_step_bytes"]):
        return ""
    return (f" A step's peak memory above its start: dense {row['dense_step_bytes'] / MIB:,.0f} "
            f"MiB, meProp {row['meprop_step_bytes'] / MIB:,.0f} MiB.")  # fmt: skip


def _note(note: str) -> str:
    text = note.removeprefix("note: ")
    return f" {text[:1].upper()}{text[1:]}." if text else ""


def step_sentence(row: pd.Series) -> str:
    """The whole-step answer for one file, in one sentence, its parts after it."""
    low, high = row["step_low"], row["step_high"]
    faster = (
        "faster than dense" if low > 1 else "slower than dense" if high < 1
        else "not told apart from dense"
    ) if math.isfinite(low) else "without an interval"  # fmt: skip
    unstable = f" UNSTABLE: {row['unstable']}." if row["unstable"] else ""
    return (
        f"{row['label']}: the whole training step is {_x(row['step_speedup'])} "
        f"({_interval(low, high)}, 95%), {faster}; its bound, were each swapped layer's "
        f"backward k/n of dense's, is {_x(row['step_bound'])}. Forward "
        f"{_x(row['forward_speedup'])}, backward {_x(row['backward_speedup'])}, optimizer "
        f"{_x(row['optimizer_speedup'])}; {row['optimizer']}, {row['threads']} thread(s), "
        f"{row['rounds']} rounds of {row['block']} steps a side; {row['state']}."
        f"{_memory(row)}{unstable}" + _note(row["bound_note"]) + _note(row["faults_note"])
    )


def layer_table(layers: pd.DataFrame) -> pd.DataFrame:
    """One row per swapped layer: shape, k, kernel, in-step and isolated speedups with
    their intervals, n/k and the cosines."""

    def cos(value: object) -> str:
        return "-" if value is None or pd.isna(value) else f"{value:.3f}"

    return pd.DataFrame({
        "model": layers["label"],
        "layer": layers["name"],
        "rows x d_in -> n": layers["shape"],
        "k": layers["k"],
        "kernel": layers["kernel"],
        "in step": layers["in_step_speedup"].map(_x),
        "in step 95%": [_interval(a, b) for a, b in zip(layers["in_step_low"],
                                                        layers["in_step_high"], strict=True)],
        "alone": layers["isolated_speedup"].map(lambda v: "-" if pd.isna(v) else _x(v)),
        "alone 95%": [
            "-" if pd.isna(a) else _interval(a, b)
            for a, b in zip(layers["isolated_low"], layers["isolated_high"], strict=True)
        ],
        "ideal n/k": layers["ideal_speedup"].map(_x),
        "cos dW": layers["dw_cosine"].map(cos),
        "cos dX": layers["dx_cosine"].map(cos),
    })  # fmt: skip


NOTE = (
    "Training steps of your model (or a preset), dense against meProp, from `meprop-bench "
    "model`: rounds of consecutive steps of each side in one process, speedup = median of "
    "per-round ratios dense / meProp with its 95% bootstrap interval (docs/model.md). "
    "Forward and optimizer do the same work on both sides, so the step gains less than its "
    "backward. Per swapped layer: its backward inside the step (dense layer in the dense "
    "step, meProp layer in the meProp step) beside the same kernel alone at the same shape "
    "and k, the ideal n/k, and the cosine of meProp's dW and dX to dense's (same weights "
    "and batch; dX '-': not computed, the layer's input needs no gradient)."
)


def model_sections(steps: pd.DataFrame, layers: pd.DataFrame) -> list[Section]:
    """ "Your model": the whole-step answer per file first, then the per-layer table."""
    if steps.empty:
        return []
    text = [NOTE, *(step_sentence(row) for _, row in steps.iterrows())]
    caption = "Each swapped layer, in the step and alone:"
    return [Section("Your model", text, layer_table(layers), anchor="your-model", caption=caption)]
