"""The regression gate: its statistics on synthetic samples, and the command over
pytest-benchmark JSON (verdicts, exit codes, machine changes, unusable input)."""

import json

import numpy as np
import pytest

from meprop_bench.commands.common import run_main
from meprop_bench.commands.gate import main
from meprop_bench.stats import (
    IMPROVEMENT,
    OK,
    REGRESSION,
    SHIFT_MIN_BENCHMARKS,
    UNDECIDED,
    Comparison,
    Family,
    GroupChange,
    Rule,
    common_shift,
    compare_speedups,
    compare_times,
    judge_single_run,
    level_changes,
    single_run_statuses,
    speedup_log_ratio,
    time_log_ratio,
)

RULE = Rule()


def timings(n, scale=1e-3, seed=0, spread=0.05):
    """Positive, right-skewed samples around ``scale`` seconds."""
    rng = np.random.default_rng(seed)
    return scale * np.exp(rng.normal(0, spread, n)) * (1 + rng.exponential(0.02, n))


# --- statistics -----------------------------------------------------------------------


def test_identical_distributions_pass():
    verdicts = [
        compare_times([timings(20, seed=2 * i)], [timings(20, seed=2 * i + 1)], RULE)
        for i in range(20)
    ]
    assert all(v.status in (OK, IMPROVEMENT) for v in verdicts)
    assert sum(v.status == OK for v in verdicts) >= 19


def test_the_same_samples_pass_with_no_change():
    samples = timings(15)
    verdict = compare_times([samples], [samples], RULE)
    assert verdict.status == OK
    assert verdict.change == 0
    assert verdict.low <= 0 <= verdict.high


def test_a_clear_slowdown_is_a_regression_with_its_size():
    verdict = compare_times([timings(20, seed=1)], [timings(20, scale=1.2e-3, seed=2)], RULE)
    assert verdict.status == REGRESSION
    assert verdict.change == pytest.approx(0.2, abs=0.05)
    assert verdict.low < verdict.change < verdict.high
    assert verdict.low > 0
    assert verdict.p_value < RULE.alpha


def test_a_clear_speedup_is_an_improvement_not_a_regression():
    verdict = compare_times([timings(20, seed=1)], [timings(20, scale=0.8e-3, seed=2)], RULE)
    assert verdict.status == IMPROVEMENT
    assert verdict.change < 0


def test_a_significant_change_below_the_minimum_effect_passes():
    base = timings(200, seed=1, spread=0.005)
    cand = timings(200, scale=1.02e-3, seed=2, spread=0.005)
    verdict = compare_times([base], [cand], RULE)
    assert verdict.status == OK
    assert verdict.p_value < RULE.alpha
    assert "minimum effect" in verdict.reason
    assert compare_times([base], [cand], Rule(min_effect=0.01)).status == REGRESSION


@pytest.mark.parametrize(("n_base", "n_cand"), [(4, 20), (20, 3), (1, 1)])
def test_too_few_samples_are_undecided_never_guessed(n_base, n_cand):
    verdict = compare_times([timings(n_base)], [timings(n_cand, scale=2e-3)], RULE)
    assert verdict.status == UNDECIDED
    assert "too few samples" in verdict.reason
    assert verdict.change is None and verdict.p_value is None


def test_sizes_at_which_no_test_can_reach_alpha_are_undecided():
    # 3 against 3 samples: the smallest one-sided Mann-Whitney p is 1/20 > 0.01.
    verdict = compare_times([timings(3)], [timings(3, scale=5e-3)], Rule(min_samples=2))
    assert verdict.status == UNDECIDED
    assert "reach alpha" in verdict.reason


def test_all_tied_samples_pass():
    verdict = compare_times([[1e-3] * 10], [[1e-3] * 10], RULE)
    assert verdict.status == OK


@pytest.mark.parametrize("bad", [[1e-3, -1e-3, 1e-3], [1e-3, float("nan")], ["x"]])
def test_samples_must_be_positive_finite_numbers(bad):
    with pytest.raises(ValueError, match="positive, finite"):
        compare_times([bad], [timings(10)], RULE)


def shifted_runs(shifts, seed, scale=1e-3):
    """One run of 10 samples per shift: whole runs slowed by a busy machine."""
    return [timings(10, scale * (1 + shift), seed + i) for i, shift in enumerate(shifts)]


def test_one_run_that_shifted_as_a_whole_is_not_a_regression():
    """Pooled as if independent, these samples make a regression; but one candidate
    run ran as fast as the baseline, the other 1.5x slower: a busy machine."""
    base, cand = shifted_runs([0, 0], seed=0), shifted_runs([0.5, 0], seed=10)
    assert compare_times([np.concatenate(base)], [np.concatenate(cand)], RULE).status == REGRESSION
    verdict = compare_times(base, cand, RULE)
    assert verdict.status == OK
    assert verdict.low < 0


def test_a_slowdown_in_every_run_is_a_regression():
    base = shifted_runs([0, 0.02, -0.01], seed=0)
    cand = shifted_runs([0.2, 0.22, 0.19], seed=10)
    assert compare_times(base, cand, RULE).status == REGRESSION


