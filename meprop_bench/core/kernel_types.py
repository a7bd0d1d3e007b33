"""What every backward kernel takes and returns: :class:`KernelFn`, :class:`Gradients`
and the compact weight gradient :class:`RowGrad`.

Kept apart from :mod:`meprop_bench.core.kernels` so the native kernels, which the registry
imports, can build the same results.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import torch

from meprop_bench.core.allocator import recycled_tensor
from meprop_bench.errors import MePropInputError


class RowGrad(NamedTuple):
    """A weight gradient that is zero outside ``indices``: row ``indices[i]`` is ``values[i]``.

    ``indices`` is sorted and free of repeats, so the sparse form is coalesced.
    """

    indices: torch.Tensor
    values: torch.Tensor
    num_rows: int

    def to_dense(self) -> torch.Tensor:
        """The full num_rows x d_in gradient, zeros outside the kept rows."""
        shape = (self.num_rows, self.values.shape[1])
        if self.values.is_cpu:  # a large one in memory already mapped: no page faults
            full = recycled_tensor(shape, self.values.dtype).zero_()
        else:
            full = self.values.new_zeros(shape)
        return full.index_copy_(0, self.indices, self.values)

    def to_sparse_coo(self) -> torch.Tensor:
        """A row-sparse COO tensor, as ``nn.Embedding(sparse=True)`` produces."""
        return torch.sparse_coo_tensor(
            self.indices.unsqueeze(0),
            self.values,
            (self.num_rows, self.values.shape[1]),
            is_coalesced=True,
        )


class Gradients(NamedTuple):
    """What a backward kernel returns: input, weight and bias gradients.

    A gradient the caller said it does not need (the input's of a first layer, the
    weight's of a frozen layer, the bias's of a layer without one) is None: it is
    never computed.
    """

    dx: torch.Tensor | None
    dw: torch.Tensor | RowGrad | None
    db: torch.Tensor | None

    def dense_dw(self) -> torch.Tensor | None:
        """The weight gradient as a full tensor, whatever form the kernel returned."""
        return self.dw.to_dense() if isinstance(self.dw, RowGrad) else self.dw


class KernelFn(Protocol):
    def __call__(
        self,
        dy: torch.Tensor,
        x: torch.Tensor,
        w: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
        *,
        need_dx: bool = True,
        need_dw: bool = True,
        need_db: bool = True,
    ) -> Gradients: ...


def not_differentiable(
    strategy: str, dy: torch.Tensor, x: torch.Tensor, w: torch.Tensor
) -> MePropInputError:
    """The refusal of a compiled strategy (its results carry no autograd graph) called
    with grad mode on and inputs that require grad, naming those inputs."""
    names = [name for name, t in (("dy", dy), ("x", x), ("w", w)) if t.requires_grad]
    which = f"{names[0]} requires" if len(names) == 1 else f"{', '.join(names)} require"
    them = "it" if len(names) == 1 else "them"
    return MePropInputError(
        f"the {strategy} strategy's gradients cannot be differentiated, but {which} grad "
        f"with grad mode on: detach {them} or call it under torch.no_grad(); to "
        "differentiate again (a backward with create_graph=True) use masked, sparse or "
        "rowunion (per example) or compact (unified)"
    )
