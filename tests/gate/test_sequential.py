"""Adaptive rounds: the sequential rule on synthetic runs (a clear slowdown stops at the
first look, identical runs pass, a borderline change stays open to the last round, the
false-alarm rate over every look stays at alpha), the gate's verdict and report of
them, and the A/B loop that leaves decided cases out of later rounds."""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from test_gate import bench, timings, write

from meprop_bench.commands import ab
from meprop_bench.commands.common import run_main
from meprop_bench.commands.gate import main as gate_main
from meprop_bench.gate.ab import still_needed
from meprop_bench.gate.inputs import load_side
from meprop_bench.gate.verdict import GateConfig, compare
from meprop_bench.harness.plan import CASES_OPTION
from meprop_bench.results.kinds import GATE
from meprop_bench.stats import (
    MIN_ROUNDS,
    OK,
    REGRESSION,
    UNDECIDED,
    Rule,
    Sequential,
    compare_times,
    sequential,
)

RULE = Rule()


def rounds_of(count, change=0.0, spread=0.02, seed=0, scale=1e-3):
    """``count`` runs of 10 samples, each run's level off by ``spread`` (log sd)."""
    rng = np.random.default_rng(seed)
    levels = scale * (1 + change) * np.exp(rng.normal(0, spread, count))
    return [timings(10, level, seed=seed * 100 + i, spread=0.01) for i, level in enumerate(levels)]


def looked(base, cand, rule=RULE, plan=None):
    def first(rounds, look):
        return compare_times(base[:rounds], cand[:rounds], look)

    return sequential(first, min(len(base), len(cand)), rule, plan or Sequential())


def test_the_looks_spend_alpha_and_no_more():
    plan = Sequential(8)
    spent = [plan.look_alpha(0.01, r) for r in range(MIN_ROUNDS, 9)]
    assert sum(spent) == pytest.approx(0.01)
    assert spent == sorted(spent, reverse=True)  # Pocock-type: the early looks spend most
    assert spent[0] == pytest.approx(0.01 * np.log1p(np.expm1(1) * 2 / 8))


def test_a_clear_slowdown_stops_after_the_minimum_rounds():
    base, cand = rounds_of(10, spread=0.01, seed=1), rounds_of(10, 0.2, spread=0.01, seed=2)
    result, decided = looked(base, cand)
    assert (result.status, decided) == (REGRESSION, MIN_ROUNDS)
    assert f"round {MIN_ROUNDS}" in result.reason


def test_identical_samples_stop_with_a_pass():
    runs = [timings(10, seed=3)] * 10
    result, decided = looked(runs, runs)
    assert (result.status, decided) == (OK, MIN_ROUNDS)
    assert "within the 5% minimum effect" in result.reason


def test_a_stable_unchanged_case_passes_early_and_a_noisy_one_needs_more_rounds():
    _, stable = looked(rounds_of(10, spread=0.005, seed=4), rounds_of(10, spread=0.005, seed=5))
    _, noisy = looked(rounds_of(10, spread=0.02, seed=4), rounds_of(10, spread=0.02, seed=5))
    assert stable is not None and noisy is not None and stable < noisy


def test_a_borderline_change_runs_to_max_rounds_and_stays_undecided():
    plan = Sequential(6)
    base, cand = rounds_of(6, spread=0.03, seed=6), rounds_of(6, change=0.05, spread=0.03, seed=7)
    result, decided = looked(base, cand, plan=plan)
    assert (result.status, decided) == (UNDECIDED, None)
    assert result.reason.startswith("open after 6 of at most 6 rounds")
    assert result.change is not None and result.high > RULE.min_effect


def test_fewer_rounds_than_the_first_look_decide_nothing():
    result, decided = looked(rounds_of(1), rounds_of(1, change=0.5))
    assert (result.status, decided, result.change) == (UNDECIDED, None, None)


def test_the_false_alarm_rate_over_every_look_stays_at_alpha():
    """A/A streams: 400 pairs of 6 rounds, run levels 5% apart, no minimum effect (so
    only the alpha spending guards): 27 false alarms; testing every look at the full
    alpha instead gives 82 (about 2 x alpha) on the same streams."""
    rule, plan = Rule(alpha=0.1, min_effect=0.0), Sequential(6)
    rng = np.random.default_rng(11)
    alarms = 0
    for _ in range(400):
        seeds = rng.integers(0, 2**31, 2)
        base, cand = (rounds_of(6, spread=0.05, seed=int(s)) for s in seeds)
        alarms += looked(base, cand, rule, plan)[0].status == REGRESSION
    assert 0 < alarms <= rule.alpha * 400


def test_max_rounds_below_the_first_look_is_refused():
    with pytest.raises(ValueError, match="--max-rounds must be at least 2"):
        Sequential(1)