def test_a_slower_sparse_kernel_is_a_speedup_regression():
    base = [timings(20, scale=4e-3, seed=1)], [timings(20, seed=2)]
    cand = [timings(20, scale=4e-3, seed=4)], [timings(20, scale=1.25e-3, seed=3)]
    verdict = compare_speedups(base, cand, RULE)
    assert verdict.status == REGRESSION
    assert verdict.change == pytest.approx(0.25, abs=0.06)


def test_a_uniform_slowdown_leaves_the_speedup_unchanged():
    """What a change of machine does: dense and sparse slower alike."""
    base = [timings(20, scale=4e-3, seed=1)], [timings(20, seed=2)]
    cand = [timings(20, scale=6e-3, seed=3)], [timings(20, scale=1.5e-3, seed=4)]
    assert compare_speedups(base, cand, RULE).status == OK


def test_a_run_that_slowed_dense_and_sparse_alike_cancels_in_the_speedup():
    shifts = [0, 0.5]
    base = shifted_runs(shifts, 0, 4e-3), shifted_runs(shifts, 10)
    cand = shifted_runs(shifts[::-1], 20, 4e-3), shifted_runs(shifts[::-1], 30, 1.2e-3)
    verdict = compare_speedups(base, cand, RULE)
    assert verdict.status == REGRESSION
    assert verdict.change == pytest.approx(0.2, abs=0.06)


def test_with_runs_the_change_lies_inside_its_own_interval():
    """Runs of unequal length and level: the pooled medians pick different runs for the
    dense and the sparse case (a speedup of 2.2x against 4x in every run). The change
    is the run-level estimate its interval is built around, not the pooled one."""

    def runs(levels, counts, seed, scale=1e-3):
        return [
            timings(n, scale * (1 + lv), seed + i)
            for i, (lv, n) in enumerate(zip(levels, counts, strict=True))
        ]

    base = runs([0, 0.6, 0.6], [30, 10, 10], 0, 4e-3), runs([0, 0.6, 0.6], [10, 30, 30], 10)
    cand = runs([0] * 3, [10] * 3, 20, 4e-3), runs([0] * 3, [10] * 3, 30)
    speedup = compare_speedups(base, cand, RULE)
    assert speedup_log_ratio(base, cand) < -0.3  # pooled: the candidate looks 1.4x better
    assert speedup.low <= speedup.change <= speedup.high
    assert speedup.change == pytest.approx(0.0, abs=0.05)
    for side in (0, 1):
        times = compare_times(base[side], cand[side], RULE)
        assert times.low <= times.change <= times.high


def test_speedups_with_too_few_samples_are_undecided():
    verdict = compare_speedups(([timings(20)], [timings(4)]), ([timings(20)], [timings(20)]), RULE)
    assert verdict.status == UNDECIDED


# --- one run a side: the common shift --------------------------------------------------


def single_runs(n, seed, shift=0.0, slowed=(), factor=1.5, scale=1e-3):
    """``n`` benchmarks of one run each (as compare_times takes them): the whole run
    ``1 + shift`` slower, benchmark ``i`` in ``slowed`` ``factor`` times more, each at
    its own scale with a 2% run-level jitter."""
    rng = np.random.default_rng(seed)
    return [
        [timings(20, scale * (1 + i / 3) * (1 + shift) * (factor if i in slowed else 1)
                 * np.exp(rng.normal(0, 0.02)), seed * 1000 + i)]
        for i in range(n)
    ]  # fmt: skip


def judged(base, cand, rule=RULE):
    """Each benchmark compared against the common shift of them all."""
    shift = common_shift([time_log_ratio(b, c) for b, c in zip(base, cand, strict=True)], rule)
    return shift, [compare_times(b, c, rule, shift) for b, c in zip(base, cand, strict=True)]


def test_the_common_shift_is_the_median_log_ratio_with_a_robust_spread():
    ratios = [0.17, 0.2, 0.23, 0.19, 0.21, 0.2, 3.0]  # one benchmark 20x off
    shift = common_shift(ratios, RULE)
    assert shift.level == pytest.approx(0.2)
    assert shift.change == pytest.approx(np.expm1(0.2))
    assert shift.spread == pytest.approx(0.0, abs=0.02)
    assert shift.count == 7 and shift.shared
    assert 0 < shift.noise < 0.2
    assert not common_shift([0.01, -0.01, 0.0, 0.02, -0.02], RULE).shared


def test_fewer_benchmarks_than_needed_leave_the_noise_unknown():
    shift = common_shift([0.2] * (SHIFT_MIN_BENCHMARKS - 1), RULE)
    assert shift.noise == float("inf")
    assert shift.shared  # four benchmarks all 22% slower: the whole run moved


def test_a_common_shift_only_leaves_every_benchmark_within_it():
    base, cand = single_runs(12, seed=1), single_runs(12, seed=2, shift=0.3)
    shift, results = judged(base, cand)
    assert shift.change == pytest.approx(0.3, abs=0.05) and shift.shared
    assert {r.status for r in results} == {OK}
    assert all(r.shift == pytest.approx(shift.change) for r in results)


