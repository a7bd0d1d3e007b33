"""The suites as a user runs them: JSON fields, crash recovery, usage errors, skips.

Each test runs pytest in a subprocess on the real suites/ with a tiny grid.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from meprop_bench.recover import main as recover_main

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--meprop-widths",
    "32",
    "--meprop-batches",
    "4",
    "--meprop-ks",
    "4",
    "--meprop-grads",
    "gaussian",
    "--meprop-rounds",
    "3",
    "--meprop-warmup",
    "0",
]


def run_suites(*args: str, timeout: int = 120, env: dict | None = None):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def sweep_backward(out: Path, methods: str, env: dict | None = None):
    """A tiny backward sweep with --benchmark-json ``out``."""
    return run_suites(
        "suites/test_backward.py",
        "--benchmark-only",
        "--benchmark-json",
        str(out),
        *TINY,
        "--meprop-methods",
        methods,
        env=env,
    )


def test_backward_json_has_case_fields_raw_samples_and_machine(tmp_path):
    out = tmp_path / "out.json"
    proc = sweep_backward(out, "dense,unified")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    for key in ("torch", "blas", "cpu_capability", "torch_threads", "threadpools", "allocator"):
        assert key in doc["machine_info"], key
    assert doc["machine_info"]["allocator"]["mode"] == "default"
    benches = doc["benchmarks"]
    assert [b["extra_info"]["method"] for b in benches] == ["dense", "unified", "unified"]
    for b in benches:
        info = b["extra_info"]
        assert len(b["stats"]["data"]) == 3 and b["stats"]["rounds"] == 3
        assert info["minor_faults_per_call"] >= 0
        assert {
            "strategy",
            "device",
            "dtype",
            "B",
            "d_in",
            "n",
            "k",
            "k_over_n",
            "ideal_speedup",
            "flops",
            "min_bytes",
            "threads",
            "pairs_with",
            "pair_key",
        } <= set(info)
        assert info["pairs_with"] == "dense-dense_B4_d32_n32_k32_float32_cpu"
        assert b["stats"]["median"] == sorted(b["stats"]["data"])[1]
        assert "SampleClock(perf_counter)" in b["options"]["timer"]
    assert not Path(f"{out}.partial.jsonl").exists(), "partial file kept after a clean run"


def test_every_suite_runs_once_with_benchmarks_disabled():
    proc = run_suites("suites", "--benchmark-disable", *TINY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def test_interrupted_sweep_is_recovered(tmp_path):
    partial = tmp_path / "sweep.partial.jsonl"
    args = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        "suites/test_backward.py",
        "--benchmark-only",
        "--meprop-partial",
        str(partial),
        *TINY,
        "--meprop-widths",
        "32,48,64,80,96,112,128",
        "--meprop-rounds",
        "400",
    ]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if partial.exists() and partial.read_text().count('"kind": "benchmark"') >= 3:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the sweep wrote no partial results")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    with open(partial, "a") as f:
        f.write('{"kind": "benchmark", "benchmark": {"name": "cut off')  # a half-written line
    out = tmp_path / "recovered.json"
    assert recover_main([str(partial), "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"machine_info", "commit_info", "benchmarks", "datetime", "version"}
    assert len(doc["benchmarks"]) >= 3
    assert all(len(b["stats"]["data"]) == 400 for b in doc["benchmarks"])
    assert doc["benchmarks"][0]["extra_info"]["method"] == "dense"
    with pytest.raises(FileExistsError):
        recover_main([str(partial), "-o", str(out)])


def test_recover_rejects_a_file_that_is_not_partial_results(tmp_path, capsys):
    from meprop_bench.cli import run_main

    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\n')
    assert run_main(recover_main, [str(bad), "-o", str(tmp_path / "o.json")]) == 2
    assert "not a meprop-bench partial results file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option,value",
    [("--meprop-ks", "0.01,abc"), ("--meprop-profile", "huge"), ("--meprop-malloc", "fast")],
)
def test_malformed_option_is_a_usage_error(option, value):
    proc = run_suites("suites", "--benchmark-disable", option, value)
    assert proc.returncode == 4  # pytest's usage-error status
    assert option in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    "env",
    [{"MEPROP_BENCH_SLOWDOWN": "lots"}, {"MEPROP_BENCH_SLOWDOWN_METHODS": "unified,fast"}],
)
def test_bad_slowdown_is_a_usage_error(env):
    proc = run_suites("suites", "--benchmark-disable", env=env)
    assert proc.returncode == 4 and next(iter(env)) in proc.stderr


def test_the_slowdown_can_be_confined_to_some_methods(tmp_path):
    out = tmp_path / "out.json"
    env = {"MEPROP_BENCH_SLOWDOWN": "0.2", "MEPROP_BENCH_SLOWDOWN_METHODS": "unified"}
    proc = sweep_backward(out, "dense,unified", env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    infos = [b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]]
    assert [(i["method"], i.get("injected_slowdown")) for i in infos] == [
        ("dense", None), ("unified", 0.2), ("unified", 0.2)
    ]  # fmt: skip


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the skip on machines with no GPU"
)
def test_cuda_cases_skip_with_a_reason_without_a_gpu():
    proc = run_suites(
        "suites/test_backward.py",
        "--benchmark-only",
        "-rs",
        *TINY,
        "--meprop-devices",
        "cuda",
        "--meprop-methods",
        "unified/compact",
    )
    assert proc.returncode == 0, proc.stdout
    assert "2 skipped" in proc.stdout and "no CUDA GPU is present" in proc.stdout


def test_root_benchmark_only_collects_the_suites_and_plain_pytest_does_not():
    with_bench = run_suites("--collect-only", "--benchmark-only", *TINY)
    plain = run_suites("--collect-only", *TINY)
    assert "suites/test_backward.py" in with_bench.stdout
    assert "suites/" not in plain.stdout and "tests/test_kernels.py" in plain.stdout


def test_an_earlier_partial_file_is_never_overwritten(tmp_path):
    out = tmp_path / "out.json"
    earlier = tmp_path / "out.json.partial.jsonl"
    earlier.write_text('{"kind": "header", "left": "by a crashed sweep"}\n')
    proc = sweep_backward(out, "unified/compact")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert earlier.read_text() == '{"kind": "header", "left": "by a crashed sweep"}\n'
    assert len(json.loads(out.read_text())["benchmarks"]) == 2
