"""How long the main job will take, measured on this machine before it starts.

A fixed time model fitted on one machine is wrong on the next (a Zen 3 VM took six
times the minutes a Zen 4 one did) and on the same one under load. So ``meprop-bench
run`` first times a small calibration here, now, at the sweep's thread count (a dense
backward at two widths, torch's top-k over a gradient, a few training steps of the
paper's MLP: a second on a quiet machine, a few on a busy one), taking the median call
so that the load the cases will meet is in it, and costs every collected case from it:

- a dense backward call: its FLOPs (dX and dW, 4·B·d_in·n) at the measured rate, plus the
  measured per-call overhead;
- a sparse one: :data:`SPARSE_SHARE` of that arithmetic (what the sparse strategies'
  products, gathers and writes cost against dense, on average over the quick preset's
  strategies and ks: fitted on a quick sweep of this project's 2-core Zen 3 VM) plus the
  measured selection cost per entry of dY;
- a training epoch: the measured step, scaled by the step's weights and batch;
- a step-suite case: that step (a model preset's, by its FLOPs) times the steps in a
  block (:mod:`~meprop_bench.harness.steady`: about 0.2 s), twice for a sparse step,
  which is timed beside its dense partner's block;

each case for its rounds, warm-up and one untimed first call. When the native kernels'
compiled code is not on disk yet (a fresh checkout, or their source changed), their
compilation is added and said. The estimate is a sum of its parts, and says so.
"""

from __future__ import annotations

import functools
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

import meprop_bench.core
from meprop_bench.harness import steady
from meprop_bench.harness.cases import Case
from meprop_bench.harness.grid import TrainStepShape
from meprop_bench.harness.model_presets import PRESETS
from meprop_bench.harness.partners import case_params
from meprop_bench.results.machine import threads as threads_in_force
from meprop_bench.training.data import EMBEDDED_SIZES
from meprop_bench.training.experiments import EXPERIMENTS, FULL_TRAIN
from meprop_bench.training.recipes import get_recipe

#: A sparse case's products, gathers and writes, as a share of its dense partner's
#: arithmetic (see the module's docstring).
SPARSE_SHARE = 0.45
#: Each case's setup besides its calls (inputs, pytest, bookkeeping), in calibration
#: overheads (the per-call overhead measured here at one thread).
CASE_SETUP_CALLS = 4000
#: Compiling the native kernels, in wide calibration backwards (B=32, 2048 wide: about
#: 60 s on the 2-core Zen 3 VM, where one such backward takes 9 ms at one thread).
COMPILE_BACKWARDS = 6500
#: A training epoch costs its steps plus evaluation and bookkeeping: this factor.
EPOCH_OVERHEAD = 1.3
MNIST_IN, MNIST_OUT = 784, 10
CAL_BATCH, CAL_WIDE, CAL_NARROW = 32, 2048, 64
CAL_STEP = TrainStepShape(500, 50, 20)
#: Seconds the calibration times at each thread count (after one call of each).
CAL_BUDGET_S = 1.0


@dataclass(frozen=True)
class Calibration:
    """What the calibration measured here: the dense backward's FLOP rate and the fixed
    cost of a call at the cases' thread count, that fixed cost at one thread (what a
    case's Python setup scales with: it runs on one thread whatever the cases use),
    top-k selection's cost per entry of dY, one training step of the paper's MLP (h=500,
    B=50, fused Adam), and whether the native kernels are compiled."""

    flop_rate: float
    call_s: float
    serial_call_s: float
    select_s: float
    step_s: float
    compiled: bool
    seconds: float

    def dense_call(self, batch: int, d_in: int, n: int) -> float:
        return 4 * batch * d_in * n / self.flop_rate + self.call_s

    def case_call(self, case: Case) -> float:
        """One timed call of a backward or layer case."""
        if case.is_dense:
            return self.dense_call(case.batch, case.d_in, case.n)
        arithmetic = 4 * case.batch * case.d_in * case.n / self.flop_rate
        return SPARSE_SHARE * arithmetic + self.select_s * case.batch * case.n + self.call_s

    def selection_call(self, case: Case) -> float:
        return self.select_s * case.batch * case.n + self.call_s

    def step_call(self, shape: TrainStepShape) -> float:
        """One training step of the MLP 784-h-h-10 at ``shape``, scaled from the measured one."""
        return self.step_s * _step_work(shape) / _step_work(CAL_STEP)

    def case_setup(self) -> float:
        return CASE_SETUP_CALLS * self.serial_call_s

    def compile_s(self) -> float:
        """Compiling the native kernels, or 0 when their code is on disk."""
        if self.compiled:
            return 0.0
        return COMPILE_BACKWARDS * self.dense_call(CAL_BATCH, CAL_WIDE, CAL_WIDE)


