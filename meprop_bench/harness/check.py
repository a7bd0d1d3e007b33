"""Dense against every sparsified backward at one shape, timed in one run: all kernels
run on the same synthetic gradient, interleaved round by round, and each speedup is the
median of the per-round ratios dense/sparse with its interquartile range, next to the
ideal n/k; a case whose spread is too wide is marked unstable
(:mod:`meprop_bench.stability`), and the machine's load over the run is recorded.
``meprop-bench check`` is its command."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

from meprop_bench.core import allocator
from meprop_bench.core.kernels import KERNELS, check_inputs, get_kernel
from meprop_bench.errors import MePropInputError, backend_support
from meprop_bench.harness.cache_state import before_each_call
from meprop_bench.harness.options import DTYPES, resolve_device
from meprop_bench.harness.timing import make_timer, measure_interleaved, paired_ratio
from meprop_bench.results.files import envelope
from meprop_bench.results.kinds import CHECK
from meprop_bench.results.machine import machine_info
from meprop_bench.results.machine import threads as threads_in_force
from meprop_bench.results.machine_state import Watch
from meprop_bench.stability import above_bound, instability, time_spread


def run_check(
    *,
    batch: int,
    d_in: int,
    n: int,
    k: int | float,
    kernels: Sequence[str] | None,
    device: str,
    dtype: str,
    threads: int | None,
    rounds: int,
    warmup: int,
    seed: int,
    malloc: str = "default",
    cuda_graph: bool = False,
    cache: str = "shared",
    need_dx: bool = True,
) -> dict[str, Any]:
    """Time dense and ``kernels`` (names; None: every topk and unified kernel that runs
    on ``device`` in ``dtype``) on one synthetic gradient, interleaved round by round,
    each timed call finding the CPU caches as ``cache`` says
    (:mod:`~meprop_bench.harness.cache_state`); without ``need_dx``, dX is not computed
    (a model's first layer). Returns the ``meprop-bench/check`` document: the
    parameters and one row per kernel."""
    names, thread_setting = kernels, threads
    device = resolve_device(device, "--device")
    timer = make_timer(device, cuda_graph=cuda_graph)  # refuses --cuda-graph off CUDA
    before = before_each_call(cache, device)  # refuses warm or cold off the CPU
    allocator.set_mode(malloc)
    torch_dtype = DTYPES[dtype]
    if names is None:  # native runs on the CPU only, triton on CUDA only
        kernels = [kern for kern in KERNELS.values() if kern.method not in ("dense", "randk")
                   and kern.runs_on(device, torch_dtype)
                   and not (cuda_graph and kern.syncs_on_cuda)]  # fmt: skip
    else:
        kernels = [get_kernel(*name.split("/", 1)) for name in names]
    syncing = [kern.name for kern in kernels if cuda_graph and kern.syncs_on_cuda]
    if syncing:
        raise MePropInputError(
            f"--cuda-graph cannot time {', '.join(syncing)}: they read a size back to the "
            "host, which a CUDA graph cannot capture (leave them out of --kernels)"
        )
    gen = torch.Generator().manual_seed(seed)
    shapes = ((batch, n), (batch, d_in), (n, d_in))
    dy, x, w = (torch.randn(s, generator=gen).to(device, torch_dtype) for s in shapes)
    k = check_inputs(dy, x, w, k)
    dense = get_kernel("dense")
    for kern in kernels:
        kern.prepare()  # compile native kernels now, not in a timed round
    fns = {
        kern.name: (lambda kern=kern: kern.fn(dy, x, w, k, need_dx=need_dx))
        for kern in [dense, *kernels]
    }
    where = f"in {dtype} on {device} (choose another --dtype, --device or --kernels)"
    for name, fn in fns.items():  # once each, untimed: a kernel the backend lacks is named
        with backend_support(f"{name} cannot run {where}"):
            fn()
    with threads_in_force(thread_setting) as n_threads:
        watch = Watch()
        times = measure_interleaved(fns, timer, rounds, warmup, before)
        machine = {**machine_info(), "state": watch.state()}
    rows = []
    dense_spread = time_spread(times[dense.name].samples)
    for name, m in times.items():
        ratio = paired_ratio(times[dense.name], m)
        dense_row = name == dense.name
        rows.append(
            {
                "kernel": name,
                "median_s": m.median,
                "q1_s": m.q1,
                "q3_s": m.q3,
                "speedup": ratio.median,
                "speedup_q1": ratio.q1,
                "speedup_q3": ratio.q3,
                "minor_faults_median": m.median_faults,
                "samples_s": list(m.samples),
                "time_spread": time_spread(m.samples),
                "unstable": instability(math.nan, math.nan, dense_spread)
                if dense_row
                else instability(ratio.q1, ratio.q3, dense_spread, m.faults),
                "above_bound": not dense_row and above_bound(ratio.q1, n / k),
            }
        )
    params = {
        "batch": batch, "d_in": d_in, "n": n, "k": k, "k_over_n": k / n,
        "ideal_speedup": n / k, "device": str(device), "dtype": dtype,
        "threads": n_threads, "rounds": rounds, "warmup": warmup, "seed": seed,
        "input": "synthetic gaussian", "timer": timer.kind, "cache": cache, "malloc": malloc,
        "need_dx": need_dx,
    }  # fmt: skip
    return envelope(CHECK, machine=machine, params=params, results=rows)
