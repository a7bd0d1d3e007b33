"""Noise-aware measurement (issue 28): the machine's state is measured and round-trips
through its schema; wide-spread cases are marked unstable and warned about, tight ones
are not; a speedup above its bound is flagged and never quoted as a finding; a part
timed above its whole is flagged."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from documents import bench_doc, kernel_case, train_step_case, write

from meprop_bench.commands.check import format_table, unstable_warning
from meprop_bench.harness.case_stability import StabilityLog
from meprop_bench.harness.cases import Case
from meprop_bench.report import headline, load_benchmarks, pair_speedups
from meprop_bench.report.sections import load_line
from meprop_bench.report.speedup import time_split
from meprop_bench.results import machine_state
from meprop_bench.results.kinds import MACHINE_STATE
from meprop_bench.results.machine_state import Snapshot, Watch, describe_state, summarize
from meprop_bench.stability import (
    MEMORY,
    above_bound,
    busy_warning,
    instability,
    likely_cause,
    memory_cases,
    time_spread,
    warning,
)

DENSE = 1e-3


def snap(wall: float, busy: int, own: int, total: int, steal: int = 0) -> Snapshot:
    return Snapshot(wall=wall, load_1min=1.0, busy=busy, steal=steal, total=total, own=own,
                    runnable=0)  # fmt: skip


def test_other_processes_cpu_is_counted_in_cores_and_decides_quiet():
    # 2 CPUs, 10 s at 100 ticks/s: 2000 ticks in all. Busy ticks 1500, 1000 of them ours:
    # the others took 500 ticks = 5 CPU-seconds over 10 s = 0.5 cores.
    busy = summarize(snap(0, 0, 0, 0), snap(10, 1500, 1000, 2000), cpus=2)
    assert busy["other_cores"] == pytest.approx(0.5)
    assert busy["quiet"] is False
    quiet = summarize(snap(0, 0, 0, 0), snap(10, 1010, 1000, 2000), cpus=2)
    assert quiet["other_cores"] == pytest.approx(0.01) and quiet["quiet"] is True
    stolen = summarize(snap(0, 0, 0, 0), snap(10, 1000, 1000, 2000, steal=200), cpus=2)
    assert stolen["steal"] == pytest.approx(0.1) and stolen["quiet"] is False


def test_without_proc_the_state_is_unknown_not_guessed(tmp_path):
    state = Watch(proc=tmp_path).state()
    assert state["quiet"] is None and state["other_cores"] is None
    assert "unknown" in describe_state(state)


def test_a_real_watch_round_trips_through_its_schema():
    watch = Watch()
    time.sleep(0.05)
    state = json.loads(json.dumps(watch.state()))
    MACHINE_STATE.check_record(state, "state")
    assert state["seconds"] > 0 and state["cpus"] >= 1
    if state["quiet"] is not None:  # Linux: every figure is there
        assert state["other_cores"] >= 0 and 0 <= state["steal"] <= 1


def burn(seconds: float) -> None:
    """Spend ``seconds`` of this process's CPU time."""
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_our_own_cpu_time_and_our_childrens_are_ours_not_other_work():
    hz = os.sysconf("SC_CLK_TCK")
    start = Snapshot.take()
    burn(0.3)
    mine = Snapshot.take().own - start.own
    assert mine / hz == pytest.approx(0.3, abs=0.05)  # whatever else the machine runs
    child = subprocess.Popen([sys.executable, "-c", "import time\nt=time.process_time()\n"
                              "while time.process_time() - t < 0.5: pass\ninput()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 30
    try:
        while Snapshot.take().own - start.own < mine + 0.4 * hz:  # the live child's ticks
            assert time.monotonic() < deadline, "the child's CPU time is not counted as ours"
            time.sleep(0.05)
    finally:
        child.communicate(b"\n", timeout=30)


def test_cpu_ticks_are_read_from_proc_stat(tmp_path):
    (tmp_path / "stat").write_text("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n")
    busy, steal, total = machine_state._cpu_ticks(tmp_path)
    assert (busy, steal, total) == (155, 35, 155 + 800 + 10 + 35)


def test_spread_rules():
    assert time_spread([1.0, 1.0, 1.0, 1.0]) == 0
    assert math.isnan(time_spread([1.0]))
    assert instability(2.0, 3.0) == []  # a factor of 1.5
    assert "wider than a factor of 2" in instability(16.5, 61.8)[0]
    assert instability(2.0, 3.0, dense_spread=0.5) == []  # the threshold itself
    assert "dense's rounds vary by 60%" in instability(2.0, 3.0, dense_spread=0.6)[0]
    assert above_bound(3.08, 2.78) and not above_bound(2.5, 2.78)
    assert not above_bound(float("nan"), 2.78)


def test_the_warning_names_the_cases_the_cause_and_the_remedy():
    busy = {"quiet": False, "other_cores": 1.2, "cpus": 2}
    line = warning(["a", "b", "c", "d", "e"], 9, busy, rounds=5)
    assert line.startswith("warning: 5 of 9 cases unstable (a, b, c, d and 1 more)")
    assert "the machine was busy (other processes used 1.20 of 2 cores)" in line
    assert "too few rounds (5)" in line and "--rounds 10" in line and "--threads 1" in line
    assert "it looked quiet" in likely_cause({"quiet": True}, 30)


def test_a_kernel_whose_page_faults_vary_is_blamed_on_its_memory_not_on_load():
    bimodal = [0, 16385] * 8  # fresh 64 MiB on every other call
    assert instability(2.0, 3.0, faults=bimodal) == []  # varying faults alone mark nothing
    reasons = instability(2.5, 13.4, faults=bimodal)
    assert reasons[-1].startswith(MEMORY) and "0 to 16385 page faults a call" in reasons[-1]
    assert not any(r.startswith(MEMORY) for r in instability(2.5, 13.4, faults=[16385] * 16))
    memory = memory_cases([("unified/scatter", reasons), ("topk/native", [])])
    assert memory == ["unified/scatter"]
    line = warning(["unified/scatter"], 8, {"quiet": True}, 15, memory=memory)
    assert "page faults that vary from call to call in unified/scatter" in line
    assert "looked quiet" not in line and "read its time as a range" in line


def check_result(dense: list[float], sparse: list[float], quiet: bool) -> dict:
    """A check document's parts the table and the warning read (n/k = 10)."""

    def row(name: str, times: list[float], ratio: tuple[float, float, float]) -> dict:
        spread = instability(ratio[0], ratio[2], time_spread(dense))
        return {"kernel": name, "median_s": sorted(times)[len(times) // 2], "q1_s": min(times),
                "q3_s": max(times), "speedup": ratio[1], "speedup_q1": ratio[0],
                "speedup_q3": ratio[2], "minor_faults_median": 0, "samples_s": times,
                "time_spread": time_spread(times), "unstable": spread,
                "above_bound": above_bound(ratio[0], 10.0)}  # fmt: skip

    params = {"batch": 8, "d_in": 64, "n": 64, "k": 6, "k_over_n": 0.1, "ideal_speedup": 10.0,
              "dtype": "float32", "device": "cpu", "rounds": 15,
              "timer": "perf-counter"}  # fmt: skip
    ratios = [d / s for d, s in zip(dense, sparse, strict=True)]
    ratios.sort()
    ratio = (ratios[len(ratios) // 4], ratios[len(ratios) // 2], ratios[3 * len(ratios) // 4])
    state = {"quiet": quiet, "other_cores": 0.0 if quiet else 1.5, "cpus": 2, "steal": 0.0,
             "load_1min_start": 0.1, "load_1min_end": 0.2}  # fmt: skip
    machine = {"cpu_model": "Test CPU", "cpu_count": 2, "cpu_capability": "AVX2",
               "torch": "2.13.0", "blas": "MKL", "torch_threads": 1, "state": state}  # fmt: skip
    rows = [row("dense/dense", dense, (1, 1, 1)), row("topk/native", sparse, ratio)]
    return {"params": params, "machine": machine, "results": rows}


def test_check_marks_and_warns_a_wide_case_and_not_a_tight_one():
    tight = check_result([1.0, 1.01, 0.99, 1.0] * 4, [0.25, 0.26, 0.25, 0.24] * 4, quiet=True)
    assert unstable_warning(tight) is None and "UNSTABLE" not in format_table(tight)
    assert "machine quiet" in format_table(tight)
    wide = check_result([1.0, 3.0, 1.0, 2.5] * 4, [0.25, 0.05, 0.6, 0.25] * 4, quiet=False)
    assert "UNSTABLE" in format_table(wide) and "machine BUSY" in format_table(wide)
    line = unstable_warning(wide)
    assert line.startswith("warning: 2 of 2 cases unstable (dense/dense, topk/native)")
    assert "the machine was busy" in line


def test_a_busy_machine_is_warned_about_even_when_every_case_looks_stable():
    tight = [1.0, 1.01, 0.99, 1.0] * 4, [0.25, 0.26, 0.25, 0.24] * 4
    line = unstable_warning(check_result(*tight, quiet=False))
    assert line.startswith("warning: the machine was busy (other processes used 1.50 of 2")
    assert "biased even where their intervals are tight" in line
    assert unstable_warning(check_result(*tight, quiet=True)) is None
    assert busy_warning(None) is None and busy_warning({"quiet": None}) is None  # unknown


def test_check_flags_a_speedup_above_n_over_k():
    impossible = check_result([1.0] * 8, [0.05] * 8, quiet=True)  # 20x where n/k = 10
    assert "ABOVE n/k: measurement error" in format_table(impossible)
    assert unstable_warning(impossible) is not None


def speedups_of(tmp_path, cases: list[dict]):
    return pair_speedups(load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))]))


def test_the_report_marks_a_wide_pair_unstable_and_a_tight_one_not(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, 8, median=DENSE, spread=0.6),
        kernel_case("backward", "topk", "sparse", 64, 8, 8, median=DENSE / 2, seed=1),
        kernel_case("backward", "dense", "dense", 128, 128, 8, median=DENSE),
        kernel_case("backward", "topk", "sparse", 128, 8, 8, median=DENSE / 2, seed=2),
    ]
    frame = speedups_of(tmp_path, cases).speedups.set_index("n")
    assert "dense's rounds vary" in frame.loc[64, "unstable"]
    assert frame.loc[128, "unstable"] == ""


