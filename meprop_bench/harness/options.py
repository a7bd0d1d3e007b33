"""Command-line options, declared once: the argument types every command and the pytest
plugin share, and the option groups several of them offer.

A type turns one string into a value or raises ``argparse.ArgumentTypeError`` with a
message naming the problem; argparse (and pytest, which uses it) turns that into a
one-line usage error and exit status 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch

from meprop_bench.core import allocator
from meprop_bench.errors import MePropInputError
from meprop_bench.stats import MAX_ROUNDS, MIN_ROUNDS, Rule, Sequential

T = TypeVar("T")
_Group = argparse.ArgumentParser | argparse._ArgumentGroup

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16,
          "float16": torch.float16}  # fmt: skip


# --- one value ------------------------------------------------------------------------
# Each checks one item and raises ValueError with what is wrong with it; the argparse
# types below and the grid's comma-separated lists (:func:`parse_list`) both use them.


def k_value(text: str) -> int | float:
    """``41`` is a count of entries kept, ``0.01`` or ``1e-2`` a fraction of n."""
    try:
        value: int | float = int(text)
    except ValueError:
        try:
            value = float(text)
        except ValueError:
            raise ValueError(
                f"{text!r} is neither a count (e.g. 41) nor a fraction (e.g. 0.01)"
            ) from None
    if (isinstance(value, int) and value < 1) or (isinstance(value, float) and not 0 < value <= 1):
        raise ValueError(f"{text!r} must be a count >= 1 or a fraction in (0, 1]")
    return value


def positive_int_value(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"expected a positive integer, got {text!r}")
    return value


def count_value(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def device_value(text: str) -> str:
    """A device name the suites know: cpu, cuda or cuda:N (present or not)."""
    kind, _, index = text.partition(":")
    if kind not in ("cpu", "cuda") or (kind == "cpu" and index) or (index and not index.isdigit()):
        raise ValueError(f"unknown device {text!r}; use cpu, cuda or cuda:N")
    return text


def choice_value(choices: Iterable[str]) -> Callable[[str], str]:
    allowed = tuple(choices)

    def check(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"unknown {text!r}; choose from {', '.join(allowed)}")
        return text

    return check


def parse_list(text: str, option: str, item: Callable[[str], T]) -> tuple[T, ...]:
    """A comma-separated list of ``item`` values; MePropInputError naming ``option``."""
    items = [part.strip() for part in text.split(",")]
    if not text.strip() or any(not part for part in items):
        raise MePropInputError(f"{option}: expected a comma-separated list, got {text!r}")
    try:
        return tuple(map(item, items))
    except ValueError as err:
        raise MePropInputError(f"{option}: {err}") from None


def resolve_device(name: str, option: str = "--device") -> torch.device:
    """A torch device from its name; CUDA only when a GPU is present."""
    try:
        device = torch.device(device_value(name))
    except ValueError as err:
        raise MePropInputError(f"{option}: {err}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise MePropInputError(f"{option} {name}: no CUDA GPU is present")
    return device


# --- argparse types -------------------------------------------------------------------


def _argument_type(check: Callable[[str], T]) -> Callable[[str], T]:
    """``check`` as an argparse type: its ValueError becomes argparse's usage error."""

    def parse(text: str) -> T:
        try:
            return check(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    parse.__name__ = check.__name__.removesuffix("_value")
    parse.__doc__ = check.__doc__
    return parse


parse_k = _argument_type(k_value)
positive_int = _argument_type(positive_int_value)
count = _argument_type(count_value)


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
    value = number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def fraction_below_one(text: str) -> float:
    """A fraction in [0, 1), e.g. a dropout rate."""
    value = number(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


# --- option groups --------------------------------------------------------------------


def add_case_options(parser: argparse.ArgumentParser, *, k: int | float) -> None:
    """One benchmark case, as the suites describe it: shape, k, dtype and device
    (``check`` and ``profile``); :func:`case_widths` reads the widths back."""
    group = parser.add_argument_group("the case (as in the suites)")
    group.add_argument("--width", type=positive_int, default=4096,
                       help="sets n and d_in (default: %(default)s)")  # fmt: skip
    group.add_argument("--d-in", type=positive_int, help="input width d_in (default: --width)")
    group.add_argument("--n", type=positive_int, help="output width n (default: --width)")
    group.add_argument("--batch", "-B", type=positive_int, default=256,
                       help="batch size B (default: %(default)s)")  # fmt: skip
    add_k_option(group, default=k, of="n")
    group.add_argument("--dtype", default="float32", choices=DTYPES,
                       help="data type (default: %(default)s)")  # fmt: skip
    add_device_option(group)


def case_widths(args: argparse.Namespace) -> tuple[int, int]:
    """(d_in, n) from ``--width``, ``--d-in`` and ``--n``."""
    return args.d_in or args.width, args.n or args.width


def add_k_option(group: _Group, *, default: int | float | None, of: str) -> None:
    shown = "" if default is None else f" (default: {default})"
    group.add_argument("--k", type=parse_k, default=default,
                       help=f"entries kept: a count, or a fraction of {of}{shown}")  # fmt: skip


def add_device_option(group: _Group) -> None:
    group.add_argument("--device", default="cpu",
                       help="torch device: cpu, cuda or cuda:N (default: %(default)s)")  # fmt: skip


def add_threads_option(group: _Group, default: str = "torch's") -> None:
    group.add_argument("--threads", type=positive_int,
                       help=f"intra-op threads (default: {default})")  # fmt: skip


def add_malloc_option(group: _Group) -> None:
    """``--malloc``: the C allocator setting (:mod:`meprop_bench.core.allocator`)."""
    group.add_argument(
        "--malloc", choices=allocator.MODES, default="default",
        help="C allocator setting; steady keeps freed blocks under 32 MiB for reuse, which "
        "mostly stops repeated allocations page-faulting (see meprop_bench.core.allocator)",
    )  # fmt: skip


# The suites' grid axes (``--meprop-<axis>``, each a comma-separated list overriding the
# preset's); parsed by :func:`meprop_bench.harness.grid.apply_overrides`.
GRID_AXES = {
    "widths": "layer widths n (= d_in unless --meprop-d-in), e.g. 1024,4096",
    "batches": "batch sizes B, e.g. 50,256",
    "ks": "kept entries: counts (41) or fractions of n (0.01), e.g. 0.01,0.1,20",
    "methods": "kernels: method or method/strategy, e.g. dense,topk,unified/compact",
    "devices": "devices, e.g. cpu,cuda (cuda skips when no GPU is present)",
    "dtypes": "dtypes, e.g. float32,bfloat16",
    "threads": "intra-op thread counts to sweep, e.g. 1,2",
    "grads": "gradient sources: gaussian (synthetic), recorded (real MNIST MLP gradients)",
    "rounds": "timed rounds per case",
    "warmup": "untimed rounds per case",
    "d-in": "input width d_in for every case (default: d_in = n)",
}
PRESET_ALIAS = "--meprop-profile"  # the preset option's old name, deprecated


def add_grid_options(addoption: Callable[..., None]) -> None:
    """The grid's options, for pytest's ``addoption`` (the plugin) or argparse's
    ``add_argument`` (``meprop-bench run`` checks them before its sweep starts)."""
    addoption(
        "--meprop-preset", PRESET_ALIAS, dest="meprop_preset", default="quick",
        help="named grid: quick (default, < 3 min on 2 CPU cores), paper, full "
        f"({PRESET_ALIAS} is its old, deprecated name)",
    )  # fmt: skip
    for axis, text in GRID_AXES.items():
        addoption(f"--meprop-{axis}", default=None, metavar="LIST", help=text)


def grid_overrides(getoption: Callable[[str], str | None]) -> dict[str, str | None]:
    """The axes given on the command line, by axis name (``None``: not given)."""
    return {axis: getoption(f"meprop_{axis.replace('-', '_')}") for axis in GRID_AXES}


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


def add_gate_options(parser: argparse.ArgumentParser) -> None:
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
        f"{rule.min_effect * 100:g}%% slower, the default)",  # %% : argparse formats help
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
    group.add_argument(
        "--max-rounds", type=positive_int, default=None,
        help=f"adaptive rounds: the last round looked at ({MAX_ROUNDS}; at least "
        f"{MIN_ROUNDS}, the first look)",
    )  # fmt: skip


def sequential_plan(max_rounds: int | None, adaptive: bool, how: str) -> Sequential | None:
    """The looks of adaptive rounds (``how`` names the option that asks for them), or
    None; MePropInputError for a --max-rounds without them or below the first look."""
    if not adaptive:
        if max_rounds is not None:
            raise MePropInputError(f"--max-rounds goes with {how}")
        return None
    try:
        return Sequential(MAX_ROUNDS if max_rounds is None else max_rounds)
    except ValueError as err:
        raise MePropInputError(str(err)) from None
