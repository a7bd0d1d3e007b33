"""``meprop-bench model``: the presets, the factory contract, the per-layer timings, the
gradient similarity, the result file and the one-line errors (no speed asserted)."""

from __future__ import annotations

import json
import textwrap
import uuid
from pathlib import Path

import pytest
import torch

from meprop_bench.commands.common import run_main
from meprop_bench.commands.model import main
from meprop_bench.errors import MePropInputError
from meprop_bench.harness import model_step
from meprop_bench.harness.model_presets import PRESETS, call_factory, load_factory
from meprop_bench.harness.model_step import check_fits, out_of_memory, run_model
from meprop_bench.results.files import read_result
from meprop_bench.results.kinds import MODEL

ROOT = Path(__file__).resolve().parents[2]
QUICK = dict(method="topk", strategy=None, optimizer="adam", threads=1, rounds=3, block=2,
             device="cpu", dtype="float32", seed=0, progress=lambda m: None)  # fmt: skip


def _run(factory, name="test", k=0.25, keep=(), isolated=False, **kw):
    return run_model(factory, name=name, k=k, keep_dense=keep, isolated=isolated, **{**QUICK, **kw})


@pytest.mark.parametrize("name", PRESETS)
def test_every_preset_builds_and_steps_at_a_tiny_width(name):
    preset = PRESETS[name]
    doc = _run(preset.factory(shrink=64), name=name, keep=preset.keep_dense, rounds=2, block=1)
    assert doc["layers"] and all(lay["k"] >= 1 for lay in doc["layers"])
    assert {p["part"] for p in doc["parts"]} == {"step", "forward", "backward", "optimizer"}
    assert doc["kept_dense"] == (["out"] if name == "mlp" else [])


def test_per_layer_backward_sums_to_no_more_than_the_steps_backward():
    doc = _run(PRESETS["transformer-mlp-512"].factory(shrink=16), rounds=3, block=2)
    backward = next(p for p in doc["parts"] if p["part"] == "backward")
    for side in ("dense", "meprop"):
        total = backward[f"{side}_rounds_s"]
        layers = [lay[f"{side}_rounds_s"] for lay in doc["layers"]]
        for r, whole in enumerate(total):
            assert 0 < sum(lay[r] for lay in layers) <= whole


def test_gradients_are_dense_at_k_equal_n_and_differ_at_small_k():
    factory = PRESETS["transformer-mlp-512"].factory(shrink=16)
    full = _run(factory, k=1.0, rounds=2, block=1)
    for lay in full["layers"]:
        assert lay["dw_cosine"] == pytest.approx(1.0, abs=1e-5)
        assert lay["dx_cosine"] == pytest.approx(1.0, abs=1e-5)
    small = _run(factory, k=1, rounds=2, block=1)
    assert all(lay["dw_cosine"] < 0.99 and lay["dx_cosine"] < 0.99 for lay in small["layers"])


def test_a_first_layer_without_input_gradient_has_no_dx(capsys):
    doc = _run(PRESETS["mlp"].factory(shrink=64), keep=("out",), rounds=2, block=1)
    first, second = doc["layers"]
    assert (first["name"], first["dx_in_step"], first["dx_cosine"]) == ("hidden0", False, None)
    assert second["dx_in_step"] and second["dx_cosine"] is not None


def test_layers_of_one_shape_are_timed_alone_once(monkeypatch):
    shapes = []
    check = model_step.run_check

    def counting(**kw):
        shapes.append((kw["batch"], kw["d_in"], kw["n"], kw["k"]))
        return check(**kw)

    monkeypatch.setattr(model_step, "run_check", counting)
    doc = _run(PRESETS["llama-mlp-512"].factory(shrink=64), rounds=2, block=1, isolated=True)
    layers = {lay["name"]: lay for lay in doc["layers"]}
    assert len(shapes) == len(set(shapes)) == 2  # gate and up: one shape; down: another
    iso = ("isolated_dense_s", "isolated_meprop_s", "isolated_speedup")
    assert [layers["gate"][f] for f in iso] == [layers["up"][f] for f in iso]
    assert layers["down"]["isolated_speedup"] > 0


