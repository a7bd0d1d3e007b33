"""Training results per run and per configuration: the numbers behind the overfitting
plots (train vs dev accuracy per epoch, test accuracy against k) and the claims.

A run is identified by what it trained (:data:`IDENTITY`: data set, training-set size,
recipe, configuration, epochs and seed); the same run found twice (a file copied, or the
same command run twice, which a seed makes identical) counts once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from meprop_bench.stats import mean_interval

EPOCH_TIMES = ("forward_s", "backward_s", "step_s")  # seconds per epoch, mean over epochs
FULL_WIDTH = 500  # the paper's MNIST MLP: two hidden layers of 500
IDENTITY = ["data", "train_size", "recipe", "method", "k", "hidden", "layers", "dropout",
            "optimizer", "lr", "batch_size", "epochs", "seed"]  # fmt: skip


def family(method: str, hidden: int) -> str:
    """``dense`` at the paper's full width (h = 500), ``dense h=k`` for a dense model of
    any other width (the claims' shrunk baseline), else the meProp method (topk,
    unified, randk): by configuration, whatever else a file holds."""
    if method == "dense":
        return "dense" if hidden == FULL_WIDTH else "dense h=k"
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
        ["source", "schema_version", "experiment", "data", "train_size", "recipe", "label",
         "method", "k", "hidden", "layers", "dropout", "seed", "optimizer", "lr", "batch_size",
         "best_epoch", "best_dev_acc", "test_acc_at_best", "wall_s", "kept", "kept_of"]
    ].copy()  # fmt: skip
    out["epochs"] = last["epoch"]
    out["final_train_acc"] = last["train_acc"]
    out["final_dev_acc"] = last["dev_acc"]
    out["gap"] = last["train_acc"] - last["dev_acc"]
    for column in EPOCH_TIMES:
        out[column] = ordered[column].mean()
    out["family"] = [family(m, h) for m, h in zip(out["method"], out["hidden"], strict=True)]
    out["k_axis"] = np.where(out["family"] == "dense h=k", out["hidden"], out["k"])
    return out.reset_index()


def drop_repeats(run_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``run_frame`` with each run (by :data:`IDENTITY`) once, the first found, and the
    runs dropped as repeats: ``source``, ``label``, ``seed`` and ``kept_from`` (the
    file whose copy counts)."""
    if run_frame.empty:
        return run_frame, pd.DataFrame()
    repeat = run_frame.duplicated(subset=IDENTITY)
    first = run_frame.groupby(IDENTITY, dropna=False, sort=False)["source"].transform("first")
    dropped = run_frame.loc[repeat, ["source", "label", "seed"]].assign(
        kept_from=first[repeat], recipe=run_frame.loc[repeat, "recipe"]
    )
    return run_frame[~repeat].reset_index(drop=True), dropped.reset_index(drop=True)


def _interval(values: pd.Series) -> tuple[float, float]:
    return mean_interval(values.to_numpy())


def summarize(run_frame: pd.DataFrame) -> pd.DataFrame:
    """Mean over seeds per configuration (label + dropout): test accuracy at the best
    dev epoch with its 95% t-interval, best dev accuracy, best epoch, final gap."""
    if run_frame.empty:
        return pd.DataFrame()
    rows = []
    keys = ["data", "train_size", "recipe", "label", "family", "method", "k", "k_axis",
            "hidden", "dropout"]  # fmt: skip
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
