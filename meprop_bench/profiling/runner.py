"""Where the time of one benchmark case goes: the case, with the suites' parameters and
inputs, runs over and over under torch.profiler (an operator table by category, and a
Chrome trace), then in a child process under ``py-spy record`` (a flame graph and a
speedscope profile). ``meprop-bench profile`` is its command."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from functools import wraps
from pathlib import Path
from typing import Any
from unittest import mock

import torch
from torch import profiler
from torch.profiler import ProfilerActivity, record_function

import meprop_bench
from meprop_bench.core import kernels, native
from meprop_bench.errors import backend_support
from meprop_bench.harness.cases import Case
from meprop_bench.harness.inputs import case_inputs
from meprop_bench.profiling.categories import (
    BACKWARD,
    BIAS,
    FUSED,
    SELECT,
    OpStats,
    write_csv,
)
from meprop_bench.results.files import envelope, write_new_json
from meprop_bench.results.kinds import PROFILE
from meprop_bench.results.machine import machine_info, threads
from meprop_bench.results.machine_state import Watch

WARMUP = 3
# torch.profiler runs in windows of at most this many iterations, which bounds the
# memory its events take; the first window is kept as the Chrome trace.
WINDOW = 100
FILES = {
    "ops_csv": "ops.csv",
    "categories_csv": "categories.csv",
    "ops_json": "ops.json",
    "trace": "trace.json",
    "flame": "flame.svg",
    "speedscope": "speedscope.json",
    "manifest": "profile.json",
}
PY_SPY_FORMATS = {"flame": "flamegraph", "speedscope": "speedscope"}
# The functions kernels.py calls to choose the kept entries; labelled while profiling.
SELECTION_FUNCTIONS = ("topk_per_example", "randk_per_example", "unified_topk")
BIAS_FUNCTION = "_db"  # the kernels' bias gradient
# The native kernels' compiled calls, which torch.profiler cannot see into.
NATIVE_RANGES = {"per_example_backward": FUSED, "unified_backward": FUSED}
_PERMISSION_SIGNS = ("permission denied", "operation not permitted", "os error 1)",
                     "os error 13)", "ptrace")  # fmt: skip


def make_step(case: Case) -> Callable[[], object]:
    """One backward of ``case`` on the suites' inputs for it (compiled ahead if native),
    run once here: a case the backend cannot run is a one-line error before any file is
    written."""
    case.kernel.prepare()
    dy, x, w = case_inputs(case)
    fn, k = case.kernel.fn, case.k

    def step() -> object:
        return fn(dy, x, w, k)

    with backend_support(f"{case.kernel.name} cannot run in {case.dtype} on {case.device}"):
        step()
    return step


def profile_dir(out_root: Path, name: str, case: Case) -> Path:
    return out_root / name / "profiles" / case.case_id


def prepare_dir(path: Path, force: bool) -> Path:
    """Create ``path``; refuse one holding an earlier profile unless ``force``, which
    removes that profile's files (and nothing else)."""
    found = [path / f for f in FILES.values() if (path / f).exists()]
    if found and not force:
        raise FileExistsError(f"{path} already holds a profile; pass --force to replace it")
    for old in found:
        old.unlink()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _labelled(fn: Callable[..., Any], label: str) -> Callable[..., Any]:
    @wraps(fn)
    def labelled(*args: Any, **kwargs: Any) -> Any:
        with record_function(label):
            return fn(*args, **kwargs)

    return labelled


@contextmanager
def ranges_labelled() -> Iterator[None]:
    """While inside, every selection call the kernels make runs in a ``meprop::select``
    range and every bias gradient in a ``meprop::bias`` range; the native kernels'
    compiled calls run in a ``meprop::fused`` range. The kernels' modules
    are not changed: their globals are patched, then restored."""
    targets = [(kernels, {**dict.fromkeys(SELECTION_FUNCTIONS, SELECT), BIAS_FUNCTION: BIAS})]
    if native.available():
        targets += [(native, {"batch_sum": BIAS}), (native._jit(), NATIVE_RANGES)]
    with ExitStack() as stack:
        for module, labels in targets:
            for name, label in labels.items():
                labelled = _labelled(getattr(module, name), label)
                stack.enter_context(mock.patch.object(module, name, labelled))
        yield


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: What torch.profiler's tracing library (Kineto, torch 2.13) writes to the process's
#: stderr at every start and stop: two lines a window, dozens a run, and no setting
#: (``KINETO_LOG_LEVEL`` among them) silences them.
KINETO_NOISE = b"USDT:"


