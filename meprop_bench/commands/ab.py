"""meprop-bench ab BASE_REV: benchmark a baseline revision and the working
tree on this machine, runs interleaved, then gate the difference.

- The baseline is exported with ``git archive`` into a temporary directory, and the
  working tree as it is now (tracked and untracked files, not ignored ones) is copied
  into another: the working tree, index and refs are never touched, and you may keep
  editing while it runs. Both copies are removed at the end.
- Runs alternate in pairs whose order flips (A B, B A, A B, ...), so drift over the
  session, even a steady one, hits both sides alike. Each run is a separate
  ``python -m pytest suites --benchmark-only --benchmark-json ...`` started in its
  tree with the tree first on PYTHONPATH, so each side imports its own meprop_bench.
- ``--out`` receives base/run-NN.json, head/run-NN.json (with each run's log),
  gate.json and gate.md; the gate (:mod:`meprop_bench.gate.verdict`) compares base/ with head/
  and its exit status is this command's: 0 pass, 1 regression, 2 unusable, 3 undecided
  (``--rounds 1``: one run a side cannot tell a shift of the whole run from a change;
  ``--rounds auto``: comparisons still open after ``--max-rounds``). A shard
  (``--meprop-shard``) that is empty on a side has nothing to compare: exit 0, and the
  gate over all shards decides.
- ``--rounds auto``: adaptive rounds. After each round from the second, the gate looks
  at every comparison on its own round-to-round spread, at the alpha that round spends,
  split over the comparisons by Holm's step-down for a regression (so the chance that
  the whole A/B of identical code fails stays at alpha over every look and every
  comparison), and stops as soon as the verdict is a regression or every comparison is
  decided; at
  ``--max-rounds`` it stops undecided, with the evidence. Cases already decided are
  left out of later rounds (``--meprop-cases``, ``cases-NN.txt`` in ``--out``) in each
  tree whose plugin takes that option. Judge its runs again with ``meprop-bench gate
  --sequential`` and the same ``--max-rounds``.
- The suite selection is collected in the working tree first: arguments pytest refuses,
  or a selection that matches no case, are exit 2 before any benchmark runs.

Arguments not listed in ``--help`` go to pytest unchanged (``--meprop-preset quick``,
``--meprop-widths 1024``, ``-k backward``...); everything after ``--`` does too.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from meprop_bench.commands.gate import gate_config, run_gate
from meprop_bench.errors import MePropInputError, sigterm_interrupts
from meprop_bench.gate.ab import (
    SIDES,
    export_revision,
    git,
    is_empty_shard_file,
    round_order,
    run_suite,
    selected_cases,
    snapshot_worktree,
    still_needed,
    takes_case_list,
)
from meprop_bench.gate.inputs import load_side
from meprop_bench.gate.verdict import GateConfig, compare
from meprop_bench.harness.options import add_gate_options, positive_int_value
from meprop_bench.harness.plan import CASES_OPTION
from meprop_bench.stats import Sequential

AUTO = "auto"


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _rounds(text: str) -> int | str:
    """``auto`` (adaptive rounds) or a positive count."""
    if text == AUTO:
        return AUTO
    try:
        return positive_int_value(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a positive integer or auto, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meprop-bench ab",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="Other arguments go to pytest, e.g. --meprop-preset quick -k backward.",
        allow_abbrev=False,
    )
    parser.add_argument("base_rev", metavar="BASE_REV", help="baseline git revision")
    parser.add_argument(
        "--rounds",
        type=_rounds,
        default=3,
        help="suite runs per side (3), or auto: gate after every round and stop when "
        "decided (at most --max-rounds)",
    )
    parser.add_argument(
        "--out", type=Path, help="new directory for the results (repository's reports/ab-REV-TIME)"
    )
    parser.add_argument("--suites", default="suites", help="pytest path in each tree (suites)")
    parser.add_argument(
        "--candidate-env",
        type=_env_pair,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set for the working tree's runs only, e.g. MEPROP_BENCH_SLOWDOWN=0.1 "
        "to check that the gate catches a known slowdown (repeatable)",
    )
    add_gate_options(parser)
    return parser


def parse_args(argv: Sequence[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Our options, and the rest (pytest's)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    args, rest = build_parser().parse_known_args(argv[:split])
    return args, rest + argv[split + 1 :]


def main(argv: Sequence[str] | None = None) -> int:
    args, pytest_args = parse_args(argv)
    config = gate_config(args, args.rounds == AUTO, "--rounds auto")
    repo = Path(git(Path.cwd(), "rev-parse", "--show-toplevel").decode().strip())
    try:
        sha = git(repo, "rev-parse", "--verify", "--quiet", f"{args.base_rev}^{{commit}}")
    except MePropInputError:
        raise MePropInputError(f"{args.base_rev!r} is not a commit of {repo}") from None
    sha = sha.decode().strip()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (args.out or repo / "reports" / f"ab-{sha[:8]}-{stamp}").resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file; --out names a new directory for the results")
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} is not empty; choose another --out")
    # a cancel (SIGTERM) removes the temporary trees as Ctrl-C does
    with sigterm_interrupts(), tempfile.TemporaryDirectory(prefix="meprop-ab-") as tmp:
        trees = {
            "base": export_revision(repo, sha, Path(tmp, "base")),
            "head": snapshot_worktree(repo, Path(tmp, "head")),
        }
        for side, tree in trees.items():
            if not (tree / args.suites).exists():
                raise MePropInputError(f"the {side} tree has no {args.suites}")
        selected_cases(trees["head"], args.suites, pytest_args)
        for side in SIDES:  # only once the runs can start: a refusal leaves nothing behind
            (out / side).mkdir(parents=True, exist_ok=True)
        rounds = _Rounds(trees, out, args.suites, pytest_args, dict(args.candidate_env))
        if config.sequential:
            rounds.adaptive(config, config.sequential)
        else:
            for i in range(1, args.rounds + 1):
                rounds.run(i, f"/{args.rounds}")
    empty = [side for side in SIDES if all(map(is_empty_shard_file, (out / side).glob("*.json")))]
    if empty:
        note = f"This shard is empty in the {' and '.join(empty)} runs: nothing to compare.\n"
        (out / "gate.md").write_text(note)
        print(f"{note}results in {out}", file=sys.stderr, end="")
        return 0
    verdict, markdown = run_gate(
        str(out / "base"), str(out / "head"), config, str(out / "gate.json")
    )
    (out / "gate.md").write_text(markdown)
    print(f"results in {out}", file=sys.stderr)
    return verdict.exit_code


class _Rounds:
    """The runs of one A/B: each round a run of each side, in :func:`round_order`."""

    def __init__(
        self,
        trees: dict[str, Path],
        out: Path,
        suites: str,
        pytest_args: list[str],
        candidate_env: dict[str, str],
    ) -> None:
        self.trees, self.out, self.suites, self.pytest_args = trees, out, suites, pytest_args
        self.envs = {"base": {}, "head": candidate_env}

    def run(self, i: int, of: str, cases: Path | None = None) -> None:
        """Round ``i``: both sides, each on the cases ``cases`` lists where its tree
        can select them (every case otherwise)."""
        for side in round_order(i):
            tree = self.trees[side]
            listed = [CASES_OPTION, str(cases)] if cases and takes_case_list(tree) else []
            started = time.perf_counter()
            json_path = self.out / side / f"run-{i:02d}.json"
            run_suite(tree, json_path, self.suites, [*self.pytest_args, *listed], self.envs[side])
            took = time.perf_counter() - started
            print(f"[round {i}{of}] {side}: {took:.0f} s", file=sys.stderr)

    def adaptive(self, config: GateConfig, plan: Sequential) -> None:
        """Rounds until the gate decides or ``plan.max_rounds``; from the second round
        on, only the cases of comparisons still open (``cases-NN.txt``)."""
        cases = None
        for i in range(1, plan.max_rounds + 1):
            self.run(i, f", at most {plan.max_rounds}", cases)
            if i == 1 and any(map(is_empty_shard_file, self.out.glob("*/run-01.json"))):
                return
            if i < plan.min_rounds:
                continue
            sides = (load_side(str(self.out / "base")), load_side(str(self.out / "head")))
            verdict = compare(*sides, config)
            decided = f"{len(verdict.rows) - len(verdict.open)} comparisons decided"
            print(f"[round {i}] {verdict.status}: {decided}, {len(verdict.unresolved)} open",
                  file=sys.stderr)  # fmt: skip
            if verdict.status != "undecided" or i == plan.max_rounds:
                return
            needed = still_needed(verdict, sides)
            cases = self.out / f"cases-{i + 1:02d}.txt"
            cases.write_text("".join(f"{key}\n" for key in needed))
