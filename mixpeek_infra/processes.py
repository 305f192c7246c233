"""The process table and process lineage, for any layer (the Ray head, the provider host watch).

Linux reads `/proc`; other POSIX systems fall back to `ps`, with the process group standing in for
the session. A process is identified by pid and start time (`ProcInfo.start`), so a reused pid is
never mistaken for the process it replaced.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass(frozen=True)
class ProcInfo:
    """One process as the OS reports it. `start` is clock ticks since boot on Linux, epoch seconds elsewhere."""

    pid: int
    ppid: int
    pgid: int
    sid: int
    state: str
    start: float

    @property
    def zombie(self) -> bool:
        return self.state.startswith("Z")


def on_linux() -> bool:
    """Whether `/proc` describes the processes (Linux)."""
    return os.path.isdir("/proc/self")


def _read_proc(pid: int) -> Optional[ProcInfo]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return ProcInfo(
        pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), sid=int(rest[3]), start=float(rest[19])
    )


def _ps_table() -> list[ProcInfo]:
    # Non-Linux POSIX fallback: no session ids, so the process group stands in for the session.
    out = subprocess.run(
        ["ps", "-A", "-o", "pid=,ppid=,pgid=,state=,lstart="], capture_output=True, text=True, check=False
    ).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5:
            continue
        try:
            start = time.mktime(time.strptime(parts[4].strip(), "%a %b %d %H:%M:%S %Y"))
            table.append(
                ProcInfo(
                    pid=int(parts[0]),
                    ppid=int(parts[1]),
                    pgid=int(parts[2]),
                    sid=int(parts[2]),
                    state=parts[3],
                    start=start,
                )
            )
        except ValueError:
            continue
    return table


def process_info(pid: int) -> Optional[ProcInfo]:
    """The process `pid`, or None when there is no such process."""
    if on_linux():
        return _read_proc(pid)
    return next((p for p in _ps_table() if p.pid == pid), None)


def process_table() -> list[ProcInfo]:
    """Every process visible to this user."""
    if not on_linux():
        return _ps_table()
    table = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _read_proc(int(entry))) is not None:
            table.append(info)
    return table


def same_start(a: float, b: float) -> bool:
    """Whether two `ProcInfo.start` values name the same start (`ps` reports whole seconds)."""
    return a == b if on_linux() else abs(a - b) < 1.5


def current_boot_id() -> Optional[str]:
    """This boot's id on Linux (pids and start ticks restart with every boot), else None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def lineage(pid: int, depth: int = 3) -> list[tuple[int, float]]:
    """`(pid, start)` of `pid` and up to `depth - 1` ancestors, stopping before init.

    For a dynamic provider host that is the host, the plugin script that started it, and the Pulumi
    engine: the update it serves runs while all three do.
    """
    chain: list[tuple[int, float]] = []
    while pid > 1 and len(chain) < depth:
        info = process_info(pid)
        if info is None:
            break
        chain.append((pid, info.start))
        pid = info.ppid
    return chain


def lineage_alive(chain: Iterable[Iterable[float]]) -> bool:
    """Whether every process of a recorded `lineage` still runs (zombies count as dead)."""
    for pid, start in chain:
        info = process_info(int(pid))
        if info is None or info.zombie or not same_start(info.start, float(start)):
            return False
    return True
