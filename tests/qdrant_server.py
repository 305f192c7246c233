"""A real Qdrant server on loopback for the `qdrant_server` tier.

`QdrantServer` runs the `qdrant` binary that `tools/qdrant/install` builds (its bin directory in
`MIXPEEK_QDRANT_BIN_DIR`, else `qdrant` on PATH) as one process in its own session:

- HTTP and gRPC on 127.0.0.1 ports picked here (`QDRANT__SERVICE__HOST=127.0.0.1`); cluster mode
  off, so no peer-to-peer port is opened; telemetry off, so nothing is sent anywhere;
- storage, snapshots and temp files in its own directory; the working directory is that
  directory, so no `config/` file of the caller is read, and no `QDRANT__*` variable of the caller
  leaks in;
- an API key (`QDRANT__SERVICE__API_KEY`) unless made without one.

`start()` waits until `/readyz` answers and the gRPC port accepts connections (bounded, no fixed
sleeps); `stop()` ends it (SIGTERM, then SIGKILL); `kill()` is a crash; `start()` again restarts it
on the same ports and storage. Fixtures: `qdrant_server` (with a key) and `qdrant_server_without_key`,
one each per test session; `qdrant_server_factory` for tests that stop or restart their own.

Without the binary the tier skips with what to run, or fails where CI sets
`MIXPEEK_REQUIRE_QDRANT_SERVER=1`.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest
from conftest import free_port, require_or_skip, stop_group

VERSION = "1.18.3"
READY_TIMEOUT = 180.0  # seconds: a cold start on a loaded 2-core machine


def qdrant_binary() -> Path:
    """The `qdrant` server binary; skips (or fails in CI) without it."""
    candidate = os.environ.get("MIXPEEK_QDRANT_BIN_DIR", "")
    if candidate and (Path(candidate) / "qdrant").is_file():
        return Path(candidate) / "qdrant"
    found = shutil.which("qdrant")
    if found:
        return Path(found)
    require_or_skip("the Qdrant server is not built: run "
                    "`export MIXPEEK_QDRANT_BIN_DIR=\"$(tools/qdrant/install | tail -n 1)\"`",
                    "MIXPEEK_REQUIRE_QDRANT_SERVER")


def wait_for(condition: Callable[[], Any], timeout: float, what: str, *, poll: float = 0.1,
             alive: Callable[[], str | None] | None = None) -> Any:
    """Poll `condition` until it returns something truthy, within `timeout` seconds; `alive()` returning text
    means the thing waited for is gone (fail at once with that text)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if alive is not None and (gone := alive()) is not None:
            raise AssertionError(f"{what}: {gone}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:g} s")
        time.sleep(poll)