def _step_work(shape: TrainStepShape) -> float:
    return shape.batch * (MNIST_IN * shape.hidden + shape.hidden**2 + shape.hidden * MNIST_OUT)


def _mean_costs(fns: dict[str, Callable[[], object]], budget: float) -> dict[str, float]:
    """The mean time of a call of each of ``fns``, timed in turn (one untimed call each
    first) for about ``budget`` seconds and at least 3 calls each: what a call costs now,
    load included. Turns spread a burst of load over them all; the mean, not the best,
    because the cases will pay the load too."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    spent = time.perf_counter()
    while len(times[next(iter(fns))]) < 3 or time.perf_counter() - spent < budget:
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.fmean(values) for name, values in times.items()}


def _dense_backward(batch: int, width: int) -> Callable[[], object]:
    gen = torch.Generator().manual_seed(0)
    dy, x, w = (torch.randn(s, generator=gen) for s in ((batch, width), (batch, width),
                                                        (width, width)))  # fmt: skip
    return lambda: (dy @ w, dy.t() @ x)


def _train_step(shape: TrainStepShape) -> Callable[[], None]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(MNIST_IN, shape.hidden), torch.nn.ReLU(),
        torch.nn.Linear(shape.hidden, shape.hidden), torch.nn.ReLU(),
        torch.nn.Linear(shape.hidden, MNIST_OUT),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)
    x, y = torch.randn(shape.batch, MNIST_IN), torch.randint(0, MNIST_OUT, (shape.batch,))

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    return step


NATIVE_SOURCE = Path(meprop_bench.core.__file__).parent / "native_jit.py"


def native_compiled(source: Path = NATIVE_SOURCE) -> bool:
    """Whether numba's disk cache seems to hold the native kernels' code: index files
    beside their source, none older than it (numba rewrites an index when it compiles;
    an edited source makes them stale). A fresh checkout has none."""
    indexes = list((source.parent / "__pycache__").glob(f"{source.stem}.*.nbi"))
    changed = source.stat().st_mtime
    return bool(indexes) and all(index.stat().st_mtime >= changed for index in indexes)


@functools.cache
def calibrate(thread_count: int | None = None) -> Calibration:
    """Time the calibration at ``thread_count`` threads (None: torch's default), once per
    process: the sweep's estimate and the training's share it."""
    start = time.perf_counter()
    with threads_in_force(1):
        serial = _mean_costs({"narrow": _dense_backward(CAL_BATCH, CAL_NARROW)}, 0.1)["narrow"]
    dy = torch.randn(CAL_BATCH, CAL_WIDE)
    with threads_in_force(thread_count):
        cost = _mean_costs({
            "wide": _dense_backward(CAL_BATCH, CAL_WIDE),
            "narrow": _dense_backward(CAL_BATCH, CAL_NARROW),
            "select": lambda: dy.abs().topk(CAL_WIDE // 100, dim=1),
            "step": _train_step(CAL_STEP),
        }, CAL_BUDGET_S)  # fmt: skip
    wide, narrow, select, step = (cost[name] for name in ("wide", "narrow", "select", "step"))
    flops = 4 * CAL_BATCH * CAL_WIDE * CAL_WIDE
    call = max(narrow, 1e-7)
    return Calibration(
        flop_rate=flops / max(wide - call, wide / 2), call_s=call, serial_call_s=serial,
        select_s=max(select - call, 0.0) / (CAL_BATCH * CAL_WIDE), step_s=step,
        compiled=native_compiled(), seconds=time.perf_counter() - start,
    )  # fmt: skip


def minutes(seconds: float) -> float:
    """``seconds`` in minutes to the nearest half (at least a half): what the estimate
    prints, so the parts it prints add up to the total it prints."""
    return max(0.5, round(seconds / 30) / 2)


def say_minutes(value: float) -> str:
    return f"about {value:g} min"


#: A CUDA case's call, which the CPU calibration cannot cost (a GPU does these shapes in
#: about a millisecond or less).
GPU_CALL_S = 1e-3


def item_call(item: pytest.Item, cal: Calibration) -> float:
    """One timed call of a collected suite case, from ``cal``."""
    params = case_params(item)
    if "train_case" in params:
        shape, (method, _, _), device, _, _ = params["train_case"]
        step = GPU_CALL_S if str(device).startswith("cuda") else cal.step_call(shape)
        return step_round(step, paired=method != "dense")
    if "model_case" in params:
        preset, method, _, _, device, _, _ = params["model_case"]
        flops = PRESETS[preset].step_flops / (6 * _step_work(CAL_STEP))  # in MNIST steps
        step = GPU_CALL_S if str(device).startswith("cuda") else cal.step_s * flops
        return step_round(step, paired=method != "dense")
    if "backward_case" in params:
        case = params["backward_case"][0]
    elif "paper_case" in params:
        case = params["paper_case"][1]
    elif "selection_case" in params:
        case = params["selection_case"][1]
    else:
        return cal.call_s
    if case.device.startswith("cuda"):
        return GPU_CALL_S
    return cal.selection_call(case) if "selection_case" in params else cal.case_call(case)


def step_round(step_s: float, paired: bool) -> float:
    """A step suite's round (:mod:`~meprop_bench.harness.steady`): a block of steps of
    at least its block time, and for a sparse step the dense partner's block beside it."""
    return step_s * steady.steps_in_block(step_s) * (2 if paired else 1)


def item_threads(item: pytest.Item) -> int | None:
    """The thread count a collected case runs with (None: torch's default)."""
    params = case_params(item)
    return next(iter(params.values()))[-1] if params else None


def uses_native(item: pytest.Item) -> bool:
    """Whether a collected case runs a native (numba) kernel."""
    for value in case_params(item).values():
        for part in value:
            if isinstance(part, Case) and part.strategy == "native":
                return True
            if isinstance(part, tuple) and "native" in part:  # a train step's variant
                return True
    return False


@dataclass(frozen=True)
class Estimate:
    """What a step will do and how long it should take here, with a note on its parts."""

    what: str
    seconds: float
    note: str = ""

    def line(self) -> str:
        text = f"{self.what}, {say_minutes(minutes(self.seconds))}"
        return f"{text} ({self.note})" if self.note else text


def sweep_estimate(items: list[pytest.Item], calls: int, devices: list[str]) -> Estimate:
    """The sweep's ``items``, each timed ``calls`` times (rounds, warm-up and a first
    call), costed from a calibration at each thread count they use, plus compilation."""
    cals = {t: calibrate(t) for t in {item_threads(item) for item in items}}
    seconds = sum(
        calls * item_call(item, cals[item_threads(item)]) + cals[item_threads(item)].case_setup()
        for item in items
    )
    note = ""
    first = next(iter(cals.values()), None)
    if first is not None and any(uses_native(item) for item in items):
        compile_s = first.compile_s()
        if compile_s:
            seconds += compile_s
            note = (f"first run here: the native kernels are compiled first, "
                    f"{say_minutes(minutes(compile_s))} of it")  # fmt: skip
    return Estimate(f"{len(items)} benchmark cases on {', '.join(devices)}", seconds, note)


def training_estimate(experiment: str) -> Estimate:
    """An experiment set's runs (as ``meprop-bench train --experiment`` runs them, one at
    a time): each run's epochs of steps from a calibrated training step, scaled by its
    width and batch, plus evaluation."""
    exp = EXPERIMENTS[experiment]
    cal = calibrate(None)
    images = {"embedded": EMBEDDED_SIZES[0]}.get(exp.data, FULL_TRAIN)
    seconds, runs = 0.0, 0
    for recipe in exp.recipes:
        batch = get_recipe(recipe).batch_size
        for variant in exp.variants:
            for size in exp.runs_at(variant, exp.sizes):
                steps = math.ceil((size or images) / batch)
                step = cal.step_call(TrainStepShape(variant.hidden, batch, variant.k or 1))
                seconds += len(exp.seeds) * exp.epochs * steps * step * EPOCH_OVERHEAD
                runs += len(exp.seeds)
    return Estimate(f"{runs} training runs of {exp.epochs} epochs ({experiment} set)", seconds)
