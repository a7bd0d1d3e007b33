"""Which of the collected suite cases this pytest process runs, and in which order:
``--meprop-shard`` selects a part (:mod:`meprop_bench.harness.sharding`),
``--meprop-cases FILE`` keeps only the cases it lists (node ids, one a line: what
``ab --rounds auto`` passes in later rounds, the cases not yet decided; applied after
the shard, so a shard's cases stay the same whatever the list), then ``--meprop-order``
orders them (:mod:`meprop_bench.harness.ordering`).

Both act on the suites' cases only (tests that use the ``meprop`` fixture), after
``-k`` and ``-m`` have deselected theirs; other tests are neither split nor moved. The
plan goes into ``machine_info`` of the benchmark JSON and of the partial-results header:
``meprop_shard`` (``shard`` "I/N", ``index``, ``count``, ``cases`` run, ``collected``,
``estimated_share`` of the cost) and ``meprop_order`` (``order``, ``seed``).

An empty shard says so, writes a valid ``--benchmark-json`` with no benchmarks, and
exits 0 rather than pytest's "no tests ran" (5): it is a part of a sweep that happens
to hold nothing, and the other parts' results merge with it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

import pytest

from meprop_bench.errors import MePropInputError
from meprop_bench.harness.ordering import ORDERS, parse_order, parse_seed, seeded_order
from meprop_bench.harness.partners import unit_of
from meprop_bench.harness.sharding import OPTION, WHOLE, Shard, assign, parse_shard

SHARD_INFO, ORDER_INFO = "meprop_shard", "meprop_order"
CASES_OPTION = "--meprop-cases"


def add_options(group: pytest.OptionGroup) -> None:
    """The plan's options, in the suites' option group."""
    group.addoption(
        OPTION,
        default=None,
        metavar="I/N",
        help="run part I of N of the suites' cases (I counts from 0: 0/4 .. 3/4), split "
        "by estimated cost, each dense case with its sparse partners; see "
        "meprop_bench.harness.sharding",
    )
    group.addoption(
        CASES_OPTION,
        default=None,
        metavar="FILE",
        help="run only the cases whose pytest node ids FILE lists, one a line (after "
        "--meprop-shard has chosen its part); ab --rounds auto writes it",
    )
    group.addoption(
        "--meprop-order",
        default="seeded",
        metavar="ORDER",
        help=f"{' or '.join(ORDERS)}: partner groups in a random order from --meprop-seed, "
        "each dense case first in its group (default), or the collection order",
    )
    group.addoption(
        "--meprop-seed",
        default=None,
        metavar="N",
        help="seed of the seeded order (default: a fresh one; machine_info records it)",
    )


def is_empty_shard(doc: Any) -> bool:
    """Whether a parsed pytest-benchmark JSON document is an empty shard's result."""
    info = doc.get("machine_info") if isinstance(doc, dict) else None
    shard = info.get(SHARD_INFO) if isinstance(info, dict) else None
    return isinstance(shard, dict) and shard.get("cases") == 0 and doc.get("benchmarks") == []


