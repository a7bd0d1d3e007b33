"""Shared fixtures: the devices to run on (CUDA skips with a reason when absent), pytest
run in this process, and the ``--run-slow`` option: tests marked ``slow`` skip with the
reason without it."""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from meprop_bench import KERNELS
from meprop_bench.results.machine import threads

HAS_CUDA = torch.cuda.is_available()
RUN_SLOW = "--run-slow"
ROOT = Path(__file__).resolve().parents[1]
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU; none is present")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        RUN_SLOW,
        action="store_true",
        help="also run the tests marked slow (minutes each; CI runs them: .ci/run)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without --run-slow, a test marked ``slow`` skips with the reason and the option."""
    if config.getoption(RUN_SLOW):
        return
    skip = pytest.mark.skip(reason=f"slow: run with {RUN_SLOW} (CI does)")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])])
def device(request) -> str:
    """Each test that takes ``device`` runs on the CPU and, when present, on CUDA."""
    return request.param


@pytest.fixture(autouse=True)
def _device_specific_kernels_stay_home(request):
    """A kernel parametrized onto a device or dtype it does not take is skipped: native
    runs on the CPU only, triton on CUDA only (a test without a ``device`` runs on the
    CPU) and not in float64. Each refuses the rest by design, which its own test file
    checks (tests/core/test_triton_kernels.py runs triton on the CPU under its interpreter)."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    key = params.get("key")
    method, strategy = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
    method, strategy = params.get("method", method), params.get("strategy", strategy)
    device = str(params.get("device", "cpu"))
    dtype = params.get("dtype", torch.float32)
    kernels = [
        kern
        for (m, s), kern in KERNELS.items()
        if s == strategy and method in (None, m) and (kern.native or kern.triton)
    ]
    runs = any(kern.runs_on(device, dtype) for kern in kernels)
    if isinstance(dtype, torch.dtype) and kernels and not runs:
        where = str(dtype).removeprefix("torch.")
        pytest.skip(f"{strategy} kernels do not run in {where} on {device} (by design)")


@pytest.fixture
def one_thread():
    """One intra-op thread: for tiny models a second only adds contention on a shared
    CPU (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with threads(1):
        yield


@dataclass
class Inline:
    """What an in-process pytest run gave: its exit status and its output."""

    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run_inline(capfd, monkeypatch) -> Callable[..., Inline]:
    """Run pytest in this process, as ``python -m pytest ARGS`` at the repository root
    would (``pytest.main``: the same exit status and messages, without an interpreter
    and torch to start), with ``env`` set for the call. For runs that only check options
    or collect: measuring, killing or crash tests need a real child process."""

    def run(*args: str, env: dict | None = None) -> Inline:
        monkeypatch.chdir(ROOT)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capfd.readouterr()
        code = pytest.main(["-p", "no:cacheprovider", *args])
        out, err = capfd.readouterr()
        return Inline(int(code), out, err)

    return run
