"""``python -m meprop_bench.gpu_proof``: the helper of ``.ci/gpu-proof``, which runs the
steps this prints (``steps``) and sums them up (``summary``); see docs/gpu.md."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.gpu_proof.steps import plan, tab_separated
from meprop_bench.gpu_proof.summary import SUMMARY, outcomes, render


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m meprop_bench.gpu_proof",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("plan", help="the steps, one a line with its limit, then the total"
                   ).add_argument("out", nargs="?", type=Path, default=Path("OUTDIR"))  # fmt: skip
    sub.add_parser("steps", help="the steps for the script: name, limit, command, tab-separated"
                   ).add_argument("out", type=Path)  # fmt: skip
    sub.add_parser("versions", help="the machine, torch's CUDA and triton, as JSON")
    sub.add_parser("run-default", help="exit 1 unless meprop-bench run sweeps CUDA by default")
    sub.add_parser("summary", help="the summary of OUT (also written to OUT/summary.md); "
                   "exit 1 unless every step passed").add_argument("out", type=Path)  # fmt: skip
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.action == "plan":
        print(plan(args.out))
    elif args.action == "steps":
        print(tab_separated(args.out))
    elif args.action == "versions":
        from meprop_bench.gpu_proof.environment import versions

        print(json.dumps(versions(), indent=2))
    elif args.action == "run-default":
        from meprop_bench.gpu_proof.environment import run_default

        devices, estimate = run_default()
        print(f"meprop-bench run, no devices named, would sweep {estimate}")
        return 0 if "cuda" in devices.split(",") else 1
    else:
        found = outcomes(args.out)
        text = render(args.out, found)
        (args.out / SUMMARY).write_text(text + "\n", encoding="utf-8")
        print(text)
        return 0 if all(o.status == "passed" for o in found) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
