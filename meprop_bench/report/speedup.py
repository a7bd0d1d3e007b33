"""Speedups: each sparse case against its dense counterpart from the same run, with a
bootstrap interval, and the split of a sparse backward into selection and the rest.

Pairing is within one file (one run on one machine; shards of a sweep are separate
files and pair within themselves), one suite, one ``pair_key`` (shape, dtype, device,
gradient source), one thread count and, for the paper suite, one paper shape.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pandas as pd

from meprop_bench.errors import MePropInputError
from meprop_bench.stability import above_bound, instability, time_spread
from meprop_bench.stats import bootstrap_ratio, level_changes

PAIRED_SUITES = ("backward", "layer", "paper", "train_step")
PAIR_COLUMNS = ("source", "suite", "paper_shape", "pair_key", "threads")
CASE_COLUMNS = (
    "source", "run_id", "datetime", "machine", "device_name", "suite", "paper_shape", "pair_key",
    "threads", "method", "strategy", "sparse_grad", "device", "dtype", "grads", "B",
    "d_in", "n", "hidden", "k", "k_over_n", "case_id",
)  # fmt: skip


@dataclass
class Pairing:
    """``speedups``: one row per sparse case with a dense counterpart; ``unpaired``:
    sparse cases with none, and benchmarks from no meprop-bench suite, with why."""

    speedups: pd.DataFrame
    unpaired: pd.DataFrame


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame else pd.Series(np.nan, index=frame.index, dtype=object)


def kernel_label(row: pd.Series) -> str:
    """``method/strategy``, with ``+sparse_grad`` for a training step stepping row-sparse
    gradients (in the layer suite every compact strategy has them)."""
    label = f"{row['method']}/{row['strategy']}"
    if row.get("suite") == "train_step" and row.get("sparse_grad") is True:
        label += "+sparse_grad"
    return label


def _keyed(bench: pd.DataFrame) -> pd.DataFrame:
    frame = bench.copy()
    for name in CASE_COLUMNS:
        frame[name] = _column(frame, name)
    frame["_key"] = [
        "|".join(map(str, values)) for values in frame[list(PAIR_COLUMNS)].itertuples(index=False)
    ]
    return frame


def pair_speedups(bench: pd.DataFrame) -> Pairing:
    """Pair each sparse case of ``bench`` (from :func:`load_benchmarks`) with its dense
    case and compute ``speedup`` = dense median / sparse median, its ``ci_low``/``ci_high``
    (:func:`bootstrap_ratio`; for a training step timed beside its dense partner, the
    median of their per-round ratios and its interval: ``paired`` says "beside"),
    ``ideal`` (n/k; for a training step 3n/(n+2k), its bound)
    and ``efficiency`` = speedup / ideal; ``unstable``, why the pair is noise (empty when
    it is not) and ``above_bound``, a speedup above its ideal: a measurement error
    (:mod:`meprop_bench.stability`). Times in the result are in seconds.

    Raises MePropInputError when there are sparse cases but none has a dense counterpart.
    """
    empty = pd.DataFrame(columns=[*CASE_COLUMNS, "reason"])
    if bench.empty:
        return Pairing(pd.DataFrame(), empty)
    frame = _keyed(bench)
    foreign = frame[frame["suite"].isna()].assign(reason="not from a meprop-bench suite")
    frame = frame[frame["suite"].isin(PAIRED_SUITES)]
    dense = frame[frame["method"] == "dense"].drop_duplicates("_key").set_index("_key")
    sparse = frame[frame["method"] != "dense"]
    has_pair = sparse["_key"].isin(dense.index)
    lonely = sparse[~has_pair].assign(reason="no dense case with the same pair_key in its file")
    unpaired = pd.concat([lonely, foreign])[[*CASE_COLUMNS, "reason"]].reset_index(drop=True)
    if len(sparse) and not has_pair.any():
        examples = ", ".join(sorted(set(sparse["case_id"].astype(str)))[:3])
        raise MePropInputError(
            f"none of the {len(sparse)} sparse cases has a dense counterpart in its file "
            f"(same suite and pair_key), e.g. {examples}; run the dense cases too "
            f"(--meprop-methods must include dense)"
        )
    rows = []
    for _, row in sparse[has_pair].iterrows():
        ref = dense.loc[row["_key"]]
        if row["suite"] == "train_step":
            ideal = row.get("max_step_speedup", np.nan)
        else:
            ideal = row.get("ideal_speedup", np.nan)
        ratio = _ratio(ref, row)
        low, high, speedup = ratio.low, ratio.high, ratio.speedup
        reasons = instability(low, high, time_spread(ratio.dense_samples))
        rows.append(
            {
                **{c: row[c] for c in CASE_COLUMNS},
                "kernel": kernel_label(row),
                "paired": ratio.paired,
                "dense_median": float(np.median(ratio.dense_samples)),
                "sparse_median": row["median"],
                "dense_iqr": ref["iqr"],
                "sparse_iqr": row["iqr"],
                "speedup": speedup,
                "ci_low": low,
                "ci_high": high,
                "ideal": ideal,
                "efficiency": speedup / ideal if pd.notna(ideal) and ideal else np.nan,
                "rounds": min(ref["rounds"], row["rounds"]),
                "unstable": "; ".join(reasons),
                "above_bound": above_bound(low, float(ideal) if pd.notna(ideal) else np.nan),
            }
        )
    return Pairing(pd.DataFrame(rows), unpaired)


class Ratio(NamedTuple):
    speedup: float
    low: float
    high: float
    dense_samples: list[float]  # the dense rounds the ratio used
    paired: str  # "beside": dense timed in the case's own rounds; "case": the dense case


def _ratio(dense: pd.Series, sparse: pd.Series) -> Ratio:
    """A sparse case's speedup over its dense case, with its interval.

    A training step timed beside its own dense partner, block for block
    (``paired_speedup``: the step suites since schema 5), is judged on that pairing: the
    dense case ran in another stretch of the run, and the machine's drift between the
    two moved the step's ratio by up to 80%. Otherwise the two cases' medians, with
    :func:`bootstrap_ratio`'s interval."""
    beside = sparse.get("paired_dense_s")
    if isinstance(beside, list) and beside and pd.notna(sparse.get("paired_speedup")):
        low, high = sparse.get("paired_low", np.nan), sparse.get("paired_high", np.nan)
        return Ratio(float(sparse["paired_speedup"]), float(low), float(high), beside, "beside")
    low, high = bootstrap_ratio(dense["samples"], sparse["samples"])
    return Ratio(dense["median"] / sparse["median"], low, high, dense["samples"], "case")


