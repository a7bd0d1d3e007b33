"""python -m meprop_bench.profile: short CPU profiles at a tiny shape, their files, the
py-spy failure path, refusal to clobber, and bad arguments."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from meprop_bench.commands.common import run_main
from meprop_bench.commands.profile import main
from meprop_bench.harness.cases import Case
from meprop_bench.profiling.categories import (
    BACKWARD,
    BIAS,
    CATEGORIES,
    FUSED,
    SELECT,
    OpStats,
    op_category,
)
from meprop_bench.profiling.runner import FILES, explain_py_spy_failure, find_profiles

TINY = ["--batch", "8", "--width", "64", "--k", "4", "--duration", "0.2"]
CASE_ID = Case.make("unified", None, 8, 64, 64, 4).case_id
HAS_PY_SPY = shutil.which("py-spy") is not None


def _profile(tmp_path: Path, *extra: str) -> int:
    return main([*TINY, "--out-root", str(tmp_path), *extra])


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _check_torch_files(out: Path) -> dict:
    ops = json.loads((out / "ops.json").read_text())
    assert ops["iterations"] >= 1
    shares = [row["share"] for row in ops["categories"]]
    assert [row["category"] for row in ops["categories"]] == list(CATEGORIES)
    assert sum(shares) == pytest.approx(1.0, abs=1e-4)
    by_category = sum(row["self_us"] for row in ops["categories"])
    assert by_category == pytest.approx(ops["backward_us"], rel=1e-6)
    assert sum(row["self_us"] for row in ops["operators"]) == pytest.approx(
        ops["backward_us"], rel=1e-6
    )
    rows = _read_csv(out / "ops.csv")
    assert len(rows) == len(ops["operators"])
    assert {row["category"] for row in rows} <= set(CATEGORIES)
    names = {(row["category"], row["name"]) for row in rows}
    assert ("selection", "aten::topk") in names
    assert ("product", "aten::mm") in names
    assert ("bias", "aten::sum") in names
    assert len(_read_csv(out / "categories.csv")) == len(CATEGORIES)
    trace = json.loads((out / "trace.json").read_text())
    assert any(event.get("name") == BACKWARD for event in trace["traceEvents"])
    manifest = json.loads((out / "profile.json").read_text())
    assert manifest["schema"] == "meprop-bench/profile"
    assert manifest["case_id"] == CASE_ID
    assert manifest["torch_profiler"]["iterations"] == ops["iterations"]
    for name in manifest["files"].values():
        assert (out / name).is_file()
    return manifest


@pytest.mark.skipif(not HAS_PY_SPY, reason="py-spy is not installed")
def test_profile_writes_every_file(tmp_path, capsys):
    assert _profile(tmp_path) == 0
    out = tmp_path / "latest" / "profiles" / CASE_ID
    manifest = _check_torch_files(out)
    if not manifest["py_spy"]["ran"] and "ptrace" in manifest["py_spy"]["message"]:
        pytest.skip(f"py-spy cannot run here: {manifest['py_spy']['message']}")
    assert manifest["py_spy"]["ran"] is True, manifest["py_spy"]["message"]
    assert set(manifest["files"]) == {k for k in FILES if k != "manifest"}
    assert (out / "flame.svg").read_text().lstrip().startswith("<?xml")
    speedscope = json.loads((out / "speedscope.json").read_text())
    assert "speedscope" in speedscope["$schema"]
    frames = {frame["name"] for frame in speedscope["shared"]["frames"]}
    assert "serve" in frames
    assert [p["case_id"] for p in find_profiles(tmp_path / "latest")] == [CASE_ID]
    assert "selection" in capsys.readouterr().out


def test_py_spy_failure_still_writes_torch_part(tmp_path, capsys):
    stub = tmp_path / "py-spy-stub"
    stub.write_text('#!/bin/sh\necho "Error: Operation not permitted (os error 1)" >&2\nexit 1\n')
    stub.chmod(0o755)
    assert _profile(tmp_path, "--py-spy", str(stub), "--name", "denied") == 0
    out = tmp_path / "denied" / "profiles" / CASE_ID
    manifest = _check_torch_files(out)
    assert manifest["py_spy"]["ran"] is False
    assert not (out / "flame.svg").exists()
    err = capsys.readouterr().err
    assert "ptrace is not permitted" in err
    for fix in ("root", "--cap-add SYS_PTRACE", "kernel.yama.ptrace_scope=0"):
        assert fix in err


def test_missing_py_spy_is_reported(tmp_path, capsys):
    assert _profile(tmp_path, "--py-spy", str(tmp_path / "nowhere"), "--duration", "0.1") == 0
    assert "py-spy not found" in capsys.readouterr().err


def test_no_clobber_without_force(tmp_path, capsys):
    args = ("--no-py-spy", "--duration", "0.1")
    assert _profile(tmp_path, *args) == 0
    manifest = tmp_path / "latest" / "profiles" / CASE_ID / "profile.json"
    before = manifest.read_text()
    with pytest.raises(FileExistsError, match="--force"):
        _profile(tmp_path, *args)
    assert manifest.read_text() == before
    assert _profile(tmp_path, *args, "--force") == 0
    assert manifest.read_text() != before


@pytest.mark.parametrize(
    "argv",
    [
        ["--k", "0"],
        ["--k", "many"],
        ["--method", "nope"],
        ["--method", "unified", "--strategy", "masked"],
        ["--batch", "0"],
        ["--duration", "-1"],
        ["--dtype", "int8"],
        ["--device", "tpu"],
        ["--grads", "imagined"],
    ],
)
def test_bad_arguments_exit_2(argv, tmp_path, capsys):
    try:
        code = run_main(main, [*argv, "--out-root", str(tmp_path)])
    except SystemExit as exit:  # argparse's usage errors
        code = exit.code
    assert code == 2
    assert "error" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_command_line_reports_a_mistake_in_one_line(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "meprop_bench.profile",
            "--k",
            "5000",
            "--out-root",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: k=5000 is out of range: it must satisfy 1 <= k <= n=4096"
    ]


def test_kineto_lines_are_dropped_from_stderr_and_the_rest_passed_on(capfd):
    import os

    from meprop_bench.profiling.runner import kineto_noise_dropped

    with kineto_noise_dropped():
        os.write(2, b"USDT:2026-11-25 SyncActivityProfilerHandler.cpp:52] profiler_start\n")
        os.write(2, b"a real warning\n")
        os.write(2, b"USDT: profiler_stop\nlast line, no newline")
    os.write(2, b"\nafter\n")
    assert capfd.readouterr().err == "a real warning\nlast line, no newline\nafter\n"


def test_profiling_leaves_no_kineto_lines_on_stderr(tmp_path, capfd):
    from meprop_bench.profiling.runner import run_torch_profiler

    run_torch_profiler(lambda: torch.ones(3).sum(), torch.device("cpu"), 0.01, tmp_path / "t.json")
    assert "USDT" not in capfd.readouterr().err


def test_explain_generic_failure():
    message = explain_py_spy_failure(3, "something odd\nError: no python found\n")
    assert "Error: no python found" in message and "ptrace" not in message


def _event(name, self_us, children=()):
    total = self_us + sum(child.cpu_time_total for child in children)
    return SimpleNamespace(
        name=name,
        device_type=torch.autograd.DeviceType.CPU,
        cpu_children=list(children),
        self_cpu_time_total=self_us,
        cpu_time_total=total,
        self_device_time_total=0.0,
    )


def test_categories_follow_the_kernel_level_call():
    """Nested operators count toward their caller's category; a sum is selection
    inside a select range and bias outside it; a GEMV is bias inside a bias range."""
    select = _event(SELECT, 1, [_event("aten::sum", 5), _event("aten::sort", 3)])
    zeros = _event("aten::zeros_like", 1, [_event("aten::empty_like", 2), _event("aten::zero_", 4)])
    bias = _event(BIAS, 1, [_event("aten::mv", 2, [_event("aten::addmv_", 7)])])
    fused = _event(FUSED, 11)
    root = _event(
        BACKWARD, 2, [select, zeros, _event("aten::matmul", 1, [_event("aten::mm", 20)]),
                      _event("aten::sum", 6), _event("aten::t", 1), bias, fused]
    )  # fmt: skip
    stats = OpStats()
    stats.add_events([root, _event("unrelated", 100)])
    shares = {row["category"]: row["self_us"] for row in stats.categories()}
    assert shares == {
        "selection": 9, "indexing": 0, "gather/scatter": 0, "product": 21,
        "allocation": 7, "bias": 16, "fused": 11, "other": 1, "python": 2,
    }  # fmt: skip
    assert stats.iterations == 1 and stats.backward_us == root.cpu_time_total
    assert op_category("aten::index_select") == "gather/scatter"
    assert op_category("aten::searchsorted") == "indexing"


def test_device_columns_only_on_cuda():
    root = _event(BACKWARD, 1, [_event("aten::mm", 3)])
    cpu, cuda = OpStats(), OpStats(with_device=True)
    for stats in (cpu, cuda):
        stats.add_events([root])
    assert "device_share" not in cpu.categories()[0]
    assert "self_device_us" in cuda.operators()[0] and "device_us" in cuda.summary()


def test_a_case_the_backend_cannot_run_is_a_one_line_error(tmp_path, capsys):
    argv = [*TINY, "--method", "topk", "--strategy", "sparse", "--dtype", "bfloat16"]
    assert run_main(main, [*argv, "--no-py-spy", "--out-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "topk/sparse cannot run in bfloat16 on cpu" in err[0]
    assert "not implemented for 'BFloat16'" in err[0]
    assert not any(tmp_path.iterdir())
