"""The A/B runner's engine: export a baseline revision (``git archive``) and snapshot the
working tree into temporary directories without touching either, run the suites in
each tree with that tree first on PYTHONPATH, and the order of the runs (pairs A B,
B A, ... so drift hits both sides alike). ``meprop-bench ab`` (see
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
from meprop_bench.harness.plan import is_empty_shard

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


def run_suite(
    tree: Path, json_path: Path, suites: str, pytest_args: list[str], env: dict[str, str]
) -> None:
    """One suite run in ``tree``, writing ``json_path`` and a ``.log`` beside it."""
    command = [
        sys.executable, "-m", "pytest", suites, "--benchmark-only", *tree_plugin(tree),
        f"--benchmark-json={json_path}", "-p", "no:cacheprovider", "-q", *pytest_args,
    ]  # fmt: skip
    path = os.pathsep.join([str(tree), *filter(None, [os.environ.get("PYTHONPATH")])])
    full_env = {**os.environ, "PYTHONPATH": path, "PYTHONDONTWRITEBYTECODE": "1", **env}
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


def schedule(rounds: int) -> list[tuple[str, int]]:
    """(side, run number) in order: pairs A B, B A, A B, ... (flipped every other pair)."""
    order: list[tuple[str, int]] = []
    for i in range(1, rounds + 1):
        pair = SIDES if i % 2 else SIDES[::-1]
        order.extend((side, i) for side in pair)
    return order