def test_one_benchmark_beyond_the_common_shift_is_a_regression():
    base, cand = single_runs(12, seed=1), single_runs(12, seed=2, shift=0.3, slowed={4})
    _, results = judged(base, cand)
    assert [i for i, r in enumerate(results) if r.status != OK] == [4]
    assert results[4].status == REGRESSION
    assert results[4].change == pytest.approx(0.5, abs=0.08)  # beyond the shift
    assert "than the common shift (+3" in results[4].reason


def test_pure_noise_is_within_the_noise():
    for seed in range(5):
        shift, results = judged(single_runs(12, 2 * seed), single_runs(12, 2 * seed + 1))
        assert not shift.shared
        assert {r.status for r in results} <= {OK}


def test_a_change_within_the_run_noise_is_not_a_regression():
    """Significant and beyond the minimum effect, but benchmarks scatter this much."""
    rng = np.random.default_rng(3)
    scatter = np.exp(rng.normal(0, 0.15, 12))
    base = single_runs(12, seed=1)
    cand = [[timings(20, 1e-3 * (1 + i / 3) * s, 50 + i)] for i, s in enumerate(scatter)]
    shift, results = judged(base, cand)
    assert shift.spread > 0.1
    assert REGRESSION not in {r.status for r in results}
    assert any("within the run's noise" in r.reason for r in results)


def test_few_benchmarks_cannot_tell_a_change_from_the_run_noise():
    base, cand = single_runs(3, seed=1), single_runs(3, seed=2, slowed={0}, factor=1.5)
    _, results = judged(base, cand)
    assert results[0].status == UNDECIDED
    assert results[0].change is not None and "cannot tell" in results[0].reason


def test_a_common_shift_needs_one_run_a_side():
    shift = common_shift([0.1] * 6, RULE)
    runs = shifted_runs([0, 0], seed=0)
    with pytest.raises(ValueError, match="one run a side"):
        compare_times(runs, runs, RULE, shift)


def test_speedups_are_judged_against_their_common_shift():
    """Every sparse case 1.25x slower against its dense one (a machine state that hits
    them apart); one case 1.6x more."""
    dense = single_runs(20, seed=1, scale=4e-3)
    base = [(d, s) for d, s in zip(dense, single_runs(20, seed=2), strict=True)]
    slower = single_runs(20, seed=3, shift=0.25, slowed={7}, factor=1.6)
    cand = [(d, s) for d, s in zip(single_runs(20, seed=4, scale=4e-3), slower, strict=True)]
    shift = common_shift([speedup_log_ratio(b, c) for b, c in zip(base, cand, strict=True)], RULE)
    results = [compare_speedups(b, c, RULE, shift) for b, c in zip(base, cand, strict=True)]
    assert shift.change == pytest.approx(0.25, abs=0.06) and shift.shared
    assert [i for i, r in enumerate(results) if r.status != OK] == [7]
    assert results[7].status == REGRESSION


def test_a_benchmark_beyond_the_noise_alone_is_undecided_and_with_its_group_decided():
    def result(status, change):
        return Comparison(status, "why", 20, 20, change, change - 0.1, change + 0.1, 0.001, 0.0)

    def group(status, change):
        return GroupChange("time", "method unified", 9, status, "why", change, change, 0.001)

    worse, better, ok = result(REGRESSION, 0.5), result(IMPROVEMENT, -0.4), result(OK, 0.2)
    slower, faster = group(REGRESSION, 0.2), group(IMPROVEMENT, -0.2)
    alone = single_run_statuses([worse, better, ok], [[], [], []], [RULE] * 3)
    assert [r.status for r in alone] == [UNDECIDED, OK, OK]
    assert "alone" in alone[0].reason and "alone" in alone[1].reason
    grouped = single_run_statuses([worse, better, ok], [[slower], [slower], [slower]], [RULE] * 3)
    assert [r.status for r in grouped] == [REGRESSION, OK, REGRESSION]
    assert "with its group (method unified +20.0%)" in grouped[2].reason
    assert single_run_statuses([better], [[faster]], [RULE])[0].status == IMPROVEMENT
    within = result(OK, 0.03)  # the group's way, but within the minimum effect
    assert single_run_statuses([within], [[slower]], [RULE])[0].status == OK


# --- one run a side: groups judged together ------------------------------------------

METHODS = {"dense": 7, "randk": 2, "topk": 42, "unified": 30}  # the sweep's benchmarks


def aa_ratios(seed, slowed=(), factor=1.0, shift=0.0, bursts=0.08, spread=0.06):
    """Log ratios of one run a side, one per benchmark of :data:`METHODS` (in order):
    normal noise of ``spread``, and a fraction ``bursts`` of benchmarks hit by
    interference in one run or the other (2x to 400x either way), as identical sweeps
    on a shared machine show; the methods in ``slowed`` ``factor`` times slower."""
    rng = np.random.default_rng(seed)
    labels = [m for m, count in METHODS.items() for _ in range(count)]
    ratios = rng.normal(shift, spread, len(labels))
    hit = rng.random(len(labels)) < bursts
    ratios[hit] += rng.choice([-1, 1], hit.sum()) * rng.uniform(np.log(2), 6, hit.sum())
    ratios += np.log(factor) * np.isin(labels, list(slowed))
    return labels, ratios