@contextmanager
def kineto_noise_dropped() -> Iterator[None]:
    """Run the block with file descriptor 2 fed through a pipe that passes every line on
    to the real stderr as it comes, except Kineto's :data:`KINETO_NOISE` lines.

    C++ writes to the descriptor, not to ``sys.stderr``, so only this catches them;
    lines go on as they are written, so a crash inside the block still shows its
    message.
    """
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()

    def forward() -> None:
        with open(read_end, "rb") as lines:
            for line in lines:
                if not line.startswith(KINETO_NOISE):
                    os.write(real, line)

    forwarder = threading.Thread(target=forward, name="stderr-filter", daemon=True)
    forwarder.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last write end: the forwarder sees its end
        forwarder.join()
        os.close(real)


def _profile_window(
    step: Callable[[], object], device: torch.device, iterations: int, deadline: float
) -> profiler.profile:
    """Profile up to ``iterations`` calls of ``step``, stopping early at ``deadline``."""
    activities = [ProfilerActivity.CPU]
    if device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profiler.profile(activities=activities) as prof:
        for _ in range(iterations):
            with record_function(BACKWARD):
                step()
            if time.perf_counter() >= deadline:
                break
        _synchronize(device)
    return prof


@dataclass
class TorchProfile:
    stats: OpStats
    windows: int
    wall_s: float


def run_torch_profiler(
    step: Callable[[], object], device: torch.device, duration: float, trace: Path
) -> TorchProfile:
    """Profile ``step`` for ``duration`` seconds (at least one iteration); write the
    first window's Chrome trace to ``trace``. A discarded warm-up window first also
    takes the profiler's own start-up out of the measured time."""
    with ranges_labelled(), kineto_noise_dropped():
        _profile_window(step, device, WARMUP, math.inf)
        stats = OpStats(with_device=device.type == "cuda")
        start = time.perf_counter()
        windows = 0
        while windows == 0 or time.perf_counter() < start + duration:
            prof = _profile_window(step, device, WINDOW, start + duration)
            if windows == 0:
                prof.export_chrome_trace(str(trace))
            stats.add_events(prof.events())
            windows += 1
    return TorchProfile(stats, windows, time.perf_counter() - start)


def serve(step: Callable[[], object], duration: float) -> None:
    """The py-spy child's workload: warm up, then run ``step`` for ``duration`` seconds."""
    for _ in range(WARMUP):
        step()
    deadline = time.perf_counter() + duration
    while time.perf_counter() < deadline:
        step()


@dataclass
class PySpyResult:
    """What the py-spy part produced, or why it did not."""

    ran: bool
    native: bool
    files: dict[str, str] = field(default_factory=dict)
    message: str | None = None


def _worker_command(case: Case, duration: float, thread_count: int | None) -> list[str]:
    command = [sys.executable, "-m", "meprop_bench.profile", "--worker",
               "--method", case.method, "--strategy", case.strategy,
               "--batch", str(case.batch), "--d-in", str(case.d_in), "--n", str(case.n),
               "--k", str(case.k), "--dtype", case.dtype, "--device", case.device,
               "--grads", case.grads, "--duration", str(duration)]  # fmt: skip
    if thread_count is not None:
        command += ["--threads", str(thread_count)]
    return command


