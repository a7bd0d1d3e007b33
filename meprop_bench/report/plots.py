"""The report's plots (seaborn on matplotlib's Agg backend), each saved as PNG and SVG.

Every plot function takes the :class:`ReportData` and returns a figure, or raises
:class:`SkipPlot` saying what the inputs lack; :func:`write_plots` saves them all and
records what was skipped and why.
"""

from __future__ import annotations

import textwrap
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from meprop_bench.report import claims
from meprop_bench.report.model import PlotFile, ReportData
from meprop_bench.report.paper import published_accuracies
from meprop_bench.report.starvation import keep_rates

DPI = 90
SVG_HASH_SALT = "meprop-bench"  # fixed ids in SVG output, so reruns diff cleanly
PANEL_WIDTH = 45  # characters of a panel title line


class SkipPlot(Exception):
    """The inputs lack what a plot needs; the message says what."""


def _suite(data: ReportData, suite: str) -> pd.DataFrame:
    frame = data.speedups
    if frame.empty or not (frame["suite"] == suite).any():
        raise SkipPlot(f"no paired {suite} cases in the inputs")
    return frame[frame["suite"] == suite].copy()


def _where(frame: pd.DataFrame) -> pd.Series:
    """What ran each case: its device (the GPU, or the CPU model), or, when the inputs
    come from several machines, the machine (host, CPU and GPUs) and the device."""
    if frame["machine"].nunique() < 2:
        return frame["device_name"]
    return frame["machine"] + " / " + frame["device"].astype(str)


def _threads_label(count: float) -> str:
    if pd.isna(count):
        return "default threads"
    return "1 thread" if count == 1 else f"{int(count)} threads"


def _settings(frame: pd.DataFrame, *, where: bool = True) -> pd.Series:
    """One label per case naming the settings a plot draws no axis for, so no line or
    bar mixes two of them: where it ran (``where``; when it varies), the dY source
    (when known), the dtype and the thread count (when they vary). Wrapped to fit
    above a panel."""
    parts = []
    if where and frame["where"].nunique() > 1:
        parts.append(frame["where"])
    if frame["grads"].notna().any():
        parts.append(frame["grads"].fillna("-").astype(str) + " dY")
    if frame["dtype"].nunique() > 1:
        parts.append(frame["dtype"].astype(str))
    if frame["threads"].nunique(dropna=False) > 1:
        parts.append(frame["threads"].map(_threads_label))
    if not parts:
        return pd.Series("", index=frame.index)
    label = parts[0].str.cat(parts[1:], sep=", ") if len(parts) > 1 else parts[0]
    return label.map(lambda text: textwrap.fill(text, PANEL_WIDTH))


def _with_panels(frame: pd.DataFrame) -> pd.DataFrame:
    """Add ``where`` (see :func:`_where`) and ``row``, the facet label of
    :func:`_settings`."""
    frame = frame.assign(where=_where(frame))
    return frame.assign(row=_settings(frame))


def _batches(frame: pd.DataFrame) -> str:
    """The batch sizes a plot aggregates over, for its title."""
    sizes = ", ".join(str(b) for b in sorted(frame["B"].dropna().astype(int).unique()))
    return f"batch sizes B = {sizes}" if frame["B"].nunique() > 1 else f"B = {sizes}"


def _width_and_batch(frame: pd.DataFrame) -> pd.Series:
    width, batch = (frame[c].astype(int).astype(str) for c in ("n", "B"))
    return "n = " + width + ", B = " + batch


def _lines_with_intervals(
    data: pd.DataFrame, x: str, y: str, low: str, high: str, hue_order: list[str], **_: object
) -> None:
    """Per kernel, each case's point with its vertical interval bar, and a line through
    the median of the points at each x: repeated runs of a case show as several points,
    never as a zigzag (FacetGrid mapper)."""
    ax = plt.gca()
    palette = dict(zip(hue_order, sns.color_palette(n_colors=len(hue_order)), strict=True))
    for kernel, group in data.groupby("kernel", sort=False):
        group = group.sort_values(x)
        err = np.vstack([group[y] - group[low], group[high] - group[y]]).clip(min=0)
        ax.errorbar(group[x], group[y], yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                    color=palette[kernel], label=kernel)  # fmt: skip
        line = group.groupby(x)[y].median()
        ax.plot(line.index, line.to_numpy(), lw=1.2, color=palette[kernel])


