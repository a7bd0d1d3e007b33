"""Replay adaptive rounds on stored runs of identical code: how often the sequential gate
fails them (false alarms) and how often it catches a slowdown multiplied into them.
See docs/gate-calibration.md.

    python docs/examples/replay_gate.py AB_DIR [AB_DIR...] [--streams 20] [--seed 0]
        [--only 'A/A'] [--details]

Each AB_DIR is the --out of an A/A ``meprop-bench ab --rounds auto`` (base/ and head/
of identical code). Its runs are pooled (a run: one file), and each stream deals
2 x --max-rounds of them at random to a base and a head side, in rounds, then gates
them with ``--sequential`` three ways: as dealt (A/A), with the head's unified cases
20% slower, and with every head benchmark 10% slower (each sample multiplied). Streams
share runs, so they are not independent; this measures the rule on this machine's
noise without the hours a live calibration takes, not in place of one. Only benchmarks
present in every pooled run are used. ``--only`` keeps one of the three (repeatable);
``--details`` prints each failed comparison (its stream, round, change and p).
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter
from pathlib import Path

import numpy as np

from meprop_bench.gate.inputs import Bench, Side, load_side
from meprop_bench.gate.verdict import GateConfig, Verdict, compare
from meprop_bench.stats import MAX_ROUNDS, Sequential

SLOWDOWNS = {"A/A": (0.0, None), "unified 20%": (0.2, "unified"), "uniform 10%": (0.1, None)}


def pooled_runs(dirs: list[str]) -> list[dict[str, tuple[Bench, np.ndarray]]]:
    """Every run of the given A/B directories: benchmark key -> (bench, samples)."""
    runs: dict[str, dict[str, tuple[Bench, np.ndarray]]] = {}
    for folder in dirs:
        for side in ("base", "head"):
            for bench in load_side(str(Path(folder) / side)).benches.values():
                for path, samples in bench.runs.items():
                    runs.setdefault(path, {})[bench.key] = (bench, samples)
    common = set.intersection(*(set(run) for run in runs.values()))
    return [{k: v for k, v in run.items() if k in common} for run in runs.values()]


def side_of(
    runs: list[dict[str, tuple[Bench, np.ndarray]]], slow: float, method: str | None
) -> Side:
    """A side made of ``runs`` in order, one file each, slowed as asked."""
    side = Side([], {})
    for i, run in enumerate(runs):
        for key, (bench, samples) in run.items():
            hit = slow and (method is None or bench.info.get("method") == method)
            mine = side.benches.setdefault(
                key, Bench(key, bench.name, bench.group, bench.info, {}, bench.machines)
            )
            mine.runs[f"run-{i:02d}"] = samples * (1 + slow) if hit else samples
    return side


def stopped_at(verdict: Verdict, rounds: int) -> int:
    """The round ab would have stopped at: the first regression's, else the last
    decision's when every comparison decided, else the last round."""
    failed = [row.decided for row in verdict.rows if row.result.status == "regression"]
    if failed:
        return min(r for r in failed if r)
    if verdict.status == "pass":
        return max(row.decided or 0 for row in verdict.rows)
    return rounds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dirs", nargs="+", metavar="AB_DIR")
    parser.add_argument("--streams", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-rounds", type=int, default=MAX_ROUNDS)
    parser.add_argument("--only", action="append", choices=list(SLOWDOWNS), default=[])
    parser.add_argument("--details", action="store_true")
    args = parser.parse_args()
    pool = pooled_runs(args.dirs)
    config = GateConfig(sequential=Sequential(args.max_rounds))
    rounds = min(args.max_rounds, len(pool) // 2)
    rng = np.random.default_rng(args.seed)
    benches = len(pool[0])
    print(f"{len(pool)} runs pooled, {benches} benchmarks in all; {rounds} rounds a stream")
    for label, (slow, method) in SLOWDOWNS.items():
        if args.only and label not in args.only:
            continue
        verdicts, used = Counter(), []
        for stream in range(args.streams):
            dealt = [pool[i] for i in rng.permutation(len(pool))[: 2 * rounds]]
            base = side_of(dealt[:rounds], 0.0, None)
            head = side_of(dealt[rounds:], slow, method)
            verdict = compare(base, head, config)
            verdicts[verdict.status] += 1
            used.append(stopped_at(verdict, rounds))
            failed = [row for row in verdict.rows if row.result.status == "regression"]
            for row in failed if args.details else []:
                r = row.result
                print(f"  {label} stream {stream}: round {row.decided}, {row.kind} {row.key} "
                      f"{r.change:+.0%}, p {r.p_value:.2g}")  # fmt: skip
        tally = ", ".join(f"{status} {count}" for status, count in sorted(verdicts.items()))
        print(
            f"{label:<12} {tally}; rounds: median {statistics.median(used):g}, largest {max(used)}"
        )


if __name__ == "__main__":
    main()
