"""Training recipes: how a run initialises, scales its inputs, reduces its loss and
treats its gradients before the optimizer, so the suite can test the paper's claims
with the authors' own recipe as well as PyTorch's defaults.

- ``torch``: PyTorch's defaults. ``nn.Linear``'s Kaiming-uniform init, inputs
  normalised with the data set's mean and std, the loss averaged over the minibatch, no
  clipping, minibatch 50 (the authors' PyTorch script).
- ``authors``: the authors' C# MNIST code (lancopku/meProp, ``src/csharp/nnmnist``).
  Every layer's weight drawn from a normal with standard deviation
  sqrt(6 / (fan_in + fan_out)) (``GlorotNormalInit``: the Glorot *uniform* bound used as
  a normal's std), biases zero; pixels scaled to [0, 1] only (``Example.Scale``); the
  loss gradient summed over the minibatch, not averaged; every gradient element
  clipped to [-5, 5] before Adam (``Opts/Adam.cs``); minibatch 100 (``default.json``).

Both use Adam with lr 0.001, betas 0.9 / 0.999, eps 1e-8 (torch.optim.Adam; the C#
Adam folds the bias correction into the step size, which only rescales eps by
1 / sqrt(1 - 0.999^t), negligible next to gradients summed over a minibatch). The
output layer stays dense in both. The paper's CPU MNIST runs used minibatch 10:
``--batch-size 10``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from meprop_bench.errors import MePropInputError
from meprop_bench.training.data import Split


@dataclass(frozen=True)
class Recipe:
    """What a recipe sets; see the module docstring for where each value comes from."""

    name: str
    batch_size: int
    glorot_normal_init: bool  # else nn.Linear's own initialisation
    unit_inputs: bool  # pixels in [0, 1]; else normalised with the data set's mean and std
    loss_reduction: str  # "mean" or "sum" over the minibatch
    clip: float | None  # bound of the element-wise gradient clip, or None

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """Initialise ``model``'s linear layers as the recipe says (in place)."""
        if self.glorot_normal_init:
            for layer in model.modules():
                if isinstance(layer, nn.Linear):
                    glorot_normal_(layer)
        return model

    def inputs(self, split: Split, mean: float, std: float) -> Split:
        """``split`` (as :mod:`meprop_bench.training.data` loads it: normalised with
        ``mean`` and ``std``) in the recipe's input scale."""
        if not self.unit_inputs:
            return split
        return Split(split.x * std + mean, split.y)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Softmax cross-entropy of the minibatch, averaged or summed as the recipe says
        (summed: each example's gradient counts in full, as in the C# code)."""
        return F.cross_entropy(logits, targets, reduction=self.loss_reduction)

    def clip_gradients(self, params: list[nn.Parameter]) -> None:
        """Clip every gradient element to [-clip, clip] (nothing without a bound)."""
        if self.clip is not None:
            nn.utils.clip_grad_value_(params, self.clip)


RECIPES: dict[str, Recipe] = {
    "torch": Recipe("torch", 50, False, False, "mean", None),
    "authors": Recipe("authors", 100, True, True, "sum", 5.0),
}
DEFAULT_RECIPE = "torch"


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a MePropInputError."""
    try:
        return RECIPES[name]
    except KeyError:
        raise MePropInputError(
            f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}"
        ) from None


@torch.no_grad()
def glorot_normal_(layer: nn.Linear) -> None:
    """Weight ~ N(0, sqrt(6 / (fan_in + fan_out))), bias 0: the authors' C# init."""
    fan_out, fan_in = layer.weight.shape
    layer.weight.normal_(0.0, math.sqrt(6.0 / (fan_in + fan_out)))
    if layer.bias is not None:
        layer.bias.zero_()