def _runs_apart(frame: pd.DataFrame, label: str, panel: list[str]) -> pd.Series:
    """``frame[label]``, with the input file added where a panel holds one label from
    several files (repeated runs of a case), so no bar stands for two."""
    repeated = frame.duplicated([*panel, label], keep=False)
    files = frame["source"].map(lambda source: Path(source).name)
    return frame[label].where(~repeated, frame[label] + " (" + files + ")")


def _log_axes(ax: plt.Axes, unit: str = "x") -> None:
    """Log x and y with labels at 1, 2, 5 x 10^n only: matplotlib would otherwise label
    every minor tick of a short log axis, slow to lay out and hard to read."""
    ax.set(xscale="log", yscale="log")
    for axis, suffix in ((ax.xaxis, ""), (ax.yaxis, unit)):
        axis.set_major_locator(LogLocator(subs=(1, 2, 5)))
        axis.set_major_formatter(FuncFormatter(lambda v, _, s=suffix: f"{v:g}{s}"))
        axis.set_minor_formatter(NullFormatter())


def _ideal_line(ax: plt.Axes, xs: np.ndarray) -> None:
    grid = np.geomspace(xs.min(), xs.max(), 50)
    ax.plot(grid, 1 / grid, "k--", lw=1, label="ideal n/k")
    ax.axhline(1, color="grey", lw=0.8, ls=":")


def _facet(frame: pd.DataFrame, col: str, **kw: object) -> sns.FacetGrid:
    """Panels by ``col`` and by the ``row`` settings, each titled with both (titles in the
    right margin would overlap when the settings name machines)."""
    grid = sns.FacetGrid(frame, col=col, row="row", sharey=False, **kw)
    grid.set_titles(template="{row_name}\n{col_name}", size=8)
    return grid


def _kernel_facet(frame: pd.DataFrame, col: str) -> tuple[sns.FacetGrid, list[str]]:
    return _facet(frame, col, height=3.2, aspect=1.15), sorted(frame["kernel"].unique())


def _finish(grid: sns.FacetGrid, title: str, handles_from: plt.Axes | None = None) -> Figure:
    ax = handles_from or grid.axes.flat[0]
    handles, labels = ax.get_legend_handles_labels()
    grid.figure.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 0.92),
                       frameon=False, fontsize=8)  # fmt: skip
    grid.figure.suptitle(title, y=1.02)
    return grid.figure


def speedup_vs_k(data: ReportData, suite: str = "backward") -> Figure:
    """Speedup (dense / sparse median) against k/n, log-log, with the ideal n/k."""
    frame = _with_panels(_suite(data, suite))
    frame["width"] = _width_and_batch(frame)
    grid, hue_order = _kernel_facet(frame, "width")
    grid.map_dataframe(_lines_with_intervals, x="k_over_n", y="speedup", low="ci_low",
                       high="ci_high", hue_order=hue_order)  # fmt: skip
    for ax in grid.axes.flat:
        _ideal_line(ax, frame["k_over_n"].to_numpy(float))
        _log_axes(ax)
    grid.set_axis_labels("k / n (share of dY kept)", "speedup over dense (x)")
    name = {"backward": "backward kernel", "layer": "layer backward (autograd)",
            "paper": "paper shapes"}.get(suite, suite)  # fmt: skip
    return _finish(grid, f"Speedup of the {name} against k/n (95% bootstrap intervals)")


def layer_speedup_vs_k(data: ReportData) -> Figure:
    """As :func:`speedup_vs_k`, for ``loss.backward()`` through nn.Linear/MePropLinear."""
    return speedup_vs_k(data, "layer")


