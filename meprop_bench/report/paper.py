"""The paper's published figures as data, each kept with where it comes from, so the
report can set measured speedups and accuracies beside them.

Source of every number: :data:`SOURCE`. Accuracies are percentages as published;
times are as published (seconds for Tables 1 and 2, milliseconds for Tables 7 and 8).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

SOURCE = (
    "Sun, Ren, Ma, Wang, 'meProp: Sparsified Back Propagation for Accelerated Deep "
    "Learning with Reduced Overfitting', ICML 2017 (arXiv 1706.06197), Tables 1, 2, 3, 7, 8 "
    "and Figure 4; numbers as published"
)
CPU_HARDWARE = "C# on a Xeon 3.0 GHz CPU"
GPU_HARDWARE = "PyTorch on a GTX 1080 GPU"


@dataclass(frozen=True)
class PublishedSpeedup:
    """One published backward speedup: what was timed, at which shape, on what."""

    table: str
    task: str
    optimizer: str | None
    batch: int | None  # None: not stated for that table
    hidden: int
    k: int
    dense: float
    sparse: float
    unit: str
    speedup: float
    hardware: str
    measures: str


@dataclass(frozen=True)
class PublishedAccuracy:
    """One published (or read-off) test accuracy, in percent."""

    figure: str
    task: str
    model: str  # dense, topk, randk, dense h=k
    hidden: int
    k: int | None
    test_acc: float
    approximate: bool = False


_T1 = "backprop time of all linear layers over training (Table 1)"
_T2 = "backward time over training, Adam (Table 2)"
_T7 = "one synthetic matmul backprop (Table 7)"
_T8 = "whole MNIST MLP backprop (Table 8)"


def _cpu(table: str, task: str, optimizer: str, batch: int, k: int, dense: float,
         sparse: float, speedup: float, measures: str) -> PublishedSpeedup:  # fmt: skip
    return PublishedSpeedup(table, task, optimizer, batch, 500, k, dense, sparse, "s", speedup,
                            CPU_HARDWARE, measures)  # fmt: skip


TABLE1: tuple[PublishedSpeedup, ...] = (
    _cpu("Table 1", "POS", "adagrad", 1, 5, 17534.4, 253.2, 69.2, _T1),
    _cpu("Table 1", "Parsing", "adagrad", 10000, 20, 8899.7, 492.3, 18.1, _T1),
    _cpu("Table 1", "MNIST", "adagrad", 10, 10, 171.0, 4.1, 41.7, _T1),
    _cpu("Table 1", "POS", "adam", 1, 5, 16167.3, 247.2, 65.4, _T1),
    _cpu("Table 1", "Parsing", "adam", 10000, 20, 9077.7, 488.7, 18.6, _T1),
    _cpu("Table 1", "MNIST", "adam", 10, 20, 169.5, 7.9, 21.4, _T1),
)
TABLE2: tuple[PublishedSpeedup, ...] = (
    _cpu("Table 2", "POS", "adam", 1, 5, 16522, 540, 30.5, _T2),
    _cpu("Table 2", "Parsing", "adam", 10000, 20, 9114, 513, 17.7, _T2),
    _cpu("Table 2", "MNIST", "adam", 10, 20, 171, 9, 18.4, _T2),
)

_KS = (8, 16, 32, 64, 128, 256, 512)
TABLE7: tuple[PublishedSpeedup, ...] = tuple(
    PublishedSpeedup("Table 7", "synthetic", None, 1024, 8192, k, 308.00, ms, "ms", x,
                     GPU_HARDWARE, _T7)
    for k, ms, x in zip(_KS, (8.37, 9.16, 11.20, 14.38, 21.28, 38.57, 69.95),
                        (36.8, 33.6, 27.5, 21.4, 14.5, 8.0, 4.4), strict=True)
)  # fmt: skip
TABLE8: tuple[PublishedSpeedup, ...] = tuple(
    PublishedSpeedup("Table 8", "MNIST", None, None, 8192, k, 17696.2, ms, "ms", x,
                     GPU_HARDWARE, _T8)
    for k, ms, x in zip(_KS, (1501.5, 1542.8, 1656.9, 1828.3, 2200.0, 3149.6, 4874.1),
                        (11.8, 11.5, 10.7, 9.7, 8.0, 5.6, 3.6), strict=True)
)  # fmt: skip

# Table 3: a dense model shrunk to h = k against meProp at k (test accuracy).
TABLE3: tuple[PublishedAccuracy, ...] = (
    PublishedAccuracy("Table 3", "MNIST", "dense h=k", 20, 20, 95.77),
    PublishedAccuracy("Table 3", "MNIST", "topk", 500, 20, 98.01),
)

# Figure 4 (MNIST, Adam), read off the plot: x is k as a share of h = 500.
FIGURE4: tuple[PublishedAccuracy, ...] = (
    PublishedAccuracy("Figure 4", "MNIST", "topk", 500, 5, 96.0, True),
    *(PublishedAccuracy("Figure 4", "MNIST", "topk", 500, k, 98.0, True) for k in (20, 40, 80)),
    *(
        PublishedAccuracy("Figure 4", "MNIST", "randk", 500, k, acc, True)
        for k, acc in zip((5, 10, 20, 40, 80), (87.0, 90.5, 92.0, 94.0, 96.0), strict=True)
    ),
    PublishedAccuracy("Figure 4", "MNIST", "dense h=k", 5, 5, 90.7, True),
    PublishedAccuracy("Figure 4", "MNIST", "dense", 500, None, 97.82),
)


def published_speedups() -> pd.DataFrame:
    """Tables 1, 2, 7 and 8 as one frame, one row per published speedup."""
    rows = [asdict(r) for r in (*TABLE1, *TABLE2, *TABLE7, *TABLE8)]
    return pd.DataFrame(rows).assign(source=SOURCE)


def published_accuracies() -> pd.DataFrame:
    """Table 3 and Figure 4 (approximate, read off the plot) as one frame."""
    return pd.DataFrame([asdict(r) for r in (*TABLE3, *FIGURE4)]).assign(source=SOURCE)
