"""The MNIST loaders: the embedded sample's split, and the IDX reader's checks."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.training.data import (
    load_data,
    load_embedded,
    load_idx_dir,
    minibatches,
    read_idx,
)


def write_idx(path, array: np.ndarray, *, magic: int | None = None, cut: int = 0) -> None:
    """An IDX file of unsigned bytes; ``magic`` overrides the header, ``cut`` drops bytes."""
    magic = (0x08 << 8 | array.ndim) if magic is None else magic
    raw = struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - cut]
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def write_mnist(folder, n_train: int = 24, n_test: int = 6) -> None:
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28)))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_embedded_split_is_fixed_disjoint_and_shuffled():
    a, b = load_embedded(), load_embedded()
    assert (len(a.train.y), len(a.dev.y), len(a.test.y)) == (3000, 1000, 1000)
    torch.testing.assert_close(a.train.x, b.train.x)
    assert a.train.y.bincount().min() > 250  # every digit, not a label-sorted slice
    rows = torch.cat([a.train.x, a.dev.x, a.test.x])
    assert len(torch.unique(rows, dim=0)) == len(rows)
    assert abs(float(a.train.x.mean())) < 0.1 and abs(float(a.train.x.std()) - 1) < 0.1
    small = load_embedded((60, 20, 20))
    assert len(small.train.y) == 60


def test_embedded_bad_sizes():
    with pytest.raises(MePropInputError, match="sum to"):
        load_embedded((4000, 1000, 1000))


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_mnist_dir_round_trip(tmp_path, suffix):
    write_mnist(tmp_path)
    if suffix:
        for f in list(tmp_path.iterdir()):
            f.with_name(f.name + suffix).write_bytes(gzip.compress(f.read_bytes()))
            f.unlink()
    data = load_data("mnist", tmp_path)
    assert (len(data.train.y), len(data.dev.y), len(data.test.y)) == (22, 2, 6)
    assert data.dev.y.tolist() == [0, 1]  # dev = the first 1/12 of the training file
    assert data.train.x.shape == (22, 784) and data.train.x.dtype == torch.float32


def test_torchvision_layout(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    write_mnist(raw)
    assert len(load_idx_dir(tmp_path).test.y) == 6


@pytest.mark.parametrize(
    "damage,message",
    [
        (dict(cut=5), "truncated"),
        (dict(magic=0x0801), "magic number"),
        (dict(magic=0x0D03), "magic number"),
    ],
)
def test_damaged_idx(tmp_path, damage, message):
    path = tmp_path / "train-images-idx3-ubyte"
    write_idx(path, np.zeros((3, 28, 28)), **damage)
    with pytest.raises(MePropInputError, match=message):
        read_idx(path, 3)


def test_trailing_bytes_and_bad_gzip(tmp_path):
    path = tmp_path / "a"
    write_idx(path, np.zeros((3,)))
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(MePropInputError, match="trailing"):
        read_idx(path, 1)
    bad = tmp_path / "b.gz"
    bad.write_bytes(b"not gzip")
    with pytest.raises(MePropInputError, match="unreadable"):
        read_idx(bad, 1)
    short = tmp_path / "c"
    short.write_bytes(b"\x00\x00")
    with pytest.raises(MePropInputError, match="no full header"):
        read_idx(short, 1)


def test_missing_and_inconsistent_files(tmp_path):
    with pytest.raises(MePropInputError, match="not a directory"):
        load_idx_dir(tmp_path / "nope")
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(MePropInputError, match=r"t10k-labels-idx1-ubyte.*not found"):
        load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5) % 10)
    with pytest.raises(MePropInputError, match="disagree"):
        load_idx_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.full(6, 11))
    with pytest.raises(MePropInputError, match=r"outside 0\.\.9"):
        load_idx_dir(tmp_path)


def test_load_data_arguments(tmp_path):
    with pytest.raises(MePropInputError, match="needs --data-dir"):
        load_data("mnist")
    with pytest.raises(MePropInputError, match="mnist or fashion only"):
        load_data("embedded", tmp_path)
    with pytest.raises(MePropInputError, match="unknown data set"):
        load_data("cifar")


def test_minibatches_cover_the_split_once():
    split = load_embedded((10, 1, 1)).train
    batches = list(minibatches(split, 4, torch.Generator().manual_seed(0)))
    assert [len(y) for _, y in batches] == [4, 4, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == sorted(split.y.tolist())
