"""The report's answer (meprop_bench.report.headline): each method's best strategy at
each shape, one sentence per method and device, and the training verdicts cut short.
Pure functions of the report's frames; the inputs are small documents built here."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest
from documents import MACHINE, bench_doc, kernel_case, train_step_case, training_doc, write

from meprop_bench.report import (
    claims,
    headline,
    load_benchmarks,
    load_trainings,
    pair_speedups,
    training_runs,
)

DENSE = 1e-3


# Each method's strategies and their speed over dense at each (n, k); B = 8. Every speed
# is below its ideal n/k (4, 2 and 8): one above it would be flagged a measurement error.
SPEEDS = {
    (64, 16): {("unified", "compact"): 3.6, ("unified", "scatter"): 3, ("topk", "sparse"): 2,
               ("topk", "masked"): 0.5, ("randk", "masked"): 1},
    (64, 32): {("unified", "compact"): 1.8, ("unified", "scatter"): 1.6, ("topk", "sparse"): 1.5,
               ("topk", "masked"): 0.5, ("randk", "masked"): 1},
    (128, 16): {("unified", "compact"): 7.2, ("unified", "scatter"): 4, ("topk", "masked"): 0.5,
                ("randk", "masked"): 0.25},
}  # fmt: skip


def sweep(device: str = "cpu", seed: int = 0) -> list[dict]:
    """The backward cases of :data:`SPEEDS` with their dense partners."""
    out = []
    for (n, k), speeds in SPEEDS.items():
        if k == 16:
            out.append(kernel_case("backward", "dense", "dense", n, n, 8, device=device,
                                   median=DENSE, seed=seed))  # fmt: skip
        for i, ((method, strategy), speed) in enumerate(speeds.items()):
            out.append(kernel_case("backward", method, strategy, n, k, 8, device=device,
                                   median=DENSE / speed, seed=seed + 1 + i))  # fmt: skip
    return out


def best_of(docs: list[dict], tmp_path) -> pd.DataFrame:
    files = [write(tmp_path / f"b{i}.json", doc) for i, doc in enumerate(docs)]
    return headline.best_strategies(pair_speedups(load_benchmarks(files)).speedups)


def test_the_best_strategy_per_method_and_shape_with_its_call(tmp_path):
    best = best_of([bench_doc(sweep())], tmp_path)
    assert len(best) == 3 * 3  # 3 shapes (n, k) x 3 methods
    assert list(best["method"].unique()) == ["unified", "topk", "randk"]  # the answer's order
    at = best.set_index(["method", "n", "k"])
    assert at.loc[("unified", 64, 16), "strategy"] == "compact"
    assert at.loc[("unified", 64, 16), "speedup"] == pytest.approx(3.6, rel=0.02)
    assert at.loc[("unified", 64, 16), "strategies"] == 2
    assert at.loc[("unified", 64, 16), "efficiency"] == pytest.approx(3.6 / 4, rel=0.02)
    assert at.loc[("topk", 64, 16), "strategy"] == "sparse"  # 2x beats masked's 0.5x
    assert at.loc[("topk", 128, 16), ["strategy", "strategies"]].tolist() == ["masked", 1]
    calls = at["call"].to_dict()
    assert calls[("unified", 64, 16)] == calls[("topk", 64, 32)] == "faster"
    assert calls[("topk", 128, 16)] == calls[("randk", 128, 16)] == "slower"
    assert calls[("randk", 64, 16)] == "unclear"  # same time as dense: 1x inside the interval
    row = at.loc[("unified", 64, 16)]
    assert row["ci_low"] < row["speedup"] < row["ci_high"]


def test_a_case_run_in_several_files_counts_once_from_its_latest_run(tmp_path):
    old = bench_doc(sweep())
    new = bench_doc(
        [c for c in sweep(seed=50) if c["extra_info"]["method"] != "unified"]
        + [kernel_case("backward", "unified", "compact", 64, 16, 8, median=DENSE / 2.5, seed=99)]
    )
    old["datetime"], new["datetime"] = "2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"
    best = best_of([new, old], tmp_path)  # the newer file first: order must not matter
    assert not best.duplicated(["method", "n", "k"]).any()
    row = best[(best["method"] == "unified") & (best["n"] == 64) & (best["k"] == 16)].iloc[0]
    # compact's latest run is 2.5x (its older 3.6x is passed over); scatter's only run, 3x
    assert row["speedup"] == pytest.approx(3, rel=0.05)
    assert row["strategy"] == "scatter" and row["source"].endswith("b1.json")


def test_one_sentence_per_method_says_whether_it_pays_and_by_how_much(tmp_path):
    best = best_of([bench_doc(sweep())], tmp_path)
    said = headline.answers(best).set_index("method")
    assert list(said.index) == ["unified", "topk", "randk"]
    assert said["word"].to_dict() == {
        "unified": "pays",
        "topk": "pays at some shapes",
        "randk": "no clear gain",  # slower at one shape, 1x at the others
    }
    unified = said.loc["unified", "sentence"]
    assert unified.startswith("unified top-k pays. Backward kernel: faster than dense at 3 of 3")
    top = best[best["method"] == "unified"].sort_values("speedup").iloc[-1]
    interval = f"[{top['ci_low']:.2f}-{top['ci_high']:.2f}x]"  # two decimals below 10x
    assert top["n"] == 128 and top["speedup"] == pytest.approx(7.2, rel=0.05)
    assert f"best {top['speedup']:.2f}x {interval} (compact at k/n=12%, B=8, n=128;" in unified
    assert f"ideal 8.00x, efficiency {top['efficiency']:.0%})" in unified
    assert "), worst 1.8" in unified and "(compact at k/n=50%, B=8, n=64; ideal 2.00x" in unified
    topk = said.loc["topk", "sentence"]
    assert "faster than dense at 2 of 3 shapes, slower at 1" in topk
    assert re.search(r"worst 0\.[45]\dx \(masked at k/n=12%, B=8, n=128; ideal 8\.00x", topk)


def test_each_device_and_machine_gets_its_own_answer(tmp_path):
    gpu = {**MACHINE, "node": "gpubox", "gpus": [{"name": "Test GPU", "cuda_runtime": "12",
                                                  "driver": "1"}]}  # fmt: skip
    docs = [bench_doc(sweep()), bench_doc(sweep("cuda") + sweep(), gpu)]
    said = headline.answers(best_of(docs, tmp_path))
    where = said[["machine", "device_name"]].drop_duplicates().apply(tuple, axis=1).tolist()
    assert where == [
        ("box (Test CPU)", "cpu (Test CPU)"),
        ("gpubox (Test CPU, Test GPU)", "cpu (Test CPU)"),
        ("gpubox (Test CPU, Test GPU)", "cuda (Test GPU)"),
    ]
    assert len(said) == 3 * 3


def test_other_suites_get_a_clause_and_a_training_step_its_bound(tmp_path):
    cases = [
        *sweep(),
        kernel_case("layer", "dense", "dense", 64, 64, 8, median=DENSE),
        kernel_case("layer", "unified", "compact", 64, 16, 8, median=DENSE / 3, seed=7),
        train_step_case("dense", "dense", 4e-3),
        train_step_case("unified", "compact", 2e-3, sparse_grad=True),
    ]
    best = best_of([bench_doc(cases)], tmp_path)
    step = best[best["suite"] == "train_step"].iloc[0]
    assert step["strategy"] == "compact+sparse_grad" and step["ideal"] == pytest.approx(2.78)
    unified = headline.answers(best).set_index("method").loc["unified"]
    assert unified["suite"] == "backward"
    assert re.match(r"Layer backward \(autograd\): faster at 1 of 1, best [23]\.\d\dx \[",
                    unified["others"])  # fmt: skip
    assert re.search(r"; training step: faster at 1 of 1, best [12]\.\d\dx", unified["others"])
    assert unified["others"].endswith("(bound 2.78x).")
    table = headline.shape_table(best, "train_step")
    assert table[("", "bound")].tolist() == ["2.78x"]
    assert table[("unified top-k", "best strategy")].tolist() == ["compact+sparse_grad"]


def test_the_shape_table_has_a_row_per_shape_and_three_columns_per_method(tmp_path):
    best = best_of([bench_doc(sweep())], tmp_path)
    table = headline.shape_table(best, "backward")
    assert list(table[""].columns) == ["B", "n", "k", "k/n", "ideal"]  # d_in = n: left out
    assert [m for m, _ in table.columns if m] == [
        m for m in ("unified top-k", "per-example top-k", "per-example random-k") for _ in range(3)
    ]
    assert table[("", "k/n")].tolist() == ["25%", "50%", "12%"]
    assert table[("per-example top-k", "best strategy")].tolist() == ["sparse", "sparse", "masked"]
    speed = table[("unified top-k", "speedup [95%]")].tolist()
    assert all(re.fullmatch(r"\d+\.\d+x \[\d+\.\d+-\d+\.\d+x\]", s) for s in speed), speed
    efficiency = [float(e.rstrip("%")) for e in table[("unified top-k", "efficiency")]]
    assert efficiency == pytest.approx([90, 90, 90], rel=0.05)  # 3.6/4, 1.8/2, 7.2/8


def test_no_interval_is_said_and_counts_as_unclear():
    assert headline._call(math.nan, math.nan) == "unclear"
    assert headline._call(1.01, 2) == "faster" and headline._call(0.5, 0.99) == "slower"
    assert headline._call(0.9, 1.1) == "unclear"
    assert headline.interval(math.nan, 2.0) == "no interval"
    calls = pd.Series(["faster", "faster"])
    assert headline.word(calls) == "pays"
    assert headline.word(pd.Series(["faster", "unclear"])) == "pays at some shapes"
    assert headline.word(pd.Series(["slower", "slower"])) == "does not pay"
    assert headline.word(pd.Series(["slower", "unclear"])) == "no clear gain"


def test_the_training_verdicts_cut_to_a_row_per_claim_and_a_column_per_setting(tmp_path):
    path = write(tmp_path / "t.json", training_doc(recipes=("torch", "authors")))
    verdicts = claims.verdicts(training_runs(load_trainings([path])))
    table = headline.claim_summary(verdicts, claims.SETTING)
    assert list(table.columns) == [
        "claim",
        "embedded, 3,000 train images, torch recipe",
        "embedded, 3,000 train images, authors recipe",
    ]
    assert [c[:3] for c in table["claim"]] == ["(a)", "(b)", "(c)", "(d)"]
    assert table["claim"].iloc[3] == "(d) reduced overfitting: both parts"
    words = ("reproduced", "refuted", "inconclusive")
    for cell in (
        table[
            [
                "embedded, 3,000 train images, torch recipe",
                "embedded, 3,000 train images, authors recipe",
            ]
        ]
        .to_numpy()
        .ravel()
    ):
        assert cell.split(" ")[0] in words, cell
    a = verdicts[verdicts["claim"].str.startswith("(a)")].iloc[0]
    diff = a["difference (points)"].rsplit(" = ", 1)[1]
    caveat = "at 3 epochs on 3,000 images (the paper: 20 epochs, 55,000)"
    assert table["embedded, 3,000 train images, torch recipe"].iloc[0] == (
        f"{a['verdict']} {caveat} ({diff} pts, 95% {a['95% interval']})"
    )
    assert headline.claim_summary(pd.DataFrame(), claims.SETTING).empty