def test_a_step_above_its_bound_is_flagged_and_never_quoted(tmp_path):
    cases = [
        train_step_case("dense", "dense", 3e-3),
        train_step_case("topk", "native", 1e-3),  # 3x against a bound of 2.78x
        train_step_case("unified", "compact", 2e-3),  # 1.5x: a finding
    ]
    speedups = speedups_of(tmp_path, cases).speedups.set_index("method")
    assert bool(speedups.loc["topk", "above_bound"]) and not speedups.loc["unified", "above_bound"]
    best = headline.best_strategies(speedups.reset_index())
    topk = best[best["method"] == "topk"].iloc[0]
    assert topk["call"] == headline.UNSTABLE and "above its bound 2.78x" in topk["suspect"]
    said = headline.answers(best).set_index("method")
    assert said.loc["topk", "word"] == "unstable: rerun on a quiet machine"
    assert "3.0" not in said.loc["topk", "sentence"]  # the impossible figure is not quoted
    assert said.loc["unified", "word"] == "pays"


def test_an_unstable_strategy_is_passed_over_for_a_stable_one(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, 8, median=DENSE),
        kernel_case("backward", "topk", "sparse", 64, 8, 8, median=DENSE / 6, seed=1, spread=0.9),
        kernel_case("backward", "topk", "masked", 64, 8, 8, median=DENSE / 2, seed=2),
    ]
    best = headline.best_strategies(speedups_of(tmp_path, cases).speedups)
    row = best.iloc[0]
    assert row["strategy"] == "masked" and row["call"] == headline.FASTER


