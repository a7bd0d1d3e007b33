"""meprop-bench check: dense vs every sparsified backward, timed in one run.

A quick answer to "does meProp pay off here, at this shape?": all kernels run on the
same synthetic gradient, interleaved round by round, and each speedup is the median
of the per-round ratios dense/sparse, shown with its interquartile range next to the
ideal n/k. A case whose spread is too wide (an interval wider than a factor of 2, or
dense's rounds varying by more than half their median) is marked UNSTABLE, a speedup
whose interval lies above n/k is marked a measurement error, and either prints a
``warning:`` line with the likely cause (the machine's load over the run is measured and
shown; a kernel whose page faults vary from call to call is named as varying by itself)
and what to do.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from meprop_bench.core.kernels import KERNELS
from meprop_bench.harness.cache_state import CACHE_STATES
from meprop_bench.harness.check import run_check
from meprop_bench.harness.options import (
    add_case_options,
    add_malloc_option,
    add_threads_option,
    case_widths,
    count,
    positive_int,
)
from meprop_bench.harness.timing import GRAPH_CALLS
from meprop_bench.results.files import check_new_path, write_new_json
from meprop_bench.results.machine import describe
from meprop_bench.results.machine_state import describe_state
from meprop_bench.stability import busy_warning, memory_cases, warning


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench check",
        description=__doc__.split("\n\n")[0],
        epilog=" ".join(__doc__.split("\n\n")[1].split()),
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
    parser.add_argument("--warmup", type=count, default=3, help="untimed rounds first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic inputs")
    add_malloc_option(parser)
    parser.add_argument(
        "--cache",
        choices=CACHE_STATES,
        default="shared",
        help="CPU caches each timed call finds: shared, what the kernel before it in the "
        "round left (small kernels then pay for a big neighbour's traffic); warm, its own "
        "untimed call just before; cold, after a write of twice the last-level cache "
        "(see meprop_bench.harness.cache_state)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results here")
    parser.add_argument("--force", action="store_true", help="let --json overwrite a file")
    return parser


def format_table(result: dict[str, Any]) -> str:
    p = result["params"]
    head = (
        f"B={p['batch']} d_in={p['d_in']} n={p['n']} k={p['k']} (k/n={p['k_over_n']:.2%}) "
        f"{p['dtype']} on {p['device']}, {p['rounds']} interleaved rounds, "
        f"caches {p.get('cache', 'shared')} (timer: {p['timer']})\n"
        f"machine: {describe(result['machine'])}\n"
        f"{describe_state(result['machine'].get('state'))}\n"
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
            + ("  UNSTABLE" if r.get("unstable") else "")
            + ("  ABOVE n/k: measurement error" if r.get("above_bound") else "")
        )
    lines.append("faults: median minor page faults per call (CPU; see meprop_bench.core.allocator)")
    for r in result["results"]:
        if r.get("unstable"):
            lines.append(f"unstable {r['kernel']}: {'; '.join(r['unstable'])}")
    return head + "\n".join(lines)


def unstable_warning(result: dict[str, Any]) -> str | None:
    """The ``warning:`` line for a check with unstable or impossible rows, or run on a
    busy machine; None for a clean run on a quiet one."""
    rows = result["results"]
    state = result["machine"].get("state")
    names = [r["kernel"] for r in rows if r.get("unstable") or r.get("above_bound")]
    if not names:
        return busy_warning(state)
    memory = memory_cases([(r["kernel"], r.get("unstable") or []) for r in rows])
    return warning(names, len(rows), state, result["params"]["rounds"], memory=memory)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.json:
        check_new_path(args.json, args.force)
    d_in, n = case_widths(args)
    result = run_check(
        batch=args.batch, d_in=d_in, n=n, k=args.k, kernels=args.kernels, device=args.device,
        dtype=args.dtype, threads=args.threads, rounds=args.rounds, warmup=args.warmup,
        seed=args.seed, malloc=args.malloc, cuda_graph=args.cuda_graph, cache=args.cache,
    )  # fmt: skip
    print(format_table(result))
    if line := unstable_warning(result):
        print(line, file=sys.stderr)
    if args.json:
        print(f"wrote {write_new_json(args.json, result, args.force)}")
    return 0
