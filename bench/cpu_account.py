"""Where every CPU second of a load run goes: per process (from /proc), and the rest of the machine.

A snapshot reads utime + stime of each named process (its threads included, its children not) and the
machine's busy and idle time from /proc/stat; the difference of two snapshots, divided by the messages served
in between, is the table's "ms CPU / message" per process. The rest of the machine's busy time is what
other processes (other people's work, the kernel's threads) took meanwhile.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")
OTHERS = "everything else on the machine"
IDLE = "idle"


def process_cpu(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 once it is gone."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    return 0.0


def children(pid: int) -> list[int]:
    """The direct children of `pid`, in the order they started."""
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return sorted(found)


def command_line(pid: int) -> str:
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""


def rolecall_processes(root: int) -> dict[str, int]:
    """Name -> pid for `rolecall serve` and what it started: with one worker, the one process; with several,
    the parent (coordinator, health probes), each worker and any embedded engine."""
    below = children(root)
    workers = [pid for pid in below if "rolecall.cli.worker_process" in command_line(pid)]
    named = {"parent (coordinator)" if workers else "rolecall (one process)": root}
    for number, pid in enumerate(workers, 1):
        named[f"worker {number}"] = pid
    for pid in below:
        if pid not in workers:
            named[f"engine (pid {pid})"] = pid
    return named


def machine_cpu() -> tuple[float, float]:
    """(busy, idle) seconds of all CPUs together since boot."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / TICK, (idle + iowait) / TICK


@dataclass
class Snapshot:
    """CPU seconds so far: per named process, and the machine's busy and idle time."""

    processes: dict[str, float]
    busy: float
    idle: float

    @classmethod
    def take(cls, pids: dict[str, int], extra: dict[str, float] | None = None) -> Snapshot:
        """`extra`: CPU seconds of processes not readable from /proc (the load generator as a reaped child)."""
        busy, idle = machine_cpu()
        processes = {name: process_cpu(pid) for name, pid in pids.items()}
        return cls({**processes, **(extra or {})}, busy, idle)

    def spent_since(self, before: Snapshot) -> dict[str, float]:
        """CPU seconds per process since `before`, then everything else busy, then idle."""
        spent = {name: self.processes[name] - before.processes.get(name, 0.0) for name in self.processes}
        spent[OTHERS] = max(0.0, self.busy - before.busy - sum(spent.values()))
        spent[IDLE] = self.idle - before.idle
        return spent