def test_the_result_file_validates_and_the_isolated_kernel_is_timed(tmp_path, capsys):
    out = tmp_path / "model.json"
    argv = ["--preset", "mlp", "--k", "5", "--threads", "1", "--rounds", "3", "--block", "2",
            "--out", str(out)]  # fmt: skip
    assert run_main(main, argv) == 0
    doc = read_result(out, MODEL)
    assert doc["params"]["threads"] == 1 and doc["params"]["k"] == 5
    for lay in doc["layers"]:
        assert lay["isolated_speedup"] > 0 and lay["isolated_low"] <= lay["isolated_high"]
        assert lay["ideal_speedup"] == lay["n"] / 5
    printed = capsys.readouterr().out
    assert printed.index("whole step:") < printed.index("hidden0")
    assert run_main(main, argv) == 2  # never overwritten
    assert "already exists" in capsys.readouterr().err


def _module(tmp_path, monkeypatch, source: str) -> str:
    """A module holding ``source``, importable from the working directory; its name."""
    name = f"factory_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


GOOD = """
    import torch
    from torch import nn
    from torch.nn import functional as F

    def build():
        model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
        x, y = torch.randn(6, 8), torch.randint(0, 4, (6,))
        return model, {"x": x, "y": y}, lambda m, b: F.cross_entropy(m(b["x"]), b["y"])
"""


def test_a_good_factory_is_timed(tmp_path, monkeypatch, capsys):
    name = _module(tmp_path, monkeypatch, GOOD)
    argv = ["--model", f"{name}:build", "--keep-dense", "2", "--k", "2", "--rounds", "2",
            "--block", "1", "--no-isolated"]  # fmt: skip
    assert run_main(main, argv) == 0
    out = capsys.readouterr().out
    assert "whole step:" in out and "\n0 " in out


BAD = {
    "nomodule:build": "cannot import nomodule",
    "{mod}:nothing": "has no 'nothing'",
    "{mod}:VALUE": "is a int, not a function",
    "{mod}:two": "must return (model, batch, loss_fn), got a tuple of 2",
    "{mod}:not_module": "the model is a str, not an nn.Module",
    "{mod}:no_linear": "holds no nn.Linear for meProp to swap",
    "{mod}:raises": "raised ValueError: broken",
    "{mod}:vector_loss": "must return a scalar tensor with a gradient, got a tensor of shape (3,",
    "{mod}": "expected package.module:factory",
}
BAD_SOURCE = (
    GOOD
    + """
    VALUE = 3

    def two():
        return build()[:2]

    def not_module():
        return ("model", None, build()[2])

    def no_linear():
        return nn.Sequential(nn.ReLU()), torch.randn(2, 2), lambda m, b: m(b).sum()

    def raises():
        raise ValueError("broken")

    def vector_loss():
        model = nn.Linear(4, 3)
        return model, torch.randn(2, 4), lambda m, b: m(b).sum(0)
"""
)


