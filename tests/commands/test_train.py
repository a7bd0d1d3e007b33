"""The trainer: it learns, a seed reproduces a run, each recipe does what it says, the
keep counts match the kernels, the result file validates (old versions too), and bad
arguments are usage errors."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from runs import epoch_scores
from torch import nn

from meprop_bench.commands.common import run_main
from meprop_bench.commands.train import build_parser, main, run_configs
from meprop_bench.errors import MePropInputError
from meprop_bench.results.training import EPOCH_FIELDS, load_training, validate_training
from meprop_bench.training.data import load_embedded
from meprop_bench.training.experiments import EXPERIMENTS
from meprop_bench.training.loop import RunConfig, make_optimizer, train_run
from meprop_bench.training.models import build_mlp, hidden_layers
from meprop_bench.training.recipes import RECIPES, get_recipe
from meprop_bench.training.unit_keeps import KeepCounter

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def small():
    return load_embedded((1000, 200, 200))


@pytest.fixture(scope="module")
def tiny():
    return load_embedded((300, 100, 100))


@pytest.mark.parametrize("method", ["dense", "unified"])
def test_learns_well_above_chance(small, method):
    run = train_run(RunConfig(method=method, k=16, hidden=64, epochs=3), small)
    assert run["test_acc_at_best"] > 0.5  # chance is 0.1
    assert run["epochs"][-1]["train_loss"] < run["epochs"][0]["train_loss"] * 1.5


@pytest.mark.parametrize("method", ["topk", "randk"])
def test_same_seed_same_result(tiny, method):
    cfg = RunConfig(method=method, k=8, hidden=32, epochs=2, dropout=0.1, seed=3)
    first, again = train_run(cfg, tiny), train_run(cfg, tiny)
    assert epoch_scores(first) == epoch_scores(again)
    other = train_run(replace(cfg, seed=4), tiny)
    assert epoch_scores(other) != epoch_scores(first)


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
    assert doc["schema_version"] == 3 and doc["config"]["recipe"] == "torch"
    assert {r["recipe"] for r in doc["runs"]} == {"torch"}
    assert not (tmp_path / "run.journal.jsonl").exists()  # the journal goes once merged
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
        labels = {RunConfig(**v.settings()).label for v in EXPERIMENTS[name].variants}
        assert {"dense h=500", "topk k=20 h=500", "unified k=20 h=500", "randk k=20 h=500",
                "dense h=20"} <= labels  # fmt: skip
        assert len(EXPERIMENTS[name].seeds) >= 3
    assert set(EXPERIMENTS["paper"].recipes) == set(RECIPES)
    assert len(EXPERIMENTS["paper"].seeds) >= 5


def test_schema_violations_are_named(tmp_path):
    with pytest.raises(MePropInputError, match="not found"):
        load_training(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(MePropInputError, match="JSON"):
        load_training(bad)
    with pytest.raises(MePropInputError, match=r"not a meprop-bench/training v1\.\.v3 file"):
        validate_training({})
    envelope = {"schema": "meprop-bench/training", "schema_version": 2, "created": "",
                "meprop_bench_version": "", "argv": [], "machine": {}}  # fmt: skip
    with pytest.raises(MePropInputError, match="lacks the field 'experiment'"):
        validate_training(envelope)
    with pytest.raises(MePropInputError, match=r"file.runs\[0\] lacks the field 'label'"):
        validate_training({**envelope, "experiment": None, "config": {}, "data": {},
                           "runs": [{}]})  # fmt: skip


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--method", "bogus"], "invalid choice"),
        (["--k", "many"], "neither a count"),
        (["--hidden", "0"], "positive integer"),
        (["--dropout", "1.5"], "--dropout: expected a number in [0, 1)"),
        (["--lr", "-1"], "positive number"),
        (["--experiment", "quick", "--k", "5"], "leave them out"),
        (["--recipe", "keras"], "invalid choice"),
        (["--resume"], "--resume needs the --out"),
        (["--data", "mnist"], "needs --data-dir"),
        (["--data-dir", "x"], "mnist or fashion only"),
        (["--train-size", "0"], "positive integer"),
        (["--train-size", "-5"], "positive integer"),
        (["--train-size", "3001"], "--train-size 3001 is larger than the 3,000 training images"),
        (["--experiment", "full-scale", "--data", "embedded"], "--train-size 55000 is larger"),
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
        (["--data", "mnist", "--data-dir", "{tmp}/missing"], "not a directory"),
        (["--device", "cuda:0"], "cuda"),
    ],
)
def test_input_errors_are_one_line(argv, message, capsys, tmp_path):
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in argv]  # a path of its own
    assert run_main(main, [*argv, "--out", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --- recipes -------------------------------------------------------------------------


def test_authors_init_is_glorot_bound_as_normal_std_on_every_layer():
    torch.manual_seed(0)
    model = get_recipe("authors").prepare_model(build_mlp(hidden=500, layers=2))
    for layer in (m for m in model.modules() if isinstance(m, nn.Linear)):
        fan_out, fan_in = layer.weight.shape
        std = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert abs(w.std().item() / std - 1) < 0.03, (fan_in, fan_out)
        assert abs(w.mean().item()) < 0.05 * std
        assert w.abs().max().item() > 3 * std  # a normal, not a uniform bounded at std
        assert torch.all(layer.bias == 0)
    torch.manual_seed(0)
    default = get_recipe("torch").prepare_model(build_mlp(hidden=500, layers=2))
    # PyTorch's default: uniform in +-1/sqrt(fan_in), std 1/sqrt(3 fan_in)
    assert default.hidden0.weight.abs().max().item() <= 1 / math.sqrt(784)
    assert abs(default.hidden0.weight.std().item() * math.sqrt(3 * 784) - 1) < 0.03


def test_authors_loss_gradient_is_summed_over_the_minibatch():
    torch.manual_seed(0)
    model = build_mlp(hidden=16, layers=1)
    x, y = torch.randn(8, 784), torch.randint(0, 10, (8,))
    grads = {}
    for name in RECIPES:
        model.zero_grad()
        get_recipe(name).loss(model(x), y).backward()
        grads[name] = [p.grad.clone() for p in model.parameters()]
    for summed, mean in zip(grads["authors"], grads["torch"], strict=True):
        torch.testing.assert_close(summed, 8 * mean)


def test_authors_clips_every_gradient_element_to_5():
    params = [nn.Parameter(torch.zeros(4)), nn.Parameter(torch.zeros(2, 2))]
    raw = [torch.tensor([-12.0, -5.0, 0.5, 7.0]), torch.tensor([[3.0, -6.0], [5.5, 0.0]])]
    for recipe, expect in (("authors", [[-5, -5, 0.5, 5], [[3, -5], [5, 0]]]), ("torch", raw)):
        for p, g in zip(params, raw, strict=True):
            p.grad = g.clone()
        get_recipe(recipe).clip_gradients(params)
        for p, e in zip(params, expect, strict=True):
            torch.testing.assert_close(p.grad, torch.as_tensor(e, dtype=torch.float32))


def test_authors_inputs_are_pixels_in_0_1(tiny):
    x = get_recipe("authors").inputs(tiny.train, tiny.mean, tiny.std).x
    assert x.min().item() > -1e-6 and x.max().item() < 1 + 1e-6 and x.max().item() > 0.99
    assert get_recipe("torch").inputs(tiny.train, tiny.mean, tiny.std) is tiny.train


def test_a_run_records_its_recipe_batch_and_keep_counts(tiny):
    run = train_run(RunConfig(method="topk", k=4, hidden=16, epochs=2, recipe="authors"), tiny)
    assert (run["recipe"], run["batch_size"]) == ("authors", 100)
    assert run["kept_of"] == 2 * len(tiny.train.y)
    assert set(run["kept"]) == {"hidden0", "hidden1"}
    for counts in run["kept"].values():
        assert len(counts) == 16 and 0 < sum(counts) <= 4 * run["kept_of"]
    assert train_run(RunConfig(method="dense", hidden=16, epochs=1, batch_size=10), tiny)[
        "batch_size"
    ] == 10  # fmt: skip


def test_unknown_recipe_is_an_input_error():
    with pytest.raises(MePropInputError, match="unknown recipe 'keras'"):
        RunConfig(recipe="keras")


# --- keep counts ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["dense", "topk", "unified", "randk"])
def test_keep_counts_match_the_rows_the_kernel_updated(method):
    """Every kept nonzero entry moves its unit's row of dW, and no other row moves: the
    counts see what the backward kernel (the native one, the default) actually kept."""
    torch.manual_seed(1)
    model = build_mlp(hidden=24, layers=2, method=method, k=5)
    x, y = torch.randn(1, 784), torch.randint(0, 10, (1,))
    with KeepCounter(model) as keeps:
        for _ in range(3):  # one example a step: a row moves iff that example kept it
            model.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            counts = {name: c.clone() for name, c in keeps.counts.items()}
            keeps.collect()
            for name, layer in hidden_layers(model):
                moved = layer.weight.grad.abs().sum(1) != 0
                assert torch.equal(keeps.counts[name] - counts[name], moved.long()), name
            x = torch.randn(1, 784)
    assert keeps.examples == 3
    if method != "dense":
        assert all(int(c.sum()) <= 3 * 5 for c in keeps.counts.values())


def test_fashion_without_its_files_is_one_line_before_any_training(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("meprop_bench.training.data.FASHION_DIR", tmp_path / "absent")
    out = tmp_path / "o.json"
    assert run_main(main, ["--data", "fashion", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "apt-get install dataset-fashion-mnist" in err
    assert "--data-dir" in err and not out.exists()


def test_a_run_records_its_data_set_and_training_size(tiny, tmp_path):
    run = train_run(RunConfig(method="topk", k=4, hidden=16, epochs=2, train_size=120), tiny)
    assert (run["data"], run["train_size"], run["kept_of"]) == ("embedded", 120, 240)
    for epoch in run["epochs"]:
        assert epoch["max_abs_logit"] > 0 and len(epoch["hidden_norm"]) == 2
    out = tmp_path / "t.json"
    assert main(["--method", "dense", "--hidden", "8", "--epochs", "1", "--train-size", "50",
                 "60", "--seeds", "0", "--out", str(out)]) == 0  # fmt: skip
    doc = json.loads(out.read_text())
    assert [(r["data"], r["train_size"]) for r in doc["runs"]] == [("embedded", 50),
                                                                   ("embedded", 60)]  # fmt: skip
    assert doc["config"]["train_size"] == [50, 60] and doc["data"]["train"] == 3000
    validate_training(doc)


def test_the_full_scale_set_covers_every_claim_at_the_sizes_it_names():
    parser = build_parser()
    args = parser.parse_args(["--experiment", "full-scale"])
    configs = run_configs(args)
    assert args.data == "fashion" and args.epochs == 20 and len(args.seeds) >= 3
    sizes = {c.train_size for c in configs}
    assert sizes == {3000, 10000, 30000, 55000}
    for size in sizes:
        labels = {c.label for c in configs if c.train_size == size}
        assert {"dense h=500", "dense h=20", "topk k=20 h=500"} <= labels
    at_full = {(c.recipe, c.label) for c in configs if c.train_size == 55000}
    for recipe in RECIPES:
        for k in (5, 20, 80):
            assert {(recipe, f"topk k={k} h=500"), (recipe, f"randk k={k} h=500")} <= at_full
    assert len(configs) == len(set(configs))
    only = run_configs(parser.parse_args(["--experiment", "full-scale", "--train-size", "3000"]))
    assert {c.train_size for c in only} == {3000} and not any(c.method == "randk" for c in only)


@pytest.mark.parametrize("name", ["adam", "adagrad"])
def test_the_fused_optimizers_take_the_loops_steps(name):
    torch.manual_seed(0)
    model = build_mlp(hidden=16, layers=2)
    twin = build_mlp(hidden=16, layers=2)
    twin.load_state_dict(model.state_dict())
    fused = make_optimizer(name, model.parameters(), None)
    assert fused.defaults["fused"]
    loop = (torch.optim.Adam(twin.parameters(), lr=1e-3, eps=1e-8) if name == "adam"
            else torch.optim.Adagrad(twin.parameters(), lr=0.1, eps=1e-6))  # fmt: skip
    for _ in range(5):
        for m in (model, twin):
            m.zero_grad()
            m(
                torch.randn(4, 784, generator=torch.Generator().manual_seed(1))
            ).square().sum().backward()
        fused.step()
        loop.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
