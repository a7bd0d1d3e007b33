"""Timers for one call of a kernel: host clock on the CPU, event pairs on CUDA.

- :class:`CpuTimer` reads ``time.perf_counter`` around the call. CPU kernels run
  synchronously, so the host clock is the kernel's time.
- :class:`CudaTimer` queues an L2 flush, then a ``torch.cuda.Event`` pair around the
  call, and waits for the end event: the sample is the GPU's own elapsed time, not the
  host's (which would include launch latency and Python).
- :class:`CudaGraphTimer` captures N calls in one CUDA graph and times its replay with
  an event pair, dividing by N (as ``triton.testing.do_bench_cudagraph`` does): the
  launch overhead drops out, so a launch-bound small shape shows its kernels' time.

Each timer's ``kind`` (``perf-counter``, ``cuda-events``, ``cuda-graph``) is what the
suites record as ``extra_info["timer"]``.

:func:`measure` collects rounds of one function; :func:`measure_interleaved` runs
several functions round-robin (A B C A B C ...) so drift on a shared machine hits
them all alike, which is what a within-run speedup ratio needs.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from meprop_bench.core.allocator import minor_faults
from meprop_bench.errors import MePropInputError

Fn = Callable[[], object]


@dataclass(frozen=True)
class Measurement:
    """Raw per-call samples in seconds, with the robust statistics we report, and the
    minor page faults of each call where the timer counts them (CPU)."""

    samples: tuple[float, ...]
    faults: tuple[int, ...] = ()

    @property
    def median_faults(self) -> float | None:
        return statistics.median(self.faults) if self.faults else None

    def quantile(self, q: float) -> float:
        return _quantile(self.samples, q)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def q1(self) -> float:
        return self.quantile(0.25)

    @property
    def q3(self) -> float:
        return self.quantile(0.75)

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    def __str__(self) -> str:
        return f"{self.median * 1e3:.3f} ms (IQR {self.iqr * 1e3:.3f}, n={len(self.samples)})"


def _quantile(values: tuple[float, ...] | list[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), for q in [0, 1]."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


class CpuTimer:
    """Host wall time of one synchronous call, and the minor page faults it took
    (``last_faults``; read outside the timed interval): a multi-MB temporary that
    malloc hands back to the kernel is refaulted on every call (see
    :mod:`meprop_bench.core.allocator`), which explains many a surprising sample."""

    name = "perf_counter"
    kind = "perf-counter"

    def __init__(self) -> None:
        self.last_faults: int | None = None

    def __call__(self, fn: Fn) -> float:
        faults = minor_faults()
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        if faults is not None:
            self.last_faults = minor_faults() - faults
        return elapsed


class CudaTimer:
    """GPU time of one call, measured by a CUDA event pair on the current stream.

    Before each call it zeroes a buffer twice the size of the L2 cache, so the call
    starts cold as it would in a training step whose other layers evicted its data
    (triton's ``do_bench`` does the same). The flush is queued before the start
    event and is not counted.
    """

    name = "cuda_event"
    kind = "cuda-events"
    last_faults = None  # host page faults say nothing of the GPU's time

    def __init__(self, device: torch.device | str = "cuda", flush_l2: bool = True) -> None:
        self.device = torch.device(device)
        l2_bytes = torch.cuda.get_device_properties(self.device).L2_cache_size
        self._flush = (
            torch.empty(max(2 * l2_bytes, 1 << 20), dtype=torch.uint8, device=self.device)
            if flush_l2
            else None
        )
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def __call__(self, fn: Fn) -> float:
        with torch.cuda.device(self.device):  # events record on this device's stream
            if self._flush is not None:
                self._flush.zero_()
            self._start.record()
            fn()
            self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3


#: Calls captured in one graph by :class:`CudaGraphTimer`.
GRAPH_CALLS = 20


class CudaGraphTimer:
    """GPU time of one call as a CUDA graph runs it: ``calls`` calls are captured back
    to back in one graph (once per function, after one uncaptured warm-up call), and
    each sample is one replay between an event pair, divided by ``calls``.

    Replaying a graph costs one launch for all its kernels, so the host's Python and
    the driver's per-kernel launch latency drop out: what remains is the GPU's time,
    which is what a training step captured in a graph would pay. The calls run back to
    back on warm caches (no L2 flush between them), unlike :class:`CudaTimer`'s. A call
    that synchronises with the host (reads a size back, as ``rowunion`` and the
    per-example triton kernels do) cannot be captured: a MePropInputError says so.
    """

    name = "cuda_graph"
    kind = "cuda-graph"
    last_faults = None

    def __init__(self, device: torch.device | str = "cuda", calls: int = GRAPH_CALLS) -> None:
        if calls < 1:
            raise ValueError(f"a CUDA graph needs at least 1 call, got {calls}")
        self.device = torch.device(device)
        self.calls = calls
        self._graphs: dict[int, tuple[Fn, torch.cuda.CUDAGraph]] = {}
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)

    def graph(self, fn: Fn) -> torch.cuda.CUDAGraph:
        """The graph of ``calls`` calls of ``fn``, captured at its first use."""
        entry = self._graphs.get(id(fn))
        if entry is None or entry[0] is not fn:
            entry = (fn, capture_calls(fn, self.calls, self.device))
            self._graphs[id(fn)] = entry  # holds fn, so its id is not reused
        return entry[1]

    def __call__(self, fn: Fn) -> float:
        graph = self.graph(fn)
        with torch.cuda.device(self.device):
            self._start.record()
            graph.replay()
            self._end.record()
        self._end.synchronize()
        return self._start.elapsed_time(self._end) / 1e3 / self.calls


def capture_calls(fn: Fn, calls: int, device: torch.device) -> torch.cuda.CUDAGraph:
    """A CUDA graph of ``calls`` back-to-back calls of ``fn``, after one call on a side
    stream (lazy initialisation, compilation and the allocator's first requests happen
    there, uncaptured)."""
    with torch.cuda.device(device):
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            fn()
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                for _ in range(calls):
                    fn()
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise MePropInputError(
                f"the CUDA-graph timer cannot capture this call ({reason}); a call that "
                "reads a value back to the host cannot be captured: time it with CUDA events"
            ) from None
    return graph


Timer = CpuTimer | CudaTimer | CudaGraphTimer


def make_timer(
    device: torch.device | str, flush_l2: bool = True, cuda_graph: bool = False
) -> Timer:
    """The right timer for ``device``: events on CUDA (a CUDA graph's replay with
    ``cuda_graph``), the host clock elsewhere. ``cuda_graph`` off CUDA is refused."""
    device = torch.device(device)
    if cuda_graph:
        if device.type != "cuda":
            raise MePropInputError(
                f"the CUDA-graph timer times CUDA devices only, got {device}; "
                "time the CPU without it"
            )
        return CudaGraphTimer(device)
    if device.type == "cuda":
        return CudaTimer(device, flush_l2)
    return CpuTimer()


@contextmanager
def gc_disabled() -> Iterator[None]:
    """Keep Python's garbage collector from pausing inside a timed call."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def measure(fn: Fn, timer: Timer, rounds: int = 20, warmup: int = 3) -> Measurement:
    """Run ``fn`` ``warmup`` times untimed, then ``rounds`` timed calls."""
    return measure_interleaved({"fn": fn}, timer, rounds, warmup)["fn"]


def measure_interleaved(
    fns: Mapping[str, Fn],
    timer: Timer,
    rounds: int = 20,
    warmup: int = 3,
    before: Callable[[Fn], object] | None = None,
) -> dict[str, Measurement]:
    """Time several functions round-robin, returning one Measurement each.

    Round i of every function runs back to back, so ``samples[i]`` of two results
    are paired: their ratio is a within-round speedup. ``before(fn)``, if given, runs
    untimed right before each timed call of ``fn`` (see
    :mod:`meprop_bench.harness.cache_state`).
    """
    if rounds < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1 and warmup >= 0, got {rounds}, {warmup}")
    samples: dict[str, list[float]] = {name: [] for name in fns}
    faults: dict[str, list[int]] = {name: [] for name in fns}
    with gc_disabled():
        for _ in range(warmup):
            for fn in fns.values():
                timer(fn)
        for _ in range(rounds):
            for name, fn in fns.items():
                if before is not None:
                    before(fn)
                samples[name].append(timer(fn))
                if timer.last_faults is not None:
                    faults[name].append(timer.last_faults)
    return {name: Measurement(tuple(samples[name]), tuple(faults[name])) for name in fns}


def paired_ratio(baseline: Measurement, other: Measurement) -> Measurement:
    """Per-round ratios baseline/other of two interleaved measurements (a speedup)."""
    if len(baseline.samples) != len(other.samples):
        raise ValueError("paired ratios need measurements with the same number of rounds")
    return Measurement(tuple(b / o for b, o in zip(baseline.samples, other.samples, strict=True)))


class SampleClock:
    """A clock that advances only by the samples a timer reports.

    pytest-benchmark reads its timer before and after each round; handing it this
    clock makes the difference exactly the sample (the CUDA event time, say) rather
    than host wall time, so its statistics, JSON, compare and histogram all work on
    what we measured.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._now = 0.0

    def __repr__(self) -> str:
        return f"meprop_bench.harness.timing.SampleClock({self.source})"

    def __call__(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds


class Slowdown:
    """Lengthen each timed call by ``fraction`` of its own duration, inside the timed
    region: a known regression to calibrate a gate with (``MEPROP_BENCH_SLOWDOWN``).

    On the CPU it busy-waits; on CUDA it queues ``torch.cuda._sleep`` for the extra
    cycles, calibrated once against CUDA events, so the event pair sees it.
    """

    def __init__(self, fraction: float, device: torch.device | str = "cpu") -> None:
        if fraction < 0:
            raise ValueError(f"slowdown fraction must be >= 0, got {fraction}")
        self.fraction = fraction
        self.device = torch.device(device)
        self._cycles_per_s = _cuda_sleep_rate(self.device) if self.device.type == "cuda" else 0.0

    def wrap(self, fn: Fn, timer: Timer) -> Fn:
        """``fn`` followed by a delay of ``fraction`` x the last clean sample."""
        last = [timer(fn)]

        def slowed() -> None:
            start = time.perf_counter()
            fn()
            extra = self.fraction * last[0]
            if self.device.type == "cuda":
                torch.cuda._sleep(int(extra * self._cycles_per_s))
            else:
                last[0] = time.perf_counter() - start
                while time.perf_counter() - start < last[0] + extra:
                    pass

        return slowed


def _cuda_sleep_rate(device: torch.device) -> float:
    """GPU cycles per second as ``torch.cuda._sleep`` counts them."""
    with torch.cuda.device(device):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        cycles = 10_000_000
        start.record()
        torch.cuda._sleep(cycles)
        end.record()
        end.synchronize()
        return cycles / (start.elapsed_time(end) / 1e3)
