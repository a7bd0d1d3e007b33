"""Probe: do the dY entries that top-k keeps lean to one sign, and does the network drift
with them? One epoch of the paper's MLP (h = 500, k = 20) on 10,000 Fashion-MNIST
images per recipe and method, with the suite's own model, recipes and selection
functions. Per hidden layer: the share of kept dY entries that are negative against the
share of all nonzero dY entries; then the largest |logit| on the dev split, the mean of
each hidden layer's weights (they start at mean 0) and test accuracy.

Run from the repository root: python docs/reports/training-2026-12-07/sign_bias.py
(about 2 minutes on one core). Kept entries are counted with the functions
meprop_bench.training.unit_keeps uses (what the kernels reproduce).
"""

from __future__ import annotations

import torch

from meprop_bench.training.data import load_data, minibatches, subset
from meprop_bench.training.diagnostics import activation_stats
from meprop_bench.training.loop import accuracy, make_optimizer
from meprop_bench.training.models import build_mlp, hidden_layers
from meprop_bench.training.recipes import RECIPES
from meprop_bench.training.unit_keeps import _rng_state, kept_mask

K, TRAIN = 20, 10_000


def probe(method: str, recipe_name: str, data) -> dict[str, object]:
    recipe = RECIPES[recipe_name]
    train, dev, test = (
        recipe.inputs(s, data.mean, data.std)
        for s in (subset(data.train, TRAIN), data.dev, data.test)
    )
    torch.manual_seed(0)
    model = recipe.prepare_model(build_mlp(hidden=500, method=method, k=K))
    layers = dict(hidden_layers(model))
    counts = {name: [0, 0, 0, 0] for name in layers}  # kept neg, kept, nonzero neg, nonzero
    pending: list = []

    def tap(name):
        def forward(module, inputs, out):
            if out.requires_grad:
                state = _rng_state(out.device) if method == "randk" else None
                out.register_hook(lambda dy: pending.append((name, dy.detach(), state)))

        return forward

    for name, layer in layers.items():
        layer.register_forward_hook(tap(name))
    reference = build_mlp(hidden=500, method="topk", k=K).hidden0
    params = list(model.parameters())
    opt = make_optimizer("adam", params, None)
    for xb, yb in minibatches(train, recipe.batch_size, torch.Generator().manual_seed(0)):
        model.train()
        opt.zero_grad(set_to_none=True)
        recipe.loss(model(xb), yb).backward()
        recipe.clip_gradients(params)
        opt.step()
        for name, dy, state in pending:
            # dense: what a top-k selection would have kept of dense's dY
            layer = reference if method == "dense" else layers[name]
            kept = kept_mask(layer, dy, state)
            c = counts[name]
            for i, value in enumerate((kept & (dy < 0), kept, dy < 0, dy != 0)):
                c[i] += int(value.sum())
        pending.clear()
    stats = activation_stats(model, dev)
    return {
        "kept negative": {n: round(c[0] / c[1], 2) for n, c in counts.items()},
        "all nonzero negative": {n: round(c[2] / c[3], 2) for n, c in counts.items()},
        "max |logit|": round(stats["max_abs_logit"]),
        "weight means": {n: f"{float(m.weight.mean()):+.4f}" for n, m in layers.items()},
        "test acc": round(accuracy(model, test), 4),
    }


def main() -> None:
    torch.set_num_threads(1)
    data = load_data("fashion")
    for recipe in RECIPES:
        for method in ("dense", "topk", "randk"):
            print(recipe, method, probe(method, recipe, data), flush=True)


if __name__ == "__main__":
    main()
