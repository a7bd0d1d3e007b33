"""The suites as a user runs them: JSON fields, crash recovery, usage errors, skips.

Each test runs pytest on the real suites/ with a tiny grid: in a subprocess where it
measures, is killed or writes files, in this process (``pytest.main``, the same exit
status and messages, without an interpreter and torch to start) where only the options
are checked, the cases collected, or every case skips or fails before it is timed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from documents import train_step_case

from meprop_bench.commands.recover import main as recover_main
from meprop_bench.harness.plugin import benchmark_json_path

ROOT = Path(__file__).resolve().parents[2]
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


def sweep_backward(out: Path, methods: str, env: dict | None = None, run=None):
    """A tiny backward sweep with --benchmark-json ``out``, in a child process unless
    ``run`` (the ``run_inline`` fixture) runs it in this one."""
    return (run or run_suites)(
        "-q",
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
    proc = sweep_backward(out, "dense,unified/compact,unified/scatter")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    for key in ("torch", "blas", "cpu_capability", "torch_threads", "threadpools", "allocator",
                "numba"):  # fmt: skip
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
        assert info["timer"] == "perf-counter"
        assert b["stats"]["median"] == sorted(b["stats"]["data"])[1]
        assert "SampleClock(perf_counter)" in b["options"]["timer"]
    assert not Path(f"{out}.partial.jsonl").exists(), "partial file kept after a clean run"


@pytest.mark.slow  # every suite and method: .ci/run's own tiny sweep does this again
def test_every_suite_runs_once_with_benchmarks_disabled():
    proc = run_suites("suites", "--benchmark-disable", *TINY)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert " passed" in proc.stdout and "failed" not in proc.stdout


def kill_after_three_cases(partial: Path, *args: str, cwd: Path = ROOT) -> str:
    """Start a slow backward sweep, SIGKILL it once ``partial`` holds three results;
    return what it printed."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
               str(ROOT / "suites" / "test_backward.py"), "--benchmark-only", *TINY,
               "--meprop-widths", "32,48,64,80,96,112,128", "--meprop-rounds", "400",
               *args]  # fmt: skip
    log = partial.parent / "sweep.log"
    partial.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as out:
        proc = subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
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
    return log.read_text()


def test_interrupted_sweep_is_recovered(tmp_path):
    partial = tmp_path / "sweep.partial.jsonl"
    kill_after_three_cases(partial, "--meprop-partial", str(partial))
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
    from meprop_bench.commands.common import run_main

    bad = tmp_path / "x.jsonl"
    bad.write_text('{"a": 1}\n')
    assert run_main(recover_main, [str(bad), "-o", str(tmp_path / "o.json")]) == 2
    assert "not a meprop-bench partial results file" in capsys.readouterr().err


@pytest.mark.parametrize(
    "option,value",
    [("--meprop-ks", "0.01,abc"), ("--meprop-preset", "huge"), ("--meprop-malloc", "fast")],
)
def test_malformed_option_is_a_usage_error(option, value, run_inline):
    proc = run_inline("-q", "suites", "--benchmark-disable", option, value)
    assert proc.returncode == 4  # pytest's usage-error status
    assert option in proc.stderr and "Traceback" not in proc.stderr


def test_a_count_larger_than_the_width_is_a_usage_error_naming_both(run_inline):
    proc = run_inline("-q", "suites/test_selection.py", "--benchmark-only", "--collect-only",
                      "--meprop-widths", "64", "--meprop-ks", "100")  # fmt: skip
    assert proc.returncode == 4 and "INTERNALERROR" not in proc.stdout + proc.stderr
    assert "k=100 is larger than every width swept (64)" in proc.stderr


def test_a_grid_with_no_case_for_a_suite_skips_it_with_the_reason(run_inline):
    # No kernel runs in float16 on the CPU and dense is not asked for: no case at all.
    proc = run_inline("-q", "suites", "--benchmark-only", "--meprop-methods", "topk/native",
                      "--meprop-dtypes", "float16", "-rs")  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "INTERNALERROR" not in out, out[-3000:]
    assert "got empty parameter set" in out


def test_a_partial_path_that_is_a_directory_is_a_usage_error(tmp_path, run_inline):
    proc = run_inline("-q", "suites/test_backward.py", "--benchmark-only", *TINY,
                      "--meprop-partial", str(tmp_path))  # fmt: skip
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert f"--meprop-partial: {tmp_path} is a directory; give the path of a file" in proc.stderr
    assert list(tmp_path.parent.glob(f"{tmp_path.name}-*")) == []