def judge(labels, ratios, rule=RULE):
    groups = {f"method {m}": [label == m for label in labels] for m in METHODS}
    shifts, judged = judge_single_run([Family("time", ratios, groups)], rule)
    return shifts["time"], judged


def changed(judged):
    return {(g.name, g.status) for g in judged if g.status != OK}


def test_heavy_tailed_noise_moves_no_group():
    """A/A-like: normal noise and bursts of 2x-400x on 8% of the benchmarks."""
    flagged = [changed(judge(*aa_ratios(seed))[1]) for seed in range(200)]
    assert sum(map(bool, flagged)) <= 2  # alpha = 0.01 over the whole run


def test_a_method_confined_slowdown_is_its_groups_regression():
    """Every unified case 20% slower amid the same bursts: its group, and only it."""
    found = []
    for seed in range(20):
        shift, judged = judge(*aa_ratios(seed, slowed={"unified"}, factor=1.2))
        found.append(changed(judged))
        assert abs(shift.change) < 0.04  # the shift of the others, not dragged
    hits = [f == {("method unified", REGRESSION)} for f in found]
    assert sum(hits) >= 19
    assert all(f <= {("method unified", REGRESSION)} for f in found)
    unified = next(g for g in judge(*aa_ratios(0, {"unified"}, 1.2))[1] if "unified" in g.name)
    assert unified.change == pytest.approx(0.2, abs=0.04)
    assert "30 benchmarks 1.21x worse than the common shift, together" in unified.reason


def test_a_common_shift_moves_no_group_and_is_shared():
    shift, judged = judge(*aa_ratios(3, shift=np.log(1.3)))
    assert shift.shared and shift.change == pytest.approx(0.3, abs=0.05)
    assert not changed(judged)


def test_pure_noise_moves_no_group():
    judged = [judge(*aa_ratios(seed, bursts=0)) for seed in range(200)]
    assert sum(bool(changed(groups)) for _, groups in judged) <= 2
    assert sum(shift.shared for shift, _ in judged) <= 2


def test_small_groups_are_not_tested():
    labels, ratios = aa_ratios(0, slowed={"randk"}, factor=3.0)
    assert "method randk" not in {g.name for g in judge(labels, ratios)[1]}


def strategies(seed, moved, factor):
    """Log ratios of 60 benchmarks: unified/compact, unified/native, topk/masked,
    topk/native (12 each) and dense (12); the strategies in ``moved`` ``factor`` slower."""
    rng = np.random.default_rng(seed)
    names = ["unified/compact", "unified/native", "topk/masked", "topk/native", "dense/dense"]
    labels = [name for name in names for _ in range(12)]
    ratios = rng.normal(0, 0.04, len(labels)) + np.log(factor) * np.isin(labels, list(moved))
    groups = {f"strategy {n}": [label == n for label in labels] for n in names[:4]}
    for method in ("unified", "topk", "dense"):
        groups[f"method {method}"] = [label.startswith(method + "/") for label in labels]
    return judge_single_run([Family("time", ratios, groups)], RULE)[1]


def test_one_strategy_moving_alone_is_undecided_not_a_regression():
    """What one kernel's state in one process does (unified/compact 1.5x slower, its
    method's other strategy not): undecided, and so is its method."""
    judged = {g.name: g for g in strategies(0, {"unified/compact"}, 1.5)}
    assert judged["strategy unified/compact"].status == UNDECIDED
    assert "but alone in method unified" in judged["strategy unified/compact"].reason
    assert judged["method unified"].status in (UNDECIDED, OK)
    assert REGRESSION not in {g.status for g in judged.values()}
    faster = {g.name: g for g in strategies(0, {"unified/compact"}, 1 / 1.5)}
    assert faster["strategy unified/compact"].status == OK


def test_a_method_whose_every_strategy_moved_is_a_regression_with_them():
    judged = {g.name: g for g in strategies(0, {"unified/compact", "unified/native"}, 1.2)}
    assert changed(judged.values()) == {
        ("method unified", REGRESSION),
        ("strategy unified/compact", REGRESSION),
        ("strategy unified/native", REGRESSION),
    }


def test_a_method_with_a_strategy_that_did_not_move_is_undecided():
    judged = {g.name: g for g in strategies(1, {"unified/compact"}, 2.0)}
    assert judged["method unified"].status == UNDECIDED
    assert "not all of it moved (strategy unified/native" in judged["method unified"].reason


def test_when_two_groups_split_a_kind_the_other_kind_names_the_one_that_moved():
    """Speedups of unified and top-k cases half and half: their median cannot say which
    moved, the times (with the dense cases) can."""
    rng = np.random.default_rng(1)
    methods = ["dense"] * 12 + ["topk"] * 12 + ["unified"] * 12
    times = rng.normal(0, 0.03, 36) + np.log(1.2) * np.isin(methods, ["unified"])
    speedups = times[12:] - times[:12].mean()
    groups = {m: [x == m for x in methods] for m in ("dense", "topk", "unified")}
    families = [
        Family("time", times, {f"method {m}": v for m, v in groups.items()}),
        Family("speedup", speedups, {f"method {m}": v[12:] for m, v in groups.items()}),
    ]
    shifts, judged = judge_single_run(families, RULE)
    assert changed(judged) == {("method unified", REGRESSION)}
    assert abs(shifts["speedup"].change) < 0.03


