"""Training sets: a set interrupted and resumed ends with every run exactly once, a
journal is never silently reused, and worker processes give the runs this process
would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from runs import epoch_scores

from meprop_bench.errors import MePropInputError
from meprop_bench.training import sets as train_set
from meprop_bench.training.data import load_embedded
from meprop_bench.training.journal import journal_path, run_key
from meprop_bench.training.loop import RunConfig
from meprop_bench.training.sets import run_set

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny():
    return load_embedded((200, 50, 50))


def configs(seeds=(0, 1, 2)):
    return [
        RunConfig(method=method, k=4, hidden=8, epochs=1, seed=seed, recipe=recipe)
        for recipe in ("torch", "authors")
        for method in ("dense", "topk")
        for seed in seeds
    ]


def run(cfgs, data, out, **kw):
    return run_set(cfgs, data, out=out, device=torch.device("cpu"), tell=lambda _: None, **kw)


def run_interrupted(monkeypatch, count, cfgs, data, out):
    """Run the set with a trainer that raises KeyboardInterrupt once ``count`` runs have
    finished; the trainer is the real one again afterwards."""
    real, calls = train_set.train_run, []

    def flaky(*args, **kwargs):
        if len(calls) == count:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kwargs)

    with monkeypatch.context() as patch, pytest.raises(KeyboardInterrupt):
        patch.setattr(train_set, "train_run", flaky)
        run(cfgs, data, out)


def test_an_interrupted_set_resumes_without_losing_or_repeating_a_run(tiny, tmp_path, monkeypatch):
    out, cfgs = tmp_path / "set.json", configs()
    run_interrupted(monkeypatch, 5, cfgs, tiny, out)
    saved = [json.loads(line) for line in journal_path(out).read_text().splitlines()[1:]]
    assert [r["key"] for r in saved] == [run_key(c) for c in cfgs[:5]]
    trained = []
    real = train_set.train_run
    monkeypatch.setattr(
        train_set, "train_run", lambda c, *a, **k: trained.append(c) or real(c, *a, **k)
    )
    runs, _ = run(cfgs, tiny, out, resume=True)
    assert trained == cfgs[5:]  # only the runs the interruption left
    assert [(r["recipe"], r["label"], r["seed"]) for r in runs] == [
        (c.recipe, c.label, c.seed) for c in cfgs
    ]
    assert runs[:5] == [r["run"] for r in saved]  # the journaled runs, as they were


def test_a_journal_is_never_reused_silently(tiny, tmp_path, monkeypatch):
    out, cfgs = tmp_path / "set.json", configs(seeds=(0,))
    run_interrupted(monkeypatch, 1, cfgs, tiny, out)
    with pytest.raises(MePropInputError, match="pass --resume"):
        run(cfgs, tiny, out)
    with pytest.raises(MePropInputError, match="another set of runs"):
        run(cfgs[:2], tiny, out, resume=True)
    bigger = [replace(c, train_size=100) for c in cfgs]
    with pytest.raises(MePropInputError, match=r"\(train_size None -> 100\); resume with"):
        run(bigger, tiny, out, resume=True)
    other = tiny._replace(name="fashion")
    with pytest.raises(MePropInputError, match=r"data embedded -> fashion"):
        run(cfgs, other, out, resume=True)
    assert len(journal_path(out).read_text().splitlines()) == 2  # the finished run is kept


def test_a_torn_last_line_and_a_repeated_run_are_dropped(tiny, tmp_path, monkeypatch):
    out, cfgs = tmp_path / "set.json", configs(seeds=(0,))
    run_interrupted(monkeypatch, 2, cfgs, tiny, out)
    path = journal_path(out)
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, lines[1], lines[2][:40]]))  # a repeat, a torn line
    runs, _ = run(cfgs, tiny, out, resume=True)
    assert [r["label"] for r in runs] == [c.label for c in cfgs]
    assert runs[0] == json.loads(lines[1])["run"]


@pytest.mark.slow  # two worker processes, each an interpreter with torch: 7-9 s of CPU here
def test_workers_give_the_runs_this_process_gives(tiny, tmp_path):
    cfgs = configs(seeds=(0,))[1:3]  # topk torch, dense authors
    alone, _ = run(cfgs, tiny, tmp_path / "a.json")
    pooled, machine = run(cfgs, tiny, tmp_path / "b.json", workers=2, threads_per_run=1)
    assert machine["torch_threads"] == 1
    for a, b in zip(alone, pooled, strict=True):
        assert epoch_scores(a) == epoch_scores(b)
        assert a["kept"] == b["kept"]


@pytest.mark.slow  # a training set in two worker processes, until runs are saved
def test_sigterm_stops_the_workers_and_keeps_the_finished_runs(tmp_path):
    """SIGTERM (what SLURM and CI send on cancel) is taken as Ctrl-C is: the workers
    stop with the main process (they hold its stderr: communicate returns once they
    are gone), the finished runs stay in the journal, one line says how to resume."""
    out = tmp_path / "set.json"
    seeds = [str(s) for s in range(12)]
    command = [sys.executable, "-m", "meprop_bench.train", "--workers", "2", "--hidden", "8",
               "--k", "4", "--epochs", "10", "--seeds", *seeds, "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal, deadline = journal_path(out), time.monotonic() + 300
    while not (journal.exists() and len(journal.read_text().splitlines()) > 1):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    told, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err[-3000:]
    assert "Traceback" not in err and "leaked" not in err, err[-3000:]
    saved = len(journal.read_text().splitlines()) - 1
    assert 1 <= saved < len(seeds)
    resume = f"stopped: {saved} of {len(seeds)} runs are saved in {journal}; rerun the same "
    assert resume in told and err.rstrip().endswith("terminated")