def efficiency(data: ReportData) -> Figure:
    """Speedup / ideal (n/k) against k/n: 1 would be the full n/k."""
    frame = _with_panels(_suite(data, "backward"))
    frame = frame.assign(
        width=_width_and_batch(frame),
        eff_low=frame["ci_low"] / frame["ideal"],
        eff_high=frame["ci_high"] / frame["ideal"],
    )
    grid, hue_order = _kernel_facet(frame, "width")
    grid.map_dataframe(_lines_with_intervals, x="k_over_n", y="efficiency", low="eff_low",
                       high="eff_high", hue_order=hue_order)  # fmt: skip
    for ax in grid.axes.flat:
        _log_axes(ax, unit="")
        ax.axhline(1, color="k", ls="--", lw=1)
    grid.set_axis_labels("k / n (share of dY kept)", "efficiency = speedup / (n/k)")
    return _finish(grid, "Backward efficiency: measured speedup as a share of the ideal n/k")


def speedup_vs_batch(data: ReportData) -> Figure:
    """Speedup against batch size B, per width and k/n."""
    frame = _suite(data, "backward")
    if frame["B"].nunique() < 2:
        raise SkipPlot(f"only one batch size (B = {int(frame['B'].iloc[0])}) in the inputs")
    frame = _with_panels(frame)
    frame["shape"] = (
        "n = "
        + frame["n"].astype(int).astype(str)
        + ", k/n = "
        + frame["k_over_n"].map("{:g}".format)
    )
    grid, hue_order = _kernel_facet(frame, "shape")
    grid.map_dataframe(_lines_with_intervals, x="B", y="speedup", low="ci_low",
                       high="ci_high", hue_order=hue_order)  # fmt: skip
    for ax in grid.axes.flat:
        _log_axes(ax)
        ax.axhline(1, color="grey", lw=0.8, ls=":")
    grid.set_axis_labels("batch size B", "speedup over dense (x)")
    return _finish(grid, "Backward speedup against batch size")


def _heatmap(data: pd.DataFrame, limit: float, **_: object) -> None:
    table = data.pivot_table(index="n", columns="k_share", values="speedup", aggfunc="median")
    ax = plt.gca()
    with warnings.catch_warnings():
        # seaborn's own use of a matplotlib API due for deprecation; nothing a user can act on
        warnings.filterwarnings("ignore", "The set_bad function", PendingDeprecationWarning)
        sns.heatmap(
            np.log2(table), annot=table.map(lambda v: f"{v:.1f}x"), fmt="", cmap="vlag_r",
            center=0, vmin=-limit, vmax=limit, cbar=False, ax=ax,
            xticklabels=[f"{v:g}" for v in table.columns], yticklabels=list(table.index),
        )  # fmt: skip
    ax.grid(False)


def _nominal(share: float) -> float:
    """The k/n a sweep asked for: 41/4096 and 10/1024 both read 0.01."""
    one = float(f"{share:.1g}")
    return one if abs(one - share) <= 0.05 * share else float(f"{share:.2g}")


def speedup_heatmap(data: ReportData) -> Figure:
    """Speedup over (width n, k/n), one panel per kernel and settings; median over the
    batch sizes, which the title lists."""
    frame = _suite(data, "backward")
    if frame.groupby(["n", "k_over_n"]).ngroups < 2:
        raise SkipPlot("a single (n, k/n) point; a heatmap needs two or more")
    frame = _with_panels(frame)
    frame["k_share"] = frame["k_over_n"].map(_nominal)
    frame["n"] = frame["n"].astype(int)
    limit = float(np.abs(np.log2(frame["speedup"])).max()) or 1.0
    several = frame["row"].nunique() > 1
    layout = {"row": "row"} if several else {"col_wrap": 3}
    grid = sns.FacetGrid(frame, col="kernel", height=2.6, aspect=1.1, sharex=False,
                         sharey=False, **layout)  # fmt: skip
    grid.map_dataframe(_heatmap, limit=limit)
    grid.set_titles(template="{row_name}\n{col_name}" if several else "{col_name}", size=8)
    grid.set_axis_labels("k / n (rounded)", "width n")
    only = frame["row"].iloc[0]
    settings = f"; {only}" if only and not several else ""
    grid.figure.suptitle(
        f"Backward speedup over dense by width and k/n (median over {_batches(frame)}"
        f"{settings}; blue > 1x > red)",
        y=1.03,
    )
    return grid.figure