def test_the_tally_says_how_many_shapes_were_unstable(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, 8, median=DENSE),
        kernel_case("backward", "unified", "compact", 64, 8, 8, median=DENSE / 3, seed=1),
        kernel_case("backward", "dense", "dense", 128, 128, 8, median=DENSE, spread=0.7),
        kernel_case("backward", "unified", "compact", 128, 8, 8, median=DENSE / 9, seed=2),
    ]
    said = headline.answers(headline.best_strategies(speedups_of(tmp_path, cases).speedups))
    sentence = said.iloc[0]["sentence"]
    assert "faster than dense at 1 of 1 shape; 1 unstable, not counted" in sentence
    assert "n=128" not in sentence.split("best", 1)[1]  # the best quoted is the stable one
    only_noise = headline.answers(
        headline.best_strategies(speedups_of(tmp_path, cases[2:]).speedups)
    )
    sentence = only_noise.iloc[0]["sentence"]
    assert "1 unstable shape, not counted (rerun on a quiet machine)" in sentence
    assert "faster than dense at 0 of 0" not in sentence and "best" not in sentence


def test_time_split_leaves_out_fused_selections_and_flags_a_part_above_its_whole(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, 8, median=DENSE),
        kernel_case("backward", "topk", "native", 64, 8, 8, median=DENSE / 4, seed=1),
        kernel_case("backward", "topk", "sparse", 64, 8, 8, median=DENSE / 2, seed=2),
        kernel_case(
            "selection", "topk", "sparse", 64, 8, 8, median=DENSE, seed=3, selection="topk"
        ),
    ]
    split = time_split(load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))]))
    assert split["kernel"].tolist() == ["topk/sparse"]  # native selects inside its own call
    assert split["part_exceeds_whole"].tolist() == [True]  # 1 ms of selection in 0.5 ms


