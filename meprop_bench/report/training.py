"""Training results per run and per configuration: the numbers behind the overfitting
plots (train vs dev accuracy per epoch, test accuracy against k)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from meprop_bench.stats import mean_interval

EPOCH_TIMES = ("forward_s", "backward_s", "step_s")  # seconds per epoch, mean over epochs


def family(method: str, hidden: int, full_width: int) -> str:
    """``dense`` at the full width, ``dense h=k`` for a dense model shrunk to k units,
    else the meProp method (topk, unified, randk)."""
    if method == "dense":
        return "dense" if hidden == full_width else "dense h=k"
    return method


def runs(epochs: pd.DataFrame) -> pd.DataFrame:
    """One row per run of :func:`load_trainings`' frame: its configuration, recipe and
    setting, ``family``, ``k_axis`` (k, or the width of a dense h=k model), ``epochs``
    run, the best-dev epoch, test accuracy there, the last epoch's train and dev
    accuracy and their ``gap`` (overfitting), the mean forward / backward / step
    seconds per epoch, and the per-unit keep counts (``kept``, ``kept_of``)."""
    if epochs.empty:
        return pd.DataFrame()
    ordered = epochs.sort_values("epoch").groupby("run")
    last = ordered.tail(1).set_index("run")
    out = epochs.drop_duplicates("run").set_index("run")[
        ["source", "schema_version", "experiment", "data", "recipe", "label", "method", "k",
         "hidden", "layers", "dropout", "seed", "optimizer", "batch_size", "best_epoch",
         "best_dev_acc", "test_acc_at_best", "wall_s", "kept", "kept_of"]
    ].copy()  # fmt: skip
    out["epochs"] = last["epoch"]
    out["final_train_acc"] = last["train_acc"]
    out["final_dev_acc"] = last["dev_acc"]
    out["gap"] = last["train_acc"] - last["dev_acc"]
    for column in EPOCH_TIMES:
        out[column] = ordered[column].mean()
    full = out.groupby("source")["hidden"].transform("max")
    out["family"] = [
        family(m, h, f) for m, h, f in zip(out["method"], out["hidden"], full, strict=True)
    ]
    out["k_axis"] = np.where(out["family"] == "dense h=k", out["hidden"], out["k"])
    return out.reset_index()


def _interval(values: pd.Series) -> tuple[float, float]:
    return mean_interval(values.to_numpy())


def summarize(run_frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per configuration (label + dropout): test accuracy at the best
    dev epoch with its 95% t-interval, best dev accuracy, best epoch, final gap."""
    if run_frame.empty:
        return pd.DataFrame()
    rows = []
    keys = ["source", "recipe", "label", "family", "method", "k", "k_axis", "hidden", "dropout"]
    for key, group in run_frame.groupby(keys, dropna=False, sort=False):
        low, high = _interval(group["test_acc_at_best"])
        rows.append(
            {
                **dict(zip(keys, key, strict=True)),
                "seeds": len(group),
                "test_acc": group["test_acc_at_best"].mean(),
                "test_ci_low": low,
                "test_ci_high": high,
                "test_sd": group["test_acc_at_best"].std(),
                "best_dev_acc": group["best_dev_acc"].mean(),
                "best_epoch": group["best_epoch"].mean(),
                "final_train_acc": group["final_train_acc"].mean(),
                "gap": group["gap"].mean(),
                "wall_s": group["wall_s"].mean(),
            }
        )
    return pd.DataFrame(rows)
