"""Training time per epoch (the paper's Table 2): forward, backward and optimizer-step
seconds of dense and meProp runs, and the backward speedup measured in training beside
the published one.

The speedup is dense h=500's backward seconds per epoch over the meProp run's, both
means over epochs then seeds; its 95% interval is Welch's on the log seconds (the ratio
of geometric means over seeds), so seeds of the two runs need not pair.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from meprop_bench.report.claims import SETTING, welch
from meprop_bench.report.paper import TABLE2

PUBLISHED = next(t for t in TABLE2 if t.task == "MNIST")  # 18.4x, topk k=20, minibatch 10


def _x(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.2f}x"


def time_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per setting, one row per full-width configuration without dropout: seconds per
    epoch and the backward and whole-step speedups over dense (see the module)."""
    if runs.empty:
        return pd.DataFrame()
    plain = runs[(runs["dropout"] == 0) & runs["family"].isin(["dense", "topk", "unified",
                                                               "randk"])]  # fmt: skip
    plain = plain.assign(total_s=plain["forward_s"] + plain["backward_s"] + plain["step_s"])
    rows = []
    for key, group in plain.groupby(SETTING, sort=False, dropna=False):
        dense = group[group["family"] == "dense"]
        for label, conf in group.groupby("label", sort=False):
            row = {**dict(zip(SETTING, key, strict=True)), "configuration": label,
                   "seeds": len(conf)}  # fmt: skip
            row.update({f"{c.removesuffix('_s')} s/epoch": f"{conf[c].mean():.3g}"
                        for c in ("forward_s", "backward_s", "step_s")})  # fmt: skip
            if len(dense) and conf["family"].iloc[0] != "dense":
                back = welch(np.log(dense["backward_s"]), np.log(conf["backward_s"]))
                total = dense["total_s"].mean() / conf["total_s"].mean()
                interval = (
                    f" [{_x(math.exp(back.low))}-{_x(math.exp(back.high))}]"
                    if math.isfinite(back.low)
                    else ""
                )
                speedup = dense["backward_s"].mean() / conf["backward_s"].mean()
                row["backward speedup [95%]"] = _x(speedup) + interval
                row["epoch speedup"] = _x(total)
            rows.append(row)
    return pd.DataFrame(rows).fillna("-")


NOTE = (
    f"Published (Table 2, MNIST, Adam; {PUBLISHED.hardware}, minibatch {PUBLISHED.batch}, "
    f"k={PUBLISHED.k}): backward {PUBLISHED.dense:g} s dense against {PUBLISHED.sparse:g} s "
    f"meProp over training, {PUBLISHED.speedup}x, counting the linear layers' backprop "
    "only. Here backward_s is all of loss.backward() (every layer, the dense output "
    "layer, the activations and the keep-count hook) and step_s the optimizer with the "
    "recipe's clip, per epoch, on the machine named in the inputs."
)