def time_split(data: ReportData) -> Figure:
    """Each sparse backward's median split into selection and the rest, dense beside."""
    frame = data.split
    if frame.empty:
        raise SkipPlot("needs the selection suite and the backward suite from the same run")
    frame = _with_panels(frame)
    frame["width"] = "n = " + frame["n"].astype(int).astype(str)
    share, batch = frame["k_over_n"].map("{:.1%}".format), frame["B"].astype(int).astype(str)
    frame["case"] = frame["kernel"] + "  k/n=" + share + "  B=" + batch
    frame["case"] = _runs_apart(frame, "case", ["row", "width"])

    def bars(data: pd.DataFrame, **_: object) -> None:
        ax = plt.gca()
        data = data.sort_values(["k_over_n", "B", "case"])
        y = np.arange(len(data))
        sel, rest = data["selection_s"] * 1e3, data["rest_s"] * 1e3
        ax.barh(y, sel, color="tab:orange", label="selection")
        ax.barh(y, rest, left=sel, color="tab:blue", label="products and the rest")
        ax.scatter(data["dense_s"] * 1e3, y, marker="|", s=120, color="k", label="dense backward")
        for at, row in zip(y, data.itertuples(), strict=True):
            if row.part_exceeds_whole:  # a part above its whole: noise, said on the bar
                ax.text(row.selection_s * 1e3, at, " selection > whole backward: noise",
                        color="tab:red", fontsize=7, va="center")  # fmt: skip
        ax.set_yticks(y, data["case"], fontsize=7)

    grid = _facet(frame, "width", height=3.4, aspect=1.3, sharex=False)
    grid.map_dataframe(bars)
    grid.set_axis_labels("median time (ms)", "")
    return _finish(grid, "Where a sparse backward's time goes: selection vs the rest")


def devices(data: ReportData) -> Figure:
    """Speedups of the same cases on each device side by side."""
    frame = _with_panels(_suite(data, "backward"))
    if frame["where"].nunique() < 2:
        raise SkipPlot("the inputs hold one device on one machine")
    width, share = frame["n"].astype(int).astype(str), frame["k_over_n"].map("{:.1%}".format)
    settings = _settings(frame, where=False)
    frame["case"] = ("n=" + width + ", k/n=" + share + "\n" + settings).str.strip()
    plot = sns.catplot(frame, kind="bar", x="speedup", y="kernel", hue="where", col="case",
                       col_wrap=3, errorbar=None, height=3, aspect=1.2, sharex=False)  # fmt: skip
    plot.set_titles(col_template="{col_name}", size=8)
    plot.set_axis_labels("speedup over dense (x)", "")
    plot.figure.suptitle(f"Backward speedup by device (mean over {_batches(frame)})", y=1.03)
    return plot.figure


