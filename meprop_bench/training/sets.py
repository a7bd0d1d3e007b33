"""Running a list of training configurations: in this process, or in parallel worker
processes, with one progress bar over all of them and a journal, so that a set uses
every core of a small machine and an interrupted set resumes where it stopped.

Workers start with the ``spawn`` method (numba's OpenMP threading layer, which the
native kernels use, is not safe across ``fork``), each receives the data once and
runs its runs on ``threads`` intra-op threads (1 by default: this small model gains nothing
from a second thread, and two single-threaded runs use two cores fully). A seed gives
the same run in a worker as in this process.
"""

from __future__ import annotations

import multiprocessing
import queue
import signal
from collections.abc import Callable, Iterator
from contextlib import ExitStack, closing
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from meprop_bench.errors import sigterm_interrupts
from meprop_bench.results.machine import machine_info, threads
from meprop_bench.results.machine_state import Watch
from meprop_bench.training.data import MnistData
from meprop_bench.training.journal import Journal, journal_path, run_key
from meprop_bench.training.loop import RunConfig, train_run

_POLL_S = 0.5  # how often the progress bar hears from the workers
_WORKER: dict[str, Any] = {}  # a worker process's data, epoch queue and thread setting


def run_set(
    configs: list[RunConfig],
    data: MnistData,
    *,
    out: Path,
    device: torch.device,
    workers: int = 1,
    threads_per_run: int | None = None,
    resume: bool = False,
    tell: Callable[[str], None] = tqdm.write,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train every configuration once; return the run records in ``configs``' order and
    the machine as the runs saw it (threads included).

    Finished runs go to the journal beside ``out`` as they finish; with ``resume``,
    runs the journal already holds are taken from it instead of trained again.
    Each run uses ``threads_per_run`` intra-op threads (None: as the process has it).
    SIGTERM is taken as Ctrl-C is (:func:`sigterm_interrupts`).
    """
    header = {"runs": [run_key(c) for c in configs], "data": data.describe(),
              "device": str(device)}  # fmt: skip
    journal = Journal.open(journal_path(out), header, resume=resume)
    todo = [c for c in configs if run_key(c) not in journal.done]
    if journal.done:
        tell(f"resuming: {len(configs) - len(todo)} of {len(configs)} runs already done")
    epochs = sum(c.epochs for c in configs)
    bar = tqdm(total=epochs, initial=epochs - sum(c.epochs for c in todo), unit="epoch")
    try:
        with sigterm_interrupts(), bar, threads(threads_per_run):
            watch = Watch()
            runner = (
                _in_parallel(todo, data, device, workers, threads_per_run, bar)
                if workers > 1 and len(todo) > 1
                else _in_process(todo, data, device, bar)
            )
            with closing(runner) as finished:  # on an exception the workers stop now
                for cfg, run in finished:
                    journal.add(run_key(cfg), run)
                    tell(
                        f"{cfg.recipe} {cfg.label} seed={cfg.seed}: best dev "
                        f"{run['best_dev_acc']:.4f} at epoch {run['best_epoch']}, test "
                        f"{run['test_acc_at_best']:.4f} ({run['wall_s']:.1f} s)"
                    )
            machine = {**machine_info(), "state": watch.state()}
    except BaseException:
        tell(f"stopped: {len(journal.done)} of {len(configs)} runs are saved in {journal.path};"
             " rerun the same command with --resume to finish the set")  # fmt: skip
        raise
    return [journal.done[run_key(c)] for c in configs], machine


def _in_process(
    todo: list[RunConfig], data: MnistData, device: torch.device, bar: tqdm
) -> Iterator[tuple[RunConfig, dict[str, Any]]]:
    for cfg in todo:
        bar.set_description(f"{cfg.recipe} {cfg.label} seed={cfg.seed}")
        yield cfg, train_run(cfg, data, device=device, on_epoch=lambda _: bar.update())


def _in_parallel(
    todo: list[RunConfig],
    data: MnistData,
    device: torch.device,
    workers: int,
    threads_per_run: int | None,
    bar: tqdm,
) -> Iterator[tuple[RunConfig, dict[str, Any]]]:
    """Runs as they finish in ``workers`` spawned processes; the bar moves per epoch.

    Workers ignore Ctrl-C: this process takes it, and on any exception, or when the
    caller closes the generator, terminates them (a run still training is lost; every
    finished one has been yielded)."""
    context = multiprocessing.get_context("spawn")
    ticks = context.Queue()
    size = min(workers, len(todo))
    bar.set_description(f"{size} workers")
    pool = context.Pool(size, _start_worker, (data, threads_per_run, ticks))
    try:
        tasks = [(i, cfg, str(device)) for i, cfg in enumerate(todo)]
        results = pool.imap_unordered(_train_in_worker, tasks)
        for _ in tasks:
            while True:
                try:
                    index, run = results.next(timeout=_POLL_S)
                    break
                except multiprocessing.TimeoutError:
                    _drain(ticks, bar)
            _drain(ticks, bar)
            yield todo[index], run
    finally:
        pool.terminate()
        pool.join()


def _drain(ticks: Any, bar: tqdm) -> None:
    """Advance the bar by the epochs the workers have finished since the last look."""
    count = 0
    try:
        while True:
            ticks.get_nowait()
            count += 1
    except queue.Empty:
        pass
    if count:
        bar.update(count)


def _start_worker(data: MnistData, count: int | None, ticks: Any) -> None:
    """A worker's set-up: its thread count (kept for its life), its data, the queue."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stack = ExitStack()
    stack.enter_context(threads(count))
    _WORKER.update(stack=stack, data=data, ticks=ticks)


def _train_in_worker(task: tuple[int, RunConfig, str]) -> tuple[int, dict[str, Any]]:
    index, cfg, device = task
    ticks = _WORKER["ticks"]
    return index, train_run(cfg, _WORKER["data"], device=device, on_epoch=lambda _: ticks.put(1))