# --- the gate over the runs of adaptive rounds -------------------------------------------


def fake_run(level):
    """One run's benchmarks: a dense, a sparse ``level`` x 1 ms and a selection, the
    same samples in every run but for the sparse level."""
    return [
        bench("dense", timings(10, 4e-3, seed=1), method="dense"),
        bench("sparse", timings(10, 1e-3 * level, seed=2)),
        bench("select", timings(10, 2e-4, seed=3), group="selection", method="topk",
              pair_key="S"),
    ]  # fmt: skip


def write_run(path, benchmarks, started):
    """A run's file; ``started`` tells runs of the same samples apart (a copy of a file
    is one run to the gate)."""
    write(path, benchmarks)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "datetime": started}))


def ab_dir(tmp_path, rounds, slow=0.0, noisy=0.0, seed=0, skip=None):
    """base/ and head/ of ``rounds`` runs: a dense, a sparse (``slow`` on the head) and
    a selection benchmark; ``noisy`` spreads the sparse runs; ``skip``: round -> names
    left out of that round's runs."""
    rng = np.random.default_rng(seed)
    for side in ("base", "head"):
        (tmp_path / side).mkdir(parents=True, exist_ok=True)
        for i in range(1, rounds + 1):
            level = np.exp(rng.normal(0, noisy)) * (1 + slow if side == "head" else 1)
            runs = [b for b in fake_run(level) if b["param"] not in (skip or {}).get(i, ())]
            write_run(tmp_path / side / f"run-{i:02d}.json", runs, f"{side} {i}")
    return tmp_path / "base", tmp_path / "head"


def test_the_gate_records_when_each_comparison_decided(tmp_path, capsys):
    base, head = ab_dir(tmp_path, 3, slow=0.3)
    verdict_path = tmp_path / "v.json"
    argv = [str(base), str(head), "--sequential", "--max-rounds", "4", "--json", str(verdict_path)]
    assert run_main(gate_main, argv) == 1
    out = capsys.readouterr().out
    assert "Adaptive rounds: 3 run (looks after rounds 2 to 4" in out
    assert "| round |" in out and "Decided by round: round 2: 4" in out
    doc = json.loads(verdict_path.read_text())
    assert GATE.check(doc) == 4 == doc["schema_version"]
    assert doc["sequential"]["decided_by_round"] == {"2": 4}
    assert doc["sequential"]["open"] == 0 and doc["sequential"]["max_rounds"] == 4
    assert len(doc["sequential"]["look_alpha"]) == 3
    failed = {(r["kind"], r["name"]) for r in doc["rows"] if r["status"] == "regression"}
    assert failed == {("time", "test_backward[sparse]"), ("speedup", "test_backward[sparse]")}
    assert {(r["rounds"], r["decided_round"]) for r in doc["rows"]} == {(3, 2)}
    argv = [str(base), str(head), "--sequential", "--max-rounds", "2"]
    assert run_main(gate_main, argv) == 1
    assert "more runs than --max-rounds 2: only their first 2" in capsys.readouterr().out


def test_a_verdict_of_the_previous_schema_still_reads(tmp_path, capsys):
    base, head = ab_dir(tmp_path, 2)
    verdict_path = tmp_path / "v.json"
    assert run_main(gate_main, [str(base), str(head), "--json", str(verdict_path)]) == 0
    doc = json.loads(verdict_path.read_text())
    assert doc["sequential"] is None and {r["decided_round"] for r in doc["rows"]} == {None}
    older = {key: value for key, value in doc.items() if key != "sequential"}
    older["schema_version"] = 3
    older["rows"] = [
        {k: v for k, v in row.items() if k not in ("rounds", "decided_round")}
        for row in doc["rows"]
    ]
    assert GATE.check(older) == 3


def test_decided_comparisons_leave_only_the_open_ones_and_their_dense_partners(tmp_path):
    base, head = ab_dir(tmp_path, 3, noisy=0.3, seed=2)
    sides = (load_side(str(base)), load_side(str(head)))
    verdict = compare(*sides, GateConfig(sequential=Sequential(5)))
    open_rows = {(r.kind, r.name) for r in verdict.unresolved}
    assert ("speedup", "test_backward[sparse]") in open_rows
    assert verdict.status == "undecided"
    needed = still_needed(verdict, sides)
    assert "suites/test_backward.py::test_backward[dense]" in needed  # the speedup's partner
    assert "suites/test_backward.py::test_backward[select]" not in needed  # decided


