"""The report that several test files read: built once a session (drawing its plots takes
most of a report's time)."""

from __future__ import annotations

from pathlib import Path

import pytest
from documents import MACHINE, bench_doc, full_sweep, model_doc, training_doc, write

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report (its directory) from a CPU sweep, a second machine's CUDA sweep and a
    Fashion-MNIST training file of two recipes at two training-set sizes, and a
    `meprop-bench model` file. Read it only:
    a test that changes it copies it first."""
    root = tmp_path_factory.mktemp("report")
    gpu = {**MACHINE, "node": "gpubox", "gpus": [{"name": "Test GPU", "cuda_runtime": "12",
                                                  "driver": "1"}]}  # fmt: skip
    write(root / "in" / "cpu.json", bench_doc(full_sweep()))
    write(root / "in" / "gpu" / "cuda.json", bench_doc(full_sweep("cuda"), gpu))
    write(root / "in" / "training.json", training_doc(sizes=(3000, 55000), data="fashion",
                                                      recipes=("torch", "authors")))  # fmt: skip
    write(root / "in" / "model.json", model_doc())
    profile = root / "out" / "r1" / "profiles" / "unified-compact_case"
    profile.mkdir(parents=True)
    (profile / "flame.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    code = run_main(report_main, [str(root / "in"), "--out-root", str(root / "out"),
                                  "--name", "r1"])  # fmt: skip
    assert code == 0
    return root / "out" / "r1"
