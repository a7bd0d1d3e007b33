"""Where a backward's time goes: torch.profiler events sorted into categories.

Each profiled iteration runs inside a ``meprop::backward`` range, each call of a
selection function inside a ``meprop::select`` range and each bias gradient inside a
``meprop::bias`` range (see :func:`meprop_bench.profiling.runner.ranges_labelled`). Every
operator the kernel calls directly (a *top-level* operator) gets a category from its
name, or its range's category; the operators it calls in turn count toward the same
category, so an ``aten::empty`` inside ``aten::topk`` is selection time. Summing
exclusive (self) times this way, the categories add up to the whole backward.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from torch.autograd import DeviceType

BACKWARD = "meprop::backward"
SELECT = "meprop::select"
BIAS = "meprop::bias"
FUSED = "meprop::fused"
# Ranges whose every operator belongs to one category, whatever its name (the score's
# GEMV is selection, the bias's GEMV is bias, not product); a native kernel's compiled
# call runs no operator, so its range's own time is what counts.
RANGE_CATEGORY = {SELECT: "selection", BIAS: "bias", FUSED: "fused"}

CATEGORIES: dict[str, str] = {
    "selection": "choosing the kept entries: |dY|, its column sums, top-k, random draws",
    "indexing": "index bookkeeping: sort, argsort, unique, searchsorted, arange, CSR building",
    "gather/scatter": "moving kept values: index_select, gather, scatter_, index_copy_, index",
    "product": "the matrix products: mm, addmm, sparse mm (with their own output buffers)",
    "allocation": "explicit buffers: zeros, zeros_like, new_zeros, empty, fill",
    "bias": "the dense bias gradient: dY summed over the batch (sum, or a GEMV)",
    "fused": "a native kernel's compiled call: selection, regrouping and products in one",
    "other": "views, transposes, dtype conversions and anything unlisted",
    "python": "interpreter and dispatch time between operators",
}

_BY_NAME: dict[str, tuple[str, ...]] = {
    "selection": ("abs", "topk", "rand", "uniform_", "kthvalue"),
    "indexing": ("sort", "argsort", "_unique2", "unique_dim", "unique_consecutive",
                 "searchsorted", "arange", "repeat_interleave", "bincount", "cumsum",
                 "sparse_compressed_tensor", "_sparse_compressed_tensor_unsafe",
                 "sparse_csr_tensor", "_sparse_csr_tensor_unsafe",
                 "sparse_coo_tensor", "_sparse_coo_tensor_unsafe"),
    "gather/scatter": ("index_select", "gather", "scatter", "scatter_", "index_copy",
                       "index_copy_", "index", "index_put_", "take", "masked_select"),
    "product": ("mm", "matmul", "addmm", "bmm", "mv", "dot", "linear", "_sparse_mm",
                "_sparse_addmm", "_sparse_csr_mm"),
    "allocation": ("empty", "empty_like", "empty_strided", "new_empty", "zeros",
                   "zeros_like", "new_zeros", "zero_", "fill_", "full", "full_like",
                   "ones", "ones_like"),
    "bias": ("sum",),
}  # fmt: skip
_CATEGORY_OF: dict[str, str] = {
    f"aten::{op}": category for category, ops in _BY_NAME.items() for op in ops
}


class Event(Protocol):
    """What is read of a ``torch.autograd.profiler_util.FunctionEvent``."""

    name: str
    device_type: DeviceType
    cpu_children: list[Any]
    self_cpu_time_total: float
    cpu_time_total: float
    self_device_time_total: float


def op_category(name: str) -> str:
    """The category of an operator called directly by a kernel, outside selection."""
    return _CATEGORY_OF.get(name, "other")


@dataclass
class OpRow:
    """One operator in one category, summed over every call in every iteration."""

    category: str
    name: str
    calls: int = 0
    self_us: float = 0.0
    total_us: float = 0.0
    self_device_us: float = 0.0


@dataclass
class OpStats:
    """Operator times summed over all profiled iterations (possibly several windows)."""

    with_device: bool = False
    iterations: int = 0
    rows: dict[tuple[str, str], OpRow] = field(default_factory=dict)

    def add_events(self, events: Iterable[Event]) -> None:
        """Add one profiling window's events: every ``meprop::backward`` range in it
        (its host side; on CUDA the same range also appears on the GPU's timeline)."""
        for event in events:
            if event.name == BACKWARD and event.device_type == DeviceType.CPU:
                self.iterations += 1
                self._add(event, "python", None)

    def _add(self, event: Event, own: str, inherited: str | None) -> None:
        row = self.rows.setdefault((own, event.name), OpRow(own, event.name))
        row.calls += 1
        row.self_us += event.self_cpu_time_total
        row.total_us += event.cpu_time_total
        row.self_device_us += event.self_device_time_total
        for child in event.cpu_children:
            if inherited is not None:
                self._add(child, inherited, inherited)
            elif child.name in RANGE_CATEGORY:
                category = RANGE_CATEGORY[child.name]
                self._add(child, category, category)
            else:
                category = op_category(child.name)
                self._add(child, category, category)

    @property
    def backward_us(self) -> float:
        """Host time of all profiled iterations: the sum of every self time."""
        return sum(row.self_us for row in self.rows.values())

    @property
    def ms_per_iteration(self) -> float:
        return self.backward_us / max(self.iterations, 1) / 1e3

    @property
    def device_us(self) -> float:
        return sum(row.self_device_us for row in self.rows.values())

    def operators(self) -> list[dict[str, Any]]:
        """Per-operator rows, largest self time first, with shares of the backward."""
        total, device = self.backward_us, self.device_us
        out = []
        for row in sorted(self.rows.values(), key=lambda r: -r.self_us):
            item: dict[str, Any] = {
                "category": row.category,
                "name": row.name,
                "calls": row.calls,
                "self_us": round(row.self_us, 3),
                "total_us": round(row.total_us, 3),
                "self_share": _share(row.self_us, total),
            }
            if self.with_device:
                item["self_device_us"] = round(row.self_device_us, 3)
                item["self_device_share"] = _share(row.self_device_us, device)
            out.append(item)
        return out

    def categories(self) -> list[dict[str, Any]]:
        """One row per category (all of them, zeros included), in CATEGORIES order."""
        total, device = self.backward_us, self.device_us
        out = []
        for category in CATEGORIES:
            rows = [r for r in self.rows.values() if r.category == category]
            self_us = sum(r.self_us for r in rows)
            item: dict[str, Any] = {
                "category": category,
                "self_us": round(self_us, 3),
                "ms_per_iteration": round(self_us / max(self.iterations, 1) / 1e3, 6),
                "share": _share(self_us, total),
            }
            if self.with_device:
                device_us = sum(r.self_device_us for r in rows)
                item["device_us"] = round(device_us, 3)
                item["device_share"] = _share(device_us, device)
            out.append(item)
        return out

    def summary(self) -> dict[str, Any]:
        """Everything ops.json holds: totals, categories and operators."""
        summary: dict[str, Any] = {
            "iterations": self.iterations,
            "backward_us": round(self.backward_us, 3),
            "ms_per_iteration": round(self.ms_per_iteration, 6),
            "category_notes": CATEGORIES,
            "categories": self.categories(),
            "operators": self.operators(),
        }
        if self.with_device:
            summary["device_us"] = round(self.device_us, 3)
        return summary


def _share(part: float, whole: float) -> float:
    return round(part / whole, 6) if whole > 0 else 0.0


def write_csv(path: str | os.PathLike[str], rows: list[dict[str, Any]]) -> Path:
    """Write dict rows (all with the same keys) as a CSV file with a header."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path