def train_step(data: ReportData) -> Figure:
    """Whole-training-step speedup of each meProp variant, with its bound 3n/(n+2k); a
    bar above the bound (a measurement error) is red and says so, an unstable one grey."""
    frame = _with_panels(_suite(data, "train_step"))
    shape = frame["pair_key"].str.replace("train ", "", regex=False)
    frame["shape"] = (shape + "\n" + frame["row"]).str.strip()
    frame["bar"] = _runs_apart(frame, "kernel", ["shape"])

    def bars(data: pd.DataFrame, **_: object) -> None:
        ax = plt.gca()
        data = data.sort_values("bar")
        y = np.arange(len(data))
        err = np.vstack([data["speedup"] - data["ci_low"], data["ci_high"] - data["speedup"]])
        noise = (data["unstable"] != "") | data["above_bound"]
        colors = np.where(data["above_bound"], "tab:red", np.where(noise, "silver", "tab:blue"))
        ax.barh(y, data["speedup"], xerr=np.nan_to_num(err.clip(min=0)), color=colors,
                capsize=3, label="measured")  # fmt: skip
        for at, over in zip(y, data["above_bound"], strict=True):
            if over:
                ax.text(0, at, " above its bound: measurement error", color="white",
                        fontsize=7, va="center")  # fmt: skip
        ax.axvline(data["ideal"].iloc[0], color="k", ls="--", label="bound 3n/(n+2k)")
        ax.axvline(1, color="grey", ls=":")
        ax.set_yticks(y, data["bar"], fontsize=8)

    grid = sns.FacetGrid(frame, col="shape", col_wrap=2, height=3, aspect=1.6, sharex=False)
    grid.set_titles(col_template="{col_name}", size=8)
    grid.map_dataframe(bars)
    grid.set_axis_labels("training-step speedup over dense (x)", "")
    return _finish(grid, "Training step (forward + backward + Adam) of the MLP 784-h-h-10")


def _training(data: ReportData) -> pd.DataFrame:
    if data.epochs.empty:
        raise SkipPlot("no training results in the inputs")
    return data.epochs


def _largest_size(frame: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The rows at the largest training-set size, and that size in words (a plot that
    is not drawn against size shows one size rather than mix them)."""
    largest = frame["train_size"].max()
    if pd.isna(largest):
        return frame, "all training images"
    return frame[frame["train_size"] == largest], f"{int(largest):,} training images"


def overfit_curves(data: ReportData) -> Figure:
    """Train and dev accuracy per epoch, mean and 95% band over seeds, per configuration."""
    epochs, size = _largest_size(_training(data))
    if epochs["epoch"].max() < 2:
        raise SkipPlot("one epoch per run; curves need two or more")
    long = epochs.melt(
        id_vars=["recipe", "label", "dropout", "seed", "epoch"],
        value_vars=["train_acc", "dev_acc"], var_name="split", value_name="accuracy",
    )  # fmt: skip
    long["accuracy"] *= 100
    long["split"] = long["split"].map({"train_acc": "train (on the fly)", "dev_acc": "dev"})
    row = "recipe" if long["recipe"].nunique() > 1 else None
    plot = sns.relplot(
        long, kind="line", x="epoch", y="accuracy", hue="label", col="split", row=row,
        errorbar=("ci", 95), seed=0, marker="o", height=3.4, aspect=1.2,
    )  # fmt: skip
    plot.set_axis_labels("epoch", "accuracy (%)")
    plot.set_titles(col_template="{col_name}", row_template="{row_name} recipe")
    for ax in plot.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    seeds = epochs.groupby("label")["seed"].nunique().min()
    plot.figure.suptitle(
        f"Train vs dev accuracy per epoch ({size}; mean over {seeds}+ seeds, 95% bootstrap band)",
        y=1.03,
    )
    return plot.figure


def _accuracy_panel(ax: plt.Axes, runs: pd.DataFrame, palette: dict[str, Any]) -> None:
    """One recipe's test accuracy against k (see :func:`accuracy_vs_k`)."""
    sparse = runs[runs["family"] != "dense"]
    order = [f for f in palette if f in set(sparse["family"])]
    sns.lineplot(sparse, x="k_axis", y="test", hue="family", hue_order=order, palette=palette,
                 errorbar=("ci", 95), seed=0, marker="o", err_style="bars", ax=ax)  # fmt: skip
    dense = runs[runs["family"] == "dense"]["test"]
    if len(dense):
        ax.axhline(dense.mean(), color="k", lw=1, label=f"dense h={int(runs['hidden'].max())}")
        if len(dense) > 1:
            ax.axhspan(
                dense.mean() - dense.std(), dense.mean() + dense.std(), color="k", alpha=0.08
            )
    paper = published_accuracies()
    paper = paper[paper["model"].isin(order) & paper["k"].notna()]
    for model, group in paper.groupby("model"):
        ax.scatter(group["k"], group["test_acc"], marker="x", s=40, color=palette[model],
                   label=f"paper {model} (Fig. 4/Table 3)")  # fmt: skip
    ax.set(xscale="log", xlabel="k (entries kept per layer; width for dense h=k)",
           ylabel="test accuracy at best dev epoch (%)")  # fmt: skip
    ax.set_xticks(sorted({*sparse["k_axis"].astype(int), *paper["k"].astype(int)}))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, frameon=False, loc="lower right")


