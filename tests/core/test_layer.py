"""MePropLinear as a drop-in nn.Linear, and swap_linear."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest
import torch
from reference import masked_grads, per_example_mask, unified_mask
from torch import nn

from meprop_bench import KERNELS, MePropInputError, MePropLinear, backward, swap_linear

ALL = sorted(KERNELS)


def test_same_forward_and_state_dict_as_linear():
    torch.manual_seed(0)
    ref = nn.Linear(7, 11)
    layer = MePropLinear(7, 11, k=3)
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(5, 7)
    torch.testing.assert_close(layer(x), ref(x), rtol=0, atol=0)
    assert set(layer.state_dict()) == {"weight", "bias"}
    assert "k=3, method=topk, strategy=auto" in repr(layer)


@pytest.mark.parametrize("method,strategy", ALL)
def test_gradcheck_when_k_is_n(method, strategy):
    # With every entry kept, meProp's backward is the true gradient.
    torch.manual_seed(0)
    layer = MePropLinear(4, 6, k=6, method=method, strategy=strategy).double()
    x = torch.randn(3, 2, 4, dtype=torch.float64, requires_grad=True)
    w, b = (p.detach().clone().requires_grad_() for p in (layer.weight, layer.bias))

    def f(x, w, b):
        return torch.func.functional_call(layer, {"weight": w, "bias": b}, (x,))

    assert torch.autograd.gradcheck(f, (x, w, b))


@pytest.mark.parametrize("method", ["topk", "unified"])
def test_leading_dimensions_flatten(method, device):
    torch.manual_seed(0)
    layer = MePropLinear(5, 20, k=0.25, method=method, device=device, dtype=torch.float64)
    x = torch.randn(3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    dy = torch.randn(3, 4, 20, dtype=torch.float64, device=device)
    layer(x).backward(dy)
    dy2, x2 = dy.reshape(12, 20), x.detach().reshape(12, 5)
    mask = (per_example_mask if method == "topk" else unified_mask)(dy2, 5)
    dx, dw, db = masked_grads(dy2, x2, layer.weight, mask)
    np.testing.assert_allclose(x.grad.reshape(12, 5).cpu().numpy(), dx, rtol=1e-10)
    np.testing.assert_allclose(layer.weight.grad.cpu().numpy(), dw, rtol=1e-10)
    np.testing.assert_allclose(layer.bias.grad.cpu().numpy(), db, rtol=1e-10)


@pytest.mark.parametrize("method,strategy", ALL)
@pytest.mark.parametrize("shape", [(0, 12), (3, 0, 12)])
def test_an_empty_batch_gives_what_linear_gives(method, strategy, shape):
    layer = MePropLinear(12, 16, k=4, method=method, strategy=strategy).double()
    ref = nn.Linear(12, 16).double()
    ref.load_state_dict(layer.state_dict())
    grads = []
    for mod in (layer, ref):
        x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
        mod(x).sum().backward()
        grads.append((x.grad, mod.weight.grad, mod.bias.grad))
    for got, want in zip(*grads, strict=True):
        assert torch.equal(got, want)


@pytest.mark.parametrize("method", ["topk", "unified", "randk"])
def test_sparse_grad_holds_only_touched_rows(method):
    torch.manual_seed(0)
    dense = MePropLinear(6, 50, k=3, method=method)
    sparse = MePropLinear(6, 50, k=3, method=method, sparse_grad=True)
    sparse.load_state_dict(dense.state_dict())
    x, dy = torch.randn(4, 6), torch.randn(4, 50)
    torch.manual_seed(1)
    dense(x).backward(dy)
    torch.manual_seed(1)
    sparse(x).backward(dy)
    grad = sparse.weight.grad.coalesce()  # autograd's accumulation drops the flag
    assert grad.layout == torch.sparse_coo
    touched = grad.indices()[0]
    assert touched.numel() <= 4 * 3
    assert touched.numel() == (dense.weight.grad.abs().sum(1) > 0).sum()
    torch.testing.assert_close(grad.to_dense(), dense.weight.grad)


def test_sparse_grad_trains_with_sparse_adam():
    torch.manual_seed(0)
    layer = MePropLinear(8, 32, k=4, method="unified", sparse_grad=True)
    opt = torch.optim.SparseAdam([layer.weight], lr=0.1)
    before = layer.weight.detach().clone()
    layer(torch.randn(10, 8)).pow(2).sum().backward()
    opt.step()
    changed = (layer.weight.detach() != before).any(1)
    touched = layer.weight.grad.coalesce().indices()[0]
    assert changed.sum() == 4 and torch.equal(changed.nonzero()[:, 0], touched)


def test_sparse_grad_needs_compact_strategy():
    with pytest.raises(MePropInputError, match="sparse_grad=True needs a compact strategy"):
        MePropLinear(4, 8, k=2, method="topk", strategy="masked", sparse_grad=True)
    assert MePropLinear(4, 8, k=2, method="topk", sparse_grad=True).kernel.compact


def test_auto_strategy_is_the_fastest_exact_kernel_for_the_gradient(monkeypatch):
    from meprop_bench.core import native

    layer = MePropLinear(6, 8, k=3)
    assert layer.strategy is None and layer.kernel.name == "topk/native"
    assert layer.bfloat16().kernel.name == "topk/masked"
    assert MePropLinear(6, 8, k=3, method="unified").kernel.name == "unified/native"
    big = MePropLinear(2, native.UNIFIED_SMALL + 1, k=3, method="unified", device="meta")
    assert big.kernel.name == "unified/compact"
    monkeypatch.setattr(native, "available", lambda: False)  # numba missing
    assert layer.float().kernel.name == "topk/masked"
    assert MePropLinear(6, 8, k=3, sparse_grad=True).kernel.name == "topk/rowunion"


@pytest.mark.parametrize("sparse_grad", [False, True])
def test_auto_strategy_backward_equals_the_chosen_kernel(sparse_grad):
    torch.manual_seed(0)
    auto = MePropLinear(5, 9, k=2, sparse_grad=sparse_grad)
    fixed = MePropLinear(5, 9, k=2, strategy="native", sparse_grad=sparse_grad)
    fixed.load_state_dict(auto.state_dict())
    x = torch.randn(3, 4, 5)
    for layer in (auto, fixed):
        layer(x).square().sum().backward()
    assert auto.weight.grad.is_sparse == sparse_grad
    torch.testing.assert_close(auto.weight.grad.to_dense(), fixed.weight.grad.to_dense())
    torch.testing.assert_close(auto.bias.grad, fixed.bias.grad)


@pytest.mark.parametrize("x_grad", [True, False])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("frozen", [False, True])
def test_backward_computes_only_the_gradients_autograd_needs(x_grad, bias, frozen, monkeypatch):
    if frozen and not x_grad:
        pytest.skip("nothing needs a gradient: autograd does not run the backward")
    layer = MePropLinear(4, 8, bias=bias, k=2, method="unified", strategy="compact")
    layer.weight.requires_grad_(not frozen)
    asked = []
    kernel_fn = layer.kernel.fn

    def spy(*args, **kwargs):
        asked.append(kwargs)
        return kernel_fn(*args, **kwargs)

    spied = dataclasses.replace(layer.kernel, fn=spy)
    monkeypatch.setattr("meprop_bench.core.layer.get_kernel", lambda *names: spied)
    x = torch.randn(3, 4, requires_grad=x_grad)
    layer(x).sum().backward()
    assert asked == [{"need_dx": x_grad, "need_dw": not frozen, "need_db": bias}]
    assert (x.grad is not None) == x_grad
    want = backward(torch.ones(3, 8), x.detach(), layer.weight.detach(), 2, "unified")
    if frozen:
        assert layer.weight.grad is None
    else:
        torch.testing.assert_close(layer.weight.grad, want.dense_dw())
    if x_grad:
        torch.testing.assert_close(x.grad, want.dx)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(k=0), "out of range"),
        (dict(k=9), "out of range"),
        (dict(k=1.2), r"\(0, 1\]"),
        (dict(k=2, method="meprop"), "unknown method"),
        (dict(k=2, strategy="nope"), "unknown strategy"),
    ],
)
def test_bad_construction(kwargs, message):
    with pytest.raises(MePropInputError, match=message):
        MePropLinear(4, 8, **kwargs)


def test_wrong_input_width():
    with pytest.raises(MePropInputError, match="expected in_features=4"):
        MePropLinear(4, 8, k=2)(torch.randn(3, 5))


def test_swap_linear_shares_parameters_and_skips():
    mlp = nn.Sequential(nn.Linear(784, 50), nn.ReLU(), nn.Linear(50, 50), nn.ReLU())
    mlp.add_module("out", nn.Linear(50, 10))
    params = [p for p in mlp.parameters()]
    swap_linear(mlp, k=5, method="unified", skip=lambda name, layer: name == "out")
    assert isinstance(mlp[0], MePropLinear) and isinstance(mlp[2], MePropLinear)
    assert type(mlp.out) is nn.Linear
    assert all(a is b for a, b in zip(params, mlp.parameters(), strict=True))
    mlp(torch.randn(3, 784)).sum().backward()
    assert (mlp[2].weight.grad.abs().sum(1) > 0).sum() == 5


def test_swap_linear_on_a_bare_linear():
    lin = nn.Linear(3, 4, bias=False)
    layer = swap_linear(lin, k=2)
    assert isinstance(layer, MePropLinear) and layer.weight is lin.weight and layer.bias is None


@pytest.mark.parametrize("method,strategy", ALL)
def test_pickles_deepcopies_and_saves_like_linear(method, strategy, tmp_path):
    torch.manual_seed(0)
    layer = MePropLinear(4, 6, k=6, method=method, strategy=strategy)
    x = torch.randn(3, 4)
    want = torch.autograd.grad(layer(x).sum(), layer.weight)[0]
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(layer), path)
    copies = [
        pickle.loads(pickle.dumps(layer)),
        copy.deepcopy(layer),
        torch.load(path, weights_only=False)[0],
    ]
    for twin in copies:
        assert repr(twin) == repr(layer)
        torch.testing.assert_close(torch.autograd.grad(twin(x).sum(), twin.weight)[0], want)


@pytest.mark.parametrize("method", ["dense", "topk", "unified", "randk"])
@pytest.mark.parametrize("sparse_grad", [False, True])
def test_follows_autocast_as_linear_does(method, sparse_grad):
    if sparse_grad and method == "dense":
        pytest.skip("dense has no compact strategy")
    torch.manual_seed(0)
    ref = nn.Linear(8, 6)
    layer = MePropLinear(8, 6, k=6, method=method, sparse_grad=sparse_grad)
    layer.load_state_dict(ref.state_dict())
    x = torch.randn(5, 8)
    results = []
    for module in (ref, layer):
        xi = x.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(xi)
        out.float().pow(2).sum().backward()
        grads = [xi.grad, module.weight.grad, module.bias.grad]
        results.append((out, [g.to_dense() for g in grads]))
    (want_out, want_grads), (out, grads) = results
    assert out.dtype == want_out.dtype == torch.bfloat16
    torch.testing.assert_close(out, want_out)
    for got, want in zip(grads, want_grads, strict=True):
        assert got.dtype == want.dtype
        torch.testing.assert_close(got, want, rtol=2e-2, atol=2e-2)


def test_swap_linear_swaps_every_reference_to_a_shared_layer():
    net = nn.Module()
    net.a = nn.Linear(4, 4)
    net.b = net.a
    swap_linear(net, k=2)
    assert isinstance(net.a, MePropLinear) and net.b is net.a


def test_swap_linear_keeps_an_aliased_layer_dense_when_any_name_is_skipped():
    net = nn.Module()
    net.a = nn.Linear(4, 4)
    net.b = net.a
    swap_linear(net, k=2, skip=lambda name, layer: name == "b")
    assert type(net.a) is nn.Linear and net.b is net.a


def test_a_second_swap_is_refused_unless_asked_for():
    mlp = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    swap_linear(mlp, k=2)
    with pytest.raises(MePropInputError, match="already holds MePropLinear"):
        swap_linear(mlp, k=3, method="unified")
    assert mlp[0].k == 2 and mlp[0].method == "topk"
    swap_linear(mlp, k=3, method="unified", replace=True)
    assert mlp[0].k == mlp[2].k == 3 and mlp[2].method == "unified"
    with pytest.raises(MePropInputError, match="already a MePropLinear"):
        swap_linear(mlp[0], k=1)
    assert swap_linear(mlp[0], k=1, replace=True).k == 1


@pytest.mark.parametrize("method, strategy", [("topk", "native"), ("unified", "compact")])
def test_a_training_steps_weight_gradient_reuses_the_last_steps_memory(method, strategy):
    """A full dW of 8 MiB or more comes from memory the previous step's ``.grad`` left
    when zero_grad freed it (no fresh pages to fault in each step), and is right."""
    from meprop_bench.core.allocator import HUGE_FROM

    if strategy == "native":
        pytest.importorskip("numba")
    layer = MePropLinear(2048, 1024, k=16, method=method, strategy=strategy)
    assert layer.weight.numel() * 4 >= HUGE_FROM
    g = torch.Generator().manual_seed(0)
    xs = [torch.randn(32, 2048, generator=g) for _ in range(3)]
    pointers = []
    for x in xs:
        dy = torch.randn(32, 1024, generator=g)
        layer(x).backward(dy)
        mask = per_example_mask(dy, 16) if method == "topk" else unified_mask(dy, 16)
        _, dw, _ = masked_grads(dy, x, layer.weight.detach(), mask)
        np.testing.assert_allclose(layer.weight.grad.double().numpy(), dw, rtol=1e-4, atol=1e-4)
        pointers.append(layer.weight.grad.data_ptr())
        layer.zero_grad(set_to_none=True)
    assert pointers[1] == pointers[0] and pointers[2] == pointers[0]
