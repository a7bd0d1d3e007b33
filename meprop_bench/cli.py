"""Helpers shared by the command-line entry points: argument types and the wrapper
that turns a user's mistake into a one-line message and exit status 2."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from meprop_bench.errors import MePropInputError

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}  # fmt: skip


def parse_k(text: str) -> int | float:
    """``41`` is a count, ``0.01`` or ``1e-2`` a fraction of n."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a count (e.g. 41) nor a fraction (e.g. 0.01)"
        ) from None


def parse_dtype(text: str) -> torch.dtype:
    try:
        return DTYPES[text]
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"unknown dtype {text!r}; choose one of: {', '.join(DTYPES)}"
        ) from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """A torch device from its name; CUDA only when a GPU is present."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MePropInputError(f"{option} {name!r} is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MePropInputError(f"{option} {name}: no CUDA GPU is present")
    return device


def reports_root() -> Path:
    """Where outputs go by default: the ``reports/`` folder of the source checkout this
    package runs from (ignored by git), whatever the working directory; ``reports/`` in
    the working directory when the package is installed without a checkout."""
    checkout = Path(__file__).resolve().parent.parent / "reports"
    return checkout if checkout.is_dir() else Path("reports")


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Call ``main``; a MePropInputError or a refused file becomes a message and exit 2."""
    try:
        return main(argv)
    except (MePropInputError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
