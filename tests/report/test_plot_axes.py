"""Every axis a sweep varies (threads, batch, device, machine, run) is visible in every
plot and is a column of every speedup table."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest
from documents import (
    MACHINE,
    bench_doc,
    kernel_case,
    train_step_case,
    write,
)

from meprop_bench.report import (
    load_benchmarks,
    pair_speedups,
    tables,
    time_split,
)
from meprop_bench.report.plots import PLOTS
from meprop_bench.report.speedup import across_runs


def varied_sweep() -> list[dict[str, Any]]:
    """Backward, layer, selection and training-step cases at 1 and 2 threads, B = 8 and
    16, on the CPU and on a GPU. One width: a panel per width and batch size as per
    setting, so a second width would double the panels (and the drawing time) and vary
    nothing that B does not already vary in the panels' titles."""
    out = []
    for t in (1, 2):
        for dev in ("cpu", "cuda"):
            for n in (64,):
                for b in (8, 16):
                    dense = n * b * 1e-6 / t
                    for suite in ("backward", "layer"):
                        out.append(kernel_case(suite, "dense", "dense", n, n, b, t, dev, dense))
                        for k in (0.05, 0.25):
                            median = dense * k * t
                            out.append(kernel_case(suite, "unified", "compact", n, k, b, t, dev,
                                                   median))  # fmt: skip
                    for k in (0.05, 0.25):
                        out.append(kernel_case("selection", "unified", None, n, k, b, t, dev,
                                               dense * 0.02, selection="unified"))  # fmt: skip
        out.append(train_step_case("dense", "dense", 4e-3, threads=t))
        out.append(train_step_case("unified", "compact", 2e-3 * t, threads=t))
    return out


@pytest.fixture(scope="module")
def varied(tmp_path_factory):
    """ReportData of two runs on each of two machines, whose sweeps vary threads, batch
    and device."""
    from meprop_bench.report.model import ReportData

    root = tmp_path_factory.mktemp("varied")
    gpu = [{"name": "Test GPU", "cuda_runtime": "12", "driver": "1"}]
    files = [
        write(root / f"{node}-{run}.json", bench_doc(varied_sweep(), {**MACHINE, "node": node,
                                                                      "gpus": gpu}))
        for node in ("box", "other")
        for run in (1, 2)
    ]  # fmt: skip
    bench = load_benchmarks(files)
    speedups = pair_speedups(bench).speedups
    empty = pd.DataFrame()
    return ReportData(speedups, time_split(bench), empty, empty, across_runs(speedups))


def _texts(fig) -> str:
    """Every piece of text a reader sees in ``fig``."""
    return "\n".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text")))


TRAINING_PLOTS = ("overfit_curves", "accuracy_vs_k", "claims_vs_size", "activations",
                  "unit_keeps", "model_layers")  # not drawn from benchmark sweeps  # fmt: skip


@pytest.mark.parametrize("name", [n for n in PLOTS if n not in TRAINING_PLOTS])
def test_every_varying_axis_is_visible_in_every_plot(varied, name):
    import matplotlib.pyplot as plt

    fig = PLOTS[name][1](varied)
    text = _texts(fig)
    for shown in ("box (Test CPU, Test GPU)", "other (Test CPU, Test GPU)", "1 thread",
                  "2 threads"):  # fmt: skip
        assert shown in text, (name, shown)
    if name not in ("train_step", "speedup_vs_batch"):  # B: fixed there, or the x axis
        for b in (8, 16):
            assert re.search(rf"B ?= ?(\d+, )*{b}\b", text), (name, b)
    if name != "train_step":
        assert "(Test CPU, Test GPU) / cuda" in text and "(Test CPU, Test GPU) / cpu" in text, name
    for ax in fig.axes:
        for line in ax.get_lines():  # no line through two settings or runs at one x
            xs = list(line.get_xdata())
            if line.get_linestyle() not in ("None", "", " ") and len(set(xs)) > 1:  # not a rule
                assert len(xs) == len(set(xs)), (name, ax.get_title(), xs)
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        if name in ("time_split", "train_step"):  # no bar repeated under one label
            assert len(labels) == len(set(labels)), (name, ax.get_title(), labels)
    plt.close(fig)


def test_every_varying_axis_is_a_column_of_every_speedup_table(varied):
    for table in (
        tables.speedup_table(varied.speedups, "backward"),
        tables.across_runs_table(varied.repeats),
        tables.split_table(varied.split),
    ):
        for column in ("machine", "device", "threads", "B"):
            assert column in table, (column, list(table))
        keys = [c for c in table if c in ("file", *tables.CASE_KEYS)]
        assert not table.duplicated(keys).any(), table[table.duplicated(keys, keep=False)]
