"""What every command shares: where outputs go by default, and the wrapper that turns a
user's mistake into a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from meprop_bench.errors import MePropInputError, Terminated


def reports_root() -> Path:
    """Where outputs go by default: the ``reports/`` folder of the source checkout this
    package runs from (ignored by git), whatever the working directory; ``reports/`` in
    the working directory when the package is installed without a checkout."""
    checkout = Path(__file__).resolve().parents[2] / "reports"
    return checkout if checkout.is_dir() else Path("reports")


def folder_name(text: str) -> str:
    """An argparse type for ``--name``: one folder under ``--out-root``, so a report never
    lands outside it (``../escape``) or in it (``.``)."""
    if text in ("", ".", "..") or "/" in text or os.sep in text:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a folder name (one name, no '/', not '.' or '..')"
        )
    return text


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main``; a MePropInputError or a refused file becomes a message and exit 2."""
    try:
        return main(argv)
    except (MePropInputError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except Terminated:
        print("terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
