"""The layer as a user runs it: ``loss.backward()`` through autograd, nn.Linear (the
dense case) against MePropLinear (each sparse case).

A compact strategy (unified/compact, topk/rowunion) gives MePropLinear a row-sparse
``weight.grad`` (``sparse_grad=True``), its fastest configuration; the others fill a
full dense one. The input requires a gradient, as a hidden layer's does.
"""

import torch
from torch import nn

from meprop_bench.core.layer import MePropLinear


def make_layer(case, w):
    if case.is_dense:
        layer = nn.Linear(case.d_in, case.n, device=case.device, dtype=case.torch_dtype)
    else:
        layer = MePropLinear(case.d_in, case.n, k=case.k, method=case.method,
                             strategy=case.strategy, sparse_grad=case.kernel.compact,
                             device=case.device, dtype=case.torch_dtype)  # fmt: skip
    with torch.no_grad():
        layer.weight.copy_(w)
    return layer


def test_layer_backward(meprop, backward_case):
    case, threads = backward_case
    meprop.prepare(case.kernel)
    dy, x, w = meprop.inputs(case)
    layer = make_layer(case, w)
    x = x.detach().requires_grad_()
    out = layer(x)

    def reset():
        x.grad = layer.weight.grad = layer.bias.grad = None

    meprop.run(
        lambda: out.backward(dy, retain_graph=True),
        setup=reset,
        device=case.device,
        thread_count=threads,
        extra_info={
            **case.extra_info(threads),
            "suite": "layer",
            "sparse_grad": case.kernel.compact,
        },
        group=f"layer {case.pair_key}",
    )
