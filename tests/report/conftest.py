"""The report that several test files read: built once a session (drawing its plots takes
most of a report's time), and once a run under pytest-xdist, whose workers share it."""

from __future__ import annotations

import fcntl
from pathlib import Path

import pytest
from documents import MACHINE, bench_doc, full_sweep, model_doc, training_doc, write

from meprop_bench.commands.common import run_main
from meprop_bench.commands.report import main as report_main


def build(root: Path) -> Path:
    """The report of ``built``, made under ``root``; returns its directory."""
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


@pytest.fixture(scope="session")
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One report (its directory) from a CPU sweep, a second machine's CUDA sweep and a
    Fashion-MNIST training file of two recipes at two training-set sizes, and a
    `meprop-bench model` file. Read it only:
    a test that changes it copies it first.

    Under pytest-xdist (``-n``) the first worker to ask builds it in the run's temporary
    folder, which every worker's own lies in, while holding a lock there; the others wait
    for the lock and read the same report."""
    if not hasattr(request.config, "workerinput"):  # not an xdist worker
        return build(tmp_path_factory.mktemp("report"))
    shared = tmp_path_factory.getbasetemp().parent / "shared-report"  # this run's, not the last
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        done = shared / "done"
        if not done.exists():
            done.write_text(str(build(shared / "report")))
        return Path(done.read_text())