# --- level changes across stored runs ------------------------------------------------


def wiggle(levels, spread=0.02, seed=0):
    """One value per run at the given levels, each run ``spread`` off at random."""
    return np.asarray(levels, float) * np.exp(
        np.random.default_rng(seed).normal(0, spread, len(levels))
    )


def test_level_changes_mark_the_first_run_of_each_new_level():
    assert level_changes(wiggle([8] * 6 + [6] * 6)) == [6]
    assert level_changes(wiggle([8] * 5 + [4] * 5 + [8] * 5, seed=1)) == [5, 10]


def test_noise_and_one_odd_run_are_no_level_change():
    marked = [level_changes(wiggle([8] * 12, spread=0.05, seed=seed)) for seed in range(40)]
    assert sum(map(bool, marked)) <= 1  # about 1% of such series get a mark
    assert level_changes(wiggle([8] * 5 + [24] + [8] * 6)) == []


def test_a_level_change_needs_the_minimum_effect_and_enough_runs():
    assert level_changes(wiggle([8] * 6 + [8.2] * 6, spread=0.001)) == []  # 2.5%
    assert level_changes(wiggle([8] * 6 + [8.2] * 6, spread=0.001), min_effect=0.01) == [6]
    assert level_changes([8, 8, 8, 4, 4]) == []  # a level needs 3 runs, each side


def test_rule_rejects_nonsense():
    with pytest.raises(ValueError):
        Rule(alpha=0.7)
    with pytest.raises(ValueError):
        Rule(min_effect=-0.1)


# --- the command over JSON ------------------------------------------------------------


def bench(name, samples, method="unified", group="backward P", pair_key="P", threads=2, **info):
    extra = {"method": method, "pair_key": pair_key, "threads": threads, "case_id": name, **info}
    return {
        "group": group,
        "name": f"test_backward[{name}]",
        "fullname": f"suites/test_backward.py::test_backward[{name}]",
        "params": None,
        "param": name,
        "extra_info": extra,
        "options": {},
        "stats": {"median": float(np.median(samples)), "data": [float(s) for s in samples]},
    }


def write(path, benchmarks, node="vm", cpu="AMD EPYC", gpus=()):
    info = {"node": node, "cpu": {"brand_raw": cpu}, "gpus": [{"name": g} for g in gpus]}
    doc = {"machine_info": info, "commit_info": {}, "benchmarks": benchmarks, "version": "5.2.3"}
    path.write_text(json.dumps(doc))
    return str(path)


def pair(seed, sparse_scale=1e-3, dense_scale=4e-3, n=20):
    return [
        bench("dense", timings(n, dense_scale, seed), method="dense"),
        bench("sparse", timings(n, sparse_scale, seed + 1)),
    ]


def gate(*args, capsys=None):
    code = run_main(main, [str(a) for a in args])
    return code, *(capsys.readouterr() if capsys else ("", ""))


def test_same_code_passes_and_writes_the_verdict(tmp_path, capsys):
    base, cand = write(tmp_path / "b.json", pair(0)), write(tmp_path / "c.json", pair(10))
    code, out, _ = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 0
    assert "Benchmark gate: PASS" in out
    assert "A side holds a single run" in out
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["schema"] == "meprop-bench/gate" and verdict["verdict"] == "pass"
    kinds = sorted((row["kind"], row["name"]) for row in verdict["rows"])
    assert kinds == [
        ("speedup", "test_backward[sparse]"),
        ("time", "test_backward[dense]"),
        ("time", "test_backward[sparse]"),
    ]


def sweep(seed, n=12, shift=0.0, slowed=(), factor=1.5, methods=("unified",)):
    """A single-run sweep of ``n`` dense/sparse groups (one sparse case per method in
    ``methods``): the whole run ``1 + shift`` slower, sparse case ``i`` of the first
    method (and every case of a method in ``slowed``) ``factor`` times more."""
    dense = single_runs(n, seed, shift, scale=4e-3)
    out = []
    for m, method in enumerate(methods):
        mine = set(range(n)) if method in slowed else {i for i in slowed if m == 0}
        sparse = single_runs(n, seed + 500 * (m + 1), shift, mine, factor)
        for i in range(n):
            if m == 0:
                out.append(bench(f"dense{i}", dense[i][0], method="dense", pair_key=f"P{i}"))
            name = f"sparse{i}" if m == 0 else f"{method}{i}"
            out.append(bench(name, sparse[i][0], method=method, pair_key=f"P{i}"))
    return out


def failures(path):
    rows = json.loads(path.read_text())["rows"]
    return {(r["kind"], r["name"]) for r in rows if r["status"] == REGRESSION}


