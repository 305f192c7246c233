"""The processes of a local Ray head: its session, stopping it, its listening sockets.

A head is `ray start --head --block` started as the leader of a new session; every process it starts
stays in that session and inherits `MIXPEEK_RAY_HEAD_ID`. `HeadSession` is the one check of which
processes are a head's; nothing else is ever signalled. Linux reads `/proc` (session ids, start
ticks, boot id, environments, sockets); other POSIX systems fall back to `ps` and `lsof`, with the
process group standing in for the session. The process table itself is `mixpeek_infra.processes`.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..processes import ProcInfo, current_boot_id, process_info, process_table
from ..processes import on_linux as _linux
from ..processes import same_start as _same_start
from ..vocabulary import RAY_STOP_TIMEOUT

MARKER_ENV = "MIXPEEK_RAY_HEAD_ID"
_CHILDREN: dict[int, subprocess.Popen] = {}  # leaders started by this process, so they can be reaped


def _reap(pid: int, wait: float = 0.0) -> None:
    """Collect the exit of a leader this process started, so no zombie is left; one still running is
    waited for up to `wait` seconds (stopping passes a few: it has been signalled)."""
    child = _CHILDREN.get(pid)
    if child is not None:
        try:
            child.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            return
        _CHILDREN.pop(pid, None)
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except (ChildProcessError, OSError):
        pass


def _marker(pid: int) -> Optional[str]:
    """The head id a process carries in its environment ("" when none), or None when unreadable."""
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    prefix = MARKER_ENV.encode() + b"="
    for entry in environ.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode(errors="replace")
    return ""


def _number(value: Any) -> Optional[float]:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class HeadSession:
    """The identity of a head's session leader as recorded when this code started it, and the one check
    of which processes belong to that head.

    A process is the head's only when it is proven so: the leader by its pid, the kernel's start time,
    the boot and the head id in its environment; any other process by being in the leader's session,
    started with or after it, and carrying the head id, or carrying no id at all (Ray's renamed
    processes, `ray::DashboardAgent` and the like, overwrite their environment) while its parent is
    proven. A process carrying another id, or whose environment cannot be read (another user's), is
    never the head's. A pid held by a process with another start time means the head's session is
    gone entirely (the kernel does not reuse a pid while any process has it as session id), so
    nothing in that session is the head's.
    """

    pid: int
    start: float
    head_id: str
    boot_id: Optional[str] = None

    @classmethod
    def recorded(cls, pid: Any, start: Any, head_id: Any, boot_id: Any = None) -> Optional[HeadSession]:
        """The identity in a record (resource outputs, a pending marker), or None when it is not one:
        records are data, checked before they are believed."""
        start = _number(start)
        if isinstance(pid, float) and pid.is_integer():
            pid = int(pid)  # the engine sends numbers as floats
        if (
            not isinstance(pid, int)
            or isinstance(pid, bool)
            or not 1 < pid < 2**31
            or start is None
            or start < 0
            or not isinstance(head_id, str)
            or not head_id
            or not (boot_id is None or isinstance(boot_id, str))
        ):
            return None
        return cls(pid, start, head_id, boot_id)

    def _same_boot(self) -> bool:
        return self.boot_id is None or self.boot_id == current_boot_id()

    def _carries(self, pid: int, missing_ok: bool) -> bool:
        """Whether process `pid` carries this head's id (or, with `missing_ok`, no id at all).
        Off Linux environments are not read (see docs/ray.md, Known limits)."""
        marker = _marker(pid)
        if marker is None:
            return not _linux()
        return marker == self.head_id or (missing_ok and marker == "")

    def _is_leader(self, info: ProcInfo) -> bool:
        return (
            info.pid == self.pid
            and not info.zombie
            and info.sid == self.pid
            and _same_start(info.start, self.start)
            and self._carries(info.pid, missing_ok=False)
        )

    def leader_alive(self) -> bool:
        """Whether the recorded leader still runs (zombies count as dead)."""
        if not self._same_boot():
            return False
        _reap(self.pid)
        info = process_info(self.pid)
        return info is not None and self._is_leader(info)

    def members(self) -> list[ProcInfo]:
        """The live processes proven to be this head's (see the class docstring)."""
        if not self._same_boot():
            return []
        table = process_table()
        holder = next((p for p in table if p.pid == self.pid), None)
        if holder is not None and not _same_start(holder.start, self.start):
            return []  # the pid is another process's: nothing of the head's session is left
        slack = 0 if _linux() else 1.5  # `ps` reports whole seconds
        session = [
            p
            for p in table
            if p.sid == self.pid and not p.zombie and p.pid != os.getpid() and p.start + slack >= self.start
        ]
        proven = {p.pid: p for p in session if p.pid == self.pid and self._is_leader(p)}
        proven.update((p.pid, p) for p in session if p.pid != self.pid and self._carries(p.pid, missing_ok=False))
        growing = True
        while growing:  # unmarked processes whose parent is proven, down the tree
            growing = False
            for p in session:
                parent = proven.get(p.ppid)
                if (
                    p.pid not in proven
                    and parent is not None
                    and p.start + slack >= parent.start
                    and self._carries(p.pid, missing_ok=True)
                ):
                    proven[p.pid] = p
                    growing = True
        return sorted(proven.values(), key=lambda p: p.pid)

    def stop(self, timeout: float = RAY_STOP_TIMEOUT) -> list[int]:
        """Stop this head's processes; return the pids that survived (empty on success).

        SIGTERM to the leader lets `ray start` drain and stop its children; after `timeout` (or at once
        when the leader is already gone) the remaining processes get SIGTERM and 3 s, then SIGKILL and 5 s;
        the leader's exit is then collected, waiting up to 5 s. A process
        proven the head's once stays so while it runs with the same start time, even when its parent
        has exited meanwhile.
        """
        deadline = time.monotonic() + timeout
        if self.leader_alive():
            _signal(self.pid, signal.SIGTERM)
            while time.monotonic() < deadline and self.leader_alive():
                time.sleep(0.1)
        seen: dict[int, float] = {}

        def remaining() -> list[ProcInfo]:
            found = {p.pid: p for p in self.members()}
            for pid, start in seen.items():
                info = process_info(pid)
                if pid not in found and info is not None and not info.zombie and _same_start(info.start, start):
                    found[pid] = info
            seen.update((pid, p.start) for pid, p in found.items())
            return list(found.values())

        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            members = remaining()
            if not members:
                break
            for member in members:
                _signal(member.pid, sig)
            until = time.monotonic() + wait
            while time.monotonic() < until and remaining():
                time.sleep(0.1)
        _reap(self.pid, wait=5.0)
        return [p.pid for p in remaining()]


def leader_alive(pid: int, start: float, head_id: Optional[str], boot_id: Optional[str] = None) -> bool:
    """Whether the head's session leader still runs: `HeadSession.leader_alive` (False for no valid identity)."""
    session = HeadSession.recorded(pid, start, head_id, boot_id)
    return session is not None and session.leader_alive()


def session_members(pid: int, start: float, head_id: Optional[str], boot_id: Optional[str] = None) -> list[ProcInfo]:
    """The live processes proven to be the head's: `HeadSession.members` (none for no valid identity)."""
    session = HeadSession.recorded(pid, start, head_id, boot_id)
    return session.members() if session is not None else []


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_session(
    pid: int, start: float, timeout: float = RAY_STOP_TIMEOUT, *, head_id: Optional[str], boot_id: Optional[str] = None
) -> list[int]:
    """Stop the head's processes: `HeadSession.stop` (nothing is stopped for no valid identity)."""
    session = HeadSession.recorded(pid, start, head_id, boot_id)
    return session.stop(timeout) if session is not None else []


def _hex_address(text: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (host-order 32-bit words in hex) in standard notation."""
    words = b"".join(struct.pack("=I", int(text[i : i + 8], 16)) for i in range(0, len(text), 8))
    return socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket held by the processes `pids`."""
    pids = list(pids)
    if not _linux():
        out = subprocess.run(
            ["lsof", "-nP", "-a", "-iTCP", "-sTCP:LISTEN", "-p", ",".join(map(str, pids)), "-Fpn"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        found, pid = [], 0
        for line in out.splitlines():
            if line.startswith("p"):
                pid = int(line[1:])
            elif line.startswith("n"):
                address, port = line[1:].rsplit(":", 1)
                found.append((pid, address.strip("[]"), int(port)))
        return found
    owners: dict[str, int] = {}  # socket inode -> pid
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:["):
                owners[target[8:-1]] = pid
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "0A" and fields[9] in owners:  # 0A: LISTEN
                address, port = fields[1].rsplit(":", 1)
                found.append((owners[fields[9]], _hex_address(address), int(port, 16)))
    return found
