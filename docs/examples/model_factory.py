"""An example factory for ``meprop-bench model --model``: a small token classifier.

From the repository root::

    meprop-bench model --model docs.examples.model_factory:build --keep-dense head --k 0.05

The contract: a function of no arguments returning ``(model, batch, loss_fn)``. The
model is an ``nn.Module`` with at least one ``nn.Linear`` (each becomes a meProp layer
unless ``--keep-dense`` names it); ``batch`` is whatever ``loss_fn`` takes (tensors,
tuples, lists and dicts of them are moved to ``--device`` and ``--dtype``); one step is
``loss_fn(model, batch).backward()`` and then the optimizer's step. Build on the CPU
in float32, seeded by the caller.
"""

import torch
from torch import nn
from torch.nn import functional as F


class Classifier(nn.Module):
    """Two MLP blocks on token features, then a linear head over 10 classes."""

    def __init__(self, d: int = 256, hidden: int = 1024, classes: int = 10) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(d), nn.Linear(d, hidden), nn.GELU(), nn.Linear(hidden, d))
            for _ in range(2)
        )
        self.head = nn.Linear(d, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = x + block(x)
        return self.head(x)


def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    tokens, labels = batch
    return F.cross_entropy(model(tokens), labels)


def build() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor], object]:
    tokens = torch.randn(256, 256)
    labels = torch.randint(0, 10, (256,))
    return Classifier(), (tokens, labels), loss_fn
