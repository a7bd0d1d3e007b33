"""The benchmark grids: named presets, command-line overrides, and their expansion
into :class:`~meprop_bench.harness.cases.Case` lists.

A preset fixes the axes (widths, batches, ks, methods, devices, dtypes, threads,
gradient sources) and the rounds; each ``--meprop-*`` option replaces one axis. The
expansion puts each dense case right before the sparse cases that pair with it, so a
speedup compares measurements taken moments apart.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from meprop_bench.core.kernels import KERNELS, METHODS
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.cases import GRAD_SOURCES, Case
from meprop_bench.harness.options import (
    DTYPES,
    choice_value,
    count_value,
    device_value,
    k_value,
    parse_list,
    positive_int_value,
)


@dataclass(frozen=True)
class Grid:
    """The axes of one sweep. ``ks`` holds counts (int) or fractions of n (float);
    ``methods`` holds ``method`` (all its strategies) or ``method/strategy``;
    ``threads`` holds counts or None for the process default."""

    widths: tuple[int, ...]
    batches: tuple[int, ...]
    ks: tuple[int | float, ...]
    methods: tuple[str, ...]
    devices: tuple[str, ...] = ("cpu",)
    dtypes: tuple[str, ...] = ("float32",)
    threads: tuple[int | None, ...] = (None,)
    grads: tuple[str, ...] = ("gaussian",)
    rounds: int = 10
    warmup: int = 2
    d_in: int | None = None  # None: d_in = n

    def kernels(self) -> list[tuple[str, str]]:
        """(method, strategy) pairs named by ``methods``, in registry order, no repeats."""
        chosen: dict[tuple[str, str], None] = {}
        for spec in self.methods:
            method, _, strategy = spec.partition("/")
            matches = [key for key in KERNELS if key[0] == method and strategy in ("", key[1])]
            if not matches:
                raise MePropInputError(f"unknown kernel {spec!r}; known: {kernel_names()}")
            chosen.update(dict.fromkeys(matches))
        return list(chosen)

    def check(self) -> None:
        """Refuse, before any work, a grid that names an unknown kernel or a count k
        larger than every width it sweeps: such a k has no case at all (one larger than
        some widths only is left out at those, see :meth:`cases`)."""
        self.kernels()
        for k in self.ks:
            if isinstance(k, int) and k > max(self.widths):
                widths = ", ".join(map(str, self.widths))
                raise MePropInputError(
                    f"--meprop-ks: k={k} is larger than every width swept ({widths}); k "
                    "counts entries of an n-wide row: give k <= n or a fraction of n (0.1)"
                )

    def cases(self) -> list[Case]:
        """Every sparse case, each preceded once by its dense counterpart.

        Pairs whose k exceeds n (a count larger than a small width) are left out, and so
        are kernels that do not run on the case's device and dtype (native: CPU float32
        and float64 only).
        """
        out: dict[Case, None] = {}
        kernels = [key for key in self.kernels() if key[0] != "dense"]
        for device, dtype, grads, batch, width in itertools.product(
            self.devices, self.dtypes, self.grads, self.batches, self.widths
        ):
            d_in = self.d_in or width
            dense = Case.make("dense", "dense", batch, d_in, width, width, dtype, device, grads)
            sparse = [
                Case.make(method, strategy, batch, d_in, width, k, dtype, device, grads)
                for k in self.ks
                if not (isinstance(k, int) and k > width)
                for method, strategy in kernels
                if KERNELS[(method, strategy)].runs_on(device, DTYPES[dtype])
            ]
            if sparse or ("dense", "dense") in self.kernels():
                out[dense] = None
                out.update(dict.fromkeys(sparse))
        return list(out)


def kernel_names() -> str:
    return ", ".join([*METHODS, *(f"{m}/{s}" for m, s in KERNELS)])


_ALL_BUT_RANDOM_EXTRAS = ("dense", "topk", "unified", "randk/masked", "randk/native")

PRESETS: dict[str, Grid] = {
    # Minutes on a 2-core CPU (all suites: 219 cases, 9 min on a busy 2-core Zen 3 VM).
    "quick": Grid(
        widths=(1024, 4096),
        batches=(256,),
        ks=(0.01, 0.1),
        methods=_ALL_BUT_RANDOM_EXTRAS,
        grads=("gaussian", "recorded"),
        rounds=10,
        warmup=2,
    ),
    # The shapes of the paper's tables and a k sweep around them (tens of minutes on CPU).
    "paper": Grid(
        widths=(500, 1024, 4096),
        batches=(50, 256, 1024),
        ks=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
        methods=("dense", "topk", "unified", "randk"),
        grads=("gaussian", "recorded"),
        rounds=15,
        warmup=3,
    ),
    # Everything; hours on a CPU, meant for GPU runners.
    "full": Grid(
        widths=(256, 512, 1024, 2048, 4096, 8192),
        batches=(16, 64, 256, 1024),
        ks=(0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5),
        methods=METHODS,
        dtypes=("float32", "bfloat16"),
        grads=("gaussian", "recorded"),
        rounds=20,
        warmup=3,
    ),
}


@dataclass(frozen=True)
class PaperShape:
    """A layer shape from the paper's tables, kept with where it comes from."""

    name: str
    batch: int
    width: int
    ks: tuple[int, ...]
    source: str
    presets: tuple[str, ...] = field(default=("paper", "full"))


