"""The MNIST loaders: the embedded sample's split, and the IDX reader's checks."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.training import data as data_module
from meprop_bench.training.data import (
    Split,
    load_data,
    load_embedded,
    load_idx_dir,
    minibatches,
    read_idx,
    subset,
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


@pytest.mark.parametrize("layout", ["", ".gz", "FashionMNIST/raw"])
def test_fashion_from_its_idx_files_with_its_own_normalisation(tmp_path, layout):
    folder = tmp_path / layout if "/" in layout else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    write_mnist(folder, n_train=36)
    if layout == ".gz":
        for f in list(folder.iterdir()):
            f.with_name(f.name + ".gz").write_bytes(gzip.compress(f.read_bytes()))
            f.unlink()
    data = load_data("fashion", tmp_path)
    pixels = read_idx(next(folder.glob("train-images*")), 3)[3:].astype(np.float64) / 255
    assert (data.name, len(data.dev.y), len(data.train.y)) == ("fashion", 3, 33)
    assert (data.mean, data.std) == pytest.approx((pixels.mean(), pixels.std()))
    assert data.mean != pytest.approx(data_module.MNIST_MEAN, abs=1e-3)
    assert abs(float(data.train.x.mean())) < 1e-4 and float(data.train.x.std()) == pytest.approx(
        1, abs=0.01
    )
    assert data.describe()["mean"] == data.mean and data.describe()["std"] == data.std
    mnist = load_data("mnist", folder)
    assert (mnist.mean, mnist.std) == (data_module.MNIST_MEAN, data_module.MNIST_STD)


def test_fashion_not_installed_names_the_package_and_data_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(data_module, "FASHION_DIR", tmp_path / "absent")
    with pytest.raises(MePropInputError, match="apt-get install dataset-fashion-mnist, or pass "
                       "--data-dir"):  # fmt: skip
        load_data("fashion")


def labelled(counts: list[int]) -> Split:
    """A split with ``counts[c]`` examples of class c, each row its own index."""
    y = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    return Split(torch.arange(len(y), dtype=torch.float32)[:, None], y)


def test_a_subset_is_stratified_seeded_and_nested():
    split = labelled([300, 200, 100, 50, 350])
    small = subset(split, 100)
    assert len(small.y) == 100
    assert small.y.bincount().tolist() == [30, 20, 10, 5, 35]  # each class its share
    odd = subset(split, 7)  # shares 2.1, 1.4, 0.7, 0.35, 2.45: largest remainders round
    assert odd.y.bincount(minlength=5).tolist() == [2, 1, 1, 0, 3]
    again = subset(split, 100)
    torch.testing.assert_close(small.x, again.x)
    assert not torch.equal(small.x, subset(split, 100, seed=1).x)
    larger = set(subset(split, 400).x[:, 0].tolist())
    assert set(small.x[:, 0].tolist()) <= larger  # a learning curve adds images
    assert subset(split, None) is split and subset(split, 1000) is split


@pytest.mark.parametrize("size", [0, -3, 1001])
def test_a_subset_size_out_of_range_is_refused(size):
    with pytest.raises(MePropInputError, match=f"--train-size {size} must lie in 1..1000"):
        subset(labelled([500, 500]), size)