def undecided(path):
    rows = json.loads(path.read_text())["rows"]
    return {(r["kind"], r["name"]) for r in rows if r["status"] == UNDECIDED}


@pytest.mark.parametrize("threads, device, advised", [(2, "cpu", True), (1, "cpu", False),
                                                      (2, "cuda", False)])  # fmt: skip
def test_single_runs_on_several_cpu_threads_advise_one_thread(
    tmp_path, capsys, threads, device, advised
):
    def side(seed):
        return [
            bench(name, timings(20, 1e-3, seed + i), threads=threads, device=device)
            for i, name in enumerate(("dense", "sparse"))
        ]

    base, cand = write(tmp_path / "b.json", side(0)), write(tmp_path / "c.json", side(10))
    _, out, _ = gate(base, cand, capsys=capsys)
    assert ("2 CPU benchmarks ran on more than one thread" in out) == advised
    assert ("--meprop-threads 1" in out) == advised


def test_one_benchmark_beyond_the_common_shift_fails_the_gate_undecided(tmp_path, capsys):
    """Alone, one benchmark 1.5x slower than the common shift is beyond the noise, but
    one run a side cannot tell it from a burst of interference: exit 3, named."""
    slowed = sweep(1, shift=0.3, slowed={3})
    slowed[7]["extra_info"]["injected_slowdown"] = 0.5  # sparse3, as the suites record it
    base = write(tmp_path / "b.json", sweep(0))
    cand = write(tmp_path / "c.json", slowed)
    code, out, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 3
    assert "Benchmark gate: UNDECIDED" in out
    assert "Common shift of the times (one run a side): **+3" in out
    assert "injected slowdown of 50% (1 of 24 benchmarks)" in out
    assert "2 benchmarks changed on their own" in err
    assert undecided(tmp_path / "v.json") == {
        ("time", "test_backward[sparse3]"),
        ("speedup", "test_backward[sparse3]"),
    }
    assert "but alone" in out


def test_one_method_beyond_the_common_shift_fails_the_gate(tmp_path, capsys):
    """Every unified case 20% slower, the top-k cases not: a regression of the group,
    in times and speedups, and the shift stays that of the others."""
    methods = ("unified", "topk")
    base = write(tmp_path / "b.json", sweep(0, methods=methods))
    cand = write(tmp_path / "c.json", sweep(1, slowed={"unified"}, factor=1.2, methods=methods))
    code, out, _ = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 1
    assert "Groups (one run a side):" in out
    verdict = json.loads((tmp_path / "v.json").read_text())
    changed = {(g["kind"], g["name"]) for g in verdict["groups"] if g["status"] != OK}
    assert changed == {("time", "method unified"), ("speedup", "method unified")}
    for g in verdict["groups"]:
        if g["status"] == REGRESSION:
            assert g["change"] == pytest.approx(0.2, abs=0.05) and g["p_value"] < 0.01
    assert abs(verdict["shifts"]["time"]["change"]) < 0.03
    assert {name for kind, name in failures(tmp_path / "v.json")} == {
        f"test_backward[sparse{i}]" for i in range(12)
    }


def test_one_strategy_moving_alone_is_undecided_exit_3(tmp_path, capsys):
    """unified/compact 1.5x slower, unified/native and the rest not: what one kernel's
    state in one process looks like, so undecided, not a regression."""
    kinds = [("dense", "dense"), ("unified", "compact"), ("unified", "native"), ("topk", "masked")]

    def strategies(seed, slow):
        out = []
        for k, (method, strategy) in enumerate(kinds):
            factor = 1.5 if slow and strategy == "compact" else 1.0
            scale = 4e-3 if method == "dense" else 1e-3
            runs = single_runs(12, seed + 100 * k, scale=scale, slowed=range(12), factor=factor)
            for i in range(12):
                name = f"{method}-{strategy}{i}"
                out.append(bench(name, runs[i][0], method, pair_key=f"P{i}", strategy=strategy))
        return out

    base = write(tmp_path / "b.json", strategies(0, False))
    cand = write(tmp_path / "c.json", strategies(1, True))
    code, out, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 3
    assert "| undecided | time | strategy unified/compact | 12 |" in out
    assert "times of strategy unified/compact" in err and "not all of their method" in err
    groups = json.loads((tmp_path / "v.json").read_text())["groups"]
    status = {(g["kind"], g["name"]): g["status"] for g in groups}
    assert status["time", "strategy unified/compact"] == UNDECIDED
    assert REGRESSION not in status.values()
    assert not failures(tmp_path / "v.json")


def test_a_uniform_shift_with_one_run_a_side_is_undecided_exit_3(tmp_path, capsys):
    base = write(tmp_path / "b.json", sweep(0))
    cand = write(tmp_path / "c.json", sweep(1, shift=0.3))
    code, out, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 3
    assert "Benchmark gate: UNDECIDED" in out and "**Undecided (exit 3):**" in out
    assert "\nundecided: all times moved together by +3" in err
    assert "python -m meprop_bench.ab BASE_REV --rounds auto` resolves it" in err
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert (verdict["verdict"], verdict["exit_code"]) == ("undecided", 3)
    assert verdict["shifts"]["time"]["shared"] and not verdict["shifts"]["speedup"]["shared"]
    assert not failures(tmp_path / "v.json")