@pytest.mark.parametrize("spec", BAD)
def test_a_bad_factory_is_one_error_line_before_any_timing(spec, tmp_path, monkeypatch, capsys):
    mod = _module(tmp_path, monkeypatch, BAD_SOURCE)
    assert run_main(main, ["--model", spec.format(mod=mod), "--rounds", "2"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and BAD[spec] in lines[0], err
    assert "timing:" not in err and "Traceback" not in err


def test_keeping_every_layer_dense_leaves_nothing_to_swap(capsys):
    assert run_main(main, ["--preset", "mlp", "--keep-dense", "*"]) == 2
    assert "nothing to swap" in capsys.readouterr().err


def test_a_model_too_big_for_memory_is_one_line_with_its_size(monkeypatch, capsys):
    monkeypatch.setattr(model_step, "_available_bytes", lambda device: 1000)
    assert run_main(main, ["--preset", "mlp"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: the model does not fit in memory") and "GiB" in err
    assert len(err.splitlines()) == 1
    with pytest.raises(MePropInputError, match="need about"):
        check_fits(torch.nn.Linear(1000, 1000), "adam", torch.device("cpu"))


def test_running_out_of_memory_mid_step_names_the_size():
    err = RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate "
                       "85899345920 bytes. Error code 12 (Cannot allocate memory)")  # fmt: skip
    assert "tried to allocate 80.00 GiB" in str(out_of_memory(err))
    assert out_of_memory(RuntimeError("shapes do not match")) is None


def test_the_example_factory_keeps_the_contract(monkeypatch):
    monkeypatch.chdir(ROOT)
    model, batch, loss_fn = call_factory(load_factory("docs.examples.model_factory:build"), "ex")
    assert loss_fn(model, batch).ndim == 0


def test_help_names_every_preset(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert all(name in text for name in PRESETS)


def test_json_round_trips(tmp_path):
    doc = _run(PRESETS["mlp"].factory(shrink=64), keep=("out",), rounds=2, block=1)
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    assert read_result(path, MODEL)["layers"][0]["name"] == "hidden0"


@pytest.mark.skipif(model_step.allocator.minor_faults() is None, reason="no page-fault counts")
def test_page_faults_are_counted_in_the_part_that_takes_them():
    """A loss that writes a fresh 64 MiB buffer (above glibc's largest mmap threshold,
    so new pages every step) shows its 16,384 faults in the forward of both sides, not
    in the optimizer."""

    def factory():
        model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))

        def loss_fn(m, batch):
            torch.ones(16 << 20).sum()  # 64 MiB of float32, written
            return m(batch).square().mean()

        return model, torch.randn(4, 8), loss_fn

    doc = _run(factory, rounds=2, block=1)
    parts = {p["part"]: p for p in doc["parts"]}
    for side in ("dense", "meprop"):
        assert parts["forward"][f"{side}_faults"] >= 16_000
        assert parts["optimizer"][f"{side}_faults"] < 1_000
        assert parts["step"][f"{side}_faults"] >= parts["forward"][f"{side}_faults"]
    assert doc["params"]["malloc"] == "default"


def _faults_doc(dense, sparse, tunables=""):
    step = {"part": "step", "dense_faults": dense, "meprop_faults": sparse}
    return {"parts": [step], "machine": {"allocator": {"glibc_tunables": tunables}}}


def test_a_step_with_far_more_page_faults_on_one_side_is_noted():
    from meprop_bench.stability import model_faults_note as faults_note

    note = faults_note(_faults_doc(132_000, 300))
    assert "dense 132,000 against meProp 300" in note and "glibc.malloc.hugetlb=1" in note
    assert "GLIBC_TUNABLES" not in faults_note(_faults_doc(300, 132_000, "glibc.malloc.hugetlb=1"))
    assert faults_note(_faults_doc(5_000, 4_000)) is None  # alike
    assert faults_note(_faults_doc(900, 0)) is None  # too few to matter
    assert faults_note(_faults_doc(None, None)) is None  # not counted here


def _bound_doc(low, optimizer_low, bound=2.4):
    parts = [{"part": "step", "speedup": low + 0.2, "low": low, "high": low + 0.4},
             {"part": "forward", "speedup": 1.0, "low": 0.95, "high": 1.05},
             {"part": "optimizer", "speedup": optimizer_low + 0.1, "low": optimizer_low,
              "high": optimizer_low + 0.2}]  # fmt: skip
    return {"parts": parts, "step_speedup_low": low, "step_bound": bound}


def test_a_step_above_its_bound_says_which_part_outside_the_backward_explains_it():
    from meprop_bench.stability import model_bound_note as bound_note

    note = bound_note(_bound_doc(2.7, optimizer_low=1.3))
    assert "above its bound (2.70x > 2.40x)" in note
    assert "optimizer 1.40x [1.30-1.50]" in note and "forward" not in note
    unexplained = bound_note(_bound_doc(2.7, optimizer_low=0.9))
    assert "no part outside the backward explains it" in unexplained
    assert bound_note(_bound_doc(2.3, optimizer_low=1.3)) is None  # within its bound
