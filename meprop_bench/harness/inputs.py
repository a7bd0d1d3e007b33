"""The (dy, x, w) a benchmark case runs on: synthetic Gaussian, or real gradients
recorded from training the MNIST MLP (made locally and cached, never downloaded).

A case and its dense counterpart get the very same tensors (the cache is keyed by the
dense case), so their times differ by the kernel alone.
"""

from __future__ import annotations

import functools

import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.cases import Case

SEED = 0


def case_inputs(case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dy, x, w) on the case's device and dtype."""
    return _inputs(case.dense())


@functools.lru_cache(maxsize=2)
def _inputs(dense: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if dense.grads == "gaussian":
        tensors = gaussian(dense.batch, dense.d_in, dense.n)
    else:
        tensors = recorded(dense.batch, dense.d_in, dense.n)
    return tuple(t.to(dense.device, dense.torch_dtype).contiguous() for t in tensors)


def gaussian(batch: int, d_in: int, n: int) -> tuple[torch.Tensor, ...]:
    """Seeded standard-normal dy (B x n), x (B x d_in), w (n x d_in), scaled like a
    freshly initialised layer (w ~ 1/sqrt(d_in))."""
    gen = torch.Generator().manual_seed(SEED)
    dy = torch.randn(batch, n, generator=gen)
    x = torch.randn(batch, d_in, generator=gen)
    w = torch.randn(n, d_in, generator=gen) / d_in**0.5
    return dy, x, w


def recorded(batch: int, d_in: int, n: int) -> tuple[torch.Tensor, ...]:
    """A real (dy, x, w) of a hidden layer n wide with d_in inputs, from the MNIST MLP
    trained locally with hidden width n and batch size ``batch`` (cached on disk)."""
    from meprop_bench.harness.gradients import cached_gradients, load_gradients

    samples = load_gradients(cached_gradients(hidden=n, batch=batch))
    for sample in samples:
        if sample.dy.shape == (batch, n) and sample.x.shape == (batch, d_in):
            return sample.dy, sample.x, sample.w
    shapes = sorted({(tuple(s.dy.shape), tuple(s.x.shape)) for s in samples})
    raise MePropInputError(
        f"no recorded gradient with dy {batch}x{n} and x {batch}x{d_in}; recorded: {shapes}"
    )
