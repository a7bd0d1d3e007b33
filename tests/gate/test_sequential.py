"""Adaptive rounds: the sequential rule on synthetic runs, whole A/Bs of 150 comparisons
(an A/B of identical code fails at most alpha of the time over every look and
comparison, slowdowns of one method or of every case are caught, a clear one at the
first look, identical runs pass, a borderline change keeps the A/B open to the last
round), the gate's verdict and report of them, and the A/B loop that leaves decided
cases out of later rounds."""

import functools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from repos import suite_repo
from scipy.stats import t as student_t
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
    _decide,
    compare_speedups,
    compare_times,
    holm,
    sequential,
    sequential_family,
)

RULE = Rule()
FAMILY = 150  # comparisons of one A/B of the tiny grid (81 benchmarks: times and speedups)


def rounds_of(count, change=0.0, spread=0.02, seed=0, scale=1e-3):
    """``count`` runs of 10 samples, each run's level off by ``spread`` (log sd)."""
    rng = np.random.default_rng(seed)
    levels = scale * (1 + change) * np.exp(rng.normal(0, spread, count))
    return [timings(10, level, seed=seed * 100 + i, spread=0.01) for i, level in enumerate(levels)]


def looked(base, cand, rule=RULE, plan=None):
    def first(rounds, look):
        return compare_times(base[:rounds], cand[:rounds], look)

    return sequential(first, min(len(base), len(cand)), rule, plan or Sequential())


def ab_values(rng, slow=0.0, rounds=10, cases=FAMILY, spreads=(0.005, 0.08), machine=0.02):
    """One A/B's run values (log seconds, cases x rounds a side): each case's own
    round-to-round spread drawn log-uniform from ``spreads`` (large stable cases and
    small noisy ones), plus a shift of each whole run shared by all its cases (the
    machine's state: the comparisons are not independent), the candidate's cases
    ``slow`` slower (a fraction, or one per case)."""
    spread = np.exp(rng.uniform(*np.log(spreads), cases))[:, None]
    base = rng.normal(0, 1, (cases, rounds)) * spread + rng.normal(0, machine, rounds)
    cand = rng.normal(0, 1, (cases, rounds)) * spread + rng.normal(0, machine, rounds)
    return base, cand + np.log1p(np.broadcast_to(slow, (cases,)))[:, None]


@functools.cache
def t_quantile(alpha, df):
    return float(student_t.isf(alpha, df))


def table_looks(base, cand):
    """Each case's looks on its run values: the run-level t-test (pooled variance) of
    the gate's speedup comparison, computed for every case and round at once (the
    gate's own functions take milliseconds a call; a test below checks they agree)."""
    tables = {}
    for r in range(MIN_ROUNDS, base.shape[1] + 1):
        a, b = base[:, :r], cand[:, :r]
        diff = b.mean(1) - a.mean(1)
        error = np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / r)
        spread = error > 0
        t = np.divide(diff, error, out=np.zeros_like(diff), where=spread)
        df = 2 * r - 2
        worse = np.where(spread, student_t.sf(t, df), np.where(diff > 0, 0.0, 1.0))
        better = np.where(spread, student_t.cdf(t, df), np.where(diff < 0, 0.0, 1.0))
        tables[r] = [list(map(float, column)) for column in (diff, error, worse, better)]

    def look(i):
        def first(r, rule):
            diff, error, worse, better = (column[i] for column in tables[r])
            half = t_quantile(rule.alpha, 2 * r - 2) * error
            interval = math.expm1(diff - half), math.expm1(diff + half)
            return _decide(math.expm1(diff), worse, better, interval, rule, r, r)

        return first

    return [look(i) for i in range(base.shape[0])]


def ab_verdict(results, rounds=10):
    """An A/B's status and the round ab stops at: the first regression's, else the last
    decision's when every comparison passed, else the last round."""
    failed = [r for c, r in results if c.status == REGRESSION]
    if failed:
        return REGRESSION, min(failed)
    if all(r is not None for _, r in results):
        return "pass", max(r for _, r in results)
    return UNDECIDED, rounds


def judged(base, cand, rule=RULE, plan=None):
    """The A/B of these run values, every case judged in one family."""
    plan = plan or Sequential(base.shape[1])
    looks = table_looks(base, cand)
    return sequential_family(looks, [base.shape[1]] * len(looks), [rule] * len(looks), plan)


