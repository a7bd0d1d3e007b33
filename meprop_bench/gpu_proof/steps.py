"""The GPU proof's steps: what each runs and how long it may take, the one table the
script, its plan and its summary read.

Every limit is a hard bound (the script sends SIGTERM :data:`GRACE_S` seconds before
it and SIGKILL at it), and the limits sum to at most :data:`BUDGET_S`, so the whole
proof fits a short GPU loan, starts included.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

BUDGET_S = 480  # what the issue allows the whole proof
GRACE_S = 5  # SIGTERM this long before a step's limit, SIGKILL at it
# The paper's Table 7 shape (meprop_bench.report.paper.TABLE7) and the ks checked at it.
TABLE7_BATCH, TABLE7_WIDTH = 1024, 8192
TABLE7_KS = (8, 32, 128, 512)
TIMERS = ("events", "graph")  # CUDA events with an L2 flush; a CUDA graph's replay
# The per-example and unified strategies at the development machine's headline shape.
STRATEGY_BATCH, STRATEGY_WIDTH, STRATEGY_KS = 256, 4096, (41, 410)
# A check's limit: process start, inputs, 18 rounds of every kernel; the first CUDA check
# also compiles the Triton kernels (the later ones find them in Triton's disk cache).
CHECK_S = {"events": 18, "graph": 17}
FIRST_COMPILE_S = 12
TESTS_XML = "tests.xml"
SWEEP_JSON = "sweep.json"


@dataclass(frozen=True)
class Step:
    """One step: a name (also its log's name), a shell command run from the repository
    root, and its time limit in seconds."""

    name: str
    command: str
    limit_s: int


def table7_json(timer: str, k: int) -> str:
    """The check JSON a Table 7 step writes into OUTDIR (the summary reads it back)."""
    return f"t7-{timer}-k{k}.json"


def _join(*argv: str | Path) -> str:
    return shlex.join(str(arg) for arg in argv)


def _check(out: Path, json_name: str, batch: int, width: int, k: int, graph: bool) -> str:
    return _join(
        "meprop-bench", "check", "--device", "cuda", "-B", batch, "--n", width, "--d-in", width,
        "--k", k, *(["--cuda-graph"] if graph else []), "--json", out / json_name,
    )  # fmt: skip


def steps(out: Path) -> tuple[Step, ...]:
    """Every step, in order, writing into ``out``."""
    tests = Step(
        "tests",
        # The interpreter run is the CPU's (CI runs it); here only the compiled kernels.
        _join("python", "-m", "pytest", "tests", "-m", "cuda or triton", "-k",
              "not test_under_the_interpreter", "-p", "no:cacheprovider", "-q", "-rs",
              "--junitxml", out / TESTS_XML),
        150,
    )  # fmt: skip
    table7 = [
        Step(
            f"t7-{timer}-k{k}",
            _check(out, table7_json(timer, k), TABLE7_BATCH, TABLE7_WIDTH, k, timer == "graph"),
            CHECK_S[timer] + (FIRST_COMPILE_S if i == 0 else 0),
        )
        for i, (timer, k) in enumerate((t, k) for t in TIMERS for k in TABLE7_KS)
    ]
    strategies = [
        Step(f"strategies-k{k}",
             _check(out, f"strategies-k{k}.json", STRATEGY_BATCH, STRATEGY_WIDTH, k, False),
             CHECK_S["events"])
        for k in STRATEGY_KS
    ]  # fmt: skip
    sweep = out / SWEEP_JSON
    chain = [
        # Gaussian inputs only: recorded gradients would first train the MLP that records them.
        Step("sweep", _join("python", "-m", "pytest", "suites", "--benchmark-only", "-q", "-p",
                            "no:cacheprovider", "--meprop-preset", "quick", "--meprop-devices",
                            "cuda", "--meprop-grads", "gaussian", "--benchmark-json", sweep), 70),
        Step("report", _join("meprop-bench", "report", sweep, "--name", "report", "--out-root",
                             out), 20),
        Step("gate", _join("meprop-bench", "gate", sweep, sweep, "--json", out / "gate.json"), 12),
        Step("run-default", _join("python", "-m", "meprop_bench.gpu_proof", "run-default"), 15),
    ]  # fmt: skip
    return (tests, *table7, *strategies, *chain)


def total_s(table: tuple[Step, ...]) -> int:
    return sum(step.limit_s for step in table)


def plan(out: Path) -> str:
    """The steps one a line (name, limit, command), then ``total: N s``."""
    table = steps(out)
    width = max(len(step.name) for step in table)
    lines = [f"{step.name:<{width}}  {step.limit_s:>3} s  {step.command}" for step in table]
    return "\n".join([*lines, f"total: {total_s(table)} s"])


def tab_separated(out: Path) -> str:
    """The steps as the script reads them: name, limit and command, tab-separated."""
    return "\n".join(f"{s.name}\t{s.limit_s}\t{s.command}" for s in steps(out))
