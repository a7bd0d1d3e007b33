"""The run's estimate: costed from a calibration measured here, so a slower machine
gives a proportionally longer estimate, and compilation is added only when needed."""

from __future__ import annotations

import os

import pytest

from meprop_bench.harness import estimate, steady, sweep
from meprop_bench.harness.estimate import Calibration, minutes, native_compiled

TINY = ["--meprop-widths", "64", "--meprop-batches", "8", "--meprop-ks", "0.25"]


def calibration(slowdown: float = 1.0, compiled: bool = True, step_s: float = 0.25) -> Calibration:
    """A made-up machine, ``slowdown`` times slower than the base one in everything. Its
    training step is longer than a step suite's block, so that a block is one step and
    the whole estimate scales with the machine."""
    return Calibration(
        flop_rate=20e9 / slowdown, call_s=2e-5 * slowdown, serial_call_s=1e-5 * slowdown,
        select_s=3e-9 * slowdown, step_s=step_s * slowdown, compiled=compiled, seconds=1.0,
    )  # fmt: skip


@pytest.fixture
def machine(monkeypatch):
    """Set the calibration that the estimates see."""

    def use(cal: Calibration) -> None:
        monkeypatch.setattr(estimate, "calibrate", lambda threads=None: cal)

    return use


def test_a_machine_twice_as_slow_doubles_the_estimate(machine):
    machine(calibration())
    base = (sweep.estimate_sweep(TINY).seconds, estimate.training_estimate("quick").seconds)
    machine(calibration(2.0))
    slow = (sweep.estimate_sweep(TINY).seconds, estimate.training_estimate("quick").seconds)
    assert base[0] > 0 and base[1] > 0
    assert slow == pytest.approx((2 * base[0], 2 * base[1]), rel=1e-9)


def test_compilation_is_added_and_said_only_on_a_first_run(machine):
    machine(calibration(compiled=True))
    warm = sweep.estimate_sweep(TINY)
    machine(calibration(compiled=False))
    cold = sweep.estimate_sweep(TINY)
    assert warm.note == "" and "native kernels are compiled first" in cold.note
    assert cold.seconds == pytest.approx(warm.seconds + calibration(compiled=False).compile_s())
    collected = sweep._Collected()
    pytest.main(["suites", "--collect-only", "-q", "-p", "no:cacheprovider", *TINY],
                plugins=[collected])  # fmt: skip
    native = [item for item in collected.items if estimate.uses_native(item)]
    others = [item for item in collected.items if not estimate.uses_native(item)]
    assert native and others  # the train step's topk/native among them
    assert estimate.sweep_estimate(others, collected.calls, ["cpu"]).note == ""
    assert estimate.sweep_estimate(native, collected.calls, ["cpu"]).note != ""


def test_every_case_is_costed_by_its_size():
    cal = calibration()
    small = cal.dense_call(8, 64, 64)
    large = cal.dense_call(256, 4096, 4096)
    assert large - cal.call_s == pytest.approx(4 * 256 * 4096 * 4096 / cal.flop_rate)
    assert large > 1000 * small


def test_a_step_suites_round_is_a_block_and_a_sparse_one_has_its_partners_beside_it():
    # a 4 ms step: a block is 0.2 s / 4 ms = 50 steps, capped at MAX_BLOCK
    assert estimate.step_round(4e-3, paired=False) == pytest.approx(4e-3 * steady.MAX_BLOCK)
    assert estimate.step_round(0.05, paired=False) == pytest.approx(steady.BLOCK_SECONDS)
    assert estimate.step_round(0.5, paired=False) == pytest.approx(0.5)  # a block of one
    assert estimate.step_round(0.05, paired=True) == pytest.approx(2 * steady.BLOCK_SECONDS)


def test_the_step_suites_are_costed_by_blocks(machine):
    # the MNIST step (and the paper-MLP preset, the same FLOPs) at 10 ms: blocks of
    # 20 steps, 0.2 s; a sparse step's round adds its dense partner's block
    machine(calibration(step_s=0.01))
    collected = sweep._Collected()
    pytest.main(["suites/test_train_step.py", "suites/test_model_step.py", "--collect-only",
                 "-q", "-p", "no:cacheprovider", *TINY], plugins=[collected])  # fmt: skip
    cal = estimate.calibrate()
    costs = {item.name: estimate.item_call(item, cal) for item in collected.items}
    dense = {name: c for name, c in costs.items() if "dense-dense" in name}
    sparse = {name: c for name, c in costs.items() if "dense-dense" not in name}
    assert len(dense) == 2 and sparse  # one dense case a suite
    assert dense == pytest.approx(dict.fromkeys(dense, 0.2))
    assert sparse == pytest.approx(dict.fromkeys(sparse, 0.4))


@pytest.mark.parametrize(("seconds", "shown"), [(1, 0.5), (44, 0.5), (46, 1.0), (400, 6.5)])
def test_minutes_are_shown_to_the_nearest_half(seconds, shown):
    assert minutes(seconds) == shown


def test_the_compile_state_follows_the_sources_cache(tmp_path):
    source = tmp_path / "native_jit.py"
    source.write_text("# kernels\n")
    assert not native_compiled(source)  # a fresh checkout: no cache
    cache = tmp_path / "__pycache__"
    cache.mkdir()
    index = cache / "native_jit.kernel-10.py311.nbi"
    index.write_text("")
    assert native_compiled(source)
    later = index.stat().st_mtime + 10
    os.utime(source, (later, later))  # the source edited after compiling: stale
    assert not native_compiled(source)


def test_the_calibration_measures_this_machine():
    cal = estimate.calibrate(1)
    assert cal.flop_rate > 1e8 and 0 < cal.call_s < cal.step_s
    assert estimate.calibrate(1) is cal  # measured once a process