class SweepPlan:
    """A pytest plugin applying the shard and order options to the collected cases."""

    def __init__(
        self, shard: Shard, order: str, seed: int | None, listed: frozenset[str] | None = None
    ) -> None:
        self.shard, self.order, self.seed, self.listed = shard, order, seed, listed
        self.collected = self.cases = 0
        self.share = 0.0

    @classmethod
    def from_config(cls, config: pytest.Config) -> SweepPlan:
        """The plan the options ask for; a malformed one is a usage error naming its option."""
        shard_text, seed_text = config.getoption("meprop_shard"), config.getoption("meprop_seed")
        try:
            shard = WHOLE if shard_text is None else parse_shard(shard_text)
            order = parse_order(config.getoption("meprop_order"))
            if order == "given" and seed_text is not None:
                raise MePropInputError("--meprop-seed: only the seeded order takes a seed")
            seed = parse_seed(seed_text) if order == "seeded" else None
            cases = config.getoption("meprop_cases")
            listed = None if cases is None else read_case_list(Path(cases))
        except MePropInputError as err:
            raise pytest.UsageError(str(err)) from None
        return cls(shard, order, seed, listed)

    @property
    def empty(self) -> bool:
        return self.shard != WHOLE and self.cases == 0

    def select(self, items: list[pytest.Item]) -> tuple[list[pytest.Item], list[pytest.Item]]:
        """(the items to run, in run order; the cases not run: other shards', and those
        ``--meprop-cases`` leaves out).

        Cases fill the places the cases held; other tests keep theirs."""
        slots = [i for i, item in enumerate(items) if _is_case(item)]
        units = [unit_of(items[i]) for i in slots]
        shards = assign(units, self.shard.count)
        mine = [j for j, s in enumerate(shards) if s == self.shard.index]
        total = sum(unit.cost for unit in units)
        self.share = sum(units[j].cost for j in mine) / total if total else 0.0
        if self.listed is not None:
            mine = [j for j in mine if items[slots[j]].nodeid in self.listed]
        self.collected, self.cases = len(units), len(mine)
        if self.seed is not None:
            mine = [mine[j] for j in seeded_order([units[j] for j in mine], self.seed)]
        chosen = iter([items[slots[j]] for j in mine])
        kept = []
        for item in items:
            if not _is_case(item):
                kept.append(item)
            elif (case := next(chosen, None)) is not None:
                kept.append(case)
        running = set(mine)
        dropped = [items[slots[j]] for j in range(len(slots)) if j not in running]
        return kept, dropped

    @pytest.hookimpl(trylast=True)  # after -k and -m have deselected
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        items[:], dropped = self.select(items)
        if dropped:
            config.hook.pytest_deselected(items=dropped)

    def pytest_report_collectionfinish(self) -> list[str]:
        if not self.collected:
            return []
        order = "given order" if self.seed is None else f"seeded order (seed {self.seed})"
        if self.listed is not None:
            order += f", those {CASES_OPTION} lists"
        if self.shard == WHOLE:
            return [f"meprop: {self.cases} cases, {order}"]
        return [
            f"meprop shard {self.shard}: {self.cases} of {self.collected} cases "
            f"({self.share:.0%} of the estimated cost), {order}"
        ]

    def pytest_benchmark_update_machine_info(self, machine_info: dict[str, Any]) -> None:
        machine_info[SHARD_INFO] = {
            "shard": str(self.shard),
            "index": self.shard.index,
            "count": self.shard.count,
            "cases": self.cases,
            "collected": self.collected,
            "estimated_share": round(self.share, 4),
        }
        machine_info[ORDER_INFO] = {"order": self.order, "seed": self.seed}

    @pytest.hookimpl(trylast=True)  # after pytest-benchmark has saved (nothing)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.empty:
            return
        config = session.config
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"meprop shard {self.shard} is empty: none of the {self.collected} cases "
                "collected falls in it"
            )
        out = config.getoption("benchmark_json", None)
        if out is not None:
            path = _write_empty_result(config, out)
            if reporter is not None:
                reporter.write_line(f"meprop: wrote an empty result to {path}")
        if exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            session.exitstatus = pytest.ExitCode.OK


def read_case_list(path: Path) -> frozenset[str]:
    """The node ids a ``--meprop-cases`` file lists (blank lines passed over)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise MePropInputError(f"{CASES_OPTION}: cannot read {path}: {err.strerror}") from None
    return frozenset(line.strip() for line in lines if line.strip())


def _is_case(item: pytest.Item) -> bool:
    return "meprop" in getattr(item, "fixturenames", ())


def _write_empty_result(config: pytest.Config, out: IO[bytes] | Path) -> Path:
    """A pytest-benchmark JSON with no benchmarks, made by pytest-benchmark's own hooks
    so it has every field a full one has, written to the ``--benchmark-json`` target (an
    open file before pytest-benchmark 5.3, a path since)."""
    hook = config.hook
    machine = hook.pytest_benchmark_generate_machine_info(config=config)
    hook.pytest_benchmark_update_machine_info(config=config, machine_info=machine)
    commit = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit)
    doc = hook.pytest_benchmark_generate_json(
        config=config, benchmarks=[], include_data=True, machine_info=machine, commit_info=commit
    )
    hook.pytest_benchmark_update_json(config=config, benchmarks=[], output_json=doc)
    data = json.dumps(doc, indent=4, default=str).encode()
    if isinstance(out, Path):
        out.write_bytes(data)
        return out
    with out:
        out.write(data)
    return Path(out.name)
