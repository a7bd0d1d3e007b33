"""``--meprop-order seeded|given`` and ``--meprop-seed``: the order a sweep runs its
cases in.

``seeded`` (the default) runs the partner groups (:mod:`meprop_bench.harness.partners`) in a
random order drawn from the seed, each group as one block: its dense case first, then
its sparse partners in a random order. A ratio then compares measurements taken seconds
apart, and no case is tied to a place in the sweep (always last, when the machine is
warmest, say), so drift over a sweep becomes noise spread over every case instead of a
bias on some. The seed is drawn afresh for each run unless ``--meprop-seed`` fixes it,
and is recorded, so any run's order can be replayed. ``given`` keeps the collection
order (the grid's).
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Sequence

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.partners import Unit

ORDERS = ("seeded", "given")


def parse_order(text: str) -> str:
    if text not in ORDERS:
        raise MePropInputError(f"--meprop-order: choose {' or '.join(ORDERS)}, got {text!r}")
    return text


def parse_seed(text: str | None) -> int:
    """The seed given (a non-negative integer), or a fresh one when ``text`` is None."""
    if text is None:
        return secrets.randbelow(2**32)
    if not text.strip().isdigit():
        raise MePropInputError(f"--meprop-seed: expected a non-negative integer, got {text!r}")
    return int(text)


def seeded_order(units: Sequence[Unit], seed: int) -> list[int]:
    """Indices of ``units`` in run order: groups shuffled, each group's dense cases first
    and its other cases shuffled after them. Same units and seed, same order."""
    rng = random.Random(seed)
    blocks: dict[str, list[int]] = {}
    for i, unit in enumerate(units):
        blocks.setdefault(unit.group, []).append(i)
    order: list[int] = []
    for block in rng.sample(list(blocks.values()), len(blocks)):
        sparse = [i for i in block if not units[i].dense]
        rng.shuffle(sparse)
        order += [i for i in block if units[i].dense] + sparse
    return order
