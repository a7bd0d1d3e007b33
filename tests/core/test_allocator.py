"""Page-fault counting in the CPU timer, and the allocator modes."""

from __future__ import annotations

import json
import mmap
import subprocess
import sys

import numpy as np
import pytest

from meprop_bench.core import allocator
from meprop_bench.errors import MePropInputError
from meprop_bench.harness.timing import CpuTimer, measure_interleaved
from meprop_bench.results.machine import machine_info

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="page-fault counts are Linux's")
MIB_64 = 64 << 20
HUGE_PAGES = 32  # 2 MiB pages in 64 MiB


def fresh_64_mib() -> None:
    """Map 64 MiB and write one byte a page: fresh memory whatever malloc's state (a
    64 MiB tensor can come from a heap that the steady allocator mode, set by an
    earlier test in the same process, never trims, and then takes no fault)."""
    with mmap.mmap(-1, MIB_64) as memory:
        np.frombuffer(memory, np.uint8)[:: mmap.PAGESIZE] = 1


@linux_only
def test_timer_counts_the_page_faults_of_the_call():
    timer = CpuTimer()
    timer(fresh_64_mib)  # 64 MiB first touched inside the call
    assert timer.last_faults >= HUGE_PAGES  # one a page at least, even if pages are 2 MiB
    timer(lambda: None)
    assert timer.last_faults < HUGE_PAGES


@linux_only
def test_measurements_carry_faults_per_call():
    times = measure_interleaved({"fresh": fresh_64_mib, "none": lambda: None}, CpuTimer(), rounds=3)
    assert len(times["fresh"].faults) == 3 and len(times["none"].faults) == 3
    assert times["fresh"].median_faults > times["none"].median_faults


def test_modes_are_checked(monkeypatch):
    with pytest.raises(MePropInputError, match="unknown allocator mode 'fast'"):
        allocator.set_mode("fast")
    allocator.set_mode("default")  # leaving malloc alone is always possible
    assert machine_info()["allocator"]["mode"] == "default"


@pytest.mark.skipif(allocator._glibc() is None, reason="the steady setting tunes glibc malloc")
def test_steady_refuses_a_preloaded_malloc(monkeypatch):
    monkeypatch.setenv("LD_PRELOAD", "libjemalloc.so.2")
    with pytest.raises(MePropInputError, match=r"LD_PRELOAD=libjemalloc\.so\.2 replaces malloc"):
        allocator.set_mode("steady")
    assert allocator.info()["mode"] == "default"


def test_no_fault_counts_where_the_system_keeps_none(monkeypatch):
    monkeypatch.setattr(allocator, "resource", None)
    timer = CpuTimer()
    timer(lambda: None)
    assert allocator.minor_faults() is None and timer.last_faults is None


@pytest.mark.skipif(allocator._glibc() is None, reason="the steady setting tunes glibc malloc")
def test_steady_mode_is_applied_and_recorded(tmp_path):
    """In a child process: the setting is process-wide and cannot be undone. The child
    runs the check command, then asks for the default mode: a no-op, silent."""
    out = tmp_path / "check.json"
    argv = ["-B", "4", "--d-in", "8", "--n", "16", "--k", "4", "--kernels", "unified/compact",
            "--rounds", "3", "--malloc", "steady", "--json", str(out)]  # fmt: skip
    code = (
        "import sys\n"
        "from meprop_bench.commands import main\n"
        f"status = main(['check', *{argv!r}])\n"
        "from meprop_bench.core import allocator\n"
        "print('--- the check is done ---', flush=True)\n"
        "allocator.set_mode('default')\n"
        "assert allocator.info()['mode'] == 'steady'\n"
        "sys.exit(status)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    checked, undone = proc.stdout.split("--- the check is done ---\n")
    assert "malloc steady" in checked
    doc = json.loads(out.read_text())
    assert doc["machine"]["allocator"]["mode"] == "steady"
    assert all(isinstance(r["minor_faults_median"], (int, float)) for r in doc["results"])
    assert undone == ""  # default after steady: a no-op, and says nothing