def accuracy_vs_k(data: ReportData) -> Figure:
    """Test accuracy at the best dev epoch against k, one panel per recipe: topk,
    unified, randk and a dense model of width h = k, beside full-width dense; the
    paper's Figure 4 and Table 3 values (read off the plot) as crosses."""
    runs = data.runs
    if runs.empty:
        raise SkipPlot("no training results in the inputs")
    runs, size = _largest_size(runs[runs["dropout"] == 0])
    runs = runs.assign(test=runs["test_acc_at_best"] * 100)
    if (runs["family"] == "dense").all():
        raise SkipPlot("no meProp or dense h=k runs in the training results")
    families = ("topk", "unified", "randk", "dense h=k")
    palette = dict(zip(families, sns.color_palette(n_colors=len(families)), strict=True))
    recipes = list(runs["recipe"].unique())
    fig, axes = plt.subplots(1, len(recipes), figsize=(6.4 * len(recipes), 4.2), squeeze=False)
    for ax, recipe in zip(axes.flat, recipes, strict=True):
        _accuracy_panel(ax, runs[runs["recipe"] == recipe], palette)
        ax.set_title(f"{recipe} recipe", fontsize=10)
    data_name = runs["data"].iloc[0]
    fig.suptitle(f"Test accuracy against k ({data_name}, {size}; paper: full MNIST)", y=1.02)
    return fig


def claims_vs_size(data: ReportData) -> Figure:
    """Claims (a) and (c) against the training-set size: top-k minus the baseline in
    test-accuracy points with its 95% interval, one line per recipe and data set, the
    claim's margin and the paper's own difference marked."""
    diffs = claims.differences(data.runs) if not data.runs.empty else pd.DataFrame()
    if diffs.empty or diffs["train_size"].nunique() < 2:
        raise SkipPlot("claims (a) and (c) were not measured at two or more training-set sizes")
    diffs = diffs.assign(line=diffs["data"] + ", " + diffs["recipe"] + " recipe")
    titles = {"a": "(a) top-k k=20 minus dense h=20", "c": "(c) top-k k=20 minus dense h=500"}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), squeeze=False)
    for ax, letter in zip(axes.flat, ("a", "c"), strict=True):
        mine = diffs[diffs["letter"] == letter].sort_values("train_size")
        lines = list(mine.groupby("line", sort=False))
        for i, (line, one) in enumerate(lines):
            err = [one["diff"] - one["low"], one["high"] - one["diff"]]
            dodge = 1 + 0.04 * (i - (len(lines) - 1) / 2)  # side by side, not on top
            ax.errorbar(one["train_size"] * dodge, one["diff"], yerr=err, marker="o",
                        capsize=3, label=line, color=f"C{i}")  # fmt: skip
        ax.axhline(claims.PAPER_DIFFERENCE[letter], color="k", ls="--", lw=1,
                   label=f"paper (MNIST): {claims.PAPER_DIFFERENCE[letter]:+.2f}")  # fmt: skip
        margin = 100 * (claims.NON_INFERIORITY if letter == "c" else 0.0)
        ax.axhline(margin, color="0.5", lw=1, label=f"claim holds above {margin:+.1f}")
        ax.set(xscale="log", xlabel="training images", ylabel="difference (test-accuracy points)",
               title=titles[letter])  # fmt: skip
        sizes = sorted(mine["train_size"].astype(int).unique())
        ax.set_xticks(sizes)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=7, frameon=False)
    fig.suptitle("Top-k against its baselines as the training set grows (95% Welch intervals "
                 "over seeds)", y=1.02)  # fmt: skip
    return fig


