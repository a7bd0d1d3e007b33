"""The pytest plugin behind ``suites/``: grid options, the timing fixture, machine info
and crash-safe partial results.

- ``--meprop-preset quick|paper|full`` and ``--meprop-<axis>`` overrides choose the
  grid (see :mod:`meprop_bench.harness.grid`); a malformed value is a usage error naming the
  option.
- ``--meprop-shard I/N`` runs one part of the sweep and ``--meprop-order`` sets the
  order its cases run in (see :mod:`meprop_bench.harness.plan`).
- The ``meprop`` fixture times one case through pytest-benchmark: our timer (host clock
  on CPU, CUDA events on GPU, or with ``--meprop-cuda-graph`` the replay of a CUDA graph
  of several calls) produces each sample, and a :class:`SampleClock` hands it to
  pytest-benchmark, so its stats, JSON, ``compare`` and histograms are of what we
  measured. Raw samples are always saved, and ``extra_info["timer"]`` names the timer.
- Each case's spread is judged as it finishes (``extra_info["unstable"]``), the
  machine's load over the session goes into ``machine_info["state"]``, and the session
  ends with a ``warning:`` line naming unstable cases (see
  :mod:`meprop_bench.harness.case_stability`).
- Each finished benchmark is appended to a JSON-lines file as it completes, so an
  interrupted sweep loses at most the case in flight; ``meprop-bench recover``
  turns that file into a pytest-benchmark JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from meprop_bench.core import allocator
from meprop_bench.core.kernels import METHODS, Kernel
from meprop_bench.errors import MePropInputError, backend_unsupported
from meprop_bench.harness import steady
from meprop_bench.harness.case_stability import StabilityLog
from meprop_bench.harness.cases import Case
from meprop_bench.harness.grid import Grid, apply_overrides, select_preset
from meprop_bench.harness.inputs import case_inputs
from meprop_bench.harness.options import PRESET_ALIAS, add_grid_options, grid_overrides
from meprop_bench.harness.plan import SweepPlan, add_options
from meprop_bench.harness.timing import GRAPH_CALLS, SampleClock, Slowdown, gc_disabled, make_timer
from meprop_bench.results.kinds import BENCHMARK
from meprop_bench.results.machine import machine_info, threads
from meprop_bench.results.partial import recover_command
from meprop_bench.stats import median_interval

GRID_KEY = pytest.StashKey[Grid]()
PRESET_KEY = pytest.StashKey[str]()
PARTIAL_KEY = pytest.StashKey["PartialResults"]()
STABILITY_KEY = pytest.StashKey[StabilityLog]()
SLOWDOWN_ENV = "MEPROP_BENCH_SLOWDOWN"
SLOWDOWN_METHODS_ENV = "MEPROP_BENCH_SLOWDOWN_METHODS"  # e.g. unified: slow those cases only


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("meprop", "meprop-bench sweeps (suites/)")
    add_grid_options(group.addoption)
    group.addoption(
        "--meprop-malloc",
        default="default",
        metavar="MODE",
        help="C allocator setting: default (leave malloc alone) or steady (glibc: mmap only "
        "from 32 MiB, never trim, which mostly stops repeated allocations page-faulting); "
        "see meprop_bench.core.allocator",
    )
    group.addoption(
        "--meprop-partial",
        default=None,
        metavar="PATH",
        help="JSON-lines file each result is appended to as it finishes "
        "(default: <benchmark-json>.partial.jsonl, else .benchmarks/partial-<time>.jsonl)",
    )
    group.addoption(
        "--meprop-cuda-graph",
        action="store_true",
        help=f"time each CUDA case as a CUDA graph of {GRAPH_CALLS} back-to-back calls, "
        "replayed (per-call time = replay / calls, as triton.testing.do_bench_cudagraph): "
        "for launch-bound small shapes; every --meprop-devices entry must be CUDA",
    )
    add_options(group)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "cuda: needs a CUDA GPU")
    config.option.benchmark_save_data = True  # the gate and the report need raw samples
    preset = config.getoption("meprop_preset")
    overrides = grid_overrides(config.getoption)
    if PRESET_ALIAS in config.invocation_params.args or any(
        arg.startswith(f"{PRESET_ALIAS}=") for arg in config.invocation_params.args
    ):
        config.issue_config_time_warning(
            pytest.PytestDeprecationWarning(f"{PRESET_ALIAS} is deprecated; use --meprop-preset"),
            stacklevel=2,
        )
    try:
        grid = apply_overrides(select_preset(preset), overrides)
        grid.check()
        slowdown_fraction()
        slowdown_methods()
    except MePropInputError as err:
        raise pytest.UsageError(str(err)) from None
    if config.getoption("meprop_cuda_graph"):
        off_cuda = [device for device in grid.devices if not device.startswith("cuda")]
        if off_cuda:
            raise pytest.UsageError(
                f"--meprop-cuda-graph times CUDA devices only, but the grid has "
                f"{', '.join(off_cuda)}; choose --meprop-devices cuda"
            )
    try:
        allocator.set_mode(config.getoption("meprop_malloc"))
    except MePropInputError as err:
        raise pytest.UsageError(f"--meprop-malloc: {err}") from None
    partial = config.getoption("meprop_partial")
    if partial and Path(partial).is_dir():
        raise pytest.UsageError(
            f"--meprop-partial: {partial} is a directory; give the path of a file"
        )
    config.stash[GRID_KEY] = grid
    config.stash[PRESET_KEY] = preset
    config.stash[STABILITY_KEY] = StabilityLog(grid.rounds)
    config.pluginmanager.register(config.stash[STABILITY_KEY], "meprop-stability")
    config.stash[PARTIAL_KEY] = PartialResults(config)
    config.pluginmanager.register(config.stash[PARTIAL_KEY], "meprop-partial-results")
    config.pluginmanager.register(SweepPlan.from_config(config), "meprop-plan")


def grid_of(config: pytest.Config) -> Grid:
    """The grid this run sweeps (preset with the command-line overrides applied)."""
    return config.stash[GRID_KEY]


def preset_of(config: pytest.Config) -> str:
    return config.stash[PRESET_KEY]


def slowdown_fraction() -> float:
    """The injected slowdown from ``MEPROP_BENCH_SLOWDOWN`` (0 when unset)."""
    text = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not text:
        return 0.0
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value < 0:
        raise MePropInputError(f"{SLOWDOWN_ENV} must be a fraction >= 0, got {text!r}")
    return value


def slowdown_methods() -> frozenset[str] | None:
    """The methods ``MEPROP_BENCH_SLOWDOWN_METHODS`` restricts the injected slowdown to
    (comma-separated, e.g. ``unified``); None when unset: every case."""
    text = os.environ.get(SLOWDOWN_METHODS_ENV, "").strip()
    if not text:
        return None
    names = frozenset(name.strip() for name in text.split(","))
    unknown = sorted(names - set(METHODS))
    if unknown:
        raise MePropInputError(
            f"{SLOWDOWN_METHODS_ENV}: unknown method(s) {', '.join(unknown)}; "
            f"choose from {', '.join(METHODS)}"
        )
    return names


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info.update(_meprop_machine_info(config))


def _meprop_machine_info(config: pytest.Config) -> dict[str, Any]:
    info = machine_info()
    info["state"] = config.stash[STABILITY_KEY].state()
    info["meprop_schema"] = BENCHMARK.name
    info["meprop_schema_version"] = BENCHMARK.version
    info["meprop_preset"] = preset_of(config)
    info["meprop_slowdown"] = slowdown_fraction()
    return info


def benchmark_json_path(option: Any) -> Path | None:
    """The ``--benchmark-json`` path as given, however pytest-benchmark hands the option
    over: an open file (``argparse.FileType``; its ``name`` is the path) or a path."""
    if option is None:
        return None
    return Path(option if isinstance(option, str | os.PathLike) else option.name)


def partial_notice(path: Path, final: Path | None) -> str:
    """The line that says where results go as they finish and how to recover them: it is
    printed once the file exists, since a killed run prints nothing after. A command
    that runs the suites finds it with :data:`PARTIAL_NOTICE`."""
    return (
        f"meprop: each result is appended to {path} as it finishes; to recover an "
        f"interrupted run: {recover_command(path, final)}"
    )


PARTIAL_NOTICE = re.compile(
    r"^meprop: each result is appended to (?P<path>.+) as it finishes; "
    r"to recover an interrupted run: (?P<command>.+)$"
)


class PartialResults:
    """Appends each finished benchmark to a JSON-lines file (header line first)."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.explicit = config.getoption("meprop_partial")
        self.final = benchmark_json_path(config.getoption("benchmark_json", None))
        self.path: Path | None = None
        self.announced = False

    def _choose_path(self) -> Path:
        """The partial file for this run, beside the --benchmark-json file; never one an
        earlier run left behind (it may be all that remains of an interrupted sweep), so
        a taken name gets a suffix."""
        if self.explicit:
            path = Path(self.explicit)
        elif self.final is not None:
            path = Path(f"{self.final}.partial.jsonl")
        else:
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            path = Path(self.config.rootpath, ".benchmarks", f"partial-{stamp}-{os.getpid()}.jsonl")
        candidate, n = path, 1
        while candidate.exists():
            n += 1
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        return candidate

    def _header(self) -> dict[str, Any]:
        hook = self.config.hook
        info = hook.pytest_benchmark_generate_machine_info(config=self.config)
        hook.pytest_benchmark_update_machine_info(config=self.config, machine_info=info)
        return {
            "kind": "header",
            "machine_info": info,
            "commit_info": hook.pytest_benchmark_generate_commit_info(config=self.config),
            "datetime": dt.datetime.now(dt.timezone.utc).isoformat(),
        }

    def append(self, bench: dict[str, Any]) -> None:
        if self.path is None:
            self.path = self._choose_path()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._write(self._header(), mode="w")
        self._write({"kind": "benchmark", "benchmark": bench}, mode="a")

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logfinish(self) -> None:
        """Print :func:`partial_notice` once, after the test that created the file has
        printed its outcome (and outside pytest's output capture)."""
        if self.path is not None and not self.announced:
            self._say(partial_notice(self.path, self.final))
            self.announced = True

    def finish(self, exitstatus: int) -> None:
        """Remove the file once the run completed: pytest-benchmark has saved its results
        (--benchmark-json, --benchmark-save or -autosave) or was not asked to. Keep it
        when the run was interrupted, or when --meprop-partial asked for it."""
        if self.path is None:
            return
        completed = exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED)
        if completed and not self.explicit:
            self.path.unlink(missing_ok=True)
        else:
            self._say(
                f"meprop: partial results in {self.path}; recover them: "
                f"{recover_command(self.path, self.final)}"
            )

    def _say(self, text: str) -> None:
        """``text`` on a line of its own, flushed at once in case the run is killed."""
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None:
            return
        reporter.ensure_newline()
        if reporter._tw.width_of_current_line:  # pytest -q leaves the cursor after its dots
            reporter.write("\n")
        reporter.write_line(text)
        reporter.flush()

    def _write(self, record: dict[str, Any], mode: str) -> None:
        assert self.path is not None
        with open(self.path, mode) as f:
            f.write(json.dumps(record, default=str) + "\n")
            f.flush()
            os.fsync(f.fileno())


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item):
    yield
    bench = getattr(item, "funcargs", {}).get("benchmark")
    if _timed(bench):
        item.config.stash[PARTIAL_KEY].append(bench.stats.as_dict(include_data=True))


