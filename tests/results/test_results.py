"""The results layer: schemas check documents and write docs/schemas.md, the envelope
refuses a writer that drifts from its schema, and one function finds result files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from meprop_bench.errors import MePropInputError
from meprop_bench.results import kinds
from meprop_bench.results.files import envelope, expand, read_benchmarks, read_result
from meprop_bench.results.schema import INT, Field, Schema

ROOT = Path(__file__).resolve().parents[2]
TOY = Schema("meprop-bench/toy", 3, "Toy", "for tests", (
    Field("count", INT, "a count"),
    Field("rows", (list,), "records", items=(Field("x", INT, "x"),)),
    Field("late", INT, "added in 3", since=3),
), oldest=2)  # fmt: skip


def test_docs_page_is_the_schemas_own_output():
    assert (ROOT / "docs" / "schemas.md").read_text() == kinds.markdown(), (
        "docs/schemas.md is stale: python -m meprop_bench.results.kinds > docs/schemas.md"
    )


def test_envelope_checks_the_writer_against_its_schema():
    doc = envelope(TOY, machine={}, count=1, rows=[{"x": 2}], late=0)
    assert TOY.check(json.loads(json.dumps(doc))) == 3
    with pytest.raises(RuntimeError, match="fields \\['extra'\\] are not in the schema"):
        envelope(TOY, machine={}, count=1, rows=[], late=0, extra=1)
    with pytest.raises(RuntimeError, match=r"file.rows\[0\].x has the wrong type"):
        envelope(TOY, machine={}, count=1, rows=[{"x": "2"}], late=0)
    with pytest.raises(RuntimeError, match="lacks the field 'late'"):
        envelope(TOY, machine={}, count=1, rows=[])


def test_a_reader_takes_older_versions_without_their_later_fields(tmp_path):
    doc = envelope(TOY, machine={}, count=1, rows=[], late=0)
    old = {**doc, "schema_version": 2}
    del old["late"]
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old))
    assert read_result(path, TOY)["count"] == 1
    for version in (1, 4, "3"):
        path.write_text(json.dumps({**doc, "schema_version": version}))
        with pytest.raises(MePropInputError, match=r"is not a meprop-bench/toy v2\.\.v3 file"):
            read_result(path, TOY)
    path.write_text(json.dumps({**doc, "count": True}))  # a bool is not a count
    with pytest.raises(MePropInputError, match=r"old.json.count has the wrong type"):
        read_result(path, TOY)


def test_expand_takes_a_file_a_directory_or_a_glob(tmp_path):
    for name in ("a/1.json", "a/profiles/skip.json", "b/2.json", "b/notes.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{}")
    found = dict(expand([tmp_path / "a", tmp_path / "b" / "2.json", f"{tmp_path}/*/2.json",
                         tmp_path / "missing"]))  # fmt: skip
    assert found[tmp_path / "a"] == [tmp_path / "a" / "1.json"]  # profiles/ passed over
    assert found[tmp_path / "b" / "2.json"] == [tmp_path / "b" / "2.json"]
    assert found[Path(f"{tmp_path}/*/2.json")] == [tmp_path / "b" / "2.json"]
    assert found[tmp_path / "missing"] == []


def test_a_benchmark_file_from_a_newer_meprop_bench_is_refused(tmp_path):
    path = tmp_path / "bench.json"
    newer = kinds.BENCHMARK.version + 1
    path.write_text(json.dumps({"machine_info": {"meprop_schema_version": newer},
                                "benchmarks": []}))  # fmt: skip
    with pytest.raises(MePropInputError, match=f"v{newer}; this meprop-bench reads"):
        read_benchmarks(path)
    path.write_text(json.dumps({"machine_info": {}, "benchmarks": []}))  # another suite's
    assert read_benchmarks(path)["benchmarks"] == []


@pytest.mark.slow  # every suite, timed, in a child pytest: 7-9 s of CPU here
def test_every_suite_writes_extra_info_its_schema_describes(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "suites", "--benchmark-only", "-q", "-p",
         "no:cacheprovider", "--meprop-widths", "32", "--meprop-batches", "4",
         "--meprop-ks", "4", "--meprop-rounds", "2", "--meprop-warmup", "0",
         "--meprop-methods", "dense,topk/masked,unified/compact", f"--benchmark-json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:]
    doc = read_benchmarks(out)
    info = doc["machine_info"]
    assert (info["meprop_schema"], info["meprop_schema_version"]) == (
        kinds.BENCHMARK.name, kinds.BENCHMARK.version)  # fmt: skip
    suites = set()
    for i, bench in enumerate(doc["benchmarks"]):
        kinds.BENCHMARK.check_record(bench["extra_info"], f"benchmarks[{i}]")
        suites.add(bench["extra_info"].get("suite"))
        unknown = set(bench["extra_info"]) - {f.name for f in kinds.BENCHMARK.fields}
        assert not unknown, f"extra_info fields missing from the schema: {unknown}"
    assert {"backward", "layer", "selection", "train_step"} <= suites
    for bench in doc["benchmarks"]:  # a step suite's round is a block of steps
        is_step = bench["extra_info"].get("suite") in ("train_step", "model_step")
        assert (bench["extra_info"].get("steps_per_round", 0) >= 1) == is_step
        assert "steady" not in bench["extra_info"]  # --meprop-warmup 0: no warm-up


def test_the_old_preset_option_still_works_and_says_it_is_deprecated(run_inline):
    done = run_inline("-q", "suites", "--co", "--meprop-profile", "paper", "--meprop-widths", "32")
    assert done.returncode == 0, done.stdout[-2000:]
    assert "--meprop-profile is deprecated; use --meprop-preset" in done.stdout
    assert "test_paper_shape[" in done.stdout  # the paper preset was applied