# What makes two speedups (from different files) the same measurement, repeated.
REPEAT_COLUMNS = ("machine", "device_name", "suite", "paper_shape", "pair_key", "threads",
                  "kernel", "sparse_grad", "grads", "dtype", "B", "n", "hidden", "k")  # fmt: skip


def across_runs(speedups: pd.DataFrame) -> pd.DataFrame:
    """Speedups measured in more than one file (repeated runs of the same case on the
    same machine): per case the number of runs, the median speedup over the runs and
    their range, the median dense and sparse times, and where its speedup changed level
    (:func:`level_history`). On a shared machine a single run's ratio can be off by
    10%; the spread over runs shows by how much."""
    if speedups.empty or speedups["source"].nunique() < 2:
        return pd.DataFrame()
    keys = list(REPEAT_COLUMNS)
    groups = speedups.groupby(keys, dropna=False, sort=True)
    frame = groups.agg(
        runs=("source", "nunique"),
        speedup=("speedup", "median"),
        speedup_min=("speedup", "min"),
        speedup_max=("speedup", "max"),
        dense_median=("dense_median", "median"),
        sparse_median=("sparse_median", "median"),
        ideal=("ideal", "first"),
    )
    frame = frame.join(groups.apply(level_history, include_groups=False)).reset_index()
    return frame[frame["runs"] > 1].reset_index(drop=True)


