"""Timers on the CPU, the sample clock, interleaving and the injected slowdown."""

from __future__ import annotations

import time

import numpy as np
import pytest

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.timing import (
    GRAPH_CALLS,
    CpuTimer,
    Measurement,
    SampleClock,
    Slowdown,
    make_timer,
    measure,
    measure_interleaved,
    paired_ratio,
)


def test_cpu_timer_covers_the_call():
    assert CpuTimer()(lambda: time.sleep(0.01)) >= 0.01
    assert isinstance(make_timer("cpu"), CpuTimer)


def test_interleaved_runs_round_robin_and_pairs_samples():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    result = measure_interleaved(fns, CpuTimer(), rounds=4, warmup=2)
    assert calls == list("abc") * 6
    assert all(len(m.samples) == 4 for m in result.values())


def test_measure_rejects_bad_counts():
    with pytest.raises(ValueError, match="rounds >= 1"):
        measure(lambda: None, CpuTimer(), rounds=0)


def test_measurement_statistics_match_numpy():
    samples = (5.0, 1.0, 4.0, 2.0, 3.0, 10.0)
    m = Measurement(samples)
    assert m.median == np.median(samples)
    assert m.q1 == pytest.approx(np.quantile(samples, 0.25))
    assert m.iqr == pytest.approx(np.quantile(samples, 0.75) - np.quantile(samples, 0.25))


def test_paired_ratio_is_per_round():
    ratio = paired_ratio(Measurement((10.0, 20.0, 30.0)), Measurement((1.0, 4.0, 3.0)))
    assert ratio.samples == (10.0, 5.0, 10.0)
    with pytest.raises(ValueError, match="same number of rounds"):
        paired_ratio(Measurement((1.0,)), Measurement((1.0, 2.0)))


def test_sample_clock_advances_only_by_samples():
    clock = SampleClock("cuda_event")
    start = clock()
    clock.advance(0.25)
    clock.advance(0.5)
    assert clock() - start == 0.75 and "cuda_event" in repr(clock)


def test_slowdown_lengthens_each_call_by_its_fraction():
    timer = CpuTimer()
    slowed = Slowdown(0.5).wrap(lambda: time.sleep(0.004), timer)
    # The delay is a busy-wait up to 1.5 x the clean duration of the same call.
    assert timer(slowed) >= 0.004 * 1.5
    with pytest.raises(ValueError, match="fraction must be >= 0"):
        Slowdown(-0.1)


@pytest.mark.cuda
def test_cuda_timer_uses_events_and_flushes_l2():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU; none is present")
    from meprop_bench.harness.timing import CudaTimer

    timer = make_timer("cuda")
    assert isinstance(timer, CudaTimer)
    l2 = torch.cuda.get_device_properties(0).L2_cache_size
    assert timer._flush.numel() >= 2 * l2
    a = torch.randn(2048, 2048, device="cuda")
    short = timer(lambda: a @ a)
    long = timer(lambda: [a @ a for _ in range(8)])
    assert 0 < short < long


def test_each_timer_names_its_kind_and_the_graph_timer_refuses_the_cpu():
    assert make_timer("cpu").kind == "perf-counter"
    with pytest.raises(MePropInputError, match=r"CUDA-graph timer times CUDA devices only.*cpu"):
        make_timer("cpu", cuda_graph=True)


def _cuda_or_skip():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU; none is present")
    return torch


@pytest.mark.cuda
def test_cuda_graph_timer_replays_what_it_captured_once():
    torch = _cuda_or_skip()
    from meprop_bench.harness.timing import CudaGraphTimer, CudaTimer

    assert isinstance(make_timer("cuda"), CudaTimer) and make_timer("cuda").kind == "cuda-events"
    timer = make_timer("cuda", cuda_graph=True)
    assert isinstance(timer, CudaGraphTimer) and timer.kind == "cuda-graph"
    a = torch.randn(512, 512, device="cuda")
    calls = []

    def fn():
        calls.append(1)
        return a @ a

    first = timer(fn)
    assert len(calls) == 1 + GRAPH_CALLS  # one warm-up call, then the captured ones
    assert timer(fn) > 0 and first > 0 and len(calls) == 1 + GRAPH_CALLS  # replays: no Python
    with pytest.raises(MePropInputError, match="cannot capture"):
        timer(lambda: (a @ a).sum().item())
    assert timer(lambda: a + 1) > 0  # a failed capture leaves the timer usable


@pytest.mark.cuda
def test_cuda_graph_timer_captures_every_kernel_that_does_not_sync():
    torch = _cuda_or_skip()
    from meprop_bench import KERNELS

    g = torch.Generator().manual_seed(0)
    dy, x, w = (torch.randn(s, generator=g).cuda() for s in ((64, 256), (64, 128), (256, 128)))
    timer = make_timer("cuda", cuda_graph=True)
    for key, kern in KERNELS.items():
        if kern.runs_on("cuda", torch.float32) and not kern.syncs_on_cuda:
            kern.prepare()
            assert timer(lambda kern=kern: kern.fn(dy, x, w, 8)) > 0, key
