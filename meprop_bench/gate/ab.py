"""The A/B runner's engine: export a baseline revision (``git archive``) and snapshot the
working tree into temporary directories without touching either, check that the suite
selection holds cases, run the suites in each tree with that tree first on PYTHONPATH,
the order of the runs (pairs A B, B A, ... so drift hits both sides alike), and for
adaptive rounds the cases a later round still needs. ``meprop-bench ab`` (see
:mod:`meprop_bench.commands.ab`) is its command and documents the whole procedure."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from meprop_bench.errors import MePropInputError
from meprop_bench.gate.inputs import Side
from meprop_bench.gate.verdict import SPEEDUP, Verdict, dense_partners
from meprop_bench.harness.plan import CASES_OPTION, is_empty_shard
from meprop_bench.harness.sharding import OPTION as SHARD_OPTION

SIDES = ("base", "head")


def git(repo: Path, *args: str) -> bytes:
    """Output of a read-only git command in ``repo``; MePropInputError if it fails."""
    try:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, check=True)
    except FileNotFoundError:
        raise MePropInputError("git is not installed") from None
    except subprocess.CalledProcessError as err:
        message = err.stderr.decode(errors="replace").strip().splitlines()
        raise MePropInputError(f"git {' '.join(args)}: {message[-1] if message else err}") from None
    return done.stdout


def export_revision(repo: Path, sha: str, dest: Path) -> Path:
    """The files of commit ``sha``, written under ``dest`` (``git archive``)."""
    dest.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(git(repo, "archive", "--format=tar", sha))) as tar:
        tar.extractall(dest, filter="data")
    return dest


def snapshot_worktree(repo: Path, dest: Path) -> Path:
    """A copy of the working tree's tracked and untracked, not ignored, files."""
    dest.mkdir(parents=True)
    listed = git(repo, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in dict.fromkeys(listed.decode().split("\0")):
        src = repo / name
        if not name or not (src.exists() or src.is_symlink()):
            continue  # deleted in the working tree
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir() and not src.is_symlink():
            shutil.copytree(src, dest / name, symlinks=True)  # a submodule
        else:
            shutil.copy2(src, dest / name, follow_symlinks=False)
    return dest


# Where a tree's own pytest plugin is, newest layout first; trees from before the
# plugin had an entry point load theirs from the root conftest.
PLUGIN_MODULES = ("meprop_bench.harness.plugin",)


def tree_plugin(tree: Path) -> list[str]:
    """pytest options that load ``tree``'s own plugin instead of the installed one.

    The installed package's ``pytest11`` entry point would import the plugin from
    whichever ``meprop_bench`` comes first on the path (the tree's), and a revision from
    another layout has it elsewhere or not at all: the entry point is blocked, and the
    tree's plugin, if it has one at a known place, is named explicitly.
    """
    options = ["-p", "no:meprop_bench"]
    for module in PLUGIN_MODULES:
        if (tree / (module.replace(".", "/") + ".py")).is_file():
            return [*options, "-p", module]
    return options


def takes_case_list(tree: Path) -> bool:
    """Whether ``tree``'s plugin selects cases from a list (``--meprop-cases``): a
    revision from before it reruns every case in every round."""
    plan = tree / "meprop_bench" / "harness" / "plan.py"
    return plan.is_file() and CASES_OPTION in plan.read_text(errors="replace")


def _tree_env(tree: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment of a pytest process in ``tree``: the tree first on PYTHONPATH."""
    path = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", **env}


def selected_cases(tree: Path, suites: str, pytest_args: list[str]) -> list[str]:
    """The node ids the suite selection collects in ``tree``, the shard option left out
    (an empty shard is a part of a sweep, not a mistake); MePropInputError when pytest
    refuses the arguments or nothing is selected, before any benchmark runs."""
    args, skip = [], False
    for arg in pytest_args:
        if skip or arg == SHARD_OPTION or arg.startswith(f"{SHARD_OPTION}="):
            skip = arg == SHARD_OPTION
            continue
        args.append(arg)
    command = [
        sys.executable, "-m", "pytest", suites, "--collect-only", "-q", *tree_plugin(tree),
        "-p", "no:cacheprovider", *args,
    ]  # fmt: skip
    env = _tree_env(tree, {})
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 5):  # 5: nothing collected, said below
        lines = [line.strip() for line in (done.stderr + done.stdout).splitlines()]
        errors = [line for line in lines if "error" in line.lower()] or [*filter(None, lines)]
        raise MePropInputError(f"pytest refused the suite arguments: {errors[0] if errors else ''}")
    cases = [line for line in done.stdout.splitlines() if "::" in line]
    if not cases:
        raise MePropInputError(
            f"the suite selection ({' '.join(pytest_args) or 'no arguments'}) matches no "
            f"benchmark case in {suites}"
        )
    return cases


def run_suite(
    tree: Path, json_path: Path, suites: str, pytest_args: list[str], env: dict[str, str]
) -> None:
    """One suite run in ``tree``, writing ``json_path`` and a ``.log`` beside it."""
    command = [
        sys.executable, "-m", "pytest", suites, "--benchmark-only", *tree_plugin(tree),
        f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q", *pytest_args,
    ]  # fmt: skip
    full_env = _tree_env(tree, env)
    log = json_path.with_suffix(".log")
    with open(log, "w") as out:
        code = subprocess.run(command, cwd=tree, env=full_env, stdout=out, stderr=out).returncode
    if code != 0 or not json_path.exists():
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        raise MePropInputError(
            f"the suite run for {json_path} failed (pytest exit {code}); see {log}"
        )


def is_empty_shard_file(path: Path) -> bool:
    return is_empty_shard(json.loads(path.read_text()))


def round_order(i: int) -> tuple[str, ...]:
    """The sides of round ``i`` (from 1) in run order: A B in odd rounds, B A in even."""
    return SIDES if i % 2 else SIDES[::-1]


def still_needed(verdict: Verdict, sides: tuple[Side, Side]) -> list[str]:
    """The benchmarks (node ids) a later round must run: those of the comparisons still
    open, and the dense partner of each open speedup, which is measured with it."""
    needed = set()
    partners = [dense_partners(side) for side in sides]
    for row in verdict.unresolved:
        needed.add(row.key)
        if row.kind == SPEEDUP:
            needed.update(p[row.key] for p in partners if row.key in p)
    return sorted(needed)
