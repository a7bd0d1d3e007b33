"""The verdicts on the paper's claims: Welch's comparison, the rule that turns it into
one word, and the claims judged per recipe and data set from a runs frame."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from meprop_bench.report.claims import (
    INCONCLUSIVE,
    NON_INFERIORITY,
    REFUTED,
    REPRODUCED,
    SETTING,
    caveat,
    combined,
    needs,
    verdicts,
    welch,
)
from meprop_bench.report.headline import claim_summary, size_sentences

SEEDS = 5


def accs(mean: float, spread: float = 0.004, n: int = SEEDS) -> np.ndarray:
    """``n`` seed results around ``mean``, deterministic."""
    return mean + spread * np.linspace(-1, 1, n)


@pytest.mark.parametrize(
    "a,b,margin,word",
    [
        (accs(0.90), accs(0.85), 0.0, REPRODUCED),  # clearly ahead
        (accs(0.85), accs(0.90), 0.0, REFUTED),  # clearly behind
        (accs(0.90, 0.05), accs(0.899, 0.05), 0.0, INCONCLUSIVE),  # level, noisy
        (accs(0.899, 0.001), accs(0.90, 0.001), NON_INFERIORITY, REPRODUCED),  # 0.1 behind
        (accs(0.88), accs(0.90), NON_INFERIORITY, REFUTED),  # 2 points behind
        (accs(0.90), accs(0.90)[:1], 0.0, INCONCLUSIVE),  # one seed: no interval
    ],
)
def test_each_word_comes_from_the_interval_against_the_margin(a, b, margin, word):
    c = welch(a, b, margin)
    assert c.word == word
    assert c.diff == pytest.approx(a.mean() - b.mean())
    if len(b) > 1:
        assert c.low < c.diff < c.high
        assert (c.p < 0.025) == (word == REPRODUCED)


def test_welch_matches_scipy():
    a, b = np.array([0.91, 0.93, 0.92, 0.95, 0.90]), np.array([0.89, 0.90, 0.88, 0.93])
    c = welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert c.p == pytest.approx(ref.pvalue)
    low, high = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert (c.low, c.high) == pytest.approx((low, high))


def test_identical_seeds_give_an_exact_difference():
    c = welch(np.full(3, 0.9), np.full(3, 0.8))
    assert (c.low, c.high, c.p, c.word) == (pytest.approx(0.1), pytest.approx(0.1), 0.0,
                                           REPRODUCED)  # fmt: skip


def test_a_claim_of_parts_needs_every_part():
    assert combined([REPRODUCED, REPRODUCED]) == REPRODUCED
    assert combined([REPRODUCED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combined([REPRODUCED, REFUTED]) == REFUTED
    assert combined([INCONCLUSIVE, REFUTED]) == REFUTED


def runs_frame(data: str, recipe: str, topk: float, randk: float, dense: float, small: float,
               topk_gap: float = 0.01, dense_gap: float = 0.05, train_size: int = 55_000,
               epochs: int = 20) -> pd.DataFrame:  # fmt: skip
    """Runs of one setting: topk/randk k=20, dense h=500, dense h=20, over SEEDS."""
    rows = []
    for family, method, k, hidden, test, gap in (
        ("topk", "topk", 20, 500, topk, topk_gap), ("randk", "randk", 20, 500, randk, 0.02),
        ("dense", "dense", None, 500, dense, dense_gap), ("dense h=k", "dense", None, 20, small,
                                                         0.03)):  # fmt: skip
        for seed, acc in enumerate(accs(test)):
            rows.append({"data": data, "train_size": train_size, "recipe": recipe,
                         "optimizer": "adam", "batch_size": 100,
                         "layers": 2, "epochs": epochs, "family": family, "method": method, "k": k,
                         "k_axis": hidden if family == "dense h=k" else k, "hidden": hidden,
                         "dropout": 0.0, "seed": seed, "test_acc_at_best": acc,
                         "final_dev_acc": acc, "gap": gap + 0.001 * seed})  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_are_judged_per_recipe_and_data_set():
    frame = pd.concat([
        runs_frame("embedded", "torch", topk=0.865, randk=0.864, dense=0.93, small=0.895,
                   topk_gap=0.08, dense_gap=0.04),
        runs_frame("mnist", "authors", topk=0.980, randk=0.94, dense=0.980, small=0.958),
    ])  # fmt: skip
    table = verdicts(frame).set_index(["data", "recipe", "claim"])["verdict"]
    torch_, authors = table.loc[("embedded", "torch")], table.loc[("mnist", "authors")]
    assert torch_.filter(like="(a)").tolist() == [REFUTED]
    assert torch_.filter(like="(b)").tolist() == [INCONCLUSIVE]  # one k: no overall row
    assert torch_.filter(like="(c)").tolist() == [REFUTED]
    assert torch_["(d) reduced overfitting: both parts"] == REFUTED
    assert set(authors.filter(like="(a)")) == {REPRODUCED}
    assert set(authors.filter(like="(b)")) == {REPRODUCED}
    assert set(authors.filter(like="(c)")) == {REPRODUCED}
    assert authors["(d) reduced overfitting: both parts"] == REPRODUCED


def test_dropout_runs_take_no_part_and_missing_claims_are_left_out():
    frame = runs_frame("embedded", "torch", 0.9, 0.8, 0.9, 0.8)
    only_dense = frame[frame["family"] == "dense"]
    assert verdicts(only_dense).empty
    dropped = frame.assign(dropout=0.2)
    assert verdicts(dropped).empty


def test_runs_are_chosen_by_configuration_not_by_a_files_widest_model():
    # A dense h=20 baseline alone beside top-k: it is judged under claim (a) only, never
    # as "dense h=500" (the family column, which older code derived per file, is ignored).
    frame = runs_frame("fashion", "torch", topk=0.80, randk=0.7, dense=0.85, small=0.78)
    alone = frame[(frame["hidden"] == 20) | (frame["method"] == "topk")].assign(family="dense")
    table = verdicts(alone)
    assert [c[:3] for c in table["claim"]] == ["(a)"]
    assert table["compared (seeds)"].iloc[0] == f"topk k=20 vs dense h=20 ({SEEDS} vs {SEEDS})"
    # With dense h=500 present too, h=20 and h=500 are never pooled.
    both = verdicts(frame).set_index("claim")
    assert (
        both.filter(like="(c)", axis=0)["compared (seeds)"]
        .iloc[0]
        .endswith(f"({SEEDS} vs {SEEDS})")
    )


def test_training_sizes_are_judged_apart_and_the_headline_says_whether_size_matters():
    small = runs_frame("fashion", "torch", topk=0.70, randk=0.69, dense=0.85, small=0.80,
                       train_size=3_000)  # fmt: skip
    large = runs_frame("fashion", "torch", topk=0.86, randk=0.80, dense=0.85, small=0.80)
    table = verdicts(pd.concat([small, large]))
    a = table[table["claim"].str.startswith("(a)")].set_index("train_size")["verdict"]
    assert a.to_dict() == {3_000: REFUTED, 55_000: REPRODUCED}
    summary = claim_summary(table, SETTING)
    assert {"fashion, 3,000 train images, torch recipe",
            "fashion, 55,000 train images, torch recipe"} <= set(summary.columns)  # fmt: skip
    said = "\n".join(size_sentences(table))
    assert "(a) top-k k=20 beats dense h=20: the verdict depends on the training-set size" in said
    assert "largest measured: 55,000 images" in said
    assert "refuted at 3,000; reproduced at 55,000 fashion images (torch)" in said


def test_a_setting_short_of_the_papers_says_so_beside_its_verdict():
    quick = runs_frame("embedded", "torch", topk=0.86, randk=0.86, dense=0.93, small=0.895,
                       train_size=3_000, epochs=5)  # fmt: skip
    table = verdicts(quick)
    assert set(table["caveat"]) == {"at 5 epochs on 3,000 images (the paper: 20 epochs, 55,000)"}
    cell = claim_summary(table, SETTING).iloc[0, 1]
    assert cell.startswith("refuted at 5 epochs on 3,000 images (the paper: 20 epochs, 55,000)")
    assert caveat({"epochs": 20, "train_size": 55_000}) == ""
    assert caveat({"epochs": 20, "train_size": 3_000}) == (
        "on 3,000 images (the paper: 20 epochs, 55,000)"
    )
    assert (
        caveat({"epochs": 5, "train_size": 55_000}) == "at 5 epochs (the paper: 20 epochs, 55,000)"
    )


def test_what_each_untestable_claim_needs_is_named():
    frame = runs_frame("fashion", "torch", 0.9, 0.8, 0.9, 0.8)
    lines = needs(frame[frame["method"] == "topk"])
    assert len(lines) == 4
    assert lines[0].startswith("(a) top-k k=20 beats dense h=20 needs dense h=20")
    assert needs(frame) == []
