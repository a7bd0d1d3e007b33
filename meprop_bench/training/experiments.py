"""The named training sets (``meprop-bench train --experiment quick|paper|full-scale``):
which configurations each trains, on which data and training-set sizes, for how many
epochs, seeds and recipes."""

from __future__ import annotations

from typing import NamedTuple

from meprop_bench.training.recipes import DEFAULT_RECIPE, RECIPES


class Variant(NamedTuple):
    """What an experiment set varies between its configurations."""

    method: str
    k: int | None
    hidden: int
    dropout: float = 0.0
    sizes: tuple[int, ...] | None = None  # training-set sizes; None: every size of the set

    def settings(self) -> dict[str, object]:
        """The :class:`~meprop_bench.training.loop.RunConfig` fields this variant sets."""
        return {"method": self.method, "k": self.k, "hidden": self.hidden, "dropout": self.dropout}


class ExperimentSet(NamedTuple):
    """Named configurations, run for each recipe and seed; ``--recipe``, ``--epochs``
    and ``--seeds`` override the set's."""

    summary: str
    variants: tuple[Variant, ...]
    epochs: int
    seeds: tuple[int, ...]
    recipes: tuple[str, ...] = (DEFAULT_RECIPE,)
    data: str = "embedded"  # --data unless given
    sizes: tuple[int | None, ...] = (None,)  # --train-size unless given; None: all images

    def runs_at(self, variant: Variant, sizes: tuple[int | None, ...]) -> tuple[int | None, ...]:
        """The training-set sizes ``variant`` runs at, of ``sizes`` (the set's, or
        --train-size's): all of them, or for a variant the set limits to some sizes,
        those of them (none: the variant is left out)."""
        if variant.sizes is None:
            return sizes
        return tuple(s for s in sizes if s in variant.sizes)


_K_20 = (Variant("topk", 20, 500), Variant("unified", 20, 500), Variant("randk", 20, 500))
FULL_TRAIN = 55_000  # the paper's MNIST training set: 60,000 less its 5,000 dev images
_CURVE = (3_000, 10_000, 30_000, FULL_TRAIN)
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
    "full-scale": ExperimentSet(
        "Fashion-MNIST at 3,000, 10,000, 30,000 and 55,000 training images: dense h=500, "
        "dense h=20 and topk k=20 at every size (claims a, c, d), topk k=5/80 and randk "
        "k=5/20/80 at 55,000 (claim b); 20 epochs, 3 seeds, both recipes",
        (
            Variant("dense", None, 500),
            Variant("dense", None, 20),
            Variant("topk", 20, 500),
            *(Variant("topk", k, 500, sizes=(FULL_TRAIN,)) for k in (5, 80)),
            *(Variant("randk", k, 500, sizes=(FULL_TRAIN,)) for k in (5, 20, 80)),
        ),
        epochs=20,
        seeds=(0, 1, 2),
        recipes=tuple(RECIPES),
        data="fashion",
        sizes=_CURVE,
    ),
}