def unit_keeps(data: ReportData) -> Figure:
    """Each hidden unit's keep rate over training, units sorted from most to least kept
    (mean over seeds at each rank), per recipe and layer: the starvation diagnostic; with
    several training-set sizes, the smallest and the largest side by side (line style)."""
    rates = keep_rates(data.runs) if not data.runs.empty else pd.DataFrame()
    if rates.empty:
        raise SkipPlot("no keep counts in the inputs (training files of schema v2 record them)")
    sizes = rates["train_size"].dropna()
    style = None
    if sizes.nunique() > 1:
        ends = (sizes.min(), sizes.max())
        rates = rates[rates["train_size"].isin(ends)]
        rates = rates.assign(images=rates["train_size"].map("{:,.0f} train images".format))
        style = "images"
    # The mean over seeds at each rank, taken here in one groupby (seaborn's per-x
    # estimator took half a minute at 500 units a layer); unsorted keeps each key's order
    # of first appearance, as seaborn orders hues, styles and facets.
    keys = ["label", "recipe", "layer", *([style] if style else []), "rank"]
    rates = (rates.assign(percent=rates["rate"] * 100)
             .groupby(keys, sort=False, as_index=False)["percent"].mean())  # fmt: skip
    plot = sns.relplot(
        rates, kind="line", x="rank", y="percent", hue="label", col="recipe", row="layer",
        style=style, estimator=None, height=3.2, aspect=1.3, facet_kws={"margin_titles": True},
    )  # fmt: skip
    plot.set(yscale="symlog")
    plot.set_axis_labels("units, most to least kept (share of the layer)", "examples kept (%)")
    plot.set_titles(col_template="{col_name} recipe", row_template="{row_name}")
    plot.figure.suptitle(
        "How often each hidden unit's gradient was kept over training (mean over seeds)", y=1.03
    )
    return plot.figure


def activations(data: ReportData) -> Figure:
    """Per epoch, at the largest training-set size: the largest |logit| and the last
    hidden layer's mean activation norm on the dev split, and the train loss, per
    configuration and recipe (mean over seeds): how a run's network grows beside its
    accuracy curves."""
    epochs = _training(data)
    if "max_abs_logit" not in epochs or epochs["max_abs_logit"].isna().all():
        raise SkipPlot("no activation figures in the inputs (training files of schema v3 "
                       "record them)")  # fmt: skip
    epochs, size = _largest_size(epochs[epochs["max_abs_logit"].notna() & (epochs["dropout"] == 0)])
    long = epochs.assign(
        last_hidden=[norms[-1] for norms in epochs["hidden_norm"]]
    ).melt(
        id_vars=["recipe", "label", "seed", "epoch"],
        value_vars=["max_abs_logit", "last_hidden", "train_loss"], var_name="figure",
    )  # fmt: skip
    names = {"max_abs_logit": "largest |logit| (dev)",
             "last_hidden": "last hidden layer: mean activation norm (dev)",
             "train_loss": "train loss (mean over the epoch)"}  # fmt: skip
    long["figure"] = long["figure"].map(names)
    plot = sns.relplot(
        long, kind="line", x="epoch", y="value", hue="label", col="figure", row="recipe",
        errorbar=None, height=3.2, aspect=1.25, facet_kws={"sharey": False},
    )  # fmt: skip
    plot.set(yscale="log")
    plot.set_titles(col_template="{col_name}", row_template="{row_name} recipe", size=8)
    plot.figure.suptitle(f"Logits, activations and train loss per epoch ({size}, mean over "
                         "seeds)", y=1.03)  # fmt: skip
    return plot.figure


