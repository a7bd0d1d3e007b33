"""The report's tables as display-ready frames, and a Markdown renderer for them.

Each function returns a frame of strings with readable column names; ``summary.md``
renders them with :func:`markdown`, ``index.html`` with pandas' ``to_html``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from meprop_bench.report.paper import SOURCE, published_speedups


def markdown(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``frame`` (cells as text, pipes escaped)."""
    if frame.empty:
        return "(none)\n"

    def cell(value: object) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    def header(column: object) -> str:
        """A column's name; a two-level one as "top: bottom" (or the bottom alone)."""
        if isinstance(column, tuple):
            return ": ".join(str(part) for part in column if str(part))
        return str(column)

    lines = [
        "| " + " | ".join(cell(header(c)) for c in frame.columns) + " |",
        "|" + "---|" * len(frame.columns),
        *("| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)),
    ]
    return "\n".join(lines) + "\n"


def _x(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def _interval(low: float, high: float) -> str:
    return "-" if not (math.isfinite(low) and math.isfinite(high)) else f"{low:.2f}-{high:.2f}x"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def _share(value: float) -> str:
    return f"{value:.0%}" if math.isfinite(value) else "-"


def _count(value: float) -> str:
    """A count with thousands separators ("-" when unknown)."""
    return "-" if pd.isna(value) else f"{int(value):,}"


def _threads(value: float) -> str:
    """A case's thread count; a case run at the process's default has none recorded."""
    return "default" if pd.isna(value) else str(int(value))


def _pct(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value * 100:.2f}"


def _case_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """The columns that name a case (the width is the hidden size for a training step, n
    otherwise): every axis a sweep can vary, so no two rows look alike."""
    width = frame["n"]
    if "hidden" in frame:
        width = frame["hidden"].where(frame["suite"] == "train_step", width)
    return {
        "machine": frame["machine"],
        "device": frame["device_name"],
        "kernel": frame["kernel"],
        "threads": frame["threads"].map(_threads),
        "dY": frame["grads"].astype(object).fillna("-"),
        "dtype": frame["dtype"].astype(object).fillna("-"),
        "B": frame["B"].astype(int),
        "n": width.astype(int),
        "k": frame["k"].astype(int),
    }


def _time_columns(frame: pd.DataFrame) -> dict[str, Any]:
    """A paired case's two times and their ratio."""
    return {
        "dense": frame["dense_median"].map(_ms),
        "sparse": frame["sparse_median"].map(_ms),
        "speedup": frame["speedup"].map(_x),
    }


# Case columns shown only when they vary: the inputs section says a constant one once.
SETTINGS = ("machine", "device", "threads", "dtype")
CASE_KEYS = ("suite", "shape", "machine", "device", "kernel", "threads", "dY", "dtype", "B",
             "n", "k")  # fmt: skip
CASE_ORDER = ["machine", "device_name", "dtype", "grads", "threads", "n", "B", "k", "kernel"]


def _runs_apart(table: pd.DataFrame, frame: pd.DataFrame) -> pd.DataFrame:
    """``table`` with the input ``file`` first when a case appears in several files
    (repeated runs; their summary is the across-runs table), so no two rows look alike."""
    keys = [c for c in table if c in CASE_KEYS]
    if table.duplicated(keys).any():
        table.insert(0, "file", [Path(source).name for source in frame["source"]])
    return table


def _drop_constant(table: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Drop those of ``columns`` that hold one value: the inputs section says it once."""
    return table.drop(columns=[c for c in columns if table[c].nunique() < 2])


def speedup_table(speedups: pd.DataFrame, suite: str) -> pd.DataFrame:
    """One row per paired sparse case of ``suite``: shape, times, speedup and interval."""
    if speedups.empty:
        return pd.DataFrame()
    frame = speedups[speedups["suite"] == suite].sort_values(CASE_ORDER, na_position="first")
    table = pd.DataFrame(
        {
            **_case_columns(frame),
            **_time_columns(frame),
            "95% interval": list(map(_interval, frame["ci_low"], frame["ci_high"])),
            "ideal": frame["ideal"].map(_x),
            "efficiency": frame["efficiency"].map(_share),
            "rounds": frame["rounds"].astype(int),
        }
    )
    return _drop_constant(_runs_apart(table, frame), SETTINGS)


def across_runs_table(repeats: pd.DataFrame) -> pd.DataFrame:
    """One row per case measured in several runs: median speedup over the runs, range,
    and the runs where its speedup changed level."""
    if repeats.empty:
        return pd.DataFrame()
    frame = repeats.sort_values(["suite", *CASE_ORDER], na_position="first")
    table = pd.DataFrame(
        {
            "suite": frame["suite"],
            "shape": frame["paper_shape"].astype(object).fillna("-"),
            **_case_columns(frame),
            **_time_columns(frame),
            "runs": frame["runs"].astype(int),
            "range over runs": list(map(_interval, frame["speedup_min"], frame["speedup_max"])),
            "ideal": frame["ideal"].map(_x),
            "level changed at": frame["changed_at"].replace("", "-"),
        }
    )
    return _drop_constant(table, ("shape", *SETTINGS, "dY"))


def split_table(split: pd.DataFrame) -> pd.DataFrame:
    """Selection time against the whole sparse backward, per case."""
    if split.empty:
        return pd.DataFrame()
    frame = split.sort_values(CASE_ORDER, na_position="first")
    table = pd.DataFrame(
        {
            **_case_columns(frame),
            "selection": frame["selection_s"].map(_ms),
            "sparse backward": frame["backward_s"].map(_ms),
            "selection share": frame["selection_share"].map("{:.0%}".format),
            "dense backward": frame["dense_s"].map(_ms),
        }
    )
    return _drop_constant(_runs_apart(table, frame), SETTINGS)


def unpaired_table(unpaired: pd.DataFrame) -> pd.DataFrame:
    """Benchmarks that gave no speedup, with why."""
    if unpaired.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "file": unpaired["source"],
            "suite": unpaired["suite"].fillna("-"),
            "case": unpaired["case_id"].fillna("-"),
            "reason": unpaired["reason"],
        }
    )


def training_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Per configuration, mean over seeds: test accuracy at the best dev epoch (with
    its 95% t-interval), best dev accuracy and epoch, and the final train - dev gap."""
    if summary.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {
            "data": summary["data"],
            "train images": summary["train_size"].map(_count),
            "recipe": summary["recipe"],
            "configuration": summary["label"],
            "seeds": summary["seeds"],
            "test % (best dev epoch)": summary["test_acc"].map(_pct),
            "95% interval": [
                "-" if not math.isfinite(lo) else f"{lo * 100:.2f}-{hi * 100:.2f}"
                for lo, hi in zip(summary["test_ci_low"], summary["test_ci_high"], strict=True)
            ],
            "best dev %": summary["best_dev_acc"].map(_pct),
            "best epoch": summary["best_epoch"].map("{:.1f}".format),
            "final train %": summary["final_train_acc"].map(_pct),
            "train - dev gap (pts)": summary["gap"].map(lambda v: f"{v * 100:+.2f}"),
            "s per run": summary["wall_s"].map("{:.1f}".format),
        }
    )  # fmt: skip


# --- measured against published -----------------------------------------------------


def _matches(speedups: pd.DataFrame, row: pd.Series) -> tuple[pd.DataFrame, str]:
    """Measured speedups at the shape of a published one, and what they time."""
    s = speedups
    if row["table"] == "Table 7":
        found = s[(s["suite"].isin(["paper", "backward"])) & (s["B"] == row["batch"])
                  & (s["n"] == row["hidden"]) & (s["d_in"] == row["hidden"])
                  & (s["k"] == row["k"])]  # fmt: skip
        return found, "one layer's backward kernel"
    if row["table"] == "Table 8":
        found = s[((s["suite"] == "layer") & (s["n"] == row["hidden"]))
                  | ((s["suite"] == "train_step") & (s["hidden"] == row["hidden"]))]  # fmt: skip
        return found[found["k"] == row["k"]], "one layer's autograd backward / a training step"
    if row["task"] == "MNIST":
        found = s[(s["suite"] == "paper") & (s["n"] == row["hidden"]) & (s["B"].isin([10, 50]))
                  & (s["k"] == row["k"])]  # fmt: skip
        return found, "one hidden layer's backward kernel (B = 10 or 50)"
    if row["task"] == "Parsing":
        found = s[(s["suite"] == "paper") & (s["n"] == row["hidden"]) & (s["B"] == row["batch"])
                  & (s["k"] == row["k"])]  # fmt: skip
        return found, "one hidden layer's backward kernel"
    return s.iloc[0:0], ""


_WHY_NONE = {
    "Table 7": "run the paper preset: pytest suites --benchmark-only --meprop-preset paper "
    "-k gpu-table7",
    "Table 8": "needs the layer suite at n = 8192 with these k (e.g. --meprop-widths 8192 "
    "--meprop-ks 8,16,32,64,128,256,512)",
    "POS": "an LSTM tagger; meprop-bench times MLP layers",
    "Parsing": "run the paper preset (parsing-mlp shape, B = 10,000)",
    "MNIST": "run the quick or paper preset (mnist-mlp shapes)",
}


def _hardware(device: str, published: str) -> str:
    same = "GTX 1080" in device if "GPU" in published else False
    return "same GPU model" if same else f"differs: paper {published}; here {device}"


def _varying_settings(speedups: pd.DataFrame) -> list[str]:
    """Which of machine, dtype and input file (repeated runs) vary among ``speedups``."""
    several = [c for c in ("machine", "dtype") if speedups[c].nunique() > 1]
    return several + (["source"] if speedups["source"].nunique() > speedups["machine"].nunique()
                      else [])  # fmt: skip


def _measured_case(m: pd.Series, varying: list[str]) -> str:
    """A measured case in words: kernel, shape, threads, suite, and the ``varying``
    settings (the input file by its name)."""
    threads = "" if pd.isna(m["threads"]) else f", threads={int(m['threads'])}"
    extra = "".join(f", {Path(m[c]).name if c == 'source' else m[c]}" for c in varying)
    return f"{m['kernel']}, B={int(m['B'])}, n={int(m['n'])}{threads}{extra}, {m['suite']} suite"


def paper_comparison(speedups: pd.DataFrame) -> pd.DataFrame:
    """Published speedups (Tables 1, 2, 7, 8) beside measured ones at the same shape:
    one row per (published figure, measured kernel), or one row per table and task
    saying there is no matching measurement and how to get one."""
    rows = []
    published = published_speedups()
    if speedups.empty:
        speedups = pd.DataFrame(
            columns=["suite", "B", "n", "d_in", "hidden", "k", "kernel", "threads", "machine",
                     "dtype", "source"]
        )  # fmt: skip
    varying = _varying_settings(speedups)
    for (table, task), group in published.groupby(["table", "task"], sort=False):
        matched = False
        for _, pub in group.iterrows():
            found, what = _matches(speedups, pub)
            for _, m in found.sort_values(["B", "kernel", "threads"]).iterrows():
                matched = True
                optimizer = f" ({pub['optimizer']})" if pub["optimizer"] else ""
                rows.append(
                    {
                        "paper": f"{table} {task}{optimizer}",
                        "k": int(pub["k"]),
                        "published": _x(pub["speedup"]),
                        "published measures": pub["measures"],
                        "measured": f"{_x(m['speedup'])} [{_interval(m['ci_low'], m['ci_high'])}]",
                        "measured case": f"{_measured_case(m, varying)} ({what})",
                        "hardware": _hardware(m["device_name"], pub["hardware"]),
                    }
                )
        if not matched:
            key = table if table in ("Table 7", "Table 8") else task
            ks = ", ".join(str(k) for k in group["k"])
            rows.append(
                {
                    "paper": f"{table} {task}",
                    "k": ks,
                    "published": ", ".join(_x(v) for v in group["speedup"]),
                    "published measures": group["measures"].iloc[0],
                    "measured": "no matching measurement",
                    "measured case": _WHY_NONE[key],
                    "hardware": group["hardware"].iloc[0],
                }
            )
    return pd.DataFrame(rows)


def accuracy_comparison(summary: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Measured test accuracy (mean over seeds) beside Table 3 and Figure 4 at the same
    model and k; Figure 4 values are read off the plot (approximate)."""
    if summary.empty:
        return pd.DataFrame()
    rows = []
    plain = summary[summary["dropout"] == 0]
    for _, pub in published.iterrows():
        if pub["model"] == "dense":
            found = plain[plain["family"] == "dense"]
        else:
            found = plain[(plain["family"] == pub["model"]) & (plain["k_axis"] == pub["k"])]
        for _, m in found.iterrows():
            rows.append(
                {
                    "paper": pub["figure"] + (" (approx.)" if pub["approximate"] else ""),
                    "model": pub["model"],
                    "k or h": "-" if pd.isna(pub["k"]) else int(pub["k"]),
                    "published test %": f"{pub['test_acc']:.2f}",
                    "measured test %": _pct(m["test_acc"]),
                    "measured configuration": f"{m['label']}, {m['recipe']} recipe, "
                    f"{m['data']} {_count(m['train_size'])} train images ({m['seeds']} seeds)",
                }
            )
    return pd.DataFrame(rows)


PAPER_NOTE = (
    f"Published figures: {SOURCE}. Table 1 and 2 speedups are the backprop time of all of "
    "a model's linear layers summed over training (C# on a CPU); Tables 7 and 8 are GPU "
    "times; each measured speedup here is one case of one suite on this hardware, so the "
    "comparison is of orders of magnitude, not a replication."
)
