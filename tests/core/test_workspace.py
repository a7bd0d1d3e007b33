"""Scratch buffers: reused within a thread, never shared across threads, never the
memory of a returned gradient, and kept out of autograd's and inference mode's way."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from meprop_bench import KERNELS, MePropLinear, backward
from meprop_bench.core import workspace

LIKE = torch.empty(0)


@pytest.fixture(autouse=True)
def fresh():
    workspace.release()
    yield
    workspace.release()


def test_a_slot_is_reused_and_grows_only_when_asked_for_more():
    with workspace.enabled_for(LIKE):
        first = workspace.scratch("s", (4, 8), LIKE)
        again = workspace.scratch("s", (2, 3), LIKE)
        assert again.data_ptr() == first.data_ptr() and again.shape == (2, 3)
        assert workspace.held_bytes() == 32 * 4
        bigger = workspace.scratch("s", (10, 10), LIKE)
        assert bigger.shape == (10, 10) and workspace.held_bytes() == 100 * 4
        other = workspace.scratch("t", (4, 8), LIKE)
        assert other.data_ptr() != bigger.data_ptr()
    workspace.release()
    assert workspace.held_bytes() == 0


def test_shapes_that_vary_do_not_pile_up_views():
    with workspace.enabled_for(LIKE):
        for rows in range(1, 200):
            assert workspace.scratch("rows", (rows, 4), LIKE).shape == (rows, 4)
    assert workspace.held_bytes() == 199 * 4 * 4
    assert len(workspace._SLOTS.slots[("rows", torch.float32)].views) <= workspace._MAX_VIEWS


def test_numpy_views_of_scratch_share_its_memory_and_follow_it():
    with workspace.enabled_for(LIKE):
        array = workspace.empty_array("s", (4, 8), LIKE)
        assert workspace.empty_array("s", (4, 8), LIKE) is array  # a look-up, no new view
        array[:] = 7
        assert bool((workspace.scratch("s", (4, 8), LIKE) == 7).all())
        ints = workspace.empty_array("s", (3,), LIKE, torch.int64)
        assert ints.dtype == np.int64 and ints.shape == (3,)
        bigger = workspace.empty_array("s", (100,), LIKE)  # the buffer grows: new memory
        bigger[:] = 1
        assert bool((workspace.scratch("s", (100,), LIKE) == 1).all())
    outside = workspace.empty_array("s", (4, 8), LIKE)
    assert outside.shape == (4, 8) and not np.shares_memory(outside, array)


def test_dtypes_and_threads_get_their_own_buffers():
    with workspace.enabled_for(LIKE):
        mine = workspace.scratch("s", (16,), LIKE)
        doubles = workspace.scratch("s", (16,), torch.empty(0, dtype=torch.float64))
    assert doubles.dtype == torch.float64
    seen = []

    def other_thread() -> None:
        with workspace.enabled_for(LIKE):
            seen.append(workspace.scratch("s", (16,), LIKE).data_ptr())

    worker = threading.Thread(target=other_thread)
    worker.start()
    worker.join()
    assert seen and seen[0] != mine.data_ptr()


def test_no_scratch_outside_a_block_or_where_autograd_could_record():
    assert workspace.scratch("s", (3,), LIKE) is None  # only code written for it
    leaf = torch.ones(3, requires_grad=True)
    with workspace.enabled_for(LIKE, leaf):  # any input that needs a gradient
        assert workspace.scratch("s", (3,), LIKE) is None
    with torch.no_grad(), workspace.enabled_for(LIKE, leaf):
        assert workspace.scratch("s", (3,), LIKE) is not None


def test_always_gives_scratch_anywhere_on_the_cpu_only():
    # Code autograd never records (the native kernels) skips the enabled_for block.
    leaf = torch.ones(3, requires_grad=True)
    with workspace.enabled_for(LIKE, leaf):
        array = workspace.empty_array("s", (5,), LIKE, always=True)
    assert workspace.empty_array("s", (5,), LIKE, always=True) is array  # reused
    assert workspace.scratch("s", (5,), LIKE, always=True) is not None
    assert workspace.scratch("s", (5,), torch.empty(0, device="meta"), always=True) is None


def test_a_bundle_is_made_once_and_dropped_with_the_buffers_it_views():
    made = []

    def make():
        made.append(workspace.empty_array("b", (4,), LIKE, always=True))
        return made[-1]

    first = workspace.bundle("key", make)
    assert workspace.bundle("key", make) is first and len(made) == 1
    workspace.empty_array("b", (400,), LIKE, always=True)  # the buffer grows: new memory
    again = workspace.bundle("key", make)
    assert len(made) == 2 and not np.shares_memory(again, first)
    workspace.release()
    workspace.bundle("key", make)
    assert len(made) == 3


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


@pytest.mark.parametrize("method", ["topk", "randk", "unified"])
def test_double_backward_through_two_layers(method):
    """A gradient penalty (create_graph=True): each layer's backward runs with grad mode
    on and its tensors saved for the second backward, which a shared scratch buffer
    overwritten by the other layer's backward would corrupt."""
    torch.manual_seed(0)
    a, b = (MePropLinear(16, 32, k=4, method=method) for _ in range(2))
    x = torch.randn(8, 16, requires_grad=True)
    (gx,) = torch.autograd.grad(a(x).sum() + b(x).sum(), x, create_graph=True)
    gx.pow(2).sum().backward()
    assert a.weight.grad is not None and b.weight.grad is not None


def test_inference_mode_first_does_not_poison_later_training():
    dy, x, w = torch.randn(8, 32), torch.randn(8, 16), torch.randn(32, 16)
    with torch.inference_mode():
        backward(dy, x, w, 4, "topk")
        backward(dy, x, w, 4, "unified")
    layer = MePropLinear(16, 32, k=4)
    layer(torch.randn(8, 16, requires_grad=True)).sum().backward()
    assert layer.weight.grad is not None