def model_layers(data: ReportData) -> Figure:
    """Per swapped layer of each ``meprop-bench model`` file: its backward's speedup inside
    the training step and alone (the same kernel, shape and k), with their 95% intervals,
    and the ideal n/k."""
    frame = data.model_layers
    if frame.empty:
        raise SkipPlot("no meprop-bench model files in the inputs")
    labels = list(dict.fromkeys(frame["label"]))
    cols = min(len(labels), 4)
    rows_of_panels = -(-len(labels) // cols)
    height = 0.8 + 0.75 * frame.groupby("label").size().max()
    fig, axes = plt.subplots(rows_of_panels, cols, figsize=(4.6 * cols, height * rows_of_panels),
                             squeeze=False)  # fmt: skip
    for ax in axes.flat[len(labels) :]:
        ax.set_visible(False)
    for ax, label in zip(axes.flat, labels, strict=False):
        rows = frame[frame["label"] == label].reset_index(drop=True)
        y = np.arange(len(rows))
        for offset, key, name, color in ((-0.18, "in_step", "in the step", "tab:blue"),
                                         (0.18, "isolated", "alone", "tab:orange")):  # fmt: skip
            value = rows[f"{key}_speedup"].astype(float)
            err = np.vstack([value - rows[f"{key}_low"].astype(float),
                             rows[f"{key}_high"].astype(float) - value])  # fmt: skip
            ax.barh(y + offset, value, height=0.34, color=color, label=name,
                    xerr=np.nan_to_num(err.clip(min=0)), capsize=2)  # fmt: skip
        ax.scatter(rows["ideal_speedup"], y, marker="|", s=300, color="k", label="ideal n/k",
                   zorder=3)  # fmt: skip
        ax.axvline(1, color="grey", ls=":", lw=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.set_yticks(y, rows["name"] + "\n" + rows["shape"], fontsize=7)
        ax.invert_yaxis()
        ax.set_title(label, fontsize=9)
    for ax in axes.flat[: len(labels)]:
        ax.set_xlabel("backward speedup over dense (x)", fontsize=8)
    handles, names = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper left", bbox_to_anchor=(1.0, 0.95), frameon=False,
               fontsize=8)  # fmt: skip
    fig.suptitle("Your model: each swapped layer's backward in the step and alone", y=1.0)
    fig.tight_layout()
    return fig


PLOTS: dict[str, tuple[str, Callable[[ReportData], Figure]]] = {
    "speedup_vs_k": ("Backward speedup against k/n", speedup_vs_k),
    "layer_speedup_vs_k": ("Layer backward (autograd) speedup against k/n", layer_speedup_vs_k),
    "efficiency": ("Efficiency: speedup / ideal n/k", efficiency),
    "speedup_vs_batch": ("Speedup against batch size", speedup_vs_batch),
    "speedup_heatmap": ("Speedup over width and k/n", speedup_heatmap),
    "time_split": ("Selection vs products", time_split),
    "devices": ("Devices side by side", devices),
    "train_step": ("Training-step speedup", train_step),
    "model_layers": ("Your model: layers in the step and alone", model_layers),
    "overfit_curves": ("Train and dev accuracy per epoch", overfit_curves),
    "accuracy_vs_k": ("Test accuracy against k", accuracy_vs_k),
    "claims_vs_size": ("Claims (a) and (c) against training-set size", claims_vs_size),
    "activations": ("Logits, activations and train loss per epoch", activations),
    "unit_keeps": ("Keep rate of each hidden unit (starvation)", unit_keeps),
}


def write_plots(data: ReportData, out_dir: Path, progress: Callable[[str], None]) -> list[PlotFile]:
    """Draw every plot into ``out_dir`` as ``<name>.png`` and ``<name>.svg``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sns.set_theme(style="whitegrid", context="notebook", font_scale=0.85)
    plt.rcParams["svg.hashsalt"] = SVG_HASH_SALT
    done = []
    for name, (title, draw) in PLOTS.items():
        item = PlotFile(name, title)
        try:
            fig = draw(data)
        except SkipPlot as why:
            item.skipped = str(why)
            progress(f"plot {name}: skipped ({why})")
        else:
            item.png, item.svg = out_dir / f"{name}.png", out_dir / f"{name}.svg"
            fig.savefig(item.png, dpi=DPI, bbox_inches="tight")
            fig.savefig(item.svg, bbox_inches="tight")
            plt.close(fig)
            progress(f"plot {name}: {item.png.name}, {item.svg.name}")
        done.append(item)
    return done