def test_the_cuda_graph_timer_off_cuda_is_a_usage_error(run_inline):
    proc = run_inline("-q", "suites", "--benchmark-disable", "--meprop-cuda-graph", *TINY)
    assert proc.returncode == 4 and "Traceback" not in proc.stderr
    assert "--meprop-cuda-graph times CUDA devices only" in proc.stderr and "cpu" in proc.stderr


@pytest.mark.parametrize(
    "env",
    [{"MEPROP_BENCH_SLOWDOWN": "lots"}, {"MEPROP_BENCH_SLOWDOWN_METHODS": "unified,fast"}],
)
def test_bad_slowdown_is_a_usage_error(env, run_inline):
    proc = run_inline("-q", "suites", "--benchmark-disable", env=env)
    assert proc.returncode == 4 and next(iter(env)) in proc.stderr


def test_the_slowdown_can_be_confined_to_some_methods(tmp_path, run_inline):
    out = tmp_path / "out.json"
    env = {"MEPROP_BENCH_SLOWDOWN": "0.2", "MEPROP_BENCH_SLOWDOWN_METHODS": "unified"}
    proc = sweep_backward(out, "dense,unified/compact,unified/scatter", env, run_inline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    infos = [b["extra_info"] for b in json.loads(out.read_text())["benchmarks"]]
    assert [(i["method"], i.get("injected_slowdown")) for i in infos] == [
        ("dense", None), ("unified", 0.2), ("unified", 0.2)
    ]  # fmt: skip


@pytest.mark.skipif(
    __import__("torch").cuda.is_available(), reason="checks the skip on machines with no GPU"
)
def test_cuda_cases_skip_with_a_reason_without_a_gpu(run_inline):
    proc = run_inline(
        "-q",
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


def test_root_benchmark_only_collects_the_suites_and_plain_pytest_does_not(run_inline):
    with_bench = run_inline("-q", "--collect-only", "--benchmark-only", *TINY)
    plain = run_inline("-q", "--collect-only", *TINY)
    assert "suites/test_backward.py" in with_bench.stdout
    assert "suites/" not in plain.stdout and "tests/core/test_kernels.py" in plain.stdout


def test_an_earlier_partial_file_is_never_overwritten(tmp_path, run_inline):
    out = tmp_path / "out.json"
    earlier = tmp_path / "out.json.partial.jsonl"
    earlier.write_text('{"kind": "header", "left": "by a crashed sweep"}\n')
    proc = sweep_backward(out, "unified/compact", run=run_inline)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert earlier.read_text() == '{"kind": "header", "left": "by a crashed sweep"}\n'
    assert len(json.loads(out.read_text())["benchmarks"]) == 2


def test_a_kernel_that_cannot_run_in_the_dtype_is_left_out(tmp_path, run_inline):
    # topk/sparse's CSR products have no half-precision kernel on the CPU: runs_on says
    # so and the grid has no such case (one the backend refuses all the same is skipped
    # with its reason: test_an_exception_in_a_timed_case_is_a_skip_or_itself).
    out = tmp_path / "out.json"
    proc = run_inline(
        "-q", "suites/test_backward.py", "suites/test_layer_backward.py", "--benchmark-only", "-rs",
        "--benchmark-json", str(out), *TINY, "--meprop-dtypes", "bfloat16",
        "--meprop-methods", "dense,topk/sparse",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed in" in proc.stdout and "skipped" not in proc.stdout
    assert [b["extra_info"]["method"] for b in json.loads(out.read_text())["benchmarks"]] == [
        "dense",
        "dense",
    ]


TIMED_ERRORS = """
import pytest


def raise_(err):
    raise err


@pytest.mark.parametrize("err", [
    NotImplementedError("\\"addmm\\" not implemented for 'Half'"),
    RuntimeError("\\"topk_cpu\\" not implemented for 'ComplexFloat'"),
    RuntimeError("CUDA out of memory"),
    ZeroDivisionError("a bug"),
], ids=["notimplemented", "runtime-not-implemented", "runtime-other", "bug"])
def test_timed(meprop, err):
    meprop.run(lambda: raise_(err), device="cpu", thread_count=None, extra_info={}, group="g")
"""


def test_an_exception_in_a_timed_case_is_a_skip_or_itself(tmp_path, run_inline):
    (tmp_path / "test_timed.py").write_text(TIMED_ERRORS)
    proc = run_inline("-rsf", "test_timed.py", "--benchmark-only", "--meprop-rounds", "1",
                      "--meprop-warmup", "0", cwd=tmp_path)  # fmt: skip
    assert "2 failed, 2 skipped" in proc.stdout, proc.stdout
    assert "min() arg" not in proc.stdout
    assert "not implemented for 'Half'" in proc.stdout
    assert "not implemented for 'ComplexFloat'" in proc.stdout
    assert "FAILED test_timed.py::test_timed[runtime-other] - RuntimeError: CUDA" in proc.stdout
    assert "FAILED test_timed.py::test_timed[bug] - ZeroDivisionError: a bug" in proc.stdout


PAIRED_STEPS = """
import json, time
from pathlib import Path

EVENTS = Path("events.json")
EXTRA = json.loads(%r)


def test_step(meprop):
    events = []

    def step(name, seconds):
        events.append(name)
        time.sleep(seconds)

    meprop.run(lambda: step("sparse", 0.001), device="cpu", thread_count=None,
               extra_info=EXTRA, group="g", steps=True,
               partner=lambda: step("dense", 0.002))
    EVENTS.write_text(json.dumps(events))
"""


def test_a_sparse_step_is_timed_beside_its_dense_partner_round_by_round(tmp_path, run_inline):
    extra = train_step_case("topk", "native", 1e-3)["extra_info"]
    (tmp_path / "test_paired.py").write_text(PAIRED_STEPS % json.dumps(extra))
    proc = run_inline("test_paired.py", "--benchmark-only", "--benchmark-json", "out.json",
                      "--meprop-rounds", "3", "--meprop-warmup", "0", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    (bench,) = json.loads((tmp_path / "out.json").read_text())["benchmarks"]
    info, own = bench["extra_info"], bench["stats"]["data"]
    mine, theirs = info["steps_per_round"], info["paired_steps_per_round"]
    # each round: a block of the dense partner's steps, then a block of the case's own
    rounds = ["dense"] * theirs + ["sparse"] * mine
    events = json.loads((tmp_path / "events.json").read_text())
    assert events[-3 * len(rounds) :] == rounds * 3
    assert len(info["paired_dense_s"]) == len(own) == 3
    ratio = np.median(np.asarray(info["paired_dense_s"]) / np.asarray(own))
    assert info["paired_speedup"] == pytest.approx(ratio)
    assert info["paired_low"] <= info["paired_speedup"] <= info["paired_high"]
    assert info["unstable"] is not None  # judged on the pairing, with no dense case run


def test_a_killed_sweeps_partial_file_is_beside_its_json_and_says_how_to_recover(tmp_path):
    partial = tmp_path / "results" / "out.json.partial.jsonl"
    printed = kill_after_three_cases(partial, "--benchmark-json", "results/out.json", cwd=tmp_path)
    assert not (tmp_path / "out.json.partial.jsonl").exists()
    command = "meprop-bench recover results/out.json.partial.jsonl -o results/out.json --force"
    assert command in printed
    out = tmp_path / "results" / "out.json"
    assert recover_main([str(partial), "-o", str(out), "--force"]) == 0
    assert len(json.loads(out.read_text())["benchmarks"]) >= 3


@pytest.mark.parametrize(
    "given", [Path("results/out.json"), "results/out.json", io.BytesIO()], ids=type
)
def test_the_json_path_keeps_its_directory_however_it_is_handed_over(given):
    if isinstance(given, io.BytesIO):
        given.name = "results/out.json"  # an open file, as argparse.FileType gives
    assert benchmark_json_path(given) == Path("results/out.json")
    assert benchmark_json_path(None) is None


# Each compares the repository's .benchmarks before and after its run, where the other's
# run writes while it lasts: not to run at once (pytest-xdist's --dist loadfile, as the
# README runs it, keeps a file's tests in one worker).
@pytest.mark.parametrize("save", [[], ["--benchmark-autosave"]], ids=["no-save", "autosave"])
def test_a_clean_run_leaves_no_partial_file(tmp_path, save, run_inline):
    storage = tmp_path / "storage"
    before = set((ROOT / ".benchmarks").glob("partial-*"))
    proc = run_inline(
        "-q", "suites/test_backward.py", "--benchmark-only", *TINY, "--meprop-methods",
        "unified/compact", f"--benchmark-storage=file://{storage}", *save,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert set((ROOT / ".benchmarks").glob("partial-*")) == before
    assert "partial results in" not in proc.stdout
    if save:
        assert len(list(storage.rglob("*.json"))) == 1
