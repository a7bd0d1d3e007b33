"""``--cache``: what runs before each timed call, and the last-level cache's size."""

from __future__ import annotations

import pytest
import torch

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.cache_state import (
    FALLBACK_LLC_BYTES,
    before_each_call,
    last_level_cache_bytes,
)
from meprop_bench.harness.timing import measure_interleaved


def _cache(root, index, level, size):
    (root / f"index{index}").mkdir()
    (root / f"index{index}" / "level").write_text(f"{level}\n")
    (root / f"index{index}" / "size").write_text(f"{size}\n")


def test_the_last_level_cache_is_the_highest_level_listed(tmp_path):
    _cache(tmp_path, 0, 1, "32K")
    _cache(tmp_path, 2, 2, "1024K")
    _cache(tmp_path, 3, 3, "32768K")
    assert last_level_cache_bytes(tmp_path) == 32 << 20
    (tmp_path / "index3" / "size").write_text("")  # unreadable: the next level down
    assert last_level_cache_bytes(tmp_path) == 1 << 20


def test_without_sysfs_the_cache_size_is_assumed(tmp_path):
    assert last_level_cache_bytes(tmp_path / "missing") == FALLBACK_LLC_BYTES


class _Logged:
    """A timer that logs its calls into the kernels' log."""

    last_faults = None

    def __init__(self, log):
        self.log = log

    def __call__(self, fn):
        self.log.append("timed")
        fn()
        return 0.0


def test_warm_runs_each_kernel_untimed_right_before_its_timed_call():
    log = []
    fns = {name: (lambda name=name: log.append(name)) for name in "ab"}
    before = before_each_call("warm", torch.device("cpu"))
    measure_interleaved(fns, _Logged(log), rounds=2, warmup=1, before=before)
    warmup = ["timed", "a", "timed", "b"]  # the warm-up round as without --cache
    assert log == warmup + ["a", "timed", "a", "b", "timed", "b"] * 2


def test_cold_sweeps_a_buffer_instead_of_calling_the_kernel(monkeypatch):
    from meprop_bench.harness import cache_state

    monkeypatch.setattr(cache_state, "last_level_cache_bytes", lambda: 4096)
    writes = []
    monkeypatch.setattr(torch.Tensor, "add_", lambda self, v: writes.append(self.numel()))
    before = before_each_call("cold", torch.device("cpu"))
    calls = []
    before(lambda: calls.append("kernel"))
    assert calls == [] and writes == [2 * 4096]


def test_shared_adds_nothing_and_other_devices_or_states_are_refused():
    assert before_each_call("shared", torch.device("cuda")) is None
    with pytest.raises(MePropInputError, match="applies to CPU timing; on cuda"):
        before_each_call("warm", torch.device("cuda"))
    with pytest.raises(MePropInputError, match="choose one of shared, warm, cold"):
        before_each_call("tepid", torch.device("cpu"))