def test_the_looks_spend_alpha_and_no_more():
    plan = Sequential(8)
    spent = [plan.look_alpha(0.01, r) for r in range(MIN_ROUNDS, 9)]
    assert sum(spent) == pytest.approx(0.01)
    assert spent == sorted(spent, reverse=True)  # Pocock-type: the early looks spend most
    assert spent[0] == pytest.approx(0.01 * np.log1p(np.expm1(1) * 2 / 8))


def test_holm_steps_down_over_the_whole_family():
    p_values = {0: 0.001, 1: 0.004, 2: 0.012, 3: 0.3}
    assert holm(p_values, 0.02, 4) == {0: 0.005, 1: 0.02 / 3}  # 0.012 >= 0.02 / 2: stop
    assert holm(p_values, 0.02, 10) == {0: 0.002}  # decided comparisons still count
    assert holm({}, 0.02, 10) == {}
    with pytest.raises(ValueError, match="5 p-values in a family of 4"):
        holm({**p_values, 4: 0.5}, 0.02, 4)


def test_the_table_looks_are_the_gates_run_level_test():
    base, cand = ab_values(np.random.default_rng(3), slow=0.05, cases=3)
    ones = [[1.0]] * base.shape[1]
    for i, look in enumerate(table_looks(base, cand)):
        for r, alpha in ((2, 0.003), (5, 0.001), (10, 2e-5)):
            rule = Rule(alpha=alpha, min_samples=2)
            sides = [(ones[:r], [[math.exp(v)] for v in values[i, :r]]) for values in (base, cand)]
            gate = compare_speedups(*sides, rule)
            mine = look(r, rule)
            assert mine.status == gate.status
            for field in ("change", "low", "high", "p_value"):
                assert getattr(mine, field) == pytest.approx(getattr(gate, field), rel=1e-6)


def test_an_ab_of_identical_code_fails_at_most_alpha_of_the_time():
    """A/A at the level of the whole A/B: 200 seeded streams of 150 comparisons and 10
    rounds, each case with its own spread (0.5-8%) and every run shifted as a whole (2%),
    alpha 0.05 and no minimum effect, so only the alpha spending and Holm guard. A rule
    whose false-alarm rate is alpha fails at most 21 of 200 but with probability below
    0.001 (binomial); this one fails 3 (1.5%: Holm and the spending over the looks are
    both conservative). Judged per comparison instead (each a family of one: the rule
    before Holm), the first 40 of the same streams fail 27 times."""
    rule, plan = Rule(alpha=0.05, min_effect=0.0, min_samples=2), Sequential(10)
    rng = np.random.default_rng(11)
    streams = [ab_values(rng) for _ in range(200)]
    alarms = sum(ab_verdict(judged(b, c, rule, plan))[0] == REGRESSION for b, c in streams)
    assert alarms <= 21
    per_comparison = 0
    for base, cand in streams[:40]:
        results = [sequential(look, 10, rule, plan) for look in table_looks(base, cand)]
        per_comparison += ab_verdict(results)[0] == REGRESSION
    assert per_comparison > 20


def test_a_slowdown_of_one_method_or_of_every_case_is_caught_in_a_few_rounds():
    """The issue's two slowdowns at alpha 0.01, the 5% minimum effect, 150 comparisons,
    the spreads above: one method's 50 cases 20% slower, and every case 10% slower, in
    40 seeded streams each, all caught; rounds to the stop: median 3 and 4, at most 5
    and 6."""
    rng = np.random.default_rng(12)
    slowdowns = {"one method 20%": np.r_[np.full(50, 0.2), np.zeros(FAMILY - 50)],
                 "every case 10%": 0.1}  # fmt: skip
    for label, slow in slowdowns.items():
        verdicts = [ab_verdict(judged(*ab_values(rng, slow))) for _ in range(40)]
        assert {status for status, _ in verdicts} == {REGRESSION}, label
        stops = sorted(r for _, r in verdicts)
        assert stops[20] <= 4 and stops[-1] <= 6, (label, stops)


def test_a_clear_slowdown_of_one_method_stops_after_the_minimum_rounds():
    """Stable cases (run spreads 0.05-0.1%) of one method 20% slower: t about 180 at the
    first look, beyond Holm's first step over 150 (159 with 2 degrees of freedom)."""
    slow = np.r_[np.full(50, 0.2), np.zeros(FAMILY - 50)]
    base, cand = ab_values(np.random.default_rng(13), slow, spreads=(5e-4, 1e-3), machine=0)
    results = judged(base, cand)
    assert ab_verdict(results) == (REGRESSION, MIN_ROUNDS)
    first = [c for c, r in results if c.status == REGRESSION and r == MIN_ROUNDS]
    assert first and all(f"round {MIN_ROUNDS}, Holm over {FAMILY}" in c.reason for c in first)
    # the same cases alone (a family of one) stop there too, at a far lower bar
    assert sequential(table_looks(base, cand)[0], 10, RULE, Sequential())[1] == MIN_ROUNDS


