"""meprop-bench gate BASELINE CANDIDATE: fail a change that makes the benchmarks slower,
and only when the samples show it.

BASELINE and CANDIDATE are pytest-benchmark JSON files with raw samples, directories of
them, or quoted glob patterns ('ab/*/base'); each side's files are merged, one run each.
How the two are compared is described in meprop_bench.gate.verdict and meprop_bench.stats.
Markdown goes to stdout (and is appended to $GITHUB_STEP_SUMMARY when set); --json
writes the verdict. Exit status: 0 pass, 1 regression, 2 unusable input or nothing that
could be decided, 3 undecided (one run a side could not tell a change from machine state
or interference, or adaptive rounds left comparisons open).

--sequential judges the runs of adaptive rounds (ab --rounds auto, one directory of
run-NN.json a side, or shards of them): each comparison looked at round by round, at
the alpha each round spends, up to --max-rounds, as ab did.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from meprop_bench.gate.inputs import load_side
from meprop_bench.gate.verdict import (
    GateConfig,
    Verdict,
    compare,
    to_json,
    to_markdown,
    unmatched_patterns,
    why_undecided,
    why_unusable,
)
from meprop_bench.harness.options import add_gate_options, sequential_plan
from meprop_bench.results.files import check_new_path, write_new_json
from meprop_bench.stats import Rule


def gate_config(args: argparse.Namespace, adaptive: bool, how: str) -> GateConfig:
    """The gate's configuration from its options; ``adaptive``: judge adaptive rounds
    (asked for by the option ``how`` names)."""
    return GateConfig(
        Rule(args.alpha, args.min_effect, args.min_samples),
        tuple(args.group_threshold),
        args.allow_machine_change,
        sequential_plan(args.max_rounds, adaptive, how),
    )


def run_gate(
    baseline: str, candidate: str, config: GateConfig, json_path: str | None, force: bool = False
) -> tuple[Verdict, str]:
    """Load, compare, print the Markdown (and append it to the step summary), write the
    JSON verdict; return the verdict and its Markdown."""
    if json_path:
        check_new_path(json_path, force)
    base, cand = load_side(baseline), load_side(candidate)
    for pattern in unmatched_patterns(config, base, cand):
        print(f"warning: --group-threshold {pattern!r} matches no benchmark group", file=sys.stderr)
    verdict = compare(base, cand, config)
    markdown = to_markdown(verdict, config)
    print(markdown)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(markdown + "\n")
    if json_path:
        path = write_new_json(json_path, to_json(verdict, config, base, cand), force)
        print(f"wrote {path}", file=sys.stderr)
    if verdict.status == "unusable":
        print(f"error: {why_unusable(verdict)}", file=sys.stderr)
    elif verdict.status == "undecided":
        print(f"undecided: {why_undecided(verdict)}", file=sys.stderr)
    return verdict, markdown


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench gate",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("baseline", help="pytest-benchmark JSON: file, directory or 'glob'")
    parser.add_argument("candidate", help="the same, for the change under test")
    add_gate_options(parser)
    parser.add_argument(
        "--sequential",
        action="store_true",
        help="the runs are adaptive rounds (ab --rounds auto): look round by round",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the verdict here")
    parser.add_argument("--force", action="store_true", help="let --json overwrite a file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    config = gate_config(args, args.sequential, "--sequential")
    verdict, _ = run_gate(args.baseline, args.candidate, config, args.json, args.force)
    return verdict.exit_code