PAPER_SHAPES: tuple[PaperShape, ...] = (
    PaperShape("mnist-mlp-b10", 10, 500, (5, 10, 20, 30, 80),
               "Table 1: MNIST MLP h=500, minibatch 10 (CPU)"),
    PaperShape("mnist-mlp-b50", 50, 500, (5, 10, 20, 30, 80),
               "Tables 2, 6: MNIST MLP h=500, minibatch 50", ("quick", "paper", "full")),
    PaperShape("parsing-mlp", 10000, 500, (20,),
               "Table 1: parsing MLP h=500, k=20, minibatch 10,000 transitions"),
    PaperShape("gpu-table7", 1024, 8192, (8, 16, 32, 64, 128, 256, 512),
               "Table 7: synthetic matmul backprop, batch 1024, h 8192 (GPU)"),
)  # fmt: skip


@dataclass(frozen=True)
class TrainStepShape:
    """One whole training step of the paper's MLP (784-h-h-10): hidden width, batch, k."""

    hidden: int
    batch: int
    k: int | float

    @property
    def name(self) -> str:
        return f"h{self.hidden}_B{self.batch}_k{self.k}"


TRAIN_STEP_SHAPES: dict[str, tuple[TrainStepShape, ...]] = {
    "quick": (TrainStepShape(500, 50, 20),),
    "paper": (TrainStepShape(500, 10, 20), TrainStepShape(500, 50, 20),
              TrainStepShape(4096, 256, 0.01)),
    "full": (TrainStepShape(500, 10, 20), TrainStepShape(500, 50, 20),
             TrainStepShape(4096, 256, 0.01), TrainStepShape(8192, 1024, 0.01)),
}  # fmt: skip

# (method, strategy, sparse_grad) of the MLP's hidden layers in a training-step case.
TRAIN_STEP_VARIANTS: tuple[tuple[str, str, bool], ...] = (
    ("dense", "dense", False),
    ("topk", "masked", False),
    ("topk", "rowunion", False),
    ("topk", "native", False),
    ("topk", "native", True),
    ("unified", "compact", False),
    ("unified", "compact", True),
)


def paper_cases(preset: str, base: Grid) -> list[tuple[PaperShape, Case]]:
    """The paper's shapes for ``preset``, on the base grid's devices and dtypes, for
    dense and the unified and per-example top-k kernels (dense first per shape)."""
    kernels = [key for key in base.kernels() if key[0] in ("dense", "topk", "unified")]
    out = []
    for shape in PAPER_SHAPES:
        if preset not in shape.presets:
            continue
        for device, dtype in itertools.product(base.devices, base.dtypes):
            grid = replace(base, widths=(shape.width,), batches=(shape.batch,), ks=shape.ks,
                           methods=tuple(f"{m}/{s}" for m, s in kernels), devices=(device,),
                           dtypes=(dtype,), grads=("gaussian",), d_in=None)  # fmt: skip
            out.extend((shape, case) for case in grid.cases())
    return out


# --- parsing of the command-line overrides ------------------------------------------


def parse_methods(text: str, option: str = "--meprop-methods") -> tuple[str, ...]:
    items = parse_list(text, option, str)
    try:
        Grid((1,), (1,), (1,), items).kernels()
    except MePropInputError as err:
        raise MePropInputError(f"{option}: {err}") from None
    return items


def parse_devices(text: str, option: str = "--meprop-devices") -> tuple[str, ...]:
    return parse_list(text, option, device_value)


def apply_overrides(grid: Grid, overrides: dict[str, str | None]) -> Grid:
    """Replace the axes given on the command line (``None`` leaves an axis as it is).

    Keys are the option names without ``--meprop-``: widths, batches, ks, methods,
    devices, dtypes, threads, grads, rounds, warmup, d-in.
    """

    def each(item: Callable[[str], object]) -> Callable[[str, str], tuple[object, ...]]:
        return lambda text, option: parse_list(text, option, item)

    parsers = {
        "widths": each(positive_int_value),
        "batches": each(positive_int_value),
        "ks": each(k_value),
        "methods": parse_methods,
        "devices": parse_devices,
        "dtypes": each(choice_value(DTYPES)),
        "threads": each(positive_int_value),
        "grads": each(choice_value(GRAD_SOURCES)),
        "rounds": lambda t, o: _one(parse_list(t, o, positive_int_value), t, o),
        "warmup": lambda t, o: _one(parse_list(t, o, count_value), t, o),
        "d-in": lambda t, o: _one(parse_list(t, o, positive_int_value), t, o),
    }
    changes = {}
    for key, text in overrides.items():
        if text is None:
            continue
        if key not in parsers:
            raise MePropInputError(f"unknown grid option --meprop-{key}")
        changes[key.replace("-", "_")] = parsers[key](text, f"--meprop-{key}")
    return replace(grid, **changes)


def _one(values: tuple[int, ...], text: str, option: str) -> int:
    if len(values) != 1:
        raise MePropInputError(f"{option}: expected one value, got {text!r}")
    return values[0]


def select_preset(name: str) -> Grid:
    try:
        return PRESETS[name]
    except KeyError:
        raise MePropInputError(
            f"--meprop-preset: unknown preset {name!r}; choose from {', '.join(PRESETS)}"
        ) from None


def describe_grid(grid: Grid, cases: Sequence[Case]) -> str:
    """One line for the terminal header of a sweep."""
    return (
        f"meprop grid: widths={list(grid.widths)} batches={list(grid.batches)} "
        f"ks={list(grid.ks)} kernels={len(grid.kernels())} devices={list(grid.devices)} "
        f"dtypes={list(grid.dtypes)} threads={list(grid.threads)} grads={list(grid.grads)} "
        f"rounds={grid.rounds} -> {len(cases)} backward cases"
    )
