"""One training run of the paper's MNIST MLP, dense or meProp, under a recipe: every
epoch's scores and times, the best-dev epoch, and how often each hidden unit's gradient
was kept (the run record of :mod:`meprop_bench.results.training`)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from meprop_bench.core.kernels import Kernel, get_kernel
from meprop_bench.core.layer import MePropLinear
from meprop_bench.core.selection import resolve_k
from meprop_bench.errors import MePropInputError
from meprop_bench.training.data import MnistData, Split, minibatches, subset
from meprop_bench.training.diagnostics import activation_stats
from meprop_bench.training.models import build_mlp, hidden_layers
from meprop_bench.training.recipes import DEFAULT_RECIPE, get_recipe
from meprop_bench.training.unit_keeps import KeepCounter

# The paper's learning rates: Adam 0.001; AdaGrad 0.1 for MNIST (eps 1e-6).
DEFAULT_LR = {"adam": 1e-3, "adagrad": 0.1}


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run depends on."""

    method: str = "topk"
    k: int | float | None = 20
    hidden: int = 500
    layers: int = 2
    dropout: float = 0.0
    epochs: int = 20
    batch_size: int | None = None  # None: the recipe's
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR of the optimizer
    seed: int = 0
    recipe: str = DEFAULT_RECIPE
    train_size: int | None = None  # None: every training image; else a stratified subset

    def __post_init__(self) -> None:
        get_recipe(self.recipe)  # an unknown recipe fails here, before any training
        if self.train_size is not None and self.train_size < 1:
            raise MePropInputError(f"train_size={self.train_size} must be at least 1")
        if self.method != "dense":
            resolve_k(self.k, self.hidden)  # a k out of range fails here, too

    @property
    def k_count(self) -> int | None:
        """k as a count of the hidden width; None for dense."""
        return None if self.method == "dense" else resolve_k(self.k, self.hidden)

    @property
    def batch(self) -> int:
        """The minibatch size: ``batch_size``, or the recipe's default."""
        return self.batch_size or get_recipe(self.recipe).batch_size

    @property
    def label(self) -> str:
        kept = "" if self.method == "dense" else f" k={self.k_count}"
        drop = f" dropout={self.dropout:g}" if self.dropout else ""
        return f"{self.method}{kept} h={self.hidden}{drop}"


OPTIMIZER_IMPL = "fused"  # torch.optim's fused kernels: the same update, 3x faster here


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float | None
) -> torch.optim.Optimizer:
    """Adam (betas 0.9/0.999, eps 1e-8) or AdaGrad (eps 1e-6), as in the paper, with
    torch's fused kernels (one pass over all parameters instead of a loop of small ops:
    an Adam step of the 784-500-500-10 MLP took 14 instead of 46 ms on a busy core)."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8, fused=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-6, fused=True)
    raise MePropInputError(f"unknown optimizer {name!r}; choose one of: {', '.join(DEFAULT_LR)}")


def _clock(device: torch.device) -> Callable[[], float]:
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device) or time.perf_counter()
    return time.perf_counter


@torch.no_grad()
def accuracy(model: nn.Module, split: Split, chunk: int = 10_000) -> float:
    """Fraction of ``split`` classified correctly, in evaluation mode."""
    model.eval()
    correct = sum(
        int((model(split.x[i : i + chunk]).argmax(1) == split.y[i : i + chunk]).sum())
        for i in range(0, len(split.y), chunk)
    )
    return correct / len(split.y)


def train_run(
    cfg: RunConfig,
    data: MnistData,
    *,
    device: torch.device | str = "cpu",
    on_epoch: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Train one configuration; return its run record (see :mod:`meprop_bench.results.training`).

    ``torch.manual_seed(cfg.seed)`` fixes the initial weights, dropout and random-k;
    a generator seeded alike fixes the minibatch order, so a seed reproduces a run.
    ``cfg.train_size`` trains on :func:`~meprop_bench.training.data.subset` of the
    training images (the same images for every seed). The recipe
    (:mod:`meprop_bench.training.recipes`) sets the init, the input scale, the loss
    reduction and the gradient clip; the clip counts as optimizer-step time. After each
    epoch the dev split also gives :func:`activation_stats`, outside the timed steps.
    """
    device = torch.device(device)
    recipe = get_recipe(cfg.recipe)
    train, dev, test = (
        recipe.inputs(Split(s.x.to(device), s.y.to(device)), data.mean, data.std)
        for s in (subset(data.train, cfg.train_size), data.dev, data.test)
    )
    torch.manual_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    model = build_mlp(
        hidden=cfg.hidden, layers=cfg.layers, method=cfg.method, k=cfg.k, dropout=cfg.dropout
    )
    model = recipe.prepare_model(model).to(device)
    params = list(model.parameters())
    kernel = _hidden_kernel(model)
    kernel.prepare()  # compile a native kernel now, not inside the first epoch's times
    opt = make_optimizer(cfg.optimizer, params, cfg.lr)
    per_example = recipe.loss_reduction == "mean"  # the loss is a mean: times the batch
    clock = _clock(device)
    epochs = []
    start = time.perf_counter()
    with KeepCounter(model) as keeps:
        for epoch in range(1, cfg.epochs + 1):
            model.train()
            loss_sum = torch.zeros((), device=device)
            correct = torch.zeros((), dtype=torch.long, device=device)
            times = [0.0, 0.0, 0.0]
            for xb, yb in minibatches(train, cfg.batch, order):
                opt.zero_grad(set_to_none=True)
                t0 = clock()
                logits = model(xb)
                loss = recipe.loss(logits, yb)
                t1 = clock()
                loss.backward()
                t2 = clock()
                recipe.clip_gradients(params)
                opt.step()
                t3 = clock()
                for i, dt_ in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                    times[i] += dt_
                keeps.collect()
                loss_sum += loss.detach() * (len(yb) if per_example else 1)
                correct += (logits.detach().argmax(1) == yb).sum()
            record = {
                "epoch": epoch,
                "train_loss": float(loss_sum) / len(train.y),
                "train_acc": int(correct) / len(train.y),
                "dev_acc": accuracy(model, dev),
                "test_acc": accuracy(model, test),
                **activation_stats(model, dev),
                "forward_s": times[0],
                "backward_s": times[1],
                "step_s": times[2],
            }
            epochs.append(record)
            if on_epoch:
                on_epoch(record)
    best = max(epochs, key=lambda r: r["dev_acc"])  # the first of equals: max keeps it
    return {
        "label": cfg.label,
        "recipe": cfg.recipe,
        "data": data.name,
        "train_size": len(train.y),
        "method": cfg.method,
        "kernel": kernel.name,
        "k": cfg.k_count,
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "dropout": cfg.dropout,
        "seed": cfg.seed,
        "optimizer": cfg.optimizer,
        "lr": DEFAULT_LR[cfg.optimizer] if cfg.lr is None else cfg.lr,
        "optimizer_impl": OPTIMIZER_IMPL,
        "batch_size": cfg.batch,
        "best_epoch": best["epoch"],
        "best_dev_acc": best["dev_acc"],
        "test_acc_at_best": best["test_acc"],
        "wall_s": time.perf_counter() - start,
        "kept": keeps.record(),
        "kept_of": keeps.examples,
        "epochs": epochs,
    }


def _hidden_kernel(model: nn.Module) -> Kernel:
    """The kernel the hidden layers' backward runs (dense for nn.Linear)."""
    _, layer = hidden_layers(model)[0]
    return layer.kernel if isinstance(layer, MePropLinear) else get_kernel("dense")