def test_identical_samples_stop_with_a_pass():
    runs = [timings(10, seed=3)] * 10
    result, decided = looked(runs, runs)
    assert (result.status, decided) == (OK, MIN_ROUNDS)
    assert "within the 5% minimum effect" in result.reason
    values = np.zeros((FAMILY, 10))
    assert ab_verdict(judged(values, values)) == ("pass", MIN_ROUNDS)


def test_a_stable_unchanged_case_passes_early_and_a_noisy_one_needs_more_rounds():
    _, stable = looked(rounds_of(10, spread=0.005, seed=4), rounds_of(10, spread=0.005, seed=5))
    _, noisy = looked(rounds_of(10, spread=0.02, seed=4), rounds_of(10, spread=0.02, seed=5))
    assert stable is not None and noisy is not None and stable < noisy
    # passing is each comparison's own: the family does not delay it
    base, cand = ab_values(np.random.default_rng(14), spreads=(0.002, 0.03), machine=0)
    together = judged(base, cand)
    alone = [sequential(look, 10, RULE, Sequential()) for look in table_looks(base, cand)]
    passed = [
        (r_f, r_a) for (c, r_f), (_, r_a) in zip(together, alone, strict=True) if c.status == OK
    ]
    assert len(passed) > FAMILY / 2 and all(f == a for f, a in passed)
    assert min(f for f, _ in passed) == MIN_ROUNDS


def test_a_borderline_change_runs_to_max_rounds_and_stays_undecided():
    plan = Sequential(6)
    base, cand = rounds_of(6, spread=0.03, seed=6), rounds_of(6, change=0.05, spread=0.03, seed=7)
    result, decided = looked(base, cand, plan=plan)
    assert (result.status, decided) == (UNDECIDED, None)
    assert result.reason.startswith("open after 6 of at most 6 rounds")
    assert result.change is not None and result.high > RULE.min_effect
    # in an A/B whose other cases are clear, the borderline one keeps it open to the end
    base, cand = ab_values(np.random.default_rng(15), rounds=6, spreads=(1e-3, 2e-3), machine=0)
    base[0], cand[0] = (
        np.log([np.median(r) for r in rounds_of(6, spread=0.03, seed=6)]),
        np.log([np.median(r) for r in rounds_of(6, change=0.05, spread=0.03, seed=7)]),
    )
    results = judged(base, cand, plan=plan)
    assert ab_verdict(results, 6) == (UNDECIDED, 6)
    assert [i for i, (_, r) in enumerate(results) if r is None] == [0]


def test_fewer_rounds_than_the_first_look_decide_nothing():
    result, decided = looked(rounds_of(1), rounds_of(1, change=0.5))
    assert (result.status, decided, result.change) == (UNDECIDED, None, None)


def test_a_family_shares_one_alpha():
    looks = table_looks(*ab_values(np.random.default_rng(16), cases=2))
    with pytest.raises(ValueError, match="share one alpha"):
        sequential_family(looks, [10, 10], [RULE, Rule(alpha=0.05)], Sequential())
    assert sequential_family([], [], [], Sequential()) == []


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
    assert "split over the 4 comparisons by Holm's step-down" in out
    assert "| round |" in out and "Decided by round: round 2: 4" in out
    assert "Holm over 4: alpha" in out  # the failed rows' level
    doc = json.loads(verdict_path.read_text())
    assert GATE.check(doc) == 4 == doc["schema_version"]
    assert doc["sequential"]["decided_by_round"] == {"2": 4}
    assert doc["sequential"]["open"] == 0 and doc["sequential"]["max_rounds"] == 4
    assert (doc["sequential"]["correction"], doc["sequential"]["family"]) == ("holm", 4)
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
    repo = suite_repo(tmp_path / "repo")
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
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "BASE_REV" in errors[0]  # after argparse's usage lines
    assert calls == []
    assert not (tmp_path / "out").exists()


def test_gate_max_rounds_needs_sequential(tmp_path, capsys):
    base, head = ab_dir(tmp_path, 2)
    assert run_main(gate_main, [str(base), str(head), "--max-rounds", "3"]) == 2
    assert "--max-rounds goes with --sequential" in capsys.readouterr().err
