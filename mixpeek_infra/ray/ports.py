"""Ports of a local Ray head: choosing free ones, and probing whether one is bound or listening."""

from __future__ import annotations

import socket
import threading
import time

#: Every listener of a local head binds here (Ray derives each bind address from the node address).
LOOPBACK = "127.0.0.1"

_PORT_LOCK = threading.Lock()
_RECENT_PORTS: dict[int, float] = {}  # ports handed out by this process recently (not yet bound by Ray)


def port_is_free(port: int) -> bool:
    """Whether `port` can be bound on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that are free now and were not handed out by this process in the last minute."""
    with _PORT_LOCK:
        now = time.monotonic()
        for port, when in list(_RECENT_PORTS.items()):
            if now - when > 60:
                del _RECENT_PORTS[port]
        held: list[socket.socket] = []
        ports: list[int] = []
        try:
            while len(ports) < count:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("", 0))
                held.append(s)
                port = s.getsockname()[1]
                if port not in _RECENT_PORTS and port not in ports:
                    ports.append(port)
        finally:
            for s in held:
                s.close()
        for port in ports:
            _RECENT_PORTS[port] = now
        return ports


def is_listening(host: str, port: int) -> bool:
    """Whether a TCP connect to `host:port` succeeds within a second."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True
