"""meprop-bench: does sparsified back-propagation (meProp) pay off on your hardware?

The kernels under test live in :mod:`meprop_bench.core.kernels`, the selections in
:mod:`meprop_bench.core.selection`, and the drop-in layer in :mod:`meprop_bench.core.layer`.
"""

from meprop_bench.core.kernels import KERNELS, METHODS, Gradients, RowGrad, backward, get_kernel
from meprop_bench.core.layer import MePropLinear, swap_linear
from meprop_bench.core.selection import resolve_k
from meprop_bench.errors import MePropInputError

__version__ = "0.1.0"

__all__ = [
    "KERNELS",
    "METHODS",
    "Gradients",
    "MePropInputError",
    "MePropLinear",
    "RowGrad",
    "backward",
    "get_kernel",
    "resolve_k",
    "swap_linear",
]
