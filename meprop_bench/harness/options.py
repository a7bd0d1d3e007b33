"""Command-line options, declared once: the argument types every command and the pytest
plugin share, and the option groups several of them offer.

A type turns one string into a value or raises ``argparse.ArgumentTypeError`` with a
message naming the problem; argparse (and pytest, which uses it) turns that into a
one-line usage error and exit status 2.
"""

from __future__ import annotations

import argparse
import math
from typing import Protocol

import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.stats import Rule

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


def number(text: str) -> float:
    """A finite float."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = number(text) if text.strip().lower() not in ("inf", "+inf") else math.inf
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction_below_one(text: str) -> float:
    """A fraction in [0, 1), e.g. a dropout rate."""
    value = number(text) if text.strip() else -1.0
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
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


# --- the gate's rule ------------------------------------------------------------------


def alpha(text: str) -> float:
    value = number(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"alpha must be in (0, 0.5), got {text!r}")
    return value


def effect(text: str) -> float:
    value = number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a fraction >= 0 (0.05 = 5%), got {text!r}")
    return value


def group_threshold(text: str) -> tuple[str, float]:
    pattern, sep, value = text.rpartition("=")
    if not sep or not pattern:
        raise argparse.ArgumentTypeError(f"expected PATTERN=FRACTION, got {text!r}")
    return pattern, effect(value)


def min_samples(text: str) -> int:
    value = positive_int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"need at least 2 samples, got {text!r}")
    return value


class _Parser(Protocol):
    def add_argument_group(self, title: str) -> argparse._ArgumentGroup: ...


def add_gate_options(parser: _Parser) -> None:
    """The options that set the gate's rule (the gate and the A/B command)."""
    group = parser.add_argument_group("gate rule")
    rule = Rule()  # the defaults, declared once
    group.add_argument(
        "--alpha", type=alpha, default=rule.alpha,
        help=f"one-sided significance level ({rule.alpha:g})",
    )  # fmt: skip
    group.add_argument(
        "--min-effect", type=effect, default=rule.min_effect,
        help=f"smallest change that counts, as a fraction ({rule.min_effect:g}: "
        f"{rule.min_effect:.0%} slower, the default)",
    )  # fmt: skip
    group.add_argument(
        "--group-threshold", type=group_threshold, action="append", default=[],
        metavar="PATTERN=FRACTION",
        help="minimum effect for benchmark groups matching the fnmatch PATTERN "
        "(repeatable, first match wins), e.g. 'train_step*=0.1'",
    )  # fmt: skip
    group.add_argument(
        "--min-samples", type=min_samples, default=rule.min_samples,
        help=f"fewer samples than this on a side: undecided ({rule.min_samples})",
    )  # fmt: skip
    group.add_argument(
        "--allow-machine-change", action="store_true",
        help="compare absolute times even when the sides ran on different machines",
    )  # fmt: skip
