"""The processes of a local Ray head: its session, stopping it, its listening sockets.

A head is `ray start --head --block` started as the leader of a new session; every process it starts
stays in that session and inherits `MIXPEEK_RAY_HEAD_ID`. Linux reads `/proc` (session ids, start
ticks, boot id, environments, sockets); other POSIX systems fall back to `ps` and `lsof`, with the
process group standing in for the session. The process table itself is `mixpeek_infra.processes`.
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path
from typing import Iterable, Optional

from ..processes import ProcInfo, current_boot_id, on_linux as _linux, process_info, process_table
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
            return entry[len(prefix):].decode(errors="replace")
    return ""


def _ours(info: ProcInfo, head_id: Optional[str]) -> bool:
    # `ray start` and its children inherit MIXPEEK_RAY_HEAD_ID. Processes that rename themselves
    # (ray::DashboardAgent, ray::IDLE, ...) overwrite their environment, so a missing id proves
    # nothing; another head's id, or an unreadable environment on Linux (another user), rules a
    # process out.
    if head_id is None:
        return True
    marker = _marker(info.pid)
    if marker is None:
        return not _linux()
    return marker in ("", head_id)


def _same_boot(boot_id: Optional[str]) -> bool:
    return boot_id is None or boot_id == current_boot_id()


def leader_alive(pid: int, start: float, head_id: Optional[str] = None, boot_id: Optional[str] = None) -> bool:
    """Whether the head's session leader still runs (zombies count as dead).

    Identified by pid, start time and, when given, the head id in its environment and the boot id.
    """
    if not _same_boot(boot_id):
        return False
    _reap(pid)
    info = process_info(pid)
    return (info is not None and not info.zombie and info.sid == pid and _same_start(info.start, start)
            and _ours(info, head_id))


def session_members(pid: int, start: float, head_id: Optional[str] = None,
                    boot_id: Optional[str] = None) -> list[ProcInfo]:
    """Live processes of the head session led by `pid`: same session (process group off Linux),
    started with or after the leader, in the same boot, not carrying another head's id.
    """
    if not _same_boot(boot_id):
        return []
    members = []
    for info in process_table():
        if info.sid != pid or info.zombie or info.pid == os.getpid():
            continue
        if info.pid == pid and not _same_start(info.start, start):
            continue
        if info.pid != pid and info.start + (0 if _linux() else 1.5) < start:
            continue
        if _ours(info, head_id):
            members.append(info)
    return members


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_session(pid: int, start: float, timeout: float = RAY_STOP_TIMEOUT, head_id: Optional[str] = None,
                 boot_id: Optional[str] = None) -> list[int]:
    """Stop the head session led by `pid`; return the pids that survived (empty on success).

    SIGTERM to the leader lets `ray start` drain and stop its children; after `timeout` (or at once
    when the leader is already gone) the remaining members get SIGTERM, then SIGKILL.
    """
    deadline = time.monotonic() + timeout
    if leader_alive(pid, start, head_id, boot_id):
        _signal(pid, signal.SIGTERM)
        while time.monotonic() < deadline and leader_alive(pid, start, head_id, boot_id):
            time.sleep(0.1)
    for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
        members = session_members(pid, start, head_id, boot_id)
        if not members:
            break
        for member in members:
            _signal(member.pid, sig)
        until = time.monotonic() + wait
        while time.monotonic() < until and session_members(pid, start, head_id, boot_id):
            time.sleep(0.1)
    _reap(pid, wait=5.0)
    return [m.pid for m in session_members(pid, start, head_id, boot_id)]


def _hex_address(text: str) -> str:
    """An address as /proc/net/tcp{,6} writes it (host-order 32-bit words in hex) in standard notation."""
    words = b"".join(struct.pack("=I", int(text[i:i + 8], 16)) for i in range(0, len(text), 8))
    return socket.inet_ntop(socket.AF_INET if len(words) == 4 else socket.AF_INET6, words)


def listening_sockets(pids: Iterable[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket held by the processes `pids`."""
    pids = list(pids)
    if not _linux():
        out = subprocess.run(["lsof", "-nP", "-a", "-iTCP", "-sTCP:LISTEN", "-p", ",".join(map(str, pids)), "-Fpn"],
                             capture_output=True, text=True, check=False).stdout
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
