"""The suites' items as pytest collects them, and each sparse case's dense partner found
from the cases themselves (``Case.dense()``, what a result's ``pairs_with`` names),
not from the partner groups that sharding and ordering use, which are under test."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


class _Grab:
    def __init__(self) -> None:
        self.items: list[pytest.Item] = []

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.items = list(session.items)


@cache
def collect(*args: str) -> list[pytest.Item]:
    """The suites' items collected in this process with ``args``, in collection order
    (collected once per ``args``: copy the list before changing it)."""
    grab = _Grab()
    argv = [str(ROOT / "suites"), "--collect-only", "-qq", "-p", "no:cacheprovider"]
    code = pytest.main([*argv, "--meprop-order", "given", *args], plugins=[grab])
    assert code == 0, f"collection failed with exit {code}"
    return grab.items


def _partner_key(item: pytest.Item) -> tuple[Any, ...] | None:
    """What names the dense case ``item`` is compared with (a dense case: itself);
    None for a case with no dense partner (selection alone)."""
    params = item.callspec.params
    if "backward_case" in params:
        case, threads = params["backward_case"]
        return item.originalname, case.dense(), threads
    if "paper_case" in params:
        shape, case, threads = params["paper_case"]
        return item.originalname, shape.name, case.dense(), threads
    if "train_case" in params:
        shape, _, device, dtype, threads = params["train_case"]
        return item.originalname, shape, device, dtype, threads
    if "model_case" in params:
        preset, _, _, _, device, dtype, threads = params["model_case"]
        return item.originalname, preset, device, dtype, threads
    return None


def is_dense(item: pytest.Item) -> bool:
    params = item.callspec.params
    if "train_case" in params:
        return params["train_case"][1][0] == "dense"
    if "model_case" in params:
        return params["model_case"][1] == "dense"
    for name in ("backward_case", "paper_case"):
        if name in params:
            return params[name][-2].is_dense
    return False


def dense_partners(items: list[pytest.Item]) -> dict[str, str]:
    """Node id of each sparse case -> node id of its dense partner (both in ``items``)."""
    dense = {_partner_key(item): item.nodeid for item in items if is_dense(item)}
    return {
        item.nodeid: dense[key]
        for item in items
        if not is_dense(item) and (key := _partner_key(item)) is not None
    }
