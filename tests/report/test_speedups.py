"""Speedups as the report computes them (meprop_bench.report.speedup): the benchmark
frame, pairing each sparse case with its dense one, intervals, repeated runs, the time
split and the training frames. Inputs: small documents from tests/documents.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from documents import (
    bench_doc,
    entry,
    full_sweep,
    kernel_case,
    samples,
    train_step_case,
    training_doc,
    write,
)

from meprop_bench.report import (
    bootstrap_ratio,
    load_benchmarks,
    load_trainings,
    pair_speedups,
    tables,
    time_split,
    training_runs,
    training_summary,
)
from meprop_bench.report.speedup import across_runs


def test_benchmark_frame_is_tidy(tmp_path):
    foreign = entry({}, 1e-3)  # a pytest-benchmark case from another project
    path = write(tmp_path / "b.json", bench_doc([*full_sweep()[:3], foreign]))
    frame = load_benchmarks([path])
    assert len(frame) == 4
    for column in ("source", "run_id", "machine", "device_name", "suite", "method", "n", "k",
                   "k_over_n", "pair_key", "median", "iqr", "rounds", "samples"):  # fmt: skip
        assert column in frame
    assert frame["run_id"].iloc[0] == "b.json@2026-01-01T00:00:00+00:00"
    assert frame["device_name"].iloc[0] == "cpu (Test CPU)"
    assert len(frame["samples"].iloc[0]) == 8
    assert frame["suite"].iloc[3] is None
    pairing = pair_speedups(frame)
    assert "not from a meprop-bench suite" in set(pairing.unpaired["reason"])


def test_pairing_picks_the_dense_case_of_the_same_shape_and_threads(tmp_path):
    cases = [
        kernel_case("backward", "dense", "dense", 64, 64, median=8e-3),
        kernel_case("backward", "dense", "dense", 64, 64, threads=2, median=5e-3),
        kernel_case("backward", "dense", "dense", 128, 128, median=30e-3),
        kernel_case("layer", "dense", "dense", 64, 64, median=50e-3),
        kernel_case("backward", "unified", "compact", 64, 8, median=1e-3),
    ]
    frame = load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))])
    speedups = pair_speedups(frame).speedups
    assert len(speedups) == 1
    row = speedups.iloc[0]
    assert row["dense_median"] == pytest.approx(frame["median"].iloc[0])
    assert row["speedup"] == pytest.approx(frame["median"].iloc[0] / frame["median"].iloc[4])
    assert row["ci_low"] <= row["speedup"] <= row["ci_high"]
    assert row["ideal"] == pytest.approx(8.0)
    assert row["efficiency"] == pytest.approx(row["speedup"] / 8)


def test_a_step_timed_beside_its_dense_partner_is_judged_on_that_pairing(tmp_path):
    # The dense case ran in a slow stretch (8 ms: 4x across cases); the dense step timed
    # beside the sparse one, round for round, says 1.3x, and that is the step's speedup.
    beside = samples(2.6e-3, seed=3)
    sparse = train_step_case("topk", "native", 2e-3)
    ratios = np.asarray(beside) / np.asarray(sparse["stats"]["data"])
    sparse["extra_info"].update(paired_dense_s=beside, paired_speedup=float(np.median(ratios)),
                                paired_low=1.2, paired_high=1.4)  # fmt: skip
    older = train_step_case("unified", "compact", 2e-3)  # schema 4: no partner beside it
    cases = [train_step_case("dense", "dense", 8e-3), sparse, older]
    speedups = pair_speedups(load_benchmarks([write(tmp_path / "b.json", bench_doc(cases))]))
    rows = speedups.speedups.set_index("kernel")
    paired, across = rows.loc["topk/native"], rows.loc["unified/compact"]
    assert paired["paired"] == "beside"
    assert paired["speedup"] == pytest.approx(np.median(ratios))
    assert (paired["ci_low"], paired["ci_high"]) == (1.2, 1.4)
    assert paired["dense_median"] == pytest.approx(np.median(beside))
    assert across["paired"] == "case" and across["speedup"] == pytest.approx(4, rel=0.1)


def test_speedup_table_says_the_threads_only_when_they_vary(tmp_path):
    def table(thread_counts):
        cases = [
            kernel_case(suite, method, strategy, 64, k, threads=t, median=median)
            for t in thread_counts
            for suite, method, strategy, k, median in (
                ("layer", "dense", "dense", 64, 8e-3 / t),
                ("layer", "unified", "compact", 8, 1e-3),
            )
        ]
        name = "-".join(map(str, thread_counts))
        frame = load_benchmarks([write(tmp_path / f"{name}.json", bench_doc(cases))])
        return tables.speedup_table(pair_speedups(frame).speedups, "layer")

    assert "threads" not in table([2]).columns
    both = table([1, 2])
    assert list(both["threads"]) == ["1", "2"]
    assert list(both["speedup"]) == ["8.00x", "4.00x"]


def test_repeated_runs_get_a_median_and_range_of_their_speedups(tmp_path):
    def run(name, sparse_median):
        cases = [
            kernel_case("layer", "dense", "dense", 64, 64, median=8e-3),
            kernel_case("layer", "unified", "compact", 64, 8, median=sparse_median),
        ]
        return write(tmp_path / f"{name}.json", bench_doc(cases))

    files = [run("a", 1e-3), run("b", 2e-3), run("c", 4e-3)]
    one = pair_speedups(load_benchmarks(files[:1])).speedups
    assert across_runs(one).empty  # a single run has no spread to show
    speedups = pair_speedups(load_benchmarks(files)).speedups
    repeats = across_runs(speedups)
    assert len(repeats) == 1
    row = repeats.iloc[0]
    assert row["runs"] == 3
    assert row["speedup"] == pytest.approx(4.0)  # the median of 8x, 4x and 2x
    assert (row["speedup_min"], row["speedup_max"]) == pytest.approx((2.0, 8.0))
    table = tables.across_runs_table(repeats)
    assert list(table["range over runs"]) == ["2.00-8.00x"]
    assert "dY" not in table.columns  # one gradient source: said once, not per row
    assert row["level_changes"] == 0  # three runs: too few to tell a level


def test_the_history_marks_the_run_where_a_speedup_changed_level(tmp_path):
    """Eight runs, named against their time order; the sparse kernel got 1.5x slower
    from the fifth on (each run 1% off, alternately)."""
    files = []
    for i, slower in enumerate([1, 1, 1, 1, 1.5, 1.5, 1.5, 1.5]):
        cases = [
            kernel_case("layer", "dense", "dense", 64, 64, median=8e-3),
            kernel_case("layer", "unified", "compact", 64, 8,
                        median=1e-3 * slower * (1 + 0.01 * (-1) ** i)),
        ]  # fmt: skip
        doc = {**bench_doc(cases), "datetime": f"2026-01-0{i + 1}T00:00:00+00:00"}
        files.append(write(tmp_path / f"{chr(ord('h') - i)}.json", doc))
    repeats = across_runs(pair_speedups(load_benchmarks(files)).speedups)
    row = repeats.iloc[0]
    assert row["level_changes"] == 1
    assert row["changed_at"] == "run 5/8 (d.json@2026-01-05T00:00:00+00:00): 8.00x -> 5.33x"
    assert list(tables.across_runs_table(repeats)["level changed at"]) == [row["changed_at"]]


def test_paper_comparison_names_each_rows_threads(tmp_path):
    cases = [
        kernel_case("paper", method, strategy, 500, k, batch=50, threads=t, median=median)
        for t in (1, 2)
        for method, strategy, k, median in (
            ("dense", "dense", 500, 1e-3),
            ("unified", "compact", 20, 1e-4),
        )
    ]
    frame = load_benchmarks([write(tmp_path / "p.json", bench_doc(cases))])
    table = tables.paper_comparison(pair_speedups(frame).speedups)
    mnist = table[table["paper"] == "Table 1 MNIST (adam)"]
    cases = list(mnist["measured case"])
    assert len(cases) == 2 and "threads=1" in cases[0] and "threads=2" in cases[1]


def test_pairing_stays_within_a_file(tmp_path):
    dense_cases = [kernel_case("backward", "dense", "dense", 64, 64, batch=8)]
    sparse_cases = [kernel_case("backward", "topk", "masked", 64, 8, batch=8)]
    dense = write(tmp_path / "a.json", bench_doc(dense_cases))
    sparse = write(tmp_path / "b.json", bench_doc(sparse_cases))
    with pytest.raises(Exception, match="none of the 1 sparse cases has a dense counterpart"):
        pair_speedups(load_benchmarks([dense, sparse]))
    both = write(tmp_path / "c.json", bench_doc(full_sweep()[:3] + sparse_cases))
    pairing = pair_speedups(load_benchmarks([both, sparse]))
    assert len(pairing.speedups) == 3
    assert list(pairing.unpaired["source"]) == [str(sparse)]


def test_bootstrap_interval_contains_the_ratio_and_is_seeded():
    dense, sparse = samples(10.0, 12, seed=1), samples(2.0, 12, seed=2)
    low, high = bootstrap_ratio(dense, sparse)
    point = float(pd.Series(dense).median() / pd.Series(sparse).median())
    assert low < point < high
    assert (low, high) == bootstrap_ratio(dense, sparse)
    assert all(v != v for v in bootstrap_ratio([1.0], sparse))  # NaN: one sample


def test_time_split_matches_selection_to_its_kernels(tmp_path):
    frame = load_benchmarks([write(tmp_path / "b.json", bench_doc(full_sweep()))])
    split = time_split(frame)
    assert set(split["selection"]) == {"topk", "unified"}
    assert (split["selection"] == split["kernel"].str.split("/").str[0]).all()
    row = split.iloc[0]
    assert row["selection_s"] + row["rest_s"] == pytest.approx(row["backward_s"])


def test_training_frames(tmp_path):
    epochs = load_trainings([write(tmp_path / "t.json", training_doc(epochs=3, seeds=(0, 1)))])
    assert len(epochs) == 4 * 2 * 3
    runs = training_runs(epochs)
    assert len(runs) == 8
    assert set(runs["family"]) == {"dense", "topk", "randk", "dense h=k"}
    assert runs.loc[runs["family"] == "dense h=k", "k_axis"].eq(20).all()
    summary = training_summary(runs)
    topk = summary[summary["family"] == "topk"].iloc[0]
    assert topk["seeds"] == 2
    assert topk["test_ci_low"] <= topk["test_acc"] <= topk["test_ci_high"]
