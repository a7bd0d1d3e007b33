"""Parametrization of the suites from the grid chosen on the command line.

Each suite asks for one of these arguments and gets one test per grid point:
``backward_case`` (Case, threads), ``selection_case`` (selection, Case, threads),
``paper_case`` (PaperShape, Case, threads).
"""

from __future__ import annotations

import pytest

from meprop_bench.harness.grid import paper_cases
from meprop_bench.harness.plugin import grid_of, preset_of

SELECTIONS = ("topk", "unified", "randk")


def _threads_id(count: int | None) -> str:
    return "" if count is None else f"_t{count}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    config = metafunc.config
    grid = grid_of(config)
    names = metafunc.fixturenames
    if "backward_case" in names:
        params = [(case, t) for case in grid.cases() for t in grid.threads]
        metafunc.parametrize(
            "backward_case", params, ids=[c.case_id + _threads_id(t) for c, t in params]
        )
    if "selection_case" in names:
        dense_cases = [case for case in grid.cases() if case.is_dense]
        params = [
            (selection, case.__class__.make(selection, None, case.batch, case.d_in, case.n,
                                            k, case.dtype, case.device, case.grads), t)
            for case in dense_cases
            for k in grid.ks
            if not (isinstance(k, int) and k > case.n)
            for selection in SELECTIONS
            for t in grid.threads
        ]  # fmt: skip
        metafunc.parametrize(
            "selection_case",
            params,
            ids=[
                f"{s}_B{c.batch}_n{c.n}_k{c.k}_{c.dtype}_{c.device}_{c.grads}{_threads_id(t)}"
                for s, c, t in params
            ],
        )
    if "paper_case" in names:
        params = [
            (shape, case, t)
            for shape, case in paper_cases(preset_of(config), grid)
            for t in grid.threads
        ]
        metafunc.parametrize(
            "paper_case",
            params,
            ids=[f"{s.name}_{c.case_id}{_threads_id(t)}" for s, c, t in params],
        )
