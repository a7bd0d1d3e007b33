"""``python -m meprop_bench.check``: dense vs every sparsified backward, timed in one run.

A quick answer to "does meProp pay off here, at this shape?": all kernels run on the
same synthetic gradient, interleaved round by round, and each speedup is the median
of the per-round ratios dense/sparse, shown with its interquartile range next to the
ideal n/k.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import torch

from meprop_bench.core import allocator
from meprop_bench.core.kernels import KERNELS, check_inputs, get_kernel
from meprop_bench.errors import MePropInputError, backend_support
from meprop_bench.harness.machine import describe, machine_info, threads
from meprop_bench.harness.options import (
    DTYPES,
    add_case_options,
    add_threads_option,
    case_widths,
    positive_int,
    resolve_device,
)
from meprop_bench.harness.timing import GRAPH_CALLS, make_timer, measure_interleaved, paired_ratio
from meprop_bench.results.files import check_new_path, envelope, write_new_json
from meprop_bench.results.kinds import CHECK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench check",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_case_options(parser, k=41)
    parser.add_argument(
        "--kernels",
        nargs="+",
        default=None,
        metavar="METHOD[/STRATEGY]",
        help="kernels to time besides dense (default: every topk and unified kernel that runs "
        f"on --device in --dtype); known: {', '.join(k.name for k in KERNELS.values())}",
    )
    parser.add_argument(
        "--cuda-graph",
        action="store_true",
        help=f"on CUDA, time each kernel as a CUDA graph of {GRAPH_CALLS} back-to-back calls, "
        "replayed (per-call time = replay / calls): for launch-bound small shapes; kernels "
        "that read a size back to the host (rowunion, per-example triton) cannot be captured",
    )
    add_threads_option(parser)
    parser.add_argument("--rounds", type=positive_int, default=15, help="timed rounds")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs")
    parser.add_argument(
        "--malloc",
        choices=allocator.MODES,
        default="default",
        help="C allocator setting; steady keeps freed blocks under 32 MiB for reuse, which "
        "mostly stops repeated allocations page-faulting (see meprop_bench.core.allocator)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument("--force", action="store_true", help="let --json overwrite a file")
    return parser


def run_check(args: argparse.Namespace) -> dict[str, Any]:
    """Time dense and the chosen kernels; return rows ready to print or save."""
    device = resolve_device(args.device, "--device")
    timer = make_timer(device, cuda_graph=args.cuda_graph)  # refuses --cuda-graph off CUDA
    allocator.set_mode(args.malloc)
    dtype = DTYPES[args.dtype]
    if args.kernels is None:  # native runs on the CPU only, triton on CUDA only
        kernels = [kern for kern in KERNELS.values() if kern.method not in ("dense", "randk")
                   and kern.runs_on(device, dtype)
                   and not (args.cuda_graph and kern.syncs_on_cuda)]  # fmt: skip
    else:
        kernels = [get_kernel(*name.split("/", 1)) for name in args.kernels]
    syncing = [kern.name for kern in kernels if args.cuda_graph and kern.syncs_on_cuda]
    if syncing:
        raise MePropInputError(
            f"--cuda-graph cannot time {', '.join(syncing)}: they read a size back to the "
            "host, which a CUDA graph cannot capture (leave them out of --kernels)"
        )
    gen = torch.Generator().manual_seed(args.seed)
    d_in, n = case_widths(args)
    shapes = ((args.batch, n), (args.batch, d_in), (n, d_in))
    dy, x, w = (torch.randn(s, generator=gen).to(device, dtype) for s in shapes)
    k = check_inputs(dy, x, w, args.k)
    dense = get_kernel("dense")
    for kern in kernels:
        kern.prepare()  # compile native kernels now, not in a timed round
    fns = {kern.name: (lambda kern=kern: kern.fn(dy, x, w, k)) for kern in [dense, *kernels]}
    where = f"in {args.dtype} on {device} (choose another --dtype, --device or --kernels)"
    for name, fn in fns.items():  # once each, untimed: a kernel the backend lacks is named
        with backend_support(f"{name} cannot run {where}"):
            fn()
    with threads(args.threads) as n_threads:
        times = measure_interleaved(fns, timer, args.rounds, args.warmup)
        machine = machine_info()
    rows = []
    for name, m in times.items():
        ratio = paired_ratio(times[dense.name], m)
        rows.append(
            {
                "kernel": name,
                "median_s": m.median,
                "q1_s": m.q1,
                "q3_s": m.q3,
                "speedup": ratio.median,
                "speedup_q1": ratio.q1,
                "speedup_q3": ratio.q3,
                "minor_faults_median": m.median_faults,
                "samples_s": list(m.samples),
            }
        )
    params = {
        "batch": args.batch, "d_in": d_in, "n": n, "k": k, "k_over_n": k / n,
        "ideal_speedup": n / k, "device": str(device), "dtype": args.dtype,
        "threads": n_threads, "rounds": args.rounds, "warmup": args.warmup, "seed": args.seed,
        "input": "synthetic gaussian", "timer": timer.kind,
    }  # fmt: skip
    return envelope(CHECK, machine=machine, params=params, results=rows)


def format_table(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (
        f"B={p['batch']} d_in={p['d_in']} n={p['n']} k={p['k']} (k/n={p['k_over_n']:.2%}) "
        f"{p['dtype']} on {p['device']}, {p['rounds']} interleaved rounds "
        f"(timer: {p['timer']})\n"
        f"machine: {describe(result['machine'])}\n"
    )
    lines = [f"{'kernel':<18}{'median ms':>11}{'IQR ms':>9}{'speedup':>9}  {'[q1-q3]':<15}"
             f"{'ideal n/k':>9}{'of ideal':>9}{'faults':>8}"]  # fmt: skip
    for r in result["results"]:
        faults = r["minor_faults_median"]
        lines.append(
            f"{r['kernel']:<18}{r['median_s'] * 1e3:>11.3f}{(r['q3_s'] - r['q1_s']) * 1e3:>9.3f}"
            f"{r['speedup']:>8.1f}x  [{r['speedup_q1']:.1f}-{r['speedup_q3']:.1f}]".ljust(64)
            + f"{p['ideal_speedup']:>9.1f}{r['speedup'] / p['ideal_speedup']:>9.0%}"
            + (f"{faults:>8.0f}" if faults is not None else f"{'-':>8}")
        )
    lines.append("faults: median minor page faults per call (CPU; see meprop_bench.core.allocator)")
    return head + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json:
        check_new_path(args.json, args.force)
    result = run_check(args)
    print(format_table(result))
    if args.json:
        print(f"wrote {write_new_json(args.json, result, args.force)}")
    return 0
