"""The GPU proof's steps: the plan lists each with its limit, the limits fit the budget,
and every command is spelled as its command's own parser and pytest accept it (a step
that cannot work as written would waste the GPU's few minutes)."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest
import torch

from meprop_bench.gpu_proof.__main__ import build_parser
from meprop_bench.gpu_proof.steps import (
    BUDGET_S,
    GRACE_S,
    STRATEGY_KS,
    TABLE7_KS,
    plan,
    steps,
    tab_separated,
)

ROOT = Path(__file__).resolve().parents[2]
OUT = Path("/tmp/proof")
STEPS = steps(OUT)


def test_the_plan_lists_every_step_with_its_limit_then_the_total(capsys):
    lines = plan(OUT).splitlines()
    assert len(lines) == len(STEPS) + 1
    for step, line in zip(STEPS, lines, strict=False):
        name, limit, unit, command = line.split(maxsplit=3)
        assert (name, int(limit), unit, command) == (step.name, step.limit_s, "s", step.command)
    total = sum(step.limit_s for step in STEPS)
    assert lines[-1] == f"total: {total} s" and total <= BUDGET_S


def test_the_steps_cover_every_claim_once():
    names = [step.name for step in STEPS]
    assert len(set(names)) == len(names)
    expected = {"tests", "sweep", "report", "gate", "run-default"}
    expected |= {f"t7-{timer}-k{k}" for timer in ("events", "graph") for k in TABLE7_KS}
    expected |= {f"strategies-k{k}" for k in STRATEGY_KS}
    assert set(names) == expected
    assert TABLE7_KS == (8, 32, 128, 512) and STRATEGY_KS == (41, 410)
    assert all(step.limit_s > GRACE_S for step in STEPS)  # SIGTERM comes GRACE_S before


def test_the_script_reads_one_step_a_line_in_three_tab_separated_fields():
    rows = [line.split("\t") for line in tab_separated(OUT).splitlines()]
    assert rows == [[s.name, str(s.limit_s), s.command] for s in STEPS]
    # The name is also a log's file name.
    assert all(name.replace("-", "").isalnum() for name, _, _ in rows)


@pytest.mark.parametrize("step", [s for s in STEPS if s.command.startswith("meprop-bench ")],
                         ids=lambda s: s.name)  # fmt: skip
def test_each_meprop_bench_step_parses_with_its_commands_parser(step):
    _, command, *argv = shlex.split(step.command)
    module = importlib.import_module(f"meprop_bench.commands.{command}")
    args = module.build_parser().parse_args(argv)
    if command == "check":
        assert args.device == "cuda" and str(OUT) in args.json
        assert args.cuda_graph == ("graph" in step.name)
        assert (args.batch, args.n, args.d_in) in ((1024, 8192, 8192), (256, 4096, 4096))
        assert str(args.k) in step.name


def test_the_helper_step_parses_with_the_helpers_parser():
    (step,) = [s for s in STEPS if s.name == "run-default"]
    argv = shlex.split(step.command)
    assert argv[:3] == ["python", "-m", "meprop_bench.gpu_proof"]
    assert build_parser().parse_args(argv[3:]).action == "run-default"


# The inner run's --benchmark-json with nothing run: pytest-benchmark's warning.
@pytest.mark.filterwarnings("ignore:Not saving anything")
@pytest.mark.parametrize("name", ["tests", "sweep"])
def test_each_pytest_step_collects_what_it_means_to_run(name, tmp_path, run_inline):
    (step,) = [s for s in steps(tmp_path) if s.name == name]
    argv = shlex.split(step.command)
    assert argv[:3] == ["python", "-m", "pytest"]
    done = run_inline(*argv[3:], "--co")  # in this process, at the repository root
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert len(ids) > 50
    if name == "tests":  # the compiled kernels, not the CPU's interpreter run
        assert not any("test_under_the_interpreter" in i for i in ids)
        assert any("test_triton_kernels.py" in i and "cuda" in i for i in ids)
    else:  # every case of the quick grid on CUDA, none of them on recorded gradients
        assert all("cuda" in i for i in ids) and not any("recorded" in i for i in ids)


def test_run_default_passes_only_where_meprop_bench_run_sweeps_cuda_unasked(capsys):
    from meprop_bench.gpu_proof.__main__ import main

    code = main(["run-default"])
    printed = capsys.readouterr().out
    assert printed.startswith("meprop-bench run, no devices named, would sweep ")
    if torch.cuda.is_available():
        assert code == 0 and "benchmark cases on cpu, cuda" in printed
    else:
        assert code == 1 and "benchmark cases on cpu," in printed


def test_docs_gpu_md_lists_every_step_with_its_limit_and_the_total():
    page = (ROOT / "docs" / "gpu.md").read_text(encoding="utf-8")
    assert f"The limits sum to {sum(s.limit_s for s in STEPS)} s" in page
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    for step in STEPS:
        family = step.name.rsplit("-k", 1)[0]  # t7-events-k8 is on the t7-events row
        (row,) = [r for r in rows if r.startswith((f"| `{step.name}`", f"| `{family}-k"))]
        assert f"{step.limit_s}" in row.split("|")[2]