def _timed(bench: Any) -> bool:
    """Whether ``bench`` finished timing (what pytest-benchmark saves): a case that
    raised or skipped while being timed has no samples, and no stats to record."""
    return (
        bench is not None
        and bench.enabled
        and bench.stats is not None
        and not bench.has_error
        and bool(bench.stats.stats.data)
    )


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    partial = session.config.stash.get(PARTIAL_KEY, None)
    if partial is not None:
        partial.finish(exitstatus)


class CaseBench:
    """What the ``meprop`` fixture gives a suite: inputs for a case, and the timing."""

    def __init__(self, benchmark: Any, item: pytest.Item) -> None:
        self.benchmark = benchmark
        self.item = item
        config = item.config
        self.grid = grid_of(config)
        self.stability = config.stash[STABILITY_KEY]
        self.cuda_graph = bool(config.getoption("meprop_cuda_graph", False))

    @staticmethod
    def require_device(device: str) -> None:
        """Skip, with the reason, a case whose device is not present."""
        if device.startswith("cuda") and not torch.cuda.is_available():
            pytest.skip("cuda: no CUDA GPU is present")

    def inputs(self, case: Case) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dy, x, w) for ``case``: the same tensors for a case and its dense pair."""
        self.require_device(case.device)
        try:
            return case_inputs(case)
        except MePropInputError as err:
            pytest.skip(str(err))

    @staticmethod
    def prepare(kernel: Kernel) -> None:
        """Compile ``kernel`` ahead of timing (native kernels); skip, with the reason,
        when it cannot run here (numba missing)."""
        try:
            kernel.prepare()
        except MePropInputError as err:
            pytest.skip(str(err))

    def run_kernel(self, case: Case, thread_count: int | None, group: str, **extra: Any) -> None:
        """Time ``case``'s backward kernel on its inputs; ``extra`` joins its extra_info."""
        if self.cuda_graph and case.kernel.syncs_on_cuda:
            pytest.skip(
                f"--meprop-cuda-graph: {case.kernel.name} reads a size back to the host, "
                "which a CUDA graph cannot capture"
            )
        self.prepare(case.kernel)
        dy, x, w = self.inputs(case)
        kernel, k = case.kernel.fn, case.k
        self.run(
            lambda: kernel(dy, x, w, k),
            device=case.device,
            thread_count=thread_count,
            extra_info={**case.extra_info(thread_count), **extra},
            group=group,
        )

    def run(
        self,
        fn: Callable[[], object],
        *,
        device: str,
        thread_count: int | None,
        extra_info: dict[str, Any],
        group: str,
        setup: Callable[[], object] | None = None,
        steps: bool = False,
        partner: Callable[[], object] | None = None,
    ) -> None:
        """Time ``fn`` for the grid's rounds, feeding each sample to pytest-benchmark.

        ``setup`` runs before every call, untimed (resetting gradients, say), which a
        CUDA graph of back-to-back calls cannot do: such a case skips under
        ``--meprop-cuda-graph``, as does one whose call cannot be captured.

        ``steps``: ``fn`` is a training step, timed as training runs it
        (:mod:`~meprop_bench.harness.steady`): each round a block of consecutive steps,
        after a warm-up of blocks until their time is steady; a sample is the block's
        time per step (``--meprop-warmup 0``: no warm-up). ``extra_info`` records
        ``steps_per_round`` and ``steady``.

        ``partner`` (with ``steps``): the dense step a sparse step is compared with.
        Each round runs a block of the partner's steps, then a block of ``fn``'s, so both
        see the same stretch of the machine's life; ``extra_info`` records the partner's
        rounds and the median of the per-round ratios with its interval
        (:func:`_paired_record`). Timed in separate tests, the paper MLP's step ratio
        moved between 1.00x and 1.82x from run to run (docs/model.md).
        """
        self.require_device(device)
        if self.cuda_graph and setup is not None:
            pytest.skip(
                "--meprop-cuda-graph: this case resets state before every call, which a "
                "graph of back-to-back calls cannot do"
            )
        bench = self.benchmark
        bench.group = group
        with threads(thread_count) as in_force:
            timer = make_timer(device, cuda_graph=self.cuda_graph)
            bench.extra_info.update(extra_info, threads=in_force, device=device, timer=timer.kind)
            methods, fraction = slowdown_methods(), slowdown_fraction()

            def slowed(method: object) -> bool:
                return bool(fraction) and (methods is None or method in methods)

            if slowed(extra_info.get("method")):
                fn = Slowdown(fraction, device).wrap(fn, timer)
                bench.extra_info["injected_slowdown"] = fraction
            if partner is not None and slowed("dense"):  # the partner is a dense step
                partner = Slowdown(fraction, device).wrap(partner, timer)
            clock = SampleClock(timer.name)
            bench._timer = clock  # pytest-benchmark has no public hook for its clock
            faults: list[float] = []
            partner_times: list[float] = []
            calls, warmup = 1, self.grid.warmup
            partner_round: Callable[[], None] | None = None
            if steps and not self.cuda_graph:
                blocks = _steady_blocks(fn, partner, timer, bench.extra_info, warm=warmup > 0)
                fn, calls, partner_round = blocks.own, blocks.steps, blocks.partner_round
                partner_times = blocks.partner_times
                warmup = 0  # the blocks before were the warm-up

            def one_round() -> None:
                if setup is not None:
                    setup()
                with gc_disabled():
                    if partner_round is not None:
                        partner_round()
                    clock.advance(timer(fn) / calls)
                if timer.last_faults is not None:
                    faults.append(timer.last_faults / calls)

            try:
                bench.pedantic(one_round, rounds=self.grid.rounds, warmup_rounds=warmup)
            except RuntimeError as err:
                reason = backend_unsupported(err)
                if reason is None:
                    raise
                pytest.skip(f"the backend cannot run this case: {reason}")
            except MePropInputError as err:
                if not self.cuda_graph:
                    raise
                pytest.skip(f"--meprop-cuda-graph: {err}")
            timed = faults[-self.grid.rounds :]  # the warm-up rounds came first
            if timed:
                bench.extra_info["minor_faults_per_call"] = statistics.median(timed)
        if bench.enabled and bench.stats is not None:
            samples = list(bench.stats.stats.data)
            dense = partner_times[-len(samples) :]
            paired = _paired_record(dense, samples) if dense else None
            bench.extra_info.update(paired or {})
            bench.extra_info.update(self.stability.judge(self.item, samples, paired))
        try:
            BENCHMARK.check_record(bench.extra_info, "extra_info")
        except MePropInputError as err:
            raise RuntimeError(f"bug: a benchmark's extra_info breaks its schema: {err}") from None