def test_a_common_shift_within_the_minimum_effect_passes(tmp_path, capsys):
    base = write(tmp_path / "b.json", sweep(0))
    cand = write(tmp_path / "c.json", sweep(1, shift=0.02))
    code, out, _ = gate(base, cand, capsys=capsys)
    assert code == 0
    assert "Common shift of the times (one run a side): **+" in out


def test_pure_noise_passes_the_gate(tmp_path, capsys):
    for seed in range(0, 6, 2):
        base = write(tmp_path / "b.json", sweep(seed))
        cand = write(tmp_path / "c.json", sweep(seed + 1))
        assert gate(base, cand, capsys=capsys)[0] == 0


def test_one_run_of_two_benchmarks_cannot_tell_a_change_from_the_run(tmp_path, capsys):
    base = write(tmp_path / "b.json", pair(0))
    cand = write(tmp_path / "c.json", pair(10, sparse_scale=1.3e-3))
    code, _, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 3
    assert "changed on their own, beyond the run's noise or where it is unknown" in err
    text = (tmp_path / "v.json").read_text()
    assert "Infinity" not in text and json.loads(text)["shifts"]["time"]["noise"] is None
    rows = json.loads(text)["rows"]
    times = [r for r in rows if r["kind"] == "time"]
    assert {r["status"] for r in times} == {UNDECIDED}
    assert all("cannot tell it from the run's noise" in r["reason"] for r in times)


def test_runs_resolve_a_uniform_shift(tmp_path, capsys):
    """What undecided asks for: with runs a side, a uniform slowdown is a regression."""
    for side, first, shift in (("base", 0, 0.0), ("head", 10, 0.2)):
        (tmp_path / side).mkdir()
        for seed in range(first, first + 3):
            write(tmp_path / side / f"run-{seed}.json", sweep(seed, shift=shift))
    code, out, _ = gate(tmp_path / "base", tmp_path / "head", capsys=capsys)
    assert code == 1
    assert "Common shift" not in out


def test_a_copied_run_counts_once(tmp_path, capsys):
    """A file copied (byte for byte, or rewritten with the same run: machine, start time
    and samples) is one run, not two: one run a side stays undecided, never a regression
    whose interval has no width."""
    base = tmp_path / "base"
    cand = tmp_path / "head"
    for side, doc in ((base, sweep(0)), (cand, sweep(1, shift=0.2))):
        side.mkdir()
        write(side / "a.json", doc)
        (side / "copy.json").write_bytes((side / "a.json").read_bytes())
        rewritten = json.loads((side / "a.json").read_text())
        (side / "rewritten.json").write_text(json.dumps(rewritten, indent=1))
    code, _, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 3, err
    for name in ("copy.json", "rewritten.json"):
        assert f"{base / name}: the same run as {base / 'a.json'}; counted once" in err
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert not failures(tmp_path / "v.json")
    assert verdict["baseline"]["files"] == [str(base / "a.json")]


def test_cases_in_one_file_only_are_listed(tmp_path, capsys):
    extra = bench("topk", timings(20, seed=5))
    base = write(tmp_path / "b.json", [*pair(0), extra])
    cand = write(tmp_path / "c.json", [*pair(10), bench("randk", timings(20, seed=6))])
    code, out, _ = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 0
    assert "Only in the baseline (1):** `suites/test_backward.py::test_backward[topk]`" in out
    verdict = json.loads((tmp_path / "v.json").read_text())
    assert verdict["only_in_candidate"] == ["suites/test_backward.py::test_backward[randk]"]


def test_a_change_of_machine_refuses_times_but_gates_speedups(tmp_path, capsys):
    base = write(tmp_path / "b.json", pair(0), node="runner-1", gpus=["NVIDIA H100"])
    cand = write(tmp_path / "c.json", pair(10, 2e-3, 8e-3), node="runner-2", gpus=["NVIDIA A100"])
    code, out, _ = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 0  # everything twice as slow, speedups unchanged
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert {r["kind"]: r["status"] for r in rows} == {"time": "refused", "speedup": OK}
    assert "Different machines" in out and "NVIDIA A100" in out

    code, _, err = gate(base, cand, "--allow-machine-change", capsys=capsys)
    assert code == 3  # the times, now compared, all twice as long: one run a side
    assert "all times moved together by +99" in err


