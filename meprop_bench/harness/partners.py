"""What sharding and ordering know of each collected suite case: its partner group and
an estimate of its cost.

A partner group holds the cases that differ only in method, strategy or k: a dense case
and the sparse cases whose speedups are measured against it (same suite, shape, dtype,
device, gradient source and thread count). Keeping a group in one process, and running
it as one block, is what lets a within-run ratio compare measurements taken moments
apart on one machine state.

The cost is a rough time per timed call on a nominal machine (FLOPs at
:data:`FLOP_RATE`, bytes at :data:`BYTE_RATE`, plus a fixed overhead per call for
dispatch, selection and the harness). Only its proportions matter: it balances shards,
it does not predict run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from meprop_bench.harness.cases import Case
from meprop_bench.harness.grid import TrainStepShape
from meprop_bench.harness.model_presets import PRESETS
from meprop_bench.harness.options import DTYPES

FLOP_RATE = 1e11  # nominal floating-point operations per second
BYTE_RATE = 2e10  # nominal bytes per second to and from memory
CALL_OVERHEAD = 5e-3  # seconds per timed call besides the arithmetic (a case's setup included)
MNIST_IN, MNIST_OUT = 784, 10  # the training step's MLP: 784-h-h-10


@dataclass(frozen=True)
class Unit:
    """One collected case as sharding and ordering see it."""

    group: str  # shared by a dense case and its sparse partners
    dense: bool
    cost: float  # estimated seconds per timed call (> 0)


def case_params(item: pytest.Item) -> dict[str, tuple]:
    """A suite item's case parameters (``backward_case``, ``paper_case``,
    ``selection_case`` or ``train_case``: tuples whose last entry is the thread count);
    empty for anything else, such as the placeholder pytest collects (and skips) for a
    suite whose grid holds no case, whose parameter is no tuple."""
    callspec = getattr(item, "callspec", None)
    params = callspec.params if callspec is not None else {}
    return {name: value for name, value in params.items() if isinstance(value, tuple)}


def unit_of(item: pytest.Item) -> Unit:
    """The partner group, dense or not, and cost of one of the suites' test items.

    An item whose parameters are not a suite case known here is a group of its own,
    costed as a call's overhead.
    """
    suite = item.nodeid.split("[", 1)[0]
    params = case_params(item)
    if "backward_case" in params:
        case, threads = params["backward_case"]
        return Unit(f"{suite} {case.pair_key} t={threads}", case.is_dense, kernel_cost(case))
    if "paper_case" in params:
        shape, case, threads = params["paper_case"]
        group = f"{suite} {shape.name} {case.pair_key} t={threads}"
        return Unit(group, case.is_dense, kernel_cost(case))
    if "selection_case" in params:
        _, case, threads = params["selection_case"]
        return Unit(f"{suite} {case.pair_key} t={threads}", False, selection_cost(case))
    if "train_case" in params:
        shape, (method, _, _), device, dtype, threads = params["train_case"]
        group = f"{suite} {shape.name} {device} {dtype} t={threads}"
        return Unit(group, method == "dense", train_step_cost(shape, dtype))
    if "model_case" in params:
        preset, method, _, _, device, dtype, threads = params["model_case"]
        group = f"{suite} {preset} {device} {dtype} t={threads}"
        cost = PRESETS[preset].step_flops / FLOP_RATE + CALL_OVERHEAD
        return Unit(group, method == "dense", cost)
    return Unit(item.nodeid, False, CALL_OVERHEAD)


def kernel_cost(case: Case) -> float:
    """A backward (kernel or layer): its products' FLOPs and its minimum traffic."""
    return case.flops() / FLOP_RATE + case.min_bytes() / BYTE_RATE + CALL_OVERHEAD


def selection_cost(case: Case) -> float:
    """Choosing k of n entries per example: one pass over dY."""
    elements = case.batch * case.n
    return elements / FLOP_RATE + elements * case.element_size() / BYTE_RATE + CALL_OVERHEAD


def train_step_cost(shape: TrainStepShape, dtype: str) -> float:
    """A dense training step of the MLP (forward, backward, Adam), whatever the
    variant: sparse variants cost less, but by how much depends on the kernel."""
    weights = MNIST_IN * shape.hidden + shape.hidden**2 + shape.hidden * MNIST_OUT
    flops = 6 * shape.batch * weights  # forward 2, backward 4 per multiply-add
    # Weights read twice, gradient written, Adam's two moments read and written, the
    # weight written back.
    traffic = 8 * weights * DTYPES[dtype].itemsize
    return flops / FLOP_RATE + traffic / BYTE_RATE + CALL_OVERHEAD
