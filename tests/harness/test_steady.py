"""Blocks of training steps and the warm-up to a steady block time
(``meprop_bench.harness.steady``), on scripted step times: no clock is read."""

from __future__ import annotations

from meprop_bench.harness import steady


def _script(times):
    it = iter(times)
    return lambda: next(it)


def test_a_block_is_sized_from_the_fastest_of_the_first_steps():
    # a cold first step of 50 ms, then 4 ms: blocks of 0.2 s / 4 ms = 50, capped at 20
    assert steady.block_size(_script([0.05, 0.004, 0.004])) == steady.MAX_BLOCK
    assert steady.block_size(_script([0.05, 0.02, 0.025])) == 10  # 0.2 s / 20 ms
    # a step longer than a block is a block of its own; no second step is taken
    assert steady.block_size(_script([0.5])) == 1


def test_the_warm_up_runs_until_each_block_time_settles():
    a = _script([3.0, 2.0, 1.5, 1.45, 1.44])  # settles at the fourth block
    b = _script([1.0, 1.0, 1.0, 1.0, 1.0])
    done, is_steady, last = steady.warm_up([a, b], limit_s=60)
    assert (done, is_steady, last) == (4, True, [1.45, 1.0])


def test_a_warm_up_that_never_settles_stops_at_its_limit_and_says_so():
    swinging = _script([1.0, 2.0] * 10)
    done, is_steady, _ = steady.warm_up([swinging], limit_s=0)
    assert (done, is_steady) == (steady.MIN_WARMUP_BLOCKS, False)