def _worker_env() -> dict[str, str]:
    """The environment for the child: it imports this very meprop_bench."""
    root = str(Path(meprop_bench.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": root if not path else os.pathsep.join((root, path))}


def _ptrace_scope() -> str | None:
    try:
        return Path("/proc/sys/kernel/yama/ptrace_scope").read_text().strip()
    except OSError:
        return None


def explain_py_spy_failure(returncode: int, stderr: str) -> str:
    """A one-paragraph message: the cause of a failed ``py-spy record`` and the fix."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    said = lines[-1].strip() if lines else f"exit status {returncode}"
    if not any(sign in stderr.lower() for sign in _PERMISSION_SIGNS):
        return f"py-spy failed ({said}); no flame graph or speedscope profile."
    scope = _ptrace_scope()
    return (
        f"py-spy could not attach to the workload: ptrace is not permitted here ({said}). "
        'To allow it, run as root (sudo env "PATH=$PATH" meprop-bench profile ...), '
        "start a docker container with --cap-add SYS_PTRACE, or relax Yama with "
        "'sudo sysctl kernel.yama.ptrace_scope=0'"
        + (f" (it is {scope} now)" if scope is not None else "")
        + ". The torch.profiler files are still written."
    )


def run_py_spy(
    case: Case,
    out_dir: Path,
    *,
    exe: str,
    native: bool,
    duration: float,
    thread_count: int | None,
) -> PySpyResult:
    """Record the case in a child process under py-spy: flame.svg, then speedscope.json."""
    found = shutil.which(exe)
    if found is None:
        return PySpyResult(False, native, message=(
            f"py-spy not found ({exe!r}): pip install py-spy, or pass --py-spy PATH; "
            "the torch.profiler files are still written."))  # fmt: skip
    result = PySpyResult(True, native)
    for role, fmt in PY_SPY_FORMATS.items():
        output = out_dir / FILES[role]
        command = [found, "record", "--format", fmt, "--output", str(output)]
        command += ["--native"] if native else []
        command += ["--", *_worker_command(case, duration, thread_count)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=_worker_env(),
                                  timeout=duration + 600)  # fmt: skip
        except subprocess.TimeoutExpired:
            return PySpyResult(False, native, result.files, "py-spy timed out")
        if done.returncode != 0 or not output.exists():
            return PySpyResult(
                False,
                native,
                result.files,
                explain_py_spy_failure(done.returncode, done.stderr),
            )
        result.files[role] = output.name
    return result


def find_profiles(report_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The manifests of every finished profile under ``report_dir``/profiles, each with
    ``dir`` (its directory) added: what a report links to."""
    found = []
    for manifest in sorted(Path(report_dir, "profiles").glob(f"*/{FILES['manifest']}")):
        data = json.loads(manifest.read_text())
        data["dir"] = str(manifest.parent)
        found.append(data)
    return found


def write_tables(stats: OpStats, out_dir: Path) -> dict[str, str]:
    """ops.csv, categories.csv and ops.json; returns their names by role."""
    write_csv(out_dir / FILES["ops_csv"], stats.operators())
    write_csv(out_dir / FILES["categories_csv"], stats.categories())
    write_new_json(out_dir / FILES["ops_json"], stats.summary())
    return {role: FILES[role] for role in ("ops_csv", "categories_csv", "ops_json", "trace")}


def format_summary(case: Case, part: TorchProfile) -> str:
    """The category table for the terminal (host time; on CUDA, device time too)."""
    stats = part.stats
    device = stats.with_device
    lines = [
        f"{case.case_id}: {stats.iterations} iterations in {part.wall_s:.1f} s under "
        f"torch.profiler, {stats.ms_per_iteration:.3f} ms host time each",
        f"{'category':<16}{'ms/iter':>10}{'share':>8}" + (f"{'device':>8}" if device else ""),
    ]
    for row in stats.categories():
        line = f"{row['category']:<16}{row['ms_per_iteration']:>10.3f}{row['share']:>8.1%}"
        lines.append(line + (f"{row['device_share']:>8.1%}" if device else ""))
    return "\n".join(lines)


def profile_case(
    case: Case,
    out_dir: Path,
    *,
    duration: float,
    thread_count: int | None,
    py_spy: str | None,
    native: bool,
    force: bool = False,
) -> tuple[dict[str, Any], str]:
    """Profile ``case`` into ``out_dir``: torch.profiler in this process, then py-spy in
    a child (``py_spy`` is its executable; None: skip). The case runs once before the
    directory is made, so one the backend cannot run leaves nothing behind; an earlier
    profile there is replaced only with ``force``.

    Returns the manifest written to profile.json and the category table for the
    terminal; a py-spy that could not run says why in ``manifest["py_spy"]["message"]``.
    """
    step = make_step(case)
    out_dir = prepare_dir(out_dir, force)
    with threads(thread_count) as in_force:
        watch = Watch()
        part = run_torch_profiler(step, torch.device(case.device), duration,
                                  out_dir / FILES["trace"])  # fmt: skip
        machine = {**machine_info(), "state": watch.state()}
    files = write_tables(part.stats, out_dir)
    spy = PySpyResult(False, native, message="skipped (--no-py-spy)")
    if py_spy is not None:
        spy = run_py_spy(case, out_dir, exe=py_spy, native=native, duration=duration,
                         thread_count=thread_count)  # fmt: skip
    files.update(spy.files)
    manifest = envelope(
        PROFILE, machine=machine, case=asdict(case), case_id=case.case_id,
        threads=in_force, duration_s=duration, warmup=WARMUP,
        torch_profiler={"iterations": part.stats.iterations, "windows": part.windows,
                        "wall_s": round(part.wall_s, 3),
                        "ms_per_iteration": round(part.stats.ms_per_iteration, 6),
                        "categories": part.stats.categories()},
        py_spy=asdict(spy), files=files,
    )  # fmt: skip
    write_new_json(out_dir / FILES["manifest"], manifest)
    return manifest, format_summary(case, part)
