"""``python -m meprop_bench.check``: its JSON, its figures and its usage errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from meprop_bench.commands.check import main
from meprop_bench.commands.common import run_main

TINY = ["-B", "4", "--d-in", "8", "--n", "16", "--k", "0.25", "--rounds", "5", "--warmup", "1"]


def test_json_holds_the_samples_and_their_per_round_speedups(tmp_path, capsys):
    out = tmp_path / "check.json"
    argv = [*TINY, "--kernels", "unified/compact", "topk/masked", "--threads", "1"]
    assert run_main(main, [*argv, "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema"] == "meprop-bench/check" and doc["schema_version"] == 3
    assert doc["params"]["dtype"] == "float32"
    params = doc["params"]
    assert (params["k"], params["ideal_speedup"], params["threads"]) == (4, 4.0, 1)
    # The machine is described as the run had it: with the requested thread count.
    assert doc["machine"]["torch_threads"] == 1
    rows = {row["kernel"]: row for row in doc["results"]}
    assert list(rows) == ["dense/dense", "unified/compact", "topk/masked"]
    dense = np.array(rows["dense/dense"]["samples_s"])
    for row in rows.values():
        samples = np.array(row["samples_s"])
        assert len(samples) == 5 and row["median_s"] == pytest.approx(np.median(samples))
        assert row["speedup"] == pytest.approx(np.median(dense / samples))
    printed = capsys.readouterr().out
    assert "unified/compact" in printed and ", 1 thread\n" in printed


def test_an_existing_result_is_never_overwritten(tmp_path, capsys):
    out = tmp_path / "check.json"
    out.write_text("earlier")
    assert run_main(main, [*TINY, "--kernels", "unified/compact", "--json", str(out)]) == 2
    assert out.read_text() == "earlier"
    assert "already exists" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--kernels", "unified/nope"], "unknown strategy 'nope'"),
        (["--k", "99"], "k=99 is out of range"),
        (["--device", "cuda:7"], "cuda"),
    ],
)
def test_usage_errors_name_the_problem(argv, message, capsys):
    assert run_main(main, [*TINY, *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_the_default_kernels_are_those_that_run_in_the_dtype(dtype, tmp_path, capsys):
    out = tmp_path / "check.json"
    assert run_main(main, [*TINY, "--threads", "1", "--dtype", dtype, "--json", str(out)]) == 0
    timed = {row["kernel"] for row in json.loads(out.read_text())["results"]}
    assert {"dense/dense", "topk/masked", "topk/rowunion", "unified/compact"} <= timed
    assert not timed & {"topk/sparse", "topk/native", "unified/native"}


def test_a_negative_warmup_is_a_usage_error_before_any_work(capsys):
    with pytest.raises(SystemExit) as exit:
        main([*TINY, "--kernels", "topk/native", "--warmup", "-1"])
    assert exit.value.code == 2
    assert "--warmup: expected a non-negative integer, got '-1'" in capsys.readouterr().err


def test_a_kernel_the_backend_cannot_run_is_a_one_line_error(capsys):
    argv = [*TINY, "--kernels", "unified/compact", "topk/sparse", "--dtype", "float16"]
    assert run_main(main, argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "topk/sparse cannot run in float16 on cpu" in err[0]
    assert "not implemented for 'Half'" in err[0] and "--kernels" in err[0]
    assert captured.out == ""


def test_the_cuda_graph_timer_is_refused_on_the_cpu_in_one_line(capsys):
    assert run_main(main, [*TINY, "--kernels", "unified/compact", "--cuda-graph"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA-graph timer times CUDA devices only, got cpu" in err[0]


def test_the_timer_is_recorded(tmp_path):
    out = tmp_path / "check.json"
    assert run_main(main, [*TINY, "--kernels", "unified/compact", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["params"]["timer"] == "perf-counter"


@pytest.mark.parametrize("cache", ["shared", "warm", "cold"])
def test_the_cache_state_is_recorded_and_shown(cache, tmp_path, capsys, monkeypatch):
    from meprop_bench.harness import cache_state

    monkeypatch.setattr(cache_state, "last_level_cache_bytes", lambda: 1 << 20)  # fast sweep
    out = tmp_path / "check.json"
    argv = [*TINY, "--kernels", "unified/compact", "--cache", cache, "--malloc", "default"]
    assert run_main(main, [*argv, "--json", str(out)]) == 0
    params = json.loads(out.read_text())["params"]
    assert (params["cache"], params["malloc"]) == (cache, "default")
    assert f"interleaved rounds, caches {cache} (timer" in capsys.readouterr().out


def test_an_unknown_cache_state_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*TINY, "--cache", "lukewarm"])
    assert exit_.value.code == 2
    assert "invalid choice: 'lukewarm'" in capsys.readouterr().err
