"""A whole training step (forward, loss, backward, fused Adam) of the ``meprop-bench
model`` presets, dense vs meProp in every swapped layer (strategy auto unless the grid
names one): the suite form of ``meprop-bench model``, for the gate and the sweeps.

The grid's preset picks the models (quick: the paper's MLP; paper: also the 512-token
transformer block and ViT-B/16's; full: every preset), its fractions k/n the k (a count
k is taken as is, for every swapped layer), its methods the variants (topk and unified;
``dense`` is always timed first). Each sparse step is timed beside a dense copy of the
model, block for block (``extra_info["paired_speedup"]``), as ``meprop-bench model``
times it; the command adds per-layer and isolated timings (docs/model.md).
"""

import pytest
import torch

from meprop_bench.core.kernels import fastest_kernel, get_kernel
from meprop_bench.core.layer import MePropLinear, swap_linear
from meprop_bench.harness.model_presets import PRESETS
from meprop_bench.harness.model_step import keep_dense_rule
from meprop_bench.harness.plugin import CaseBench, grid_of, preset_of

METHODS = ("topk", "unified")


def _variants(methods):
    """(method, strategy) to time: dense, then each of METHODS the grid names (strategy
    None: auto, for a bare method)."""
    out = {("dense", "dense"): None}
    for spec in methods:
        method, _, strategy = spec.partition("/")
        if method in METHODS:
            out[(method, strategy or None)] = None
    return list(out)


def pytest_generate_tests(metafunc):
    if "model_case" not in metafunc.fixturenames:
        return
    grid = grid_of(metafunc.config)
    suite_preset = preset_of(metafunc.config)
    params = []
    for preset in (p for p in PRESETS.values() if suite_preset in p.grids):
        for device in grid.devices:
            for dtype in grid.dtypes:
                for threads in grid.threads:
                    for method, strategy in _variants(grid.methods):
                        ks = [None] if method == "dense" else grid.ks
                        params += [(preset.name, method, strategy, k, device, dtype, threads)
                                   for k in ks]  # fmt: skip
    ids = [
        f"{p}_{m}-{st or 'auto'}"
        + ("" if k is None else f"_k{k}")
        + f"_{dev}_{dt}"
        + ("" if t is None else f"_t{t}")
        for p, m, st, k, dev, dt, t in params
    ]
    metafunc.parametrize("model_case", params, ids=ids)


def make_step(name, method, strategy, k, device, dtype):
    """One training step of preset ``name`` (meProp in its swapped layers unless
    ``method`` is dense) on a fixed batch; (the step, the first swapped layer, or the
    first linear layer for dense). Skips when the kernel cannot run here."""
    preset = PRESETS[name]
    torch.manual_seed(0)
    model, batch, loss_fn = preset.factory()()
    model = model.to(device, dtype)
    batch = tuple(t.to(device, dtype if t.is_floating_point() else None) for t in batch)
    if method != "dense":
        kernel = (fastest_kernel(method, torch.empty(1, 1, dtype=dtype, device=device))
                  if strategy is None else get_kernel(method, strategy))  # fmt: skip
        if not kernel.runs_on(device, dtype):
            dtype_name = str(dtype).removeprefix("torch.")
            pytest.skip(f"{kernel.name} does not run in {dtype_name} on {device}")
        CaseBench.prepare(kernel)
        swap_linear(model, k=k, method=method, strategy=strategy,
                    skip=keep_dense_rule(preset.keep_dense))  # fmt: skip
    swapped = [m for m in model.modules() if type(m) is MePropLinear]
    first = swapped[0] if swapped else next(m for m in model.modules()
                                            if isinstance(m, torch.nn.Linear))  # fmt: skip
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=True)

    def step():
        loss_fn(model, batch).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, first, batch[0].numel() // batch[0].shape[-1]


def test_model_step(meprop, model_case):
    name, method, strategy, k, device, dtype_name, threads = model_case
    meprop.require_device(device)
    dtype = getattr(torch, dtype_name)
    if dtype not in (torch.float32, torch.float64, torch.bfloat16):
        pytest.skip(f"model step not measured in {dtype_name}")
    step, first, rows = make_step(name, method, strategy, k, device, dtype)
    partner = None
    if method != "dense":
        partner = make_step(name, "dense", "dense", None, device, dtype)[0]
    k_count = first.k if method != "dense" else first.out_features
    meprop.run(
        step,
        device=device,
        thread_count=threads,
        extra_info={
            "suite": "model_step",
            "model_preset": name,
            "method": method,
            "strategy": strategy or "auto",
            "optimizer": "Adam (fused)",
            "batch": rows,
            "B": rows,
            "k": k_count,
            "k_over_n": k_count / first.out_features,
            "dtype": dtype_name,
            "device": device,
            "pair_key": f"model {name},{dtype_name},{device}",
        },
        steps=True,
        partner=partner,
        group=f"model_step {name} {dtype_name} {device}",
    )
