"""Throwaway git repositories for the tests of ``meprop-bench ab``."""

from __future__ import annotations

import subprocess
from pathlib import Path


def suite_repo(root: Path) -> Path:
    """A git repository at ``root`` holding one empty suite file (suites/test_x.py),
    committed: what ab needs to export a base revision and snapshot the work tree."""
    (root / "suites").mkdir(parents=True)
    (root / "suites" / "test_x.py").write_text("")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=root, check=True)  # fmt: skip
    return root
