"""``--meprop-shard I/N``: split a sweep's cases into N parts, one per process, runner
or job, so that running every part runs every case exactly once.

I is 0-based (0 <= I < N), as a SLURM array's ``--array=0-<N-1>`` or a CI matrix over
``range(N)`` counts. The split is a pure function of the collected cases, so every
process given the same options computes the same one with no coordination:

- whole partner groups (:mod:`meprop_bench.harness.partners`) are assigned, never single cases,
  so a dense case runs in the same process as its sparse partners;
- groups are laid along a line in the order of a hash of their names, and the line is
  cut into N runs of about equal estimated cost: each shard's cost is within one
  group's cost of the total / N. A group belongs to the shard its middle falls in.
- the split depends only on the groups' names and costs: base and head of an A/B
  comparison with the same cases split the same way, so each case's two sides run on
  the same runner. Cases added or removed, of total cost c, move only the groups within
  about c of a cut; the gate then refuses those groups' time comparisons (different
  runners) and still compares their within-run speedups.

A shard can be empty (N larger than the number of groups, or one group costing more
than a shard's share).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.partners import Unit

OPTION = "--meprop-shard"


@dataclass(frozen=True)
class Shard:
    """Part ``index`` (0-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


WHOLE = Shard(0, 1)


def parse_shard(text: str) -> Shard:
    """``"I/N"`` with 0 <= I < N; anything else is a MePropInputError naming the option."""
    index, sep, count = text.strip().partition("/")
    if sep and index.isdigit() and count.isdigit() and int(index) < int(count):
        return Shard(int(index), int(count))
    raise MePropInputError(
        f"{OPTION}: expected I/N with 0 <= I < N (I counts from 0), e.g. 0/4; got {text!r}"
    )


def assign(units: Sequence[Unit], count: int) -> list[int]:
    """The shard (0 .. count-1) of each of ``units``; all of a group share one."""
    group_cost: dict[str, float] = {}
    for unit in units:
        group_cost[unit.group] = group_cost.get(unit.group, 0.0) + unit.cost
    total = sum(group_cost.values())
    shard_of: dict[str, int] = {}
    start = 0.0
    for group in sorted(group_cost, key=_place):
        middle = start + group_cost[group] / 2
        shard_of[group] = min(count - 1, int(count * middle / total))
        start += group_cost[group]
    return [shard_of[unit.group] for unit in units]


def _place(group: str) -> bytes:
    """A group's place on the line: stable across processes and Python versions (the
    built-in ``hash`` of a string is not)."""
    return hashlib.blake2b(group.encode(), digest_size=8).digest()
