"""Scratch buffers: reused within a thread, never shared across threads, never the
memory of a returned gradient, and kept out of autograd's way."""

from __future__ import annotations

import threading

import pytest
import torch

from meprop_bench import KERNELS, workspace


@pytest.fixture(autouse=True)
def fresh():
    workspace.release()
    yield
    workspace.release()


def test_a_slot_is_reused_and_grows_only_when_asked_for_more():
    like = torch.empty(0)
    first = workspace.scratch("s", (4, 8), like)
    again = workspace.scratch("s", (2, 3), like)
    assert again.data_ptr() == first.data_ptr() and again.shape == (2, 3)
    assert workspace.held_bytes() == 32 * 4
    bigger = workspace.scratch("s", (10, 10), like)
    assert bigger.shape == (10, 10) and workspace.held_bytes() == 100 * 4
    other = workspace.scratch("t", (4, 8), like)
    assert other.data_ptr() != bigger.data_ptr()
    workspace.release()
    assert workspace.held_bytes() == 0


def test_shapes_that_vary_do_not_pile_up_views():
    like = torch.empty(0)
    for rows in range(1, 200):
        view = workspace.scratch("rows", (rows, 4), like)
        assert view.shape == (rows, 4)
    assert workspace.held_bytes() == 199 * 4 * 4
    assert len(workspace._SLOTS.slots[("rows", torch.float32)].views) <= workspace._MAX_VIEWS


def test_dtypes_and_threads_get_their_own_buffers():
    mine = workspace.scratch("s", (16,), torch.empty(0))
    assert workspace.scratch("s", (16,), torch.empty(0, dtype=torch.float64)).dtype == torch.float64
    seen = []
    worker = threading.Thread(
        target=lambda: seen.append(workspace.scratch("s", (16,), torch.empty(0)).data_ptr())
    )
    worker.start()
    worker.join()
    assert seen and seen[0] != mine.data_ptr()


def test_no_scratch_where_autograd_records():
    leaf = torch.ones(3, requires_grad=True)
    assert workspace.scratch("s", (3,), leaf) is None
    with torch.no_grad():
        assert workspace.scratch("s", (3,), leaf) is not None
    magnitudes = workspace.abs_of(leaf * -2)
    magnitudes.sum().backward()
    assert torch.equal(leaf.grad, torch.full((3,), 2.0))


@pytest.mark.parametrize("key", sorted(KERNELS))
def test_results_survive_the_next_call(key):
    """A kernel's outputs are its own memory: a second call (other inputs, same shapes,
    so the same scratch) leaves the first call's gradients untouched."""
    g = torch.Generator().manual_seed(0)
    first_in = [torch.randn(s, generator=g) for s in ((8, 32), (8, 16), (32, 16))]
    second_in = [torch.randn(s, generator=g) for s in ((8, 32), (8, 16), (32, 16))]
    fn = KERNELS[key].fn
    first = fn(*first_in, 5, torch.Generator().manual_seed(1))
    kept = [first.dx.clone(), first.dense_dw().clone(), first.db.clone()]
    fn(*second_in, 5, torch.Generator().manual_seed(2))
    for got, want in zip((first.dx, first.dense_dw(), first.db), kept, strict=True):
        assert torch.equal(got, want), key


def test_kernels_stay_differentiable_under_grad_mode():
    dy, x, w = (torch.randn(s, requires_grad=True) for s in ((6, 12), (6, 5), (12, 5)))
    grads = KERNELS[("unified", "compact")].fn(dy, x, w, 4)
    grads.dx.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0
