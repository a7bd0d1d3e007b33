"""Grid presets, command-line overrides and their expansion into cases."""

from __future__ import annotations

import pytest

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.grid import PRESETS, Grid, apply_overrides, paper_cases, select_preset


def test_dense_precedes_each_group_of_sparse_cases():
    grid = Grid(
        widths=(64, 128), batches=(8,), ks=(4, 0.5),
        methods=("dense", "unified/compact", "unified/scatter"),
    )  # fmt: skip
    cases = grid.cases()
    assert [c.method for c in cases] == ["dense", "unified", "unified", "unified", "unified"] * 2
    for case in cases:
        assert case.pair_key == cases[0 if case.n == 64 else 5].pair_key
    assert [c.k for c in cases[:5]] == [64, 4, 4, 32, 32]


def test_counts_larger_than_width_are_left_out():
    cases = Grid(widths=(16, 64), batches=(2,), ks=(32,), methods=("topk/masked",)).cases()
    assert [(c.method, c.n) for c in cases] == [("dense", 64), ("topk", 64)]


def test_a_count_larger_than_every_width_is_refused_naming_both():
    grid = Grid(widths=(16, 64), batches=(2,), ks=(0.5, 8, 100), methods=("topk/masked",))
    with pytest.raises(MePropInputError, match=r"--meprop-ks: k=100 is larger than every "
                       r"width swept \(16, 64\)"):  # fmt: skip
        grid.check()
    Grid(widths=(16, 64), batches=(2,), ks=(0.5, 32), methods=("topk/masked",)).check()


def test_methods_expand_to_their_strategies_once():
    grid = Grid((8,), (2,), (2,), ("topk", "topk/sparse", "unified/scatter"))
    assert grid.kernels() == [("topk", "masked"), ("topk", "sparse"), ("topk", "rowunion"),
                              ("topk", "native"), ("topk", "triton"),
                              ("unified", "scatter")]  # fmt: skip


def test_kernels_that_cannot_run_on_a_device_or_dtype_are_left_out():
    grid = Grid((8,), (2,), (2,), ("dense", "topk/native", "topk/masked"),
                devices=("cpu", "cuda"), dtypes=("float32", "bfloat16"))  # fmt: skip
    native = [(c.device, c.dtype) for c in grid.cases() if c.strategy == "native"]
    assert native == [("cpu", "float32")]
    assert sum(c.strategy == "masked" for c in grid.cases()) == 4


def test_every_axis_overrides():
    grid = apply_overrides(
        PRESETS["quick"],
        {"widths": "64,128", "batches": "4", "ks": "0.5,3", "methods": "unified/compact",
         "devices": "cpu,cuda:1", "dtypes": "float64", "threads": "1,2", "grads": "gaussian",
         "rounds": "7", "warmup": "0", "d-in": "32"},
    )  # fmt: skip
    assert grid == Grid((64, 128), (4,), (0.5, 3), ("unified/compact",), ("cpu", "cuda:1"),
                        ("float64",), (1, 2), ("gaussian",), 7, 0, 32)  # fmt: skip
    assert {c.d_in for c in grid.cases()} == {32}


@pytest.mark.parametrize(
    "key,text,message",
    [
        ("widths", "64,abc", "--meprop-widths: expected a positive integer, got 'abc'"),
        ("widths", "0", "--meprop-widths: expected a positive integer, got '0'"),
        ("batches", "", "--meprop-batches: expected a comma-separated list"),
        ("ks", "0.01,x", "--meprop-ks: 'x' is neither a count"),
        ("ks", "1.5", r"--meprop-ks: '1.5' must be a count >= 1 or a fraction in \(0, 1\]"),
        ("ks", "0", "--meprop-ks: '0' must be a count"),
        ("methods", "topk,fast", "--meprop-methods: unknown kernel 'fast'"),
        ("methods", "unified/masked", "--meprop-methods: unknown kernel 'unified/masked'"),
        ("devices", "tpu", "--meprop-devices: unknown device 'tpu'"),
        ("devices", "cuda:x", "--meprop-devices: unknown device 'cuda:x'"),
        ("dtypes", "float8", "--meprop-dtypes: unknown 'float8'"),
        ("grads", "real", "--meprop-grads: unknown 'real'"),
        ("warmup", "-1", "--meprop-warmup: expected a non-negative integer"),
        ("rounds", "1,,2", "--meprop-rounds: expected a comma-separated list"),
        ("rounds", "5,6", "--meprop-rounds: expected one value, got '5,6'"),
    ],
)
def test_malformed_values_name_the_option(key, text, message):
    with pytest.raises(MePropInputError, match=message):
        apply_overrides(PRESETS["quick"], {key: text})


def test_unknown_preset():
    with pytest.raises(MePropInputError, match="--meprop-preset: unknown preset 'fast'"):
        select_preset("fast")


def test_paper_shapes_by_preset():
    base = PRESETS["quick"]
    quick = {shape.name for shape, _ in paper_cases("quick", base)}
    paper = {shape.name for shape, _ in paper_cases("paper", base)}
    assert quick == {"mnist-mlp-b50"}
    assert paper == {"mnist-mlp-b10", "mnist-mlp-b50", "parsing-mlp", "gpu-table7"}
    table7 = [c for shape, c in paper_cases("paper", base) if shape.name == "gpu-table7"]
    assert {c.k for c in table7 if c.method == "unified"} == {8, 16, 32, 64, 128, 256, 512}
    assert all(c.batch == 1024 and c.n == 8192 for c in table7)