class QdrantServer:
    """One Qdrant server process on 127.0.0.1, its files under `root`."""

    def __init__(self, binary: Path, root: Path, *, api_key: str | None = None):
        self.binary, self.root = binary, root
        self.api_key = api_key
        self.http_port, self.grpc_port = _port_pair()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "qdrant.log"
        self.started_in: float | None = None

    @classmethod
    def with_key(cls, binary: Path, root: Path) -> "QdrantServer":
        return cls(binary, root, api_key=f"qk-test-{secrets.token_hex(12)}")

    # -- lifecycle -------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QDRANT")}
        env.update({
            "QDRANT__SERVICE__HOST": "127.0.0.1",
            "QDRANT__SERVICE__HTTP_PORT": str(self.http_port),
            "QDRANT__SERVICE__GRPC_PORT": str(self.grpc_port),
            "QDRANT__CLUSTER__ENABLED": "false",
            "QDRANT__TELEMETRY_DISABLED": "true",
            "QDRANT__STORAGE__STORAGE_PATH": str(self.root / "storage"),
            "QDRANT__STORAGE__SNAPSHOTS_PATH": str(self.root / "snapshots"),
            "QDRANT__STORAGE__TEMP_PATH": str(self.root / "tmp"),
            "QDRANT__LOG_LEVEL": "INFO",
        })
        if self.api_key:
            env["QDRANT__SERVICE__API_KEY"] = self.api_key
        return env

    def start(self) -> "QdrantServer":
        """Start (or restart, same ports and storage) and wait until it serves HTTP and gRPC."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        for d in ("storage", "snapshots", "tmp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen([str(self.binary)], cwd=self.root, env=self.env(), stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(self._ready, READY_TIMEOUT, f"Qdrant at {self.url} ready", alive=self._exited)
        self.started_in = time.monotonic() - t0
        return self

    def _exited(self) -> str | None:
        if self.proc is not None and self.proc.poll() is not None:
            return f"the server exited with {self.proc.returncode}; its log:\n{self.log()}"
        return None

    def _ready(self) -> bool:
        try:
            if httpx.get(f"{self.url}/readyz", headers=self.headers(), timeout=5).status_code != 200:
                return False
            with socket.create_connection(("127.0.0.1", self.grpc_port), timeout=5):
                return True
        except (httpx.HTTPError, OSError):
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """End the server (`sig`, then SIGKILL after 30 s) and wait for it; the files stay."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        stop_group(proc, sig, grace=30, kill_wait=30)

    def kill(self) -> None:
        """A crash: SIGKILL, no shutdown."""
        self.stop(signal.SIGKILL)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, tail: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-tail:] if self.log_path.exists() else ""

    # -- talking to it ---------------------------------------------------------------------------

    def headers(self, api_key: str | None = None) -> dict[str, str]:
        key = api_key if api_key is not None else self.api_key
        return {"api-key": key} if key else {}

    def get(self, path: str, *, api_key: str | None = None) -> httpx.Response:
        return httpx.get(self.url + path, headers=self.headers(api_key), timeout=30)

    def store(self, *, prefer_grpc: bool = False, timeout: float = 30.0):
        """A `ServerStore` on this server (the caller closes it)."""
        from mixpeek_infra.qdrant.store.server import ServerStore

        return ServerStore.connect(self.url, api_key=self.api_key, timeout=timeout, prefer_grpc=prefer_grpc)

    def target(self, **extra: Any) -> dict[str, Any]:
        """The stack config `mixpeek-infra:qdrant` value naming this server."""
        return {"url": self.url, "timeout": 30, **extra}

    def listening(self) -> set[tuple[str, int]]:
        """(address, port) of every TCP socket the server process listens on."""
        assert self.proc is not None
        return listening_sockets(self.proc.pid)


def _port_pair() -> tuple[int, int]:
    """Two free loopback ports, the second right after the first (Qdrant's own pairing, 6333/6334)."""
    for _ in range(200):
        port = free_port()
        if port < 65535:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
            return port, port + 1
    raise AssertionError("no two adjacent free loopback ports")


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(address, port) of the TCP sockets in LISTEN state that process `pid` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, width in (("tcp", 8), ("tcp6", 32)):
        path = Path(f"/proc/{pid}/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:
                continue
            addr_hex, port_hex = local.split(":")
            found.add((_address(addr_hex, width), int(port_hex, 16)))
    return found


def _address(hex_text: str, width: int) -> str:
    raw = bytes.fromhex(hex_text)
    if width == 8:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def qdrant_server(tmp_path_factory) -> Iterator[QdrantServer]:
    """One Qdrant server with an API key for the session."""
    server = QdrantServer.with_key(qdrant_binary(), tmp_path_factory.mktemp("qdrant-server"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def qdrant_server_without_key(tmp_path_factory) -> Iterator[QdrantServer]:
    """One Qdrant server without an API key for the session (the "no key" cases)."""
    server = QdrantServer(qdrant_binary(), tmp_path_factory.mktemp("qdrant-server-nokey"))
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def qdrant_server_factory(tmp_path) -> Iterator[Callable[..., QdrantServer]]:
    """Servers of the test's own (with a key unless `api_key=None`), stopped at the end."""
    servers: list[QdrantServer] = []
    binary = qdrant_binary()

    def make(*, with_key: bool = True) -> QdrantServer:
        root = tmp_path / f"qdrant-{len(servers)}"
        server = QdrantServer.with_key(binary, root) if with_key else QdrantServer(binary, root)
        servers.append(server)
        return server.start()

    yield make
    for server in servers:
        server.stop()
