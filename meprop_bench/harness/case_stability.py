"""The suites' noise check: each finished case's spread, each sparse case's speedup
interval against the dense partner that ran just before it, the machine's load over
the session, and one ``warning:`` line at the end naming the unstable cases
(rules in :mod:`meprop_bench.stability`).

Partners run as one block, dense first (:mod:`meprop_bench.harness.ordering`), so a
sparse case finds its dense case's samples here; a case whose dense partner did not run
before it (another order, another shard) is judged on its own spread only. A training
step timed beside its dense partner (the step suites) is judged on that pairing.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from meprop_bench.harness.partners import unit_of
from meprop_bench.results.machine_state import Watch
from meprop_bench.stability import busy_warning, instability, time_spread, warning
from meprop_bench.stats import bootstrap_ratio


class StabilityLog:
    """A pytest plugin: judges each case as it finishes and warns at the end."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds
        self.watch = Watch()
        self.dense: dict[str, list[float]] = {}
        self.judged = 0
        self.unstable: list[str] = []

    def judge(
        self, item: pytest.Item, samples: list[float], paired: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The extra_info fields of one finished case: ``time_spread`` and ``unstable``.
        ``paired``: a training step's ratio to the dense partner timed beside it
        (``paired_dense_s``, ``paired_low``, ``paired_high``), which its speedup is then
        judged on."""
        unit = unit_of(item)
        spread = time_spread(samples)
        if paired:
            dense_spread = time_spread(paired["paired_dense_s"])
            reasons = instability(paired["paired_low"], paired["paired_high"], dense_spread)
        elif unit.dense:
            self.dense[unit.group] = samples
            reasons = instability(math.nan, math.nan, spread)
        elif (dense := self.dense.get(unit.group)) is not None:
            low, high = bootstrap_ratio(dense, samples)
            reasons = instability(low, high, time_spread(dense))
        else:
            reasons = []
        self.judged += 1
        if reasons:
            self.unstable.append(item.name)
        return {"time_spread": spread, "unstable": reasons}

    def state(self) -> dict[str, Any]:
        """How busy the machine has been since the session started."""
        return self.watch.state()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        state = self.state()
        if self.unstable:
            line = warning(self.unstable, self.judged, state, self.rounds,
                           "--meprop-rounds", "--meprop-threads 1")  # fmt: skip
        else:  # only a session that timed cases has timings to doubt
            line = busy_warning(state) if self.judged else None
        if line:
            terminalreporter.write_line(line)
