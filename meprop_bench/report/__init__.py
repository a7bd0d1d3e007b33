"""The report: benchmark and training JSON in, speedup and overfitting plots, tables,
``summary.md`` and a self-contained ``index.html`` out (``meprop-bench report``).

For a notebook::

    from meprop_bench.report import find_inputs, load_benchmarks, pair_speedups
    inputs = find_inputs(["reports/latest"])
    bench = load_benchmarks(inputs.benchmarks)     # one row per benchmark
    speedups = pair_speedups(bench).speedups       # one row per sparse case
"""

from meprop_bench.report.build import Report, build_report
from meprop_bench.report.load import Inputs, find_inputs, load_benchmarks, load_trainings
from meprop_bench.report.speedup import Pairing, pair_speedups, time_split
from meprop_bench.report.training import runs as training_runs
from meprop_bench.report.training import summarize as training_summary
from meprop_bench.stats import bootstrap_ratio

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
