"""Shared fixtures: the devices to run on (CUDA skips with a reason when absent), pytest
run in this process, and the ``--run-slow`` option: tests marked ``slow`` skip with the
reason without it."""

import os
import sys
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


def pytest_configure(config: pytest.Config) -> None:
    """The environment of the processes the tests start.

    OpenMP threads (torch's, numba's) wait for work by spinning unless told otherwise:
    where the pytest-xdist workers (``-n``) and the child processes the tests start share
    the cores, a spinning thread holds a core the others need (a two-thread training run
    took 16 s of CPU beside one busy core, 3.5 s without the spinning).
    ``OMP_WAIT_POLICY=PASSIVE`` makes them
    sleep; set here, before the workers start, it reaches them and every child process
    (this process's own OpenMP read it when torch loaded, before this hook).

    Under pytest-xdist, a worker's environment names it (PYTEST_XDIST_WORKER and kin)
    and a child pytest would inherit that: pytest-benchmark then takes itself for an
    xdist worker and disables timing, so a child ``--benchmark-only`` run refuses to
    start. The worker knows its id from ``config.workerinput``; the children are not
    workers, so the variables go.

    Where ``PYTHONDONTWRITEBYTECODE`` is set (container images often set it), every
    process would compile and assert-rewrite the same modules again: about 4 s a pytest
    process, and the tests start dozens. Their compiled modules go to
    ``.pytest_cache/pycache`` instead (``PYTHONPYCACHEPREFIX``), so the tree still gets no
    ``__pycache__`` folders and each module is compiled once."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None) and not sys.pycache_prefix:
        prefix = str(config.rootpath / ".pytest_cache" / "pycache")
        os.environ["PYTHONPYCACHEPREFIX"] = sys.pycache_prefix = prefix
        sys.dont_write_bytecode = False
    if hasattr(config, "workerinput"):
        for name in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
            os.environ.pop(name, None)


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


@pytest.fixture
def plot_stand_ins():
    """Reports written within draw and render every plot but save stand-ins, not images:
    for tests of what a report says (tests/plot_files.py)."""
    from plot_files import stand_in_plot_files

    with stand_in_plot_files():
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
    (or in ``cwd``) would (``pytest.main``: the same exit status and messages, without an
    interpreter and torch to start), with ``env`` set for the call. For runs that only
    check options or collect, or whose cases skip or fail before anything is timed:
    measuring, killing or crash tests need a real child process."""

    def run(*args: str, env: dict | None = None, cwd: Path = ROOT) -> Inline:
        monkeypatch.chdir(cwd)
        for name, value in (env or {}).items():
            monkeypatch.setenv(name, value)
        capfd.readouterr()
        code = pytest.main(["-p", "no:cacheprovider", *args])
        out, err = capfd.readouterr()
        return Inline(int(code), out, err)

    return run