def test_nothing_decidable_exits_2_with_the_reason(tmp_path, capsys):
    only_dense = [bench("dense", timings(20), method="dense")]
    base = write(tmp_path / "b.json", only_dense, node="a")
    cand = write(tmp_path / "c.json", only_dense, node="b")
    code, _, err = gate(base, cand, capsys=capsys)
    assert code == 2
    assert err.count("\n") == 1 and "refused: different machines" in err

    few = write(tmp_path / "few.json", [bench("dense", timings(3), method="dense")], node="a")
    code, out, err = gate(base, few, capsys=capsys)
    assert code == 2
    assert "too few samples" in err and "undecided" in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no pytest-benchmark JSON found"),
        ("{not json", "not a JSON file"),
        ('{"benchmarks": 3}', "is not a pytest-benchmark JSON file"),
        ('{"schema": "meprop-bench/training", "runs": []}', "is not a pytest-benchmark JSON"),
        ("[1, 2]", "is not a pytest-benchmark JSON file"),
        ('{"machine_info": {}, "benchmarks": []}', "no benchmarks"),
        ("truncated", "not a JSON file"),
        (b"\xff\xfe\x00junk", "not a JSON file"),
        ("empty directory", "no pytest-benchmark JSON found"),
    ],
)
def test_unusable_input_is_one_line_and_exit_2(tmp_path, capsys, content, message):
    good = write(tmp_path / "good.json", pair(0))
    bad = tmp_path / "bad.json"
    if content == "truncated":
        bad.write_text((tmp_path / "good.json").read_text()[:300])
    elif content == "empty directory":
        bad.mkdir()
    elif isinstance(content, bytes):
        bad.write_bytes(content)
    elif content is not None:
        bad.write_text(content)
    for args in ((bad, good), (good, bad)):
        code, _, err = gate(*args, capsys=capsys)
        assert code == 2
        assert err.count("\n") == 1 and err.startswith("error: ") and message in err


def test_files_with_no_benchmark_in_common_are_exit_2_never_a_pass(tmp_path, capsys):
    base = write(tmp_path / "b.json", pair(0))
    other = [bench("elsewhere", timings(20), method="dense", pair_key="Q")]
    code, out, err = gate(base, write(tmp_path / "c.json", other), capsys=capsys)
    assert code == 2
    assert "UNUSABLE" in out
    assert err == "error: no benchmark is present in both the baseline and the candidate\n"


def test_missing_raw_samples_tell_how_to_get_them(tmp_path, capsys):
    benchmarks = pair(0)
    del benchmarks[0]["stats"]["data"]
    code, _, err = gate(
        write(tmp_path / "b.json", benchmarks), write(tmp_path / "c.json", pair(1)), capsys=capsys
    )
    assert code == 2
    assert "no raw samples" in err and "--benchmark-json" in err


def test_the_verdict_file_is_never_overwritten_unless_forced(tmp_path, capsys):
    base, cand = write(tmp_path / "b.json", pair(0)), write(tmp_path / "c.json", pair(1))
    (tmp_path / "v.json").write_text("keep")
    code, _, err = gate(base, cand, "--json", tmp_path / "v.json", capsys=capsys)
    assert code == 2 and "already exists" in err
    assert (tmp_path / "v.json").read_text() == "keep"
    code, _, _ = gate(base, cand, "--json", tmp_path / "v.json", "--force", capsys=capsys)
    assert code == 0 and "verdict" in json.loads((tmp_path / "v.json").read_text())


def test_the_markdown_is_appended_to_the_step_summary(tmp_path, capsys, monkeypatch):
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    gate(write(tmp_path / "b.json", pair(0)), write(tmp_path / "c.json", pair(1)), capsys=capsys)
    text = summary.read_text()
    assert text.startswith("earlier step\n") and "| verdict | kind | benchmark |" in text


def test_group_thresholds_override_the_minimum_effect(tmp_path, capsys):
    def step(scale, seed):
        return [bench("step", timings(30, scale, seed, 0.01), group="train_step h=500 B=50")]

    for side, scale in (("b", 1e-3), ("c", 1.1e-3)):
        (tmp_path / side).mkdir()
        for seed in range(3):
            write(tmp_path / side / f"{seed}.json", step(scale, seed + 10 * (side == "c")))
    base, cand = tmp_path / "b", tmp_path / "c"
    assert gate(base, cand, capsys=capsys)[0] == 1
    assert gate(base, cand, "--group-threshold", "train_step*=0.2", capsys=capsys)[0] == 0
    code, _, err = gate(base, cand, "--group-threshold", "selection*=0.2", capsys=capsys)
    assert code == 1 and "matches no benchmark group" in err


def test_a_side_can_be_several_files_whose_samples_pool(tmp_path, capsys):
    for side, seeds in (("base", (0, 2)), ("head", (10, 12))):
        (tmp_path / side).mkdir()
        for seed in seeds:
            write(tmp_path / side / f"run-{seed}.json", pair(seed))
    code, out, _ = gate(
        tmp_path / "base", str(tmp_path / "h*"), "--json", tmp_path / "v.json", capsys=capsys
    )
    assert code == 0
    assert "single run" not in out
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert {(r["n_base"], r["n_cand"]) for r in rows} == {(40, 40)}


def test_speedups_pair_only_within_group_and_thread_count(tmp_path, capsys):
    benchmarks = [
        bench("dense", timings(20, 4e-3), method="dense"),
        bench("other-group", timings(20), group="selection P"),
        bench("other-threads", timings(20), threads=1),
    ]
    path = write(tmp_path / "b.json", benchmarks)
    gate(path, path, "--json", tmp_path / "v.json", capsys=capsys)
    rows = json.loads((tmp_path / "v.json").read_text())["rows"]
    assert not [r for r in rows if r["kind"] == "speedup"]
