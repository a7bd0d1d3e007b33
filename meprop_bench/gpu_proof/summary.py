"""The GPU proof's summary: each step's status and time, from the record the script
writes as it goes (``OUTDIR/steps.jsonl``, one ``{"step", "exit", "ms"}`` a line), and
the Table 7 checks' figures beside the paper's Table 7. It reads only files, so a run
brought back from a GPU machine can be summed up again anywhere."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meprop_bench.gpu_proof.steps import TABLE7_KS, TIMERS, Step, steps, table7_json
from meprop_bench.report.paper import GPU_HARDWARE, TABLE7
from meprop_bench.results.machine import describe

RECORD = "steps.jsonl"
VERSIONS = "versions.json"
SUMMARY = "summary.md"
TIMED_OUT = (124, 137)  # timeout(1)'s status after SIGTERM, and after SIGKILL
LAST_LINE_CHARS = 100


@dataclass(frozen=True)
class Outcome:
    """What became of one step: passed, failed, timed out or not run (no record)."""

    step: Step
    status: str
    seconds: float | None
    last_line: str


def status_of(exit_code: int) -> str:
    if exit_code == 0:
        return "passed"
    return "timed out" if exit_code in TIMED_OUT else "failed"


def read_record(out: Path) -> dict[str, dict[str, Any]]:
    """Each recorded step by name; a line that does not parse (a run cut off while
    writing it) counts as no record."""
    try:
        lines = (out / RECORD).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}
    found = {}
    for line in lines:
        try:
            entry = json.loads(line)
            found[str(entry["step"])] = {"exit": int(entry["exit"]), "ms": int(entry["ms"])}
        except (ValueError, KeyError, TypeError):
            continue
    return found


def last_line(log: Path) -> str:
    """The last non-blank line of a step's log (an error, or pytest's tally), shortened."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines()]
    except FileNotFoundError:
        return ""
    text = next((line for line in reversed(lines) if line), "")
    return text if len(text) <= LAST_LINE_CHARS else text[: LAST_LINE_CHARS - 3] + "..."


def outcomes(out: Path) -> list[Outcome]:
    record = read_record(out)
    found = []
    for step in steps(out):
        entry = record.get(step.name)
        status = "not run" if entry is None else status_of(entry["exit"])
        seconds = None if entry is None else entry["ms"] / 1000
        found.append(Outcome(step, status, seconds, last_line(out / "logs" / f"{step.name}.log")))
    return found


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def steps_table(found: list[Outcome]) -> str:
    lines = ["| step | status | time | limit | last line of its log |", "|---|---|---:|---:|---|"]
    for o in found:
        took = "-" if o.seconds is None else f"{o.seconds:.1f} s"
        lines.append(f"| {o.step.name} | {o.status} | {took} | {o.step.limit_s} s "
                     f"| {_cell(o.last_line) or '-'} |")  # fmt: skip
    return "\n".join(lines)


def _check_rows(path: Path) -> tuple[str, dict[str, dict[str, Any]]] | None:
    """A check JSON's timer and its rows by kernel; None when missing or unreadable."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        return str(doc["params"]["timer"]), {row["kernel"]: row for row in doc["results"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def headline_table(out: Path) -> str:
    """Per Table 7 check: dense, unified/compact (the paper's method) and the fastest
    kernel, measured, beside the paper's unified top-k."""
    paper = {entry.k: entry for entry in TABLE7}
    lines = [
        f"Table 7 shape (B={TABLE7[0].batch}, h={TABLE7[0].hidden}); the paper: unified "
        f"top-k, dense {TABLE7[0].dense:.2f} ms, {GPU_HARDWARE}.",
        "",
        "| k | timer | dense ms | unified/compact ms | its speedup | fastest kernel "
        "| its speedup | paper unified ms | paper speedup |",
        "|---:|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for timer in TIMERS:
        for k in TABLE7_KS:
            published = f"{paper[k].sparse:.2f} | {paper[k].speedup:.1f}x"
            found = _check_rows(out / table7_json(timer, k))
            if found is None:
                lines.append(f"| {k} | cuda-{timer} | not measured | - | - | - | - | {published} |")
                continue
            kind, rows = found
            dense, compact = rows.get("dense/dense"), rows.get("unified/compact")
            sparse = [row for name, row in rows.items() if name != "dense/dense"]
            best = max(sparse, key=lambda row: row["speedup"], default=None)
            cells = [
                f"{dense['median_s'] * 1e3:.2f}" if dense else "-",
                f"{compact['median_s'] * 1e3:.2f}" if compact else "-",
                f"{compact['speedup']:.1f}x" if compact else "-",
                best["kernel"] if best else "-",
                f"{best['speedup']:.1f}x" if best else "-",
            ]
            lines.append(f"| {k} | {kind} | {' | '.join(cells)} | {published} |")
    return "\n".join(lines)


def where(out: Path) -> str:
    """The machine the proof ran on, from the versions the script recorded."""
    try:
        found = json.loads((out / VERSIONS).read_text(encoding="utf-8"))
        return f"Ran on {describe(found['machine'])}; triton {found['triton']}."
    except (OSError, ValueError, KeyError, TypeError):
        return f"Where it ran is unknown: {VERSIONS} is missing or unreadable."


def render(out: Path, found: list[Outcome]) -> str:
    passed = sum(o.status == "passed" for o in found)
    return "\n\n".join([
        f"# GPU proof: {passed} of {len(found)} steps passed",
        where(out),
        steps_table(found),
        headline_table(out),
        f"Logs: {out / 'logs'}; the record: {out / RECORD}.",
    ])  # fmt: skip