def test_rounds_past_a_cases_decision_are_not_needed(tmp_path):
    """A case left out of later rounds keeps the verdict of its deciding look."""
    base, head = ab_dir(tmp_path, 4, noisy=0.3, seed=2, skip={3: ["select"], 4: ["select"]})
    verdict = compare(
        load_side(str(base)), load_side(str(head)), GateConfig(sequential=Sequential(5))
    )
    select = [r for r in verdict.rows if r.name == "test_backward[select]"]
    assert [(r.result.status, r.rounds, r.decided) for r in select] == [(OK, 2, 2)]


# --- ab --rounds auto -------------------------------------------------------------------


@pytest.fixture
def fake_ab(tmp_path, monkeypatch):
    """ab in a throwaway repository whose runs are written by a fake suite: the head's
    sparse case ``slow`` slower and ``noisy`` spread; every run's arguments recorded."""
    repo = tmp_path / "repo"
    (repo / "suites").mkdir(parents=True)
    (repo / "suites" / "test_x.py").write_text("")
    for args in (["init", "-q"], ["add", "."], ["commit", "-q", "-m", "x"]):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                       cwd=repo, check=True)  # fmt: skip
    monkeypatch.chdir(repo)
    calls = []
    state = {"slow": 0.0, "noisy": 0.0, "rng": np.random.default_rng(5)}

    def run_suite(tree, json_path, suites, pytest_args, env):
        listed = None
        if CASES_OPTION in pytest_args:
            listed = set(Path(pytest_args[pytest_args.index(CASES_OPTION) + 1]).read_text().split())
        side, i = json_path.parent.name, int(json_path.stem.split("-")[1])
        calls.append((side, i, listed))
        level = np.exp(state["rng"].normal(0, state["noisy"]))
        level *= 1 + state["slow"] if side == "head" else 1
        runs = fake_run(level)
        chosen = [b for b in runs if listed is None or b["fullname"] in listed]
        write_run(json_path, chosen, f"{side} {i}")

    monkeypatch.setattr(ab, "selected_cases", lambda *_: ["suites/test_x.py::test_x"])
    monkeypatch.setattr(ab, "takes_case_list", lambda tree: True)
    monkeypatch.setattr(ab, "run_suite", run_suite)
    return state, calls


def test_auto_rounds_stop_at_the_first_look_on_a_clear_regression(fake_ab, tmp_path, capsys):
    state, calls = fake_ab
    state["slow"] = 0.3
    assert run_main(ab.main, ["HEAD", "--rounds", "auto", "--out", str(tmp_path / "out")]) == 1
    assert [(side, i) for side, i, _ in calls] == [
        ("base", 1), ("head", 1), ("head", 2), ("base", 2)
    ]  # fmt: skip
    assert "[round 2] regression" in capsys.readouterr().err


def test_auto_rounds_leave_decided_cases_out_and_stop_undecided_at_max_rounds(
    fake_ab, tmp_path, capsys
):
    state, calls = fake_ab
    state["noisy"] = 0.4
    out = tmp_path / "out"
    argv = ["HEAD", "--rounds", "auto", "--max-rounds", "4", "--out", str(out)]
    assert run_main(ab.main, argv) == 3
    assert len(calls) == 8 and {i for _, i, _ in calls} == {1, 2, 3, 4}
    assert [listed for _, i, listed in calls if i < 3] == [None] * 4
    later = [listed for _, i, listed in calls if i >= 3]
    assert all(listed and not any("select" in key for key in listed) for listed in later)
    assert (out / "cases-03.txt").exists() and (out / "cases-04.txt").exists()
    doc = json.loads((out / "gate.json").read_text())
    assert doc["verdict"] == "undecided" and doc["sequential"]["rounds"] == 4
    assert "comparisons open after 4 rounds (at most 4)" in capsys.readouterr().err


def test_bad_auto_rounds_input_is_one_line_and_exit_2_before_any_run(fake_ab, tmp_path, capsys):
    _, calls = fake_ab
    out = str(tmp_path / "out")
    cases = [
        (["HEAD", "--rounds", "auto", "--max-rounds", "1", "--out", out], "--max-rounds must be"),
        (["HEAD", "--rounds", "3", "--max-rounds", "5", "--out", out], "goes with --rounds auto"),
    ]
    for argv, message in cases:
        assert run_main(ab.main, argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        ab.main(["--rounds", "auto"])
    assert exit_info.value.code == 2
    assert "BASE_REV" in capsys.readouterr().err
    assert calls == []
    assert not (tmp_path / "out").exists()


def test_gate_max_rounds_needs_sequential(tmp_path, capsys):
    base, head = ab_dir(tmp_path, 2)
    assert run_main(gate_main, [str(base), str(head), "--max-rounds", "3"]) == 2
    assert "--max-rounds goes with --sequential" in capsys.readouterr().err
