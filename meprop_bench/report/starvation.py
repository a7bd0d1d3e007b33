"""The starvation diagnostic from the per-unit keep counts of training runs: how evenly
each hidden layer's units received gradient over training, per recipe and method.

A unit's keep rate is its count over the examples back-propagated (``kept_of``): the
share of training examples whose backward passed that unit a nonzero gradient
(:mod:`meprop_bench.training.unit_keeps`). Uniform selection of k of n units would give each
about k/n, less where the unit's ReLU was inactive; a dense layer gives the share of
examples on which the unit was active.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from meprop_bench.report.claims import K_CLAIMED, SETTING

TOP_SHARE = 0.10  # the busiest tenth of a layer's units: its share of all kept entries
NOTE = (
    "A unit's keep rate is the share of training examples whose backward passed it a "
    "nonzero gradient: kept by the layer's selection and not zeroed by its ReLU (every "
    "active unit, for dense). A uniform choice of k of n units would give each about k/n "
    "(less where the unit was inactive) and its top 10% of units 10% of all keeps; units "
    "never kept received no gradient through meProp in the whole training. Means over "
    "seeds of the configurations the claims compare (k = 20, no dropout)."
)


def keep_rates(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (run, layer, unit) of the runs that recorded counts, for the claims'
    configurations (dense at full width and the meProp methods at k = 20, no dropout):
    ``rate``, and ``rank`` (0 for the unit kept most, up to 1 for the least)."""
    chosen = runs[
        runs["kept"].notna()
        & (runs["dropout"] == 0)
        & ((runs["family"] == "dense") | (runs["k"] == K_CLAIMED))
    ]
    rows = []
    for _, run in chosen.iterrows():
        for layer, counts in run["kept"].items():
            rate = np.sort(np.asarray(counts, float) / max(run["kept_of"], 1))[::-1]
            rank = np.arange(len(rate)) / max(len(rate) - 1, 1)
            rows.append(
                pd.DataFrame({"run": run["run"], "layer": layer, "rate": rate, "rank": rank})
                .assign(**{c: run[c] for c in (*SETTING, "label", "seed")})
            )  # fmt: skip
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _layer_stats(rate: np.ndarray) -> dict[str, float]:
    top = max(1, round(TOP_SHARE * len(rate)))
    total = rate.sum()
    return {
        "never": float((rate == 0).mean()),
        "top_share": float(np.sort(rate)[::-1][:top].sum() / total) if total else np.nan,
        "median": float(np.median(rate)),
    }


def starvation(rates: pd.DataFrame) -> pd.DataFrame:
    """Per setting, configuration and layer, means over seeds of: the share of units
    ``never`` kept, the ``top_share`` of all kept entries that the busiest tenth of
    units took (a uniform layer gives 0.10), and the ``median`` keep rate."""
    if rates.empty:
        return pd.DataFrame()
    keys = [*SETTING, "label", "layer"]
    groups = rates.groupby([*keys, "run"], sort=False, dropna=False)
    per_run = pd.DataFrame(
        [
            {**dict(zip([*keys, "run"], key, strict=True)), **_layer_stats(g["rate"].to_numpy())}
            for key, g in groups
        ]
    )
    stats = per_run.groupby(keys, sort=False, dropna=False)
    return stats[["never", "top_share", "median"]].mean().assign(seeds=stats.size()).reset_index()
