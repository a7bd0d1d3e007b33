"""meprop-bench model: training steps of a whole model, dense against meProp.

Does meProp speed up the step of the model you train? A preset (today's shapes) or your
own factory (--model package.module:factory, a function of no arguments returning
(model, batch, loss_fn); see docs/model.md) is stepped dense and with meProp in every
nn.Linear but those --keep-dense names, alternately in blocks of consecutive steps, in
one process. It prints the whole step's speedup with its 95% interval and its parts
(forward, backward, optimizer), each swapped layer's backward inside the step beside
the same kernel alone at the same shape and k (the check's engine), the cosine of each
layer's dW and dX to dense's, and both steps' peak memory.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from meprop_bench.core.kernels import METHODS
from meprop_bench.harness.model_presets import PRESETS, load_factory
from meprop_bench.harness.model_step import OPTIMIZERS, out_of_memory, run_model
from meprop_bench.harness.options import (
    DTYPES,
    add_device_option,
    add_k_option,
    add_malloc_option,
    add_threads_option,
    positive_int,
)
from meprop_bench.results.files import check_new_path, write_new_json
from meprop_bench.results.machine import describe
from meprop_bench.results.machine_state import describe_state
from meprop_bench.stability import busy_warning, model_bound_note, model_faults_note, warning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench model",
        description=__doc__.split("\n\n")[0],
        epilog=" ".join(__doc__.split("\n\n")[1].split()),
    )
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--preset", choices=PRESETS, metavar="NAME",
                       help="a model with today's shapes: " + "; ".join(
                           f"{p.name}: {p.summary}" for p in PRESETS.values()))  # fmt: skip
    which.add_argument("--model", metavar="PACKAGE.MODULE:FACTORY",
                       help="your own model: a function of no arguments returning (model, "
                       "batch, loss_fn); one step is loss_fn(model, batch).backward() and the "
                       "optimizer's step (imported from the working directory as python -m "
                       "does)")  # fmt: skip
    add_k_option(parser, default=0.01, of="each layer's n")
    parser.add_argument("--method", choices=[m for m in METHODS if m != "dense"], default="topk",
                        help="meProp's selection (default: %(default)s)")  # fmt: skip
    parser.add_argument("--strategy", default="auto",
                        help="the backward kernel's strategy (default: auto, as MePropLinear: "
                        "the fastest exact kernel for each layer's gradient)")  # fmt: skip
    parser.add_argument("--keep-dense", nargs="+", metavar="PATTERN", default=None,
                        help="names of nn.Linear layers to leave dense (fnmatch patterns, "
                        "e.g. out 'head*'; default: the preset's, the mlp's output layer "
                        "'out'; none for --model)")  # fmt: skip
    parser.add_argument("--optimizer", choices=OPTIMIZERS, default="adam",
                        help="each side's optimizer, lr 1e-3, torch's fused implementation "
                        "where it has one (default: %(default)s)")  # fmt: skip
    add_threads_option(parser)
    parser.add_argument("--rounds", type=positive_int, default=None,
                        help="timed rounds (default: as fit in about 50 s, 5 to 30)")  # fmt: skip
    parser.add_argument("--block", type=positive_int, default=None,
                        help="consecutive steps of one side per round (default: enough for "
                        "0.2 s, at most 20)")  # fmt: skip
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="the model's dtype (default: %(default)s)")  # fmt: skip
    add_device_option(parser)
    parser.add_argument("--seed", type=int, default=0, help="seed of the model and batch")
    add_malloc_option(parser)
    parser.add_argument("--no-isolated", action="store_true",
                        help="skip timing each swapped layer's backward alone")  # fmt: skip
    parser.add_argument("--out", metavar="FILE", help="also write the result here (JSON)")
    parser.add_argument("--force", action="store_true", help="let --out overwrite a file")
    return parser


def _ratio(low: float, high: float) -> str:
    return "[-]" if math.isnan(low) else f"[{low:.2f}-{high:.2f}]"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:.2f}"


def _faults(part: dict[str, Any]) -> str:
    dense, sparse = part.get("dense_faults"), part.get("meprop_faults")
    return "-" if dense is None or sparse is None else f"{dense:,.0f} / {sparse:,.0f}"


def format_result(doc: dict[str, Any]) -> str:
    """The printed answer: the whole step first, then its parts, the layers, memory."""
    p = doc["params"]
    low, high = doc["step_speedup_low"], doc["step_speedup_high"]
    lines = [
        f"model {p['model']}: {p['method']} k={p['k']} ({p['strategy']}), {p['optimizer']}, "
        f"{p['dtype']} on {p['device']}, {p['threads']} thread(s), {p['rounds']} rounds of "
        f"{p['block']} steps a side",
        f"machine: {describe(doc['machine'])}",
        describe_state(doc["machine"].get("state")),
        f"whole step: {doc['step_speedup']:.2f}x {_ratio(low, high)} (95% interval, width "
        f"{high - low:.2f}); "
        f"bound if each swapped layer's backward took k/n: {doc['step_bound']:.2f}x",
        f"{'part':<12}{'dense ms':>10}{'meProp ms':>11}{'speedup':>9}  {'95% interval':<14}"
        f"page faults a step, dense / meProp",
    ]
    for part in doc["parts"]:
        lines.append(f"{part['part']:<12}{_ms(part['dense_s']):>10}{_ms(part['meprop_s']):>11}"
                     f"{part['speedup']:>8.2f}x  {_ratio(part['low'], part['high']):<14}"
                     f"{_faults(part)}")  # fmt: skip
    lines.append(f"{'layer':<14}{'shape':<22}{'k':>6}{'kernel':>16}{'in step':>9}  "
                 f"{'[95%]':<13}{'isolated':>9}  {'[95%]':<13}{'n/k':>7}{'cos dW':>8}"
                 f"{'cos dX':>8}")  # fmt: skip
    for lay in doc["layers"]:
        iso = lay["isolated_speedup"]
        lines.append(
            f"{lay['name']:<14}{lay['shape']:<22}{lay['k']:>6}{lay['kernel']:>16}"
            f"{lay['in_step_speedup']:>8.2f}x  "
            f"{_ratio(lay['in_step_low'], lay['in_step_high']):<13}"
            + (f"{iso:>8.2f}x  {_ratio(lay['isolated_low'], lay['isolated_high']):<13}"
               if iso is not None else f"{'-':>9}  {'':<13}")
            + f"{lay['ideal_speedup']:>7.1f}{lay['dw_cosine']:>8.3f}"
            + (f"{lay['dx_cosine']:>8.3f}" if lay["dx_cosine"] is not None else f"{'-':>8}")
        )  # fmt: skip
    lines += [note for note in (model_bound_note(doc), model_faults_note(doc)) if note]
    mem = doc["memory"]
    if mem["dense_peak_bytes"] is not None:
        mib = 2**20
        lines.append(
            f"peak memory of a step ({mem['measure']}): dense {mem['dense_peak_bytes'] / mib:,.0f} "
            f"MiB (+{mem['dense_step_bytes'] / mib:,.0f} over its start), meProp "
            f"{mem['meprop_peak_bytes'] / mib:,.0f} MiB (+{mem['meprop_step_bytes'] / mib:,.0f})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.out:
        check_new_path(args.out, args.force)
    if args.preset:
        preset = PRESETS[args.preset]
        factory, name = preset.factory(), preset.name
        keep = preset.keep_dense if args.keep_dense is None else tuple(args.keep_dense)
    else:
        factory, name = load_factory(args.model), args.model
        keep = tuple(args.keep_dense or ())
    try:
        doc = run_model(
            factory, name=name, k=args.k, method=args.method,
            strategy=None if args.strategy == "auto" else args.strategy, keep_dense=keep,
            optimizer=args.optimizer, threads=args.threads, rounds=args.rounds,
            block=args.block, device=args.device, dtype=args.dtype, seed=args.seed,
            malloc=args.malloc, isolated=not args.no_isolated,
            progress=lambda m: print(m, file=sys.stderr),
        )  # fmt: skip
    except (MemoryError, RuntimeError) as err:
        if (short := out_of_memory(err)) is None:
            raise
        raise short from None
    print(format_result(doc))
    state = doc["machine"].get("state")
    if line := (warning(["whole step"], 1, state, doc["params"]["rounds"])
                if doc["unstable"] else busy_warning(state)):  # fmt: skip
        print(line, file=sys.stderr)
    if args.out:
        print(f"wrote {write_new_json(args.out, doc, args.force)}")
    return 0
