"""Where the GPU proof ran and what ``meprop-bench run`` does there by default."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import torch

from meprop_bench import __version__
from meprop_bench.harness.sweep import estimate_sweep, sweep_options
from meprop_bench.results.machine import machine_info


def versions() -> dict[str, Any]:
    """The machine description every result file carries, with torch's CUDA and triton's
    versions (the Triton kernels compile with the triton that torch's build brought)."""
    try:
        triton = importlib.metadata.version("triton")
    except importlib.metadata.PackageNotFoundError:
        triton = None
    return {
        "meprop_bench": __version__,
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "triton": triton,
        "machine": machine_info(),
    }


def run_default() -> tuple[str, str]:
    """The devices ``meprop-bench run`` sweeps when none are named, and its estimate of
    that sweep (its cases collected as the run collects them; nothing is timed)."""
    options = sweep_options([])
    devices = options[options.index("--meprop-devices") + 1]
    return devices, estimate_sweep(options).line()