@dataclass
class StepBlocks:
    """A training step as blocks of consecutive steps (:mod:`~meprop_bench.harness.steady`):
    ``own`` runs one block of ``steps`` steps; ``partner_round``, when there is a
    partner, times one block of the partner's steps and appends its time per step to
    ``partner_times``."""

    own: Callable[[], None]
    steps: int
    partner_round: Callable[[], None] | None = None
    partner_times: list[float] = field(default_factory=list)


def _block(step: Callable[[], object], timer: Any) -> tuple[Callable[[], None], int]:
    """One block of ``step`` (:func:`steady.block_size` steps) and its step count."""
    calls = steady.block_size(lambda: timer(step))

    def block() -> None:
        for _ in range(calls):
            step()

    return block, calls


def _steady_blocks(
    step: Callable[[], object],
    partner: Callable[[], object] | None,
    timer: Any,
    extra_info: dict[str, Any],
    warm: bool,
) -> StepBlocks:
    """``step`` (and ``partner``, if any) as blocks, each sized for itself, warmed up in
    turn until both are steady unless not ``warm`` (``--meprop-warmup 0``)."""
    own, calls = _block(step, timer)
    extra_info["steps_per_round"] = calls
    blocks = StepBlocks(own, calls)
    timed = [lambda: timer(own)]
    if partner is not None:
        theirs, partner_calls = _block(partner, timer)
        extra_info["paired_steps_per_round"] = partner_calls

        def partner_round() -> None:
            blocks.partner_times.append(timer(theirs) / partner_calls)

        blocks.partner_round = partner_round
        timed.insert(0, lambda: timer(theirs))
    if warm:
        _, extra_info["steady"], _ = steady.warm_up(timed, steady.WARMUP_LIMIT_S)
    return blocks


def _paired_record(dense: list[float], sparse: list[float]) -> dict[str, Any]:
    """A sparse step's ratio to the dense step run beside it: the dense rounds (time per
    step), and the median of the per-round ratios dense/sparse with its 95% interval."""
    ratios = np.asarray(dense) / np.asarray(sparse)
    low, high = median_interval(ratios)
    return {
        "paired_dense_s": [float(t) for t in dense],
        "paired_speedup": float(np.median(ratios)),
        "paired_low": low,
        "paired_high": high,
    }


@pytest.fixture
def meprop(benchmark: Any, request: pytest.FixtureRequest) -> CaseBench:
    """Time meprop-bench cases through pytest-benchmark (see :class:`CaseBench`)."""
    return CaseBench(benchmark, request.node)
