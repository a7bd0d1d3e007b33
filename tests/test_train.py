"""The trainer: it learns, a seed reproduces a run, the result file validates, and bad
arguments are usage errors."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from meprop_bench.cli import run_main
from meprop_bench.data import load_embedded
from meprop_bench.errors import MePropInputError
from meprop_bench.machine import threads
from meprop_bench.models import build_mlp, hidden_layers
from meprop_bench.train import EXPERIMENTS, RunConfig, main, train_run
from meprop_bench.training_io import EPOCH_FIELDS, load_training, validate_training

TIMES = ("forward_s", "backward_s", "step_s")


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models: a second thread only adds contention on a shared CPU."""
    with threads(1):
        yield


@pytest.fixture(scope="module")
def small():
    return load_embedded((1000, 200, 200))


@pytest.fixture(scope="module")
def tiny():
    return load_embedded((300, 100, 100))


def scores(run):
    return [{k: v for k, v in e.items() if k not in TIMES} for e in run["epochs"]]


@pytest.mark.parametrize("method", ["dense", "unified"])
def test_learns_well_above_chance(small, method):
    run = train_run(RunConfig(method=method, k=16, hidden=64, epochs=3), small)
    assert run["test_acc_at_best"] > 0.5  # chance is 0.1
    assert run["epochs"][-1]["train_loss"] < run["epochs"][0]["train_loss"] * 1.5


@pytest.mark.parametrize("method", ["topk", "randk"])
def test_same_seed_same_result(tiny, method):
    cfg = RunConfig(method=method, k=8, hidden=32, epochs=2, dropout=0.1, seed=3)
    first, again = train_run(cfg, tiny), train_run(cfg, tiny)
    assert scores(first) == scores(again)
    other = train_run(replace(cfg, seed=4), tiny)
    assert scores(other) != scores(first)


def test_k_equal_to_hidden_is_dense(tiny):
    dense = train_run(RunConfig(method="dense", hidden=16, epochs=1), tiny)
    full = train_run(RunConfig(method="topk", k=16, hidden=16, epochs=1), tiny)
    assert [e["test_acc"] for e in full["epochs"]] == [e["test_acc"] for e in dense["epochs"]]
    # the fastest exact kernel trains the meProp run, and each run names its kernel
    assert (dense["kernel"], full["kernel"]) == ("dense/dense", "topk/native")


def test_model_shape_and_meprop_layers():
    model = build_mlp(hidden=8, layers=3, method="unified", k=0.5, dropout=0.2)
    layers = hidden_layers(model)
    assert [name for name, _ in layers] == ["hidden0", "hidden1", "hidden2"]
    assert all(layer.k == 4 and layer.method == "unified" for _, layer in layers)
    assert type(model.out).__name__ == "Linear"  # the output layer stays dense


def test_cli_writes_a_valid_file_and_never_clobbers(tmp_path, capsys):
    out = tmp_path / "run.json"
    argv = ["--method", "topk", "--k", "0.25", "--hidden", "16", "--epochs", "2",
            "--seeds", "0", "1", "--out", str(out), "--threads", "2"]  # fmt: skip
    assert run_main(main, argv) == 0
    doc = json.loads(out.read_text())
    validate_training(doc)
    assert doc["schema"] == "meprop-bench/training" and doc["experiment"] is None
    assert doc["config"]["seeds"] == [0, 1] and doc["config"]["lr"] == 0.001
    # The machine as the runs had it (2 threads), not as the process does (1, the fixture's).
    assert doc["machine"]["torch_threads"] == 2
    assert [(r["seed"], r["k"], r["label"]) for r in doc["runs"]] == [
        (0, 4, "topk k=4 h=16"),
        (1, 4, "topk k=4 h=16"),
    ]
    table = load_training(out)
    assert len(table) == 4 and set(EPOCH_FIELDS) <= set(table.columns)
    assert table.groupby("run")["best_epoch"].nunique().eq(1).all()
    before = out.read_text()
    assert run_main(main, argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_text() == before


def test_experiment_sets_include_the_must_show_configurations():
    for name in ("quick", "paper"):
        labels = {RunConfig(**v._asdict()).label for v in EXPERIMENTS[name].variants}
        assert {"dense h=500", "topk k=20 h=500", "unified k=20 h=500", "randk k=20 h=500",
                "dense h=20"} <= labels  # fmt: skip
        assert len(EXPERIMENTS[name].seeds) >= 3


def test_schema_violations_are_named(tmp_path):
    with pytest.raises(MePropInputError, match="not found"):
        load_training(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MePropInputError, match="JSON"):
        load_training(bad)
    with pytest.raises(MePropInputError, match="lacks the field 'schema'"):
        validate_training({})


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "bogus"], "invalid choice"),
        (["--k", "many"], "neither a count"),
        (["--hidden", "0"], "positive integer"),
        (["--dropout", "1.5"], "dropout must be"),
        (["--lr", "-1"], "positive number"),
        (["--experiment", "quick", "--k", "5"], "leave them out"),
        (["--data", "mnist"], "needs --data-dir"),
        (["--data-dir", "x"], "mnist only"),
    ],
)
def test_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--k", "30", "--hidden", "20"], "out of range"),
        (["--data", "mnist", "--data-dir", "/nonexistent"], "not a directory"),
        (["--device", "cuda:0"], "cuda"),
    ],
)
def test_input_errors_are_one_line(argv, message, capsys, tmp_path):
    assert run_main(main, [*argv, "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
