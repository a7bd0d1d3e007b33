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
  (``--rounds 1`` only: one run a side cannot tell a shift of the whole run from a
  change; two or more runs a side are tested as runs). A shard (``--meprop-shard``) that
  is empty on a side has nothing to compare: exit 0, and the gate over all shards
  decides.

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
from meprop_bench.errors import MePropInputError
from meprop_bench.gate.ab import (
    SIDES,
    export_revision,
    git,
    is_empty_shard_file,
    run_suite,
    schedule,
    snapshot_worktree,
)
from meprop_bench.harness.options import add_gate_options, positive_int


def _env_pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="meprop-bench ab",
        description=__doc__.split("\n\n")[0].replace("``", ""),
        epilog="Other arguments go to pytest, e.g. --meprop-preset quick -k backward.",
        allow_abbrev=False,
    )
    parser.add_argument("base_rev", metavar="BASE_REV", help="baseline git revision")
    parser.add_argument("--rounds", type=positive_int, default=3, help="suite runs per side (3)")
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
    with tempfile.TemporaryDirectory(prefix="meprop-ab-") as tmp:
        trees = {
            "base": export_revision(repo, sha, Path(tmp, "base")),
            "head": snapshot_worktree(repo, Path(tmp, "head")),
        }
        for side, tree in trees.items():
            if not (tree / args.suites).exists():
                raise MePropInputError(f"the {side} tree has no {args.suites}")
        for side in SIDES:  # only once the runs can start: a refusal leaves nothing behind
            (out / side).mkdir(parents=True, exist_ok=True)
        envs = {"base": {}, "head": dict(args.candidate_env)}
        runs = schedule(args.rounds)
        for step, (side, i) in enumerate(runs, 1):
            started = time.perf_counter()
            json_path = out / side / f"run-{i:02d}.json"
            run_suite(trees[side], json_path, args.suites, pytest_args, envs[side])
            took = time.perf_counter() - started
            print(f"[{step}/{len(runs)}] {side} run {i}: {took:.0f} s", file=sys.stderr)
    empty = [side for side in SIDES if all(map(is_empty_shard_file, (out / side).glob("*.json")))]
    if empty:
        note = f"This shard is empty in the {' and '.join(empty)} runs: nothing to compare.\n"
        (out / "gate.md").write_text(note)
        print(f"{note}results in {out}", file=sys.stderr, end="")
        return 0
    verdict, markdown = run_gate(
        str(out / "base"), str(out / "head"), gate_config(args), str(out / "gate.json")
    )
    (out / "gate.md").write_text(markdown)
    print(f"results in {out}", file=sys.stderr)
    return verdict.exit_code
