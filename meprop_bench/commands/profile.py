"""``python -m meprop_bench.profile``: where the time of one benchmark case goes.

One case, with the suites' parameters and inputs, runs over and over for ``--duration``
seconds under torch.profiler (an operator table by category, and a Chrome trace), then
twice more in a child process under ``py-spy record`` (a flame graph and a speedscope
profile). Everything lands in ``<out-root>/<name>/profiles/<case id>/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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
from meprop_bench.commands.common import reports_root
from meprop_bench.core import kernels, native
from meprop_bench.core.kernels import KERNELS, METHODS
from meprop_bench.errors import backend_support
from meprop_bench.harness.cases import GRAD_SOURCES, Case
from meprop_bench.harness.inputs import case_inputs
from meprop_bench.harness.machine import machine_info, threads
from meprop_bench.harness.options import (
    add_case_options,
    add_threads_option,
    case_widths,
    positive_float,
    resolve_device,
)
from meprop_bench.profiling.categories import (
    BACKWARD,
    BIAS,
    CATEGORIES,
    FUSED,
    SELECT,
    OpStats,
    write_csv,
)
from meprop_bench.results.files import envelope, write_new_json
from meprop_bench.results.kinds import PROFILE

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

EPILOG = (
    f"""\
outputs, in <out-root>/<name>/profiles/<case id>/:
  ops.csv, ops.json   torch.profiler operators: category, calls, self and total time, share
  categories.csv      the backward's time by category (also in ops.json and profile.json)
  trace.json          Chrome trace of the first {WINDOW} profiled iterations
                      (open in chrome://tracing or https://ui.perfetto.dev)
  flame.svg           py-spy flame graph (open in a browser; the workload is under `serve`)
  speedscope.json     py-spy profile for https://www.speedscope.app
  profile.json        manifest: the case, duration, iterations, files, py-spy status

categories (each operator counts toward the category of the kernel-level call it is in):
"""
    + "\n".join(f"  {name:<16}{text}" for name, text in CATEGORIES.items())
    + """

py-spy needs permission to ptrace the child it starts. When it cannot, a message says
how to allow it, the torch.profiler files are still written, and the exit status is 0;
profile.json records whether py-spy ran. Exit status 2: a bad argument or an existing
profile directory without --force."""
)


def build_parser() -> argparse.ArgumentParser:
    """The command line: the suites' case parameters, then the profiling options."""
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="meprop-bench profile",
        description=__doc__.split("\n\n")[1].replace("``", ""),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_case_options(parser, k=0.01)
    case = parser.add_argument_group("what is timed")
    case.add_argument(
        "--method",
        default="unified",
        choices=METHODS,
        help="backward method (default: %(default)s)",
    )
    case.add_argument(
        "--strategy",
        help="product strategy (default: the method's default); known: "
        + ", ".join(k.name for k in KERNELS.values()),
    )
    case.add_argument(
        "--grads",
        default="gaussian",
        choices=GRAD_SOURCES,
        help="the inputs (default: %(default)s)",
    )
    run = parser.add_argument_group("profiling")
    run.add_argument(
        "--duration",
        type=positive_float,
        default=5.0,
        help="seconds each of the three profiles runs the case (default: %(default)s)",
    )
    add_threads_option(run)
    run.add_argument("--native", action="store_true", help="py-spy: show ATen/MKL frames too")
    run.add_argument("--no-py-spy", action="store_true", help="torch.profiler only")
    run.add_argument(
        "--py-spy", default="py-spy", metavar="EXE", help="py-spy executable (default: %(default)s)"
    )
    run.add_argument(
        "--name", default="latest", help="report directory under --out-root (default: %(default)s)"
    )
    run.add_argument(
        "--out-root",
        default=reports_root(),
        type=Path,
        help="root of the reports (default: %(default)s)",
    )
    run.add_argument("--force", action="store_true", help="replace an existing profile")
    run.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return parser


def case_from_args(args: argparse.Namespace) -> Case:
    """The Case the arguments name, validated exactly as the suites validate theirs."""
    device = str(resolve_device(args.device, "--device"))
    d_in, n = case_widths(args)
    return Case.make(args.method, args.strategy, args.batch, d_in, n, args.k, args.dtype,
                     device, args.grads)  # fmt: skip


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
    with ranges_labelled():
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


def _worker_command(case: Case, args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "meprop_bench.profile", "--worker",
               "--method", case.method, "--strategy", case.strategy,
               "--batch", str(case.batch), "--d-in", str(case.d_in), "--n", str(case.n),
               "--k", str(case.k), "--dtype", case.dtype, "--device", case.device,
               "--grads", case.grads, "--duration", str(args.duration)]  # fmt: skip
    if args.threads is not None:
        command += ["--threads", str(args.threads)]
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
        'To allow it, run as root (sudo env "PATH=$PATH" python -m meprop_bench.profile ...), '
        "start a docker container with --cap-add SYS_PTRACE, or relax Yama with "
        "'sudo sysctl kernel.yama.ptrace_scope=0'"
        + (f" (it is {scope} now)" if scope is not None else "")
        + ". The torch.profiler files are still written."
    )


def run_py_spy(case: Case, args: argparse.Namespace, out_dir: Path) -> PySpyResult:
    """Record the case in a child process under py-spy: flame.svg, then speedscope.json."""
    exe = shutil.which(args.py_spy)
    if exe is None:
        return PySpyResult(False, args.native, message=(
            f"py-spy not found ({args.py_spy!r}): pip install py-spy, or pass --py-spy PATH; "
            "the torch.profiler files are still written."))  # fmt: skip
    result = PySpyResult(True, args.native)
    for role, fmt in PY_SPY_FORMATS.items():
        output = out_dir / FILES[role]
        command = [exe, "record", "--format", fmt, "--output", str(output)]
        command += ["--native"] if args.native else []
        command += ["--", *_worker_command(case, args)]
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=_worker_env(),
                                  timeout=args.duration + 600)  # fmt: skip
        except subprocess.TimeoutExpired:
            return PySpyResult(False, args.native, result.files, "py-spy timed out")
        if done.returncode != 0 or not output.exists():
            return PySpyResult(
                False,
                args.native,
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    case = case_from_args(args)
    step = make_step(case)
    if args.worker:
        with threads(args.threads):
            serve(step, args.duration)
        return 0
    out_dir = prepare_dir(profile_dir(args.out_root, args.name, case), args.force)
    with threads(args.threads) as thread_count:
        part = run_torch_profiler(step, torch.device(case.device), args.duration,
                                  out_dir / FILES["trace"])  # fmt: skip
        machine = machine_info()
    files = write_tables(part.stats, out_dir)
    print(format_summary(case, part))
    spy = PySpyResult(False, args.native, message="skipped (--no-py-spy)")
    if not args.no_py_spy:
        spy = run_py_spy(case, args, out_dir)
    if not spy.ran:
        print(f"py-spy: {spy.message}", file=sys.stderr)
    files.update(spy.files)
    manifest = envelope(
        PROFILE, machine=machine, case=asdict(case), case_id=case.case_id,
        threads=thread_count, duration_s=args.duration, warmup=WARMUP,
        torch_profiler={"iterations": part.stats.iterations, "windows": part.windows,
                        "wall_s": round(part.wall_s, 3),
                        "ms_per_iteration": round(part.stats.ms_per_iteration, 6),
                        "categories": part.stats.categories()},
        py_spy=asdict(spy), files=files,
    )  # fmt: skip
    write_new_json(out_dir / FILES["manifest"], manifest)
    print(f"wrote {out_dir}/ ({', '.join([*files.values(), FILES['manifest']])})")
    return 0
