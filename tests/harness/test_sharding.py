"""``--meprop-shard I/N``: the split of every preset's real collection (disjoint, whole,
partners together, balanced), the option end to end, empty shards, and what the gate,
the report and the A/B command make of sharded results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from collected import ROOT, collect, dense_partners
from repos import suite_repo

from meprop_bench.commands import ab
from meprop_bench.commands.common import run_main
from meprop_bench.commands.gate import main as gate_main
from meprop_bench.commands.report import main as report_main
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.partners import Unit, unit_of
from meprop_bench.harness.plan import SweepPlan, read_case_list
from meprop_bench.harness.sharding import Shard, assign, parse_shard

PRESETS = ("quick", "paper", "full")
COUNTS = (1, 2, 5, 16)  # 16 exceeds the quick profile's 14 partner groups
# One partner group of two cases, timed 5 rounds: one shard of two holds it, one is empty.
TINY = ["suites/test_backward.py", "--meprop-widths", "32", "--meprop-batches", "4",
        "--meprop-ks", "4", "--meprop-methods", "dense,unified/compact", "--meprop-grads",
        "gaussian", "--meprop-rounds", "5", "--meprop-warmup", "0"]  # fmt: skip


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module", params=PRESETS)
def preset(request):
    """(preset name, its whole collection)."""
    return request.param, collect("--meprop-preset", request.param)


@pytest.mark.parametrize("count", COUNTS)
def test_shards_of_every_preset_are_disjoint_whole_and_keep_partners_together(preset, count):
    _, items = preset
    shard_of: dict[str, int] = {}
    for index in range(count):
        kept, dropped = SweepPlan(Shard(index, count), "given", None).select(list(items))
        assert len(kept) + len(dropped) == len(items)
        for item in kept:
            assert item.nodeid not in shard_of, f"{item.nodeid} in two shards"
            shard_of[item.nodeid] = index
    assert set(shard_of) == {item.nodeid for item in items}
    partners = dense_partners(items)
    assert len(partners) > len(items) / 2
    apart = [s for s, d in partners.items() if shard_of[s] != shard_of[d]]
    assert not apart, f"{len(apart)} sparse cases apart from their dense case, e.g. {apart[0]}"


@pytest.mark.parametrize("count", COUNTS)
def test_each_shard_costs_the_total_over_n_give_or_take_one_group(preset, count):
    _, items = preset
    units = [unit_of(item) for item in items]
    groups: dict[str, float] = {}
    for unit in units:
        groups[unit.group] = groups.get(unit.group, 0.0) + unit.cost
    loads = [0.0] * count
    for unit, shard in zip(units, assign(units, count), strict=True):
        loads[shard] += unit.cost
    fair = sum(groups.values()) / count
    assert max(abs(load - fair) for load in loads) <= max(groups.values()) * (1 + 1e-9)


def test_the_split_depends_on_names_and_costs_not_on_collection_order():
    units = [Unit(f"g{i % 13}", i % 13 == i, 1.0 + i % 5) for i in range(60)]
    shuffled = units[::-1]
    forward = dict(zip(units, assign(units, 4), strict=True))
    assert dict(zip(shuffled, assign(shuffled, 4), strict=True)) == forward


def test_more_shards_than_groups_leaves_some_empty():
    units = [Unit("a", True, 1.0), Unit("a", False, 1.0), Unit("b", True, 3.0)]
    shards = assign(units, 5)
    assert shards[0] == shards[1] and len(set(shards)) == 2


@pytest.mark.parametrize("text,expected", [("0/1", Shard(0, 1)), ("3/4", Shard(3, 4)),
                                           (" 2/8 ", Shard(2, 8))])  # fmt: skip
def test_shard_spec_is_zero_based(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("spec", ["4/4", "0/0", "-1/4", "1", "a/b", "1/2/3", "1/4x", ""])
def test_a_bad_shard_spec_names_the_option_and_the_rule(spec):
    with pytest.raises(MePropInputError, match=r"--meprop-shard: expected I/N with 0 <= I < N"):
        parse_shard(spec)


def test_a_bad_shard_option_is_a_usage_error():
    options = {"meprop_shard": "2/2", "meprop_order": "seeded", "meprop_seed": None}
    with pytest.raises(pytest.UsageError, match="--meprop-shard: expected I/N"):
        SweepPlan.from_config(SimpleNamespace(getoption=options.__getitem__))


@pytest.fixture(scope="module")
def tiny_shards(tmp_path_factory):
    """The tiny sweep run as two shards: (json path, completed process) of each."""
    out = tmp_path_factory.mktemp("shards")
    runs = []
    for index in range(2):
        path = out / f"shard-{index}.json"
        proc = run_pytest(*TINY, "--benchmark-only", f"--benchmark-json={path}",
                          f"--meprop-shard={index}/2", "--meprop-seed=11")  # fmt: skip
        runs.append((path, proc))
    return runs


def test_sharded_runs_cover_the_sweep_once_and_record_the_shard(tiny_shards):
    names = []
    for index, (path, proc) in enumerate(tiny_shards):
        assert proc.returncode == 0, proc.stdout + proc.stderr
        doc = json.loads(path.read_text())
        shard = doc["machine_info"]["meprop_shard"]
        assert shard["shard"] == f"{index}/2" and (shard["index"], shard["count"]) == (index, 2)
        assert shard["collected"] == 2 and shard["cases"] == len(doc["benchmarks"])
        assert doc["machine_info"]["meprop_order"] == {"order": "seeded", "seed": 11}
        ids = {b["extra_info"]["case_id"] for b in doc["benchmarks"]}
        assert {b["extra_info"]["pairs_with"] for b in doc["benchmarks"]} <= ids
        names += [b["name"] for b in doc["benchmarks"]]
        if doc["benchmarks"]:
            assert f"meprop shard {index}/2: 2 of 2 cases" in proc.stdout
    assert len(names) == len(set(names)) == 2


def test_an_empty_shard_says_so_and_writes_an_empty_valid_result(tiny_shards):
    empty = [(p, proc) for p, proc in tiny_shards if not json.loads(p.read_text())["benchmarks"]]
    assert empty, "one group in two shards leaves one empty"
    path, proc = empty[0]
    assert proc.returncode == 0
    assert "is empty: none of the 2 cases collected falls in it" in proc.stdout
    doc = json.loads(path.read_text())
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert doc["machine_info"]["meprop_shard"]["cases"] == 0


def test_the_gate_and_report_merge_shards_and_only_all_empty_is_exit_2(
    tiny_shards, tmp_path, capsys, plot_stand_ins
):
    paths = [str(p) for p, _ in tiny_shards]
    every = str(Path(paths[0]).parent / "shard-*.json")
    verdict = tmp_path / "gate.json"
    assert run_main(gate_main, [every, every, "--json", str(verdict)]) != 2
    assert len(json.loads(verdict.read_text())["rows"]) == 3  # 2 times, 1 speedup
    empty = [p for p in paths if not json.loads(Path(p).read_text())["benchmarks"]]
    assert run_main(gate_main, [empty[0], empty[0]]) == 2
    assert "no benchmarks" in capsys.readouterr().err
    argv = [*paths, "--name", "shards", "--out-root", str(tmp_path)]
    assert run_main(report_main, argv) == 0
    assert (tmp_path / "shards" / "summary.md").exists()


def test_ab_on_an_empty_shard_has_nothing_to_compare_and_exits_0(
    tiny_shards, tmp_path, monkeypatch, capsys
):
    empty = next(p for p, _ in tiny_shards if not json.loads(p.read_text())["benchmarks"])
    repo = suite_repo(tmp_path / "repo")
    monkeypatch.chdir(repo)
    monkeypatch.setattr(ab, "selected_cases", lambda *_: ["suites/test_x.py::test_x"])
    monkeypatch.setattr(ab, "run_suite", lambda tree, path, *_: path.write_text(empty.read_text()))
    out = tmp_path / "out"
    assert run_main(ab.main, ["HEAD", "--rounds", "1", "--out", str(out)]) == 0
    assert "nothing to compare" in (out / "gate.md").read_text()
    assert not (out / "gate.json").exists()
    assert "nothing to compare" in capsys.readouterr().err


def test_a_case_list_keeps_its_cases_of_the_shard_and_leaves_the_split_alone(tmp_path):
    """What ab --rounds auto does in later rounds: a shard's part stays the same, and only
    the listed cases of it run."""
    items = collect("--meprop-preset", "quick")
    whole, _ = SweepPlan(Shard(1, 3), "given", None).select(list(items))
    listed = frozenset(item.nodeid for item in items[::2])  # some in other shards too
    kept, dropped = SweepPlan(Shard(1, 3), "given", None, listed).select(list(items))
    assert [i.nodeid for i in kept] == [i.nodeid for i in whole if i.nodeid in listed]
    assert len(kept) + len(dropped) == len(items)
    path = tmp_path / "cases.txt"
    path.write_text("\n".join(sorted(listed)) + "\n\n")
    assert read_case_list(path) == listed
    with pytest.raises(MePropInputError, match="--meprop-cases: cannot read"):
        read_case_list(tmp_path / "missing.txt")