def level_history(runs: pd.DataFrame) -> pd.Series:
    """One case's runs in time order (``datetime``, then file): ``level_changes``, how
    many times its speedup changed level (:func:`meprop_bench.stats.level_changes`), and
    ``changed_at``, each change as "run i/n (run_id): before -> after", the medians of
    the levels either side."""
    ordered = runs.sort_values(["datetime", "source"], na_position="first")
    speedups = ordered["speedup"].to_numpy(dtype=float)
    starts = level_changes(speedups)
    bounds = [0, *starts, len(speedups)]
    levels = [np.median(speedups[a:b]) for a, b in itertools.pairwise(bounds)]
    changed = [
        f"run {start + 1}/{len(speedups)} ({ordered['run_id'].iloc[start]}): "
        f"{levels[i]:.2f}x -> {levels[i + 1]:.2f}x"
        for i, start in enumerate(starts)
    ]
    return pd.Series({"level_changes": len(starts), "changed_at": "; ".join(changed)})


# Which backward kernels use which selection (test_selection's ``selection`` name).
SELECTION_OF = {"topk": "topk", "unified": "unified", "randk": "randk"}
# Kernels that select inside their own compiled call (the native ones, triton's
# per-example ones): the selection suite times torch's selection, not theirs, so their
# time is not split by it (it once put a 40 ms selection inside a 0.97 ms backward).
FUSED_SELECTION = {("topk", "native"), ("randk", "native"), ("unified", "native"),
                   ("topk", "triton"), ("randk", "triton")}  # fmt: skip


def time_split(bench: pd.DataFrame) -> pd.DataFrame:
    """Where a sparse backward's time goes: ``selection_s`` (the selection suite's median
    for the same run, pair_key, threads and k) and ``rest_s`` (the backward suite's
    median minus it: the products, gathers and writes), beside ``dense_s``; kernels that
    select inside their own call (:data:`FUSED_SELECTION`) are left out.
    ``part_exceeds_whole`` marks a selection timed slower than the whole backward that
    contains it: noise between the two suites' runs, not a finding.

    Empty when the inputs hold no selection or no backward cases.
    """
    if bench.empty or "selection" not in bench:
        return pd.DataFrame()
    frame = _keyed(bench)
    key = ["source", "pair_key", "threads", "k"]
    selection = frame[frame["suite"] == "selection"][[*key, "selection", "median"]].rename(
        columns={"median": "selection_s"}
    )
    backward = frame[frame["suite"] == "backward"]
    dense = backward[backward["method"] == "dense"][["source", "pair_key", "threads", "median"]]
    fused = [(m, st) in FUSED_SELECTION for m, st in zip(backward["method"], backward["strategy"],
                                                           strict=True)]  # fmt: skip
    sparse = backward[(backward["method"] != "dense") & ~np.array(fused, dtype=bool)].assign(
        selection=lambda f: f["method"].map(SELECTION_OF)
    )
    merged = sparse.merge(selection, on=[*key, "selection"]).merge(
        dense.rename(columns={"median": "dense_s"}), on=["source", "pair_key", "threads"]
    )
    if merged.empty:
        return pd.DataFrame()
    merged["kernel"] = merged.apply(kernel_label, axis=1)
    merged["backward_s"] = merged["median"]
    merged["rest_s"] = (merged["backward_s"] - merged["selection_s"]).clip(lower=0)
    merged["selection_share"] = (merged["selection_s"] / merged["backward_s"]).clip(upper=1)
    merged["part_exceeds_whole"] = merged["selection_s"] > merged["backward_s"]
    columns = ["source", "run_id", "machine", "device_name", "device", "dtype", "pair_key",
               "threads", "grads", "B", "n", "k", "k_over_n", "kernel", "selection",
               "selection_s", "rest_s", "backward_s", "dense_s", "selection_share",
               "part_exceeds_whole"]  # fmt: skip
    return merged[columns].reset_index(drop=True)
