"""Which entries of the output gradient dY a sparsified backward keeps.

Every selection here has a fixed output size (k per example, or k for the whole
batch), so none of them reads a data-dependent size back to the host: on CUDA they
queue asynchronously like any other kernel.

Ties: every selection keeps exactly k entries even when many scores are equal (a
threshold mask ``|dy| >= kth`` would keep them all), and among entries that tie at the
boundary it keeps the lowest column indices. ``torch.topk`` leaves that choice to its
implementation, so :func:`_lowest_index_ties` settles it; the native kernels follow the
same rule, so every strategy keeps the same set.
"""

from __future__ import annotations

import numbers

import torch

from meprop_bench.core import workspace
from meprop_bench.errors import MePropInputError


def resolve_k(k: int | float, n: int) -> int:
    """Turn ``k`` (an int count, or a float fraction in (0, 1] of ``n``) into a count.

    A fraction rounds to the nearest count and never below 1, so ``k=0.01`` of
    ``n=4096`` keeps 41 entries.
    """
    if isinstance(k, bool) or not isinstance(k, numbers.Real):
        raise MePropInputError(f"k must be an int or a float fraction, got {k!r}")
    if n < 1:
        raise MePropInputError(f"the output width n must be at least 1, got {n}")
    if isinstance(k, numbers.Integral):
        if not 1 <= k <= n:
            raise MePropInputError(f"k={k} is out of range: it must satisfy 1 <= k <= n={n}")
        return int(k)
    if not 0.0 < k <= 1.0:
        raise MePropInputError(f"k={k} as a fraction must lie in (0, 1]")
    return max(1, min(n, round(float(k) * n)))


# Below this many elements sum(0) wins: the GEMV's extra ops cost more than it saves.
_GEMV_MIN_ELEMENTS = 1 << 16


def batch_sum(t: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Σ over the batch (dim 0) of a B x n tensor: ``t.sum(0, dtype=dtype)``.

    Large float32 and float64 inputs take a GEMV against a ones vector instead, which
    BLAS streams at full bandwidth. On the development CPU (1 thread) ``sum(0)`` took
    129 µs against 88 at B=256, n=4096 and 3.1 ms against 0.96 at B=1024, n=8192; the
    unified backward needs two such sums (score and bias).
    """
    if (
        t.dtype in (torch.float32, torch.float64)
        and dtype in (None, t.dtype)
        and t.numel() >= _GEMV_MIN_ELEMENTS
    ):
        return torch.mv(t.t(), t.new_ones(t.shape[0]))
    return t.sum(0, dtype=dtype)


def _lowest_index_ties(score: torch.Tensor, idx: torch.Tensor, k: int) -> torch.Tensor:
    """``idx`` (the k largest of ``score`` along its last dimension, from ``torch.topk``)
    with ties at the boundary resolved to the lowest indices.

    On the CPU the common case, no tie at the k-th value, costs one comparison pass
    and returns ``idx`` unchanged; on other devices the rule is applied without
    reading anything back to the host.
    """
    kth = score.gather(-1, idx).amin(-1, keepdim=True)
    at_least = score >= kth
    if score.is_cpu and not bool((at_least.sum(-1) > k).any()):
        return idx
    above = score > kth
    tied = at_least & ~above
    room = k - above.sum(-1, keepdim=True)
    keep = above | (tied & (tied.cumsum(-1) <= room))
    # exactly k entries of `keep` are 1, so topk returns exactly those
    return keep.to(torch.int8).topk(k, dim=-1, sorted=False).indices


def topk_per_example(dy: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (B x k) of the k largest |dY| entries of each row: the original meProp."""
    score = workspace.abs_of(dy)
    return _lowest_index_ties(score, score.topk(k, dim=1, sorted=False).indices, k)


def unified_topk(dy: torch.Tensor, k: int) -> torch.Tensor:
    """Sorted indices (k,) of the k columns of largest |dY| summed over the batch.

    The paper's simple unified top-k (section 4.8). The score accumulates in at least
    float32 so half-precision gradients cannot overflow the sum. Sorting the k
    indices makes the gathers walk memory in order and lets the compact weight
    gradient be a coalesced sparse tensor.
    """
    score = unified_score(dy)
    return _lowest_index_ties(score, score.topk(k, sorted=False).indices, k).sort().values


def unified_score(dy: torch.Tensor) -> torch.Tensor:
    """Σ over the batch of |dY| per column (n,), accumulated in at least float32."""
    return batch_sum(workspace.abs_of(dy), dtype=torch.promote_types(dy.dtype, torch.float32))


def randk_per_example(
    dy: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Indices (B x k): k columns per row drawn uniformly without replacement.

    The paper's random-k baseline, fresh at every call. Draws from ``generator`` if
    given, else from torch's global RNG (so ``torch.manual_seed`` reproduces it).
    """
    noise = random_scores(dy, generator)
    return _lowest_index_ties(noise, noise.topk(k, dim=1, sorted=False).indices, k)


def random_scores(
    dy: torch.Tensor, generator: torch.Generator | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Uniform noise shaped like ``dy`` (float32) whose k largest per row are random-k's
    picks; written into ``out`` when given (the same draw either way)."""
    return torch.rand(dy.shape, device=dy.device, generator=generator, out=out)
