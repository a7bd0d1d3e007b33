"""How busy the machine was while a measurement ran: load averages at the start and the
end, the CPU time other processes took, steal time, other runnable processes and the
frequency governor, and whether the machine looked quiet.

A timing taken while another job shares the cores is not a property of the code; every
result records this beside :func:`~meprop_bench.results.machine.machine_info` (as its
``state``) so a reader, the report and the warnings can tell the two apart. Read from
Linux's ``/proc`` and ``/sys``; elsewhere the fields are None and ``quiet`` is None
(unknown), never a guess.

The verdict ``quiet`` uses what was measured over the run itself, not the load average
(a one-minute moving average that counts this process too and lags by a minute): other
processes' CPU use averaged over the run below :data:`QUIET_OTHER_CORES` cores, steal
below :data:`QUIET_STEAL` of the CPU time. The other processes runnable at the start and
the end are recorded beside it (a snapshot: they say who was competing, not for how long).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Other processes may use this many cores on average, over the run, on a quiet machine.
QUIET_OTHER_CORES = 0.25
#: Steal (time a hypervisor gave this VM's CPUs to others) allowed on a quiet machine.
QUIET_STEAL = 0.05
PROC = Path("/proc")
GOVERNOR = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


@dataclass(frozen=True)
class Snapshot:
    """The counters at one instant: wall time, the 1-minute load, /proc/stat's busy,
    steal and total ticks, this process's own CPU ticks and the other runnable tasks."""

    wall: float
    load_1min: float | None
    busy: int | None
    steal: int | None
    total: int | None
    own: int | None
    runnable: int | None

    @classmethod
    def take(cls, proc: Path = PROC) -> Snapshot:
        cpu = _cpu_ticks(proc)
        return cls(
            wall=time.monotonic(),
            load_1min=_load_1min(proc),
            busy=cpu and cpu[0],
            steal=cpu and cpu[1],
            total=cpu and cpu[2],
            own=_own_ticks(proc),
            runnable=other_runnable(proc),
        )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _load_1min(proc: Path) -> float | None:
    text = _read(proc / "loadavg")
    return float(text.split()[0]) if text else None


def _cpu_ticks(proc: Path) -> tuple[int, int, int] | None:
    """(busy, steal, total) clock ticks of all CPUs since boot, from /proc/stat's ``cpu``
    line (user nice system idle iowait irq softirq steal ...; guest time is already in
    user). Busy excludes idle, iowait and steal."""
    text = _read(proc / "stat")
    if not text or not text.startswith("cpu "):
        return None
    ticks = [int(v) for v in text.splitlines()[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = ticks + [0] * (8 - len(ticks))
    busy = user + nice + system + irq + softirq
    return busy, steal, busy + idle + iowait + steal


def _stat_fields(text: str) -> list[str]:
    """A /proc/PID/stat line's fields after the command name (which may hold spaces):
    [0] is the state, [1] the parent's pid, [11:15] utime, stime, cutime, cstime."""
    return text[text.rindex(")") + 2 :].split()


def _processes(proc: Path) -> dict[int, list[str]]:
    """Every process's stat fields, by pid."""
    found = {}
    for entry in proc.iterdir():
        if entry.name.isdigit() and (text := _read(entry / "stat")):
            found[int(entry.name)] = _stat_fields(text)
    return found


def _family(processes: dict[int, list[str]], me: int) -> set[int]:
    """``me`` and its live descendants (workers, a child pytest): their work is ours."""
    children: dict[int, list[int]] = {}
    for pid, fields in processes.items():
        children.setdefault(int(fields[1]), []).append(pid)
    family, todo = set(), [me]
    while todo:
        pid = todo.pop()
        family.add(pid)
        todo.extend(children.get(pid, ()))
    return family


def _own_ticks(proc: Path) -> int | None:
    """User + system clock ticks of this process, its live descendants and the children
    they have waited for: the CPU time the measurement itself took."""
    if not (proc / "self").exists():
        return None
    processes = _processes(proc)
    family = _family(processes, os.getpid())
    return sum(sum(int(v) for v in processes[pid][11:15]) for pid in family if pid in processes)


def other_runnable(proc: Path = PROC) -> int | None:
    """How many other processes (not this one nor its descendants) have a thread running
    or ready to run now."""
    if not (proc / "self").exists():
        return None
    processes = _processes(proc)
    family = _family(processes, os.getpid())
    count = 0
    for pid in processes.keys() - family:
        try:
            tasks = list((proc / str(pid) / "task").iterdir())
        except OSError:
            continue
        if any((t := _read(task / "stat")) and _stat_fields(t)[0] == "R" for task in tasks):
            count += 1
    return count


def governor() -> str | None:
    """The CPU frequency governor of cpu0 (None where the kernel exposes none, as in
    most VMs: the host then decides the clock)."""
    text = _read(GOVERNOR)
    return text.strip() if text else None


class Watch:
    """Counters taken at the start of a measurement; :meth:`state` reads them again and
    says how busy the machine was in between (it may be called more than once)."""

    def __init__(self, proc: Path = PROC) -> None:
        self.proc = proc
        self.start = Snapshot.take(proc)

    def state(self) -> dict[str, Any]:
        """The ``machine.state`` record of every result (see docs/schemas.md)."""
        return summarize(self.start, Snapshot.take(self.proc), os.cpu_count() or 1)


def summarize(start: Snapshot, end: Snapshot, cpus: int) -> dict[str, Any]:
    """The state between two snapshots, on a machine of ``cpus`` logical CPUs."""
    seconds = end.wall - start.wall
    other = steal = None
    if None not in (start.busy, end.busy, start.total, end.total, start.own, end.own):
        ticks = end.total - start.total
        if ticks > 0 and seconds > 0:
            # Ticks of all CPUs over the run; each CPU ticks ticks/cpus times.
            per_cpu_tick = seconds * cpus / ticks
            others = (end.busy - start.busy) - (end.own - start.own)
            other = max(0.0, others * per_cpu_tick / seconds)
            steal = (end.steal - start.steal) / ticks
    quiet = None
    if other is not None and steal is not None:
        quiet = other < QUIET_OTHER_CORES and steal < QUIET_STEAL
    return {
        "seconds": round(seconds, 3),
        "cpus": cpus,
        "load_1min_start": start.load_1min,
        "load_1min_end": end.load_1min,
        "other_cores": None if other is None else round(other, 3),
        "steal": None if steal is None else round(steal, 4),
        "other_runnable_start": start.runnable,
        "other_runnable_end": end.runnable,
        "governor": governor(),
        "quiet": quiet,
    }


def describe_state(state: dict[str, Any] | None) -> str:
    """One line: quiet or busy, and the figures that say so (for tables and reports)."""
    if not state:
        return "machine load not recorded"
    if state.get("quiet") is None:
        return "machine load unknown (no /proc here)"
    load = f"load {state['load_1min_start']:.2f} -> {state['load_1min_end']:.2f}"
    others = f"other processes used {state['other_cores']:.2f} of {state['cpus']} cores"
    steal = f", steal {state['steal']:.0%}" if state["steal"] else ""
    word = "quiet" if state["quiet"] else "BUSY"
    return f"machine {word}: {others}{steal}, {load} (1-min average)"
