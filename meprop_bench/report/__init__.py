"""The report: benchmark and training JSON in, speedup and overfitting plots, tables,
``summary.md`` and a self-contained ``index.html`` out (``meprop-bench report``).

For a notebook::

    from meprop_bench.report import find_inputs, load_benchmarks, pair_speedups
    inputs = find_inputs(["reports/latest"])
    bench = load_benchmarks(inputs.benchmarks)     # one row per benchmark
    speedups = pair_speedups(bench).speedups       # one row per sparse case

The names below are imported when first asked for: importing one small submodule
(``meprop_bench.report.paper``, as the GPU proof's summary does) does not load the
plotting stack (matplotlib, seaborn), which takes seconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name: (submodule, its name there)
_EXPORTS = {
    "Inputs": ("load", "Inputs"),
    "Pairing": ("speedup", "Pairing"),
    "Report": ("build", "Report"),
    "bootstrap_ratio": ("meprop_bench.stats", "bootstrap_ratio"),
    "build_report": ("build", "build_report"),
    "find_inputs": ("load", "find_inputs"),
    "load_benchmarks": ("load", "load_benchmarks"),
    "load_trainings": ("load", "load_trainings"),
    "pair_speedups": ("speedup", "pair_speedups"),
    "time_split": ("speedup", "time_split"),
    "training_runs": ("training", "runs"),
    "training_summary": ("training", "summarize"),
}

__all__ = [
    "Inputs",
    "Pairing",
    "Report",
    "bootstrap_ratio",
    "build_report",
    "find_inputs",
    "load_benchmarks",
    "load_trainings",
    "pair_speedups",
    "time_split",
    "training_runs",
    "training_summary",
]

if TYPE_CHECKING:
    from meprop_bench.report.build import Report, build_report
    from meprop_bench.report.load import Inputs, find_inputs, load_benchmarks, load_trainings
    from meprop_bench.report.speedup import Pairing, pair_speedups, time_split
    from meprop_bench.report.training import runs as training_runs
    from meprop_bench.report.training import summarize as training_summary
    from meprop_bench.stats import bootstrap_ratio


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = _EXPORTS[name]
    value = getattr(importlib.import_module(module if "." in module else f"{__name__}.{module}"),
                    attr)  # fmt: skip
    globals()[name] = value  # once found, an ordinary attribute
    return value
