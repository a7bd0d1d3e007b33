"""A whole training step (forward, backward, optimizer step) of the paper's MLP
784-h-h-10, dense vs meProp in every hidden layer (output layer dense).

The forward is unchanged by meProp, so the step gains at most 3n/(n+2k) (< 3x) even when
the backward products shrink by n/k. The ``sparse_grad`` variant gives the hidden
weights row-sparse gradients and steps them with SparseAdam (Adam for the rest).

A sparse step is timed beside the dense one, block for block, and its speedup is the
median of the per-round ratios (``extra_info["paired_speedup"]``): timed in separate
tests, the ratio moved with the machine between the two stretches (1.00x to 1.82x).

Adam is torch's fused one, on both sides: its fastest step on the CPU and on CUDA. The
default (a loop over the parameters) took 1.24 against 0.50 ms at the MNIST shape on
one CPU thread, a fixed cost of both sides that would hide what the backward saves.
"""

import pytest
import torch
from torch.nn import functional as F

from meprop_bench.core.kernels import get_kernel
from meprop_bench.core.layer import swap_linear
from meprop_bench.core.selection import resolve_k
from meprop_bench.harness.grid import TRAIN_STEP_SHAPES, TRAIN_STEP_VARIANTS
from meprop_bench.harness.plugin import grid_of, preset_of
from meprop_bench.training.models import build_mlp

DENSE = ("dense", "dense", False)  # the variant every sparse step is timed beside


def pytest_generate_tests(metafunc):
    if "train_case" not in metafunc.fixturenames:
        return
    grid = grid_of(metafunc.config)
    params = [
        (shape, variant, device, dtype, threads)
        for shape in TRAIN_STEP_SHAPES[preset_of(metafunc.config)]
        for device in grid.devices
        for dtype in grid.dtypes
        for threads in grid.threads
        for variant in TRAIN_STEP_VARIANTS
    ]
    ids = [
        f"{s.name}_{m}-{st}{'-sparsegrad' if sg else ''}_{dev}_{dt}"
        + ("" if t is None else f"_t{t}")
        for s, (m, st, sg), dev, dt, t in params
    ]
    metafunc.parametrize("train_case", params, ids=ids)


def make_step(shape, variant, device, dtype):
    """A closure running one training step on a fixed random minibatch, and the name of
    its optimizers as the results record it (e.g. "Adam (fused) + SparseAdam")."""
    method, strategy, sparse_grad = variant
    torch.manual_seed(0)
    model = build_mlp(hidden=shape.hidden, layers=2, method="dense")
    if method != "dense":
        swap_linear(model, k=shape.k, method=method, strategy=strategy,
                    sparse_grad=sparse_grad, skip=lambda name, layer: name == "out")  # fmt: skip
    model = model.to(device, dtype)
    sparse = [m.weight for m in model.modules() if getattr(m, "sparse_grad", False)]
    dense = [p for p in model.parameters() if all(p is not s for s in sparse)]
    optimizers = [torch.optim.Adam(dense, lr=1e-3, fused=True)]
    if sparse:
        optimizers.append(torch.optim.SparseAdam(sparse, lr=1e-3))
    x = torch.randn(shape.batch, 784, device=device, dtype=dtype)
    y = torch.randint(0, 10, (shape.batch,), device=device)

    def step():
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        for opt in optimizers:
            opt.step()

    label = " + ".join(
        type(opt).__name__ + (" (fused)" if opt.defaults.get("fused") else "") for opt in optimizers
    )
    return step, label


def test_train_step(meprop, train_case):
    shape, variant, device, dtype_name, threads = train_case
    meprop.require_device(device)
    dtype = getattr(torch, dtype_name)
    if dtype not in (torch.float32, torch.float64, torch.bfloat16):
        pytest.skip(f"training step not measured in {dtype_name}")
    method, strategy, sparse_grad = variant
    kernel = get_kernel(method, strategy)
    if not kernel.runs_on(device, dtype):
        pytest.skip(f"{kernel.name} does not run in {dtype_name} on {device}")
    meprop.prepare(kernel)
    k_count = resolve_k(shape.k, shape.hidden)
    step, optimizer = make_step(shape, variant, device, dtype)
    partner = None if method == "dense" else make_step(shape, DENSE, device, dtype)[0]
    meprop.run(
        step,
        device=device,
        thread_count=threads,
        extra_info={
            "suite": "train_step",
            "method": method,
            "strategy": strategy,
            "sparse_grad": sparse_grad,
            "optimizer": optimizer,
            "hidden": shape.hidden,
            "batch": shape.batch,
            "B": shape.batch,
            "k": k_count,
            "dtype": dtype_name,
            "device": device,
            "pair_key": f"train h={shape.hidden},B={shape.batch},k={k_count},{dtype_name},{device}",
            "max_step_speedup": 3 * shape.hidden / (shape.hidden + 2 * k_count),
        },
        steps=True,
        partner=partner,
        group=f"train_step h={shape.hidden} B={shape.batch} k={k_count} {dtype_name} {device}",
    )
