"""The paper's MNIST MLP: 784 -> hidden (x layers, ReLU, optional dropout) -> 10.

meProp goes into every hidden layer through :func:`~meprop_bench.core.layer.swap_linear`;
the output layer stays dense, as in the authors' PyTorch code. Hidden layers are named
``hidden0``, ``hidden1``, ... and the output layer ``out``, so the gradient recorder
and the result files can name them.
"""

from __future__ import annotations

from torch import nn

from meprop_bench.core.kernels import METHODS
from meprop_bench.core.layer import swap_linear
from meprop_bench.errors import MePropInputError
from meprop_bench.training.data import CLASSES, PIXELS


def build_mlp(
    *,
    hidden: int = 500,
    layers: int = 2,
    method: str = "dense",
    k: int | float | None = None,
    dropout: float = 0.0,
) -> nn.Sequential:
    """An MLP with ``layers`` hidden layers of width ``hidden``; for a meProp ``method``
    (``topk``, ``unified``, ``randk``) every hidden layer keeps k entries of its dY."""
    if method not in METHODS:
        raise MePropInputError(f"unknown method {method!r}; choose one of: {', '.join(METHODS)}")
    if hidden < 1 or layers < 1:
        raise MePropInputError(f"hidden={hidden} and layers={layers} must both be at least 1")
    if not 0.0 <= dropout < 1.0:
        raise MePropInputError(f"dropout={dropout} must lie in [0, 1)")
    model = nn.Sequential()
    width = PIXELS
    for i in range(layers):
        model.add_module(f"hidden{i}", nn.Linear(width, hidden))
        model.add_module(f"relu{i}", nn.ReLU())
        if dropout:
            model.add_module(f"dropout{i}", nn.Dropout(dropout))
        width = hidden
    model.add_module("out", nn.Linear(width, CLASSES))
    if method != "dense":
        if k is None:
            raise MePropInputError(f"method {method!r} needs k")
        swap_linear(model, k=k, method=method, skip=lambda name, layer: name == "out")
    return model


def hidden_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The hidden linear layers (meProp's or dense), in order, with their names."""
    return [
        (name, mod)
        for name, mod in model.named_modules()
        if isinstance(mod, nn.Linear) and name.startswith("hidden")
    ]
