"""``--meprop-order`` and ``--meprop-seed``: partner groups run as blocks, each dense case
first in its block, in an order fixed by the seed; the seed is recorded; ``given``
keeps the collection order; shard selection comes before ordering."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from collected import collect, dense_partners, is_dense

from meprop_bench.harness.ordering import seeded_order
from meprop_bench.harness.partners import Unit, unit_of
from meprop_bench.harness.plan import SweepPlan
from meprop_bench.harness.sharding import WHOLE, Shard


@pytest.fixture(scope="module")
def items():
    return collect("--meprop-preset", "quick")


def blocks_of(run: list[pytest.Item]) -> list[list[pytest.Item]]:
    """``run`` cut where the partner group changes."""
    blocks: list[list[pytest.Item]] = []
    for item in run:
        if blocks and unit_of(blocks[-1][0]).group == unit_of(item).group:
            blocks[-1].append(item)
        else:
            blocks.append([item])
    return blocks


def test_groups_run_as_blocks_with_the_dense_case_first(items):
    run, dropped = SweepPlan(WHOLE, "seeded", 7).select(list(items))
    assert not dropped and sorted(i.nodeid for i in run) == sorted(i.nodeid for i in items)
    blocks = blocks_of(run)
    assert len({unit_of(b[0]).group for b in blocks}) == len(blocks), "a group split in two"
    position = {item.nodeid: i for i, item in enumerate(run)}
    block_of = {item.nodeid: n for n, block in enumerate(blocks) for item in block}
    for block in blocks:
        assert not any(is_dense(item) for item in block[1:])
    for sparse, dense in dense_partners(items).items():
        assert block_of[sparse] == block_of[dense] and position[dense] < position[sparse]


def test_the_seed_fixes_the_order_and_another_seed_changes_it(items):
    def ids(seed):
        return [i.nodeid for i in SweepPlan(WHOLE, "seeded", seed).select(list(items))[0]]

    assert ids(7) == ids(7)
    assert ids(7) != ids(8)
    assert ids(7) != [i.nodeid for i in items]


def test_given_order_is_the_collection_order(items):
    run, _ = SweepPlan(WHOLE, "given", None).select(list(items))
    assert run == items


def test_a_shard_is_selected_first_then_ordered(items):
    given, _ = SweepPlan(Shard(1, 3), "given", None).select(list(items))
    seeded, _ = SweepPlan(Shard(1, 3), "seeded", 5).select(list(items))
    assert sorted(i.nodeid for i in seeded) == sorted(i.nodeid for i in given)
    assert len(blocks_of(seeded)) == len({unit_of(i).group for i in given})


def test_seeded_order_shuffles_the_sparse_cases_within_a_block():
    units = [Unit("g", True, 1.0)] + [Unit("g", False, 1.0)] * 9
    orders = {tuple(seeded_order(units, seed)) for seed in range(5)}
    assert len(orders) > 1 and all(order[0] == 0 for order in orders)


def plan_from(**options: str | None) -> SweepPlan:
    """The plan pytest would make of these ``--meprop-*`` options (unset ones default)."""
    values = {"meprop_shard": None, "meprop_order": "seeded", "meprop_seed": None,
              "meprop_cases": None}  # fmt: skip
    values.update({f"meprop_{name}": value for name, value in options.items()})
    return SweepPlan.from_config(SimpleNamespace(getoption=values.__getitem__))


def test_the_options_give_a_fresh_seed_a_fixed_one_or_none():
    assert plan_from().seed != plan_from().seed
    assert plan_from(seed="3").seed == 3
    assert plan_from(order="given").seed is None


@pytest.mark.parametrize(
    "options,option",
    [({"order": "random"}, "--meprop-order"), ({"seed": "x"}, "--meprop-seed"),
     ({"seed": "-1"}, "--meprop-seed"),
     ({"order": "given", "seed": "3"}, "--meprop-seed")],
)  # fmt: skip
def test_bad_order_options_are_usage_errors_naming_the_option(options, option):
    with pytest.raises(pytest.UsageError, match=option):
        plan_from(**options)
