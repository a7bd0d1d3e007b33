"""What machine a measurement ran on, and the thread settings it ran with.

Every result file carries :func:`machine_info` so a reader can tell a laptop from a
GPU box, an MKL build from an OpenBLAS one, and 1 thread from 16.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from threadpoolctl import threadpool_info, threadpool_limits

from meprop_bench.core import allocator


@contextmanager
def threads(count: int | None) -> Iterator[int]:
    """Run the block with ``count`` intra-op threads (torch, MKL, OpenMP and any BLAS
    threadpoolctl can see); ``None`` leaves the current setting. Yields the count in force.
    """
    if count is None:
        yield torch.get_num_threads()
        return
    if count < 1:
        raise ValueError(f"thread count must be at least 1, got {count}")
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield count
    finally:
        torch.set_num_threads(before)


def _blas() -> str:
    config = torch.__config__.show()
    mkl = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    if mkl:
        return f"MKL {mkl.group(1)}"
    found = re.search(r"BLAS_INFO=(\w+)", config)
    return found.group(1) if found else "unknown"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_driver() -> str | None:
    if not shutil.which("nvidia-smi"):
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def gpu_info(device: torch.device | str = "cuda") -> dict[str, Any]:
    """Name, memory, L2 size, compute capability, CUDA runtime and driver of a GPU."""
    props = torch.cuda.get_device_properties(device)
    return {
        "name": props.name,
        "total_memory_bytes": props.total_memory,
        "l2_cache_bytes": props.L2_cache_size,
        "multiprocessors": props.multi_processor_count,
        "capability": f"{props.major}.{props.minor}",
        "cuda_runtime": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "driver": _nvidia_driver(),
    }


def _numba() -> dict[str, Any] | None:
    """numba's version and the threads the native kernels run with (torch's count,
    capped by numba's pool); None without numba."""
    try:
        import numba
    except ImportError:
        return None
    info: dict[str, Any] = {
        "version": numba.__version__,
        "threads": max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)),
        "max_threads": numba.config.NUMBA_NUM_THREADS,
    }
    try:
        info["threading_layer"] = numba.threading_layer()
    except ValueError:  # no parallel region has run yet in this process
        info["threading_layer"] = f"not started (configured: {numba.config.THREADING_LAYER})"
    return info


def machine_info() -> dict[str, Any]:
    """A JSON-ready description of this machine and its numeric libraries."""
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "blas": _blas(),
        "mkl_available": torch.backends.mkl.is_available(),
        "mkldnn_available": torch.backends.mkldnn.is_available(),
        "openmp_available": torch.backends.openmp.is_available(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "env_threads": {
            name: os.environ[name]
            for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
            if name in os.environ
        },
        "threadpools": [
            {k: pool.get(k) for k in ("user_api", "internal_api", "num_threads", "version")}
            for pool in threadpool_info()
        ],
        "allocator": allocator.info(),
        "numba": _numba(),
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        info["gpus"] = [gpu_info(i) for i in range(torch.cuda.device_count())]
    return info


def describe(info: dict[str, Any]) -> str:
    """One line naming the machine, for reports and terminal output."""
    n_threads = info["torch_threads"]
    line = (
        f"{info['cpu_model']} ({info['cpu_count']} cores, {info['cpu_capability']}), "
        f"torch {info['torch']}, {info['blas']}, {n_threads} thread{'s' * (n_threads != 1)}"
    )
    if info.get("allocator", {}).get("mode", "default") != "default":
        line += f", malloc {info['allocator']['mode']}"
    for gpu in info.get("gpus", []):
        line += f"; GPU {gpu['name']} (CUDA {gpu['cuda_runtime']}, driver {gpu['driver']})"
    return line


def identity(info: dict[str, Any]) -> str:
    """Host, CPU model and GPUs of any pytest-benchmark ``machine_info`` (ours or a
    foreign one): what absolute times depend on, so results from two machines are
    never mixed up."""
    cpu_info = info.get("cpu") if isinstance(info.get("cpu"), dict) else {}
    cpu = info.get("cpu_model") or cpu_info.get("brand_raw") or info.get("processor") or "?"
    gpus = [g.get("name", "?") if isinstance(g, dict) else str(g) for g in info.get("gpus") or []]
    host = info.get("node") or info.get("hostname") or "?"
    return f"{host} ({cpu}" + "".join(f", {gpu}" for gpu in gpus) + ")"
