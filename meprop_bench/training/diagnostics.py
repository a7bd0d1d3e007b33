"""What a run's network looks like at the end of an epoch, beside its accuracy: the
largest |logit| and each hidden layer's activation norm on the dev split. These show
when training drives the logits and activations up (overconfident, saturated softmax)
while accuracy stalls, which is how a top-k run falls behind dense."""

from __future__ import annotations

import torch
from torch import nn

from meprop_bench.training.data import Split


@torch.no_grad()
def activation_stats(model: nn.Sequential, split: Split, chunk: int = 10_000) -> dict[str, object]:
    """In evaluation mode over ``split``: ``max_abs_logit`` (the largest |logit| of any
    example and class) and ``hidden_norm`` (per hidden layer, the mean over examples of
    the L2 norm of its ReLU output)."""
    model.eval()
    largest = 0.0
    norms: list[float] = []
    for start in range(0, len(split.y), chunk):
        h = split.x[start : start + chunk]
        layer = 0
        for name, module in model.named_children():
            h = module(h)
            if name.startswith("relu"):
                if layer == len(norms):
                    norms.append(0.0)
                norms[layer] += float(h.norm(dim=1).sum())
                layer += 1
        largest = max(largest, float(h.abs().max()))
    return {"max_abs_logit": largest, "hidden_norm": [n / len(split.y) for n in norms]}