def test_the_report_states_the_load_of_each_input():
    quiet = {"state": {"quiet": True, "other_cores": 0.1, "cpus": 2}}
    busy = {"state": {"quiet": False, "other_cores": 1.4, "cpus": 2, "steal": 0.0,
                      "load_1min_start": 3.0, "load_1min_end": 3.2}}  # fmt: skip
    line = load_line({"a/one.json": quiet, "b/two.json": busy, "c/old.json": {}})
    assert "BUSY while 1 of 3 inputs ran (two.json: machine BUSY" in line
    assert "Quiet while 1 of 3 inputs ran (other processes used at most 0.10 cores)" in line
    assert "Load not recorded for 1 input(s)" in line
    assert load_line({"one.json": quiet}).startswith("Load: quiet while 1 of 1")


def item_of(case: Case) -> SimpleNamespace:
    """What the stability log reads of a suite item: its node id and case parameter."""
    spec = SimpleNamespace(params={"backward_case": (case, 1)})
    name = f"test[{case.case_id}]"
    return SimpleNamespace(nodeid=f"suites/test_backward.py::{name}", name=name, callspec=spec)


def test_the_suites_judge_each_sparse_case_against_the_dense_one_before_it():
    log = StabilityLog(rounds=8)
    dense = Case.make("dense", "dense", 8, 64, 64, 64)
    sparse = Case.make("topk", "sparse", 8, 64, 64, 8)
    steady = [1.0, 1.01, 0.99, 1.0, 1.0, 1.02, 0.98, 1.0]
    assert log.judge(item_of(dense), steady)["unstable"] == []
    wild = [0.1, 0.9, 0.2, 0.8, 0.1, 0.9, 0.3, 0.7]
    verdict = log.judge(item_of(sparse), wild)
    assert "wider than a factor of 2" in verdict["unstable"][0]
    assert verdict["time_spread"] > 1 and log.unstable == [f"test[{sparse.case_id}]"]
    assert log.judge(item_of(sparse), [0.5, 0.51, 0.49, 0.5] * 2)["unstable"] == []


def test_the_suites_warn_of_a_busy_machine_only_when_they_timed_something():
    busy = {"quiet": False, "other_cores": 1.5, "cpus": 2}
    log = StabilityLog(rounds=8)
    log.state = lambda: busy  # type: ignore[method-assign]
    written: list[str] = []
    terminal = SimpleNamespace(write_line=written.append)
    log.pytest_terminal_summary(terminal)  # a unit-test session: nothing timed
    assert written == []
    log.judge(item_of(Case.make("dense", "dense", 8, 64, 64, 64)), [1.0] * 8)
    log.pytest_terminal_summary(terminal)
    assert len(written) == 1 and written[0].startswith("warning: the machine was busy")
