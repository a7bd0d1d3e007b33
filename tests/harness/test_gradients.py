"""The gradient recorder: what it saves, the cache, and clear errors for bad files."""

from __future__ import annotations

import pytest
import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.gradients import cached_gradients, load_gradients, record


def test_record_saves_unsparsified_dy_x_and_w(tmp_path):
    path = record(tmp_path / "g.pt", hidden=32, batch=8, steps=(3, 1), k=4)
    samples = load_gradients(path)
    assert [(s.layer, s.step) for s in samples] == [
        ("hidden0", 1), ("hidden1", 1), ("hidden0", 3), ("hidden1", 3)
    ]  # fmt: skip
    first, second = samples[0], samples[1]
    assert first.dy.shape == (8, 32) and first.x.shape == (8, 784) and first.w.shape == (32, 784)
    assert second.x.shape == (8, 32) and second.w.shape == (32, 32)
    # dY is the gradient before sparsification: more than k=4 nonzeros in a row.
    assert int((second.dy != 0).sum(1).max()) > 4
    # hidden1's input is hidden0's ReLU output, and hidden0's dY (taken after the ReLU's
    # backward) is zero wherever that ReLU was off.
    assert second.x.min() >= 0 and (second.x == 0).any()
    assert torch.all(first.dy[second.x == 0] == 0)
    assert not torch.equal(samples[0].w, samples[2].w)  # the weights trained in between
    meta = torch.load(path, weights_only=True)["meta"]
    assert meta["hidden"] == 32 and meta["steps"] == [1, 3] and meta["torch"] == torch.__version__


def test_same_seed_same_gradients(tmp_path):
    a = load_gradients(
        record(tmp_path / "a.pt", hidden=16, batch=4, steps=(2,), method="randk", k=3)
    )
    b = load_gradients(
        record(tmp_path / "b.pt", hidden=16, batch=4, steps=(2,), method="randk", k=3)
    )
    assert all(torch.equal(x.dy, y.dy) for x, y in zip(a, b, strict=True))


def test_cache_records_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MEPROP_BENCH_CACHE", str(tmp_path / "cache"))
    path = cached_gradients(8, 4)
    assert path.parent == tmp_path / "cache" and path.is_file()
    stamp = path.stat().st_mtime_ns
    assert cached_gradients(8, 4) == path and path.stat().st_mtime_ns == stamp
    assert {s.dy.shape for s in load_gradients(path)} == {(4, 8)}


def test_damaged_cache_is_recorded_again(tmp_path, monkeypatch):
    monkeypatch.setenv("MEPROP_BENCH_CACHE", str(tmp_path))
    path = cached_gradients(8, 4)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.warns(UserWarning, match="re-recording the gradient cache"):
        assert cached_gradients(8, 4) == path
    assert {s.dy.shape for s in load_gradients(path)} == {(4, 8)}


def test_bad_files_and_arguments(tmp_path):
    with pytest.raises(MePropInputError, match="not found"):
        load_gradients(tmp_path / "none.pt")
    torch.save({"schema": "something/else", "schema_version": 1}, tmp_path / "other.pt")
    with pytest.raises(MePropInputError, match="not a meprop-bench/gradients"):
        load_gradients(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(MePropInputError, match="not a readable"):
        load_gradients(tmp_path / "junk.pt")
    with pytest.raises(MePropInputError, match="steps"):
        record(tmp_path / "x.pt", hidden=8, batch=4, steps=(0,))
    with pytest.raises(MePropInputError, match="out of range"):
        record(tmp_path / "x.pt", hidden=8, batch=4, steps=(1,), k=9)
