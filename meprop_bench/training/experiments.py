"""The named training sets (``meprop-bench train --experiment quick|paper``): which
configurations each trains, for how many epochs, seeds and recipes."""

from __future__ import annotations

from typing import NamedTuple

from meprop_bench.training.recipes import DEFAULT_RECIPE, RECIPES


class Variant(NamedTuple):
    """What an experiment set varies between its configurations."""

    method: str
    k: int | None
    hidden: int
    dropout: float = 0.0


class ExperimentSet(NamedTuple):
    """Named configurations, run for each recipe and seed; ``--recipe``, ``--epochs``
    and ``--seeds`` override the set's."""

    summary: str
    variants: tuple[Variant, ...]
    epochs: int
    seeds: tuple[int, ...]
    recipes: tuple[str, ...] = (DEFAULT_RECIPE,)


_K_20 = (Variant("topk", 20, 500), Variant("unified", 20, 500), Variant("randk", 20, 500))
_PAPER_KS = (5, 10, 20, 40, 80)  # 1, 2, 4, 8, 16 % of h = 500 (Figure 4's x axis)
EXPERIMENTS: dict[str, ExperimentSet] = {
    "quick": ExperimentSet(
        "dense, topk/unified/randk k=20 and dense h=20; 5 epochs, 3 seeds, torch recipe",
        (Variant("dense", None, 500), *_K_20, Variant("dense", None, 20)),
        epochs=5,
        seeds=(0, 1, 2),
    ),
    "paper": ExperimentSet(
        "test accuracy against k for topk, unified, randk and dense h=k; dense h=500; "
        "dense and topk k=20 with dropout 0.2; 20 epochs, 5 seeds, both recipes",
        (
            Variant("dense", None, 500),
            *(Variant(m, k, 500) for k in _PAPER_KS for m in ("topk", "unified", "randk")),
            *(Variant("dense", None, k) for k in _PAPER_KS),
            Variant("dense", None, 500, 0.2),
            Variant("topk", 20, 500, 0.2),
        ),
        epochs=20,
        seeds=(0, 1, 2, 3, 4),
        recipes=tuple(RECIPES),
    ),
}
