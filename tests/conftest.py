"""Shared fixtures: the devices to run on (CUDA skips with a reason when absent)."""

import pytest
import torch

from meprop_bench.harness.machine import threads

HAS_CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU; none is present")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, needs_cuda])])
def device(request) -> str:
    """Each test that takes ``device`` runs on the CPU and, when present, on CUDA."""
    return request.param


@pytest.fixture(autouse=True)
def _native_kernels_stay_on_the_cpu(request):
    """A native kernel parametrized onto CUDA is skipped: it refuses CUDA tensors by
    design, which tests/test_native.py checks on its own."""
    callspec = getattr(request.node, "callspec", None)
    params = callspec.params if callspec else {}
    if params.get("device") == "cuda" and params.get("strategy") == "native":
        pytest.skip("native kernels run on the CPU only")


@pytest.fixture
def one_thread():
    """One intra-op thread: for tiny models a second only adds contention on a shared
    CPU (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    with threads(1):
        yield
