"""The `ray start --head --block` process of a local head: starting it, waiting for clients, cleaning up.

`start_head` picks free ports for every Ray component it can configure (so heads do not collide; only
the per-client servers of Ray Client share a fixed range, see `wait_for_ray_client`), gives the head
its own `--temp-dir` under the state directory (through a short symlink when the path would break
Ray's unix socket length limit), binds every listener to 127.0.0.1, starts the process detached in a
new session and waits, bounded and retrying, until a Ray client connects. A start that fails on a
taken port (the raylet or GCS logs it fatally) is retried at once with new ports; any other fatal
error of theirs fails at once, naming it. Heads are stopped by session (`_process.stop_session`);
`ray stop`, which kills every Ray process on the machine, is never used. This process never imports Ray.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

from ..paths import state_path
from ..processes import current_boot_id, lineage, lineage_alive, process_info
from ..redact import redact_url
from ._process import _CHILDREN, MARKER_ENV, HeadSession, listening_sockets, session_members, stop_session
from .ports import LOOPBACK, free_ports, is_listening

#: Ray component -> `ray start` flag; each gets its own free port.
PORT_FLAGS: dict[str, str] = {
    "gcs": "--port",
    "client": "--ray-client-server-port",
    "dashboard": "--dashboard-port",
    "node_manager": "--node-manager-port",
    "object_manager": "--object-manager-port",
    "dashboard_agent_listen": "--dashboard-agent-listen-port",
    "dashboard_agent_grpc": "--dashboard-agent-grpc-port",
    "runtime_env_agent": "--runtime-env-agent-port",
    "metrics_export": "--metrics-export-port",
}

# Unix socket paths are limited to 108 bytes (104 on macOS) including the NUL. Ray puts its sockets at
# <temp dir>/session_<YYYY-mm-dd_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store: 64 bytes after the
# temp dir for a 7-digit pid.
_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
_SOCKET_SUFFIX = 64
MAX_TEMP_DIR = _SOCKET_PATH_MAX - _SOCKET_SUFFIX

# How the raylet or the GCS reports its death: a fatal line ("[2026-01-01 10:00:00,000 C 12 12] (raylet) x.cc:1:
# message"), or the raylet's error line when an agent it fate-shares with failed.
_FATAL_LINE = re.compile(
    r"^\[[^\]]* (?:[CF]|E(?=.*The raylet exited)) \d+ \d+\] \((?:raylet|gcs_server)\) "
    r"(?P<message>.*)$",
    re.M,
)
_RAY_BUG_NOTE = re.compile(r"An unexpected system state has occurred\..*?fix it\.\s*")  # Ray's "report this" text
# A taken port, as gRPC (errno:98), Python ([Errno 98] Address already in use) and `ray start` report it.
_PORT_TAKEN = re.compile(r"address already in use|errno:\s*(?:98|48)\b|failed to bind", re.I)

_PROBE = r"""
import os, socket, sys, time
url, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])
host, port = url[len("ray://"):].rsplit(":", 1)
import ray  # imported while the head boots
while True:
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
        break
    except OSError as exc:
        if time.monotonic() > deadline:
            sys.stderr.write("the client port never opened: %r\n" % (exc,))
            sys.stderr.flush()
            os._exit(2)
        time.sleep(0.1)
try:
    ray.init(url)
    node_manager_ports = {n["NodeManagerPort"] for n in ray.nodes() if n.get("Alive")}
    ray.shutdown()
except Exception as exc:
    sys.stderr.write(repr(exc)[:2000] + "\n")
    sys.stderr.flush()
    os._exit(1)
if len(sys.argv) > 3 and int(sys.argv[3]) not in node_manager_ports:
    sys.stderr.write("reached another Ray cluster (node manager ports %s)\n" % sorted(node_manager_ports))
    sys.stderr.flush()
    os._exit(3)
os._exit(0)
"""


class RayHeadError(RuntimeError):
    """A local Ray head could not be started or stopped. The message never shows a URL's credentials."""

    def __init__(self, message: str) -> None:
        super().__init__(redact_url(message))


# ---------------------------------------------------------------------------------------------
# Executables and readiness


def find_ray_executable() -> str:
    """The `ray` CLI next to this interpreter (the same environment), else the one on PATH."""
    candidate = Path(sys.executable).parent / ("ray.exe" if os.name == "nt" else "ray")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("ray")
    if found:
        return found
    raise RayHeadError(
        "the 'ray' command was not found next to the Python interpreter or on PATH; install Ray "
        "with: pip install 'mixpeek-infra[local]'"
    )


def _probe_python(ray_executable: str) -> str:
    """An interpreter that can `import ray` (for the readiness probe): this one, or the ray script's."""
    import importlib.util

    if importlib.util.find_spec("ray") is not None:
        return sys.executable
    try:
        first = Path(ray_executable).read_bytes()[:512].split(b"\n", 1)[0].decode()
    except OSError:
        first = ""
    if first.startswith("#!") and "python" in first:
        return first[2:].strip().split()[0]
    return sys.executable


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("RAY_ADDRESS", None)  # a head never joins another cluster; a probe uses its explicit URL
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


def _file_size(path: Optional[str]) -> int:
    try:
        return os.path.getsize(path) if path else 0
    except OSError:
        return 0


def _new_text(path: Optional[str], offset: int) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(65536).decode(errors="replace")
    except OSError:
        return ""


def wait_for_ray_client(
    url: str,
    timeout: float,
    *,
    python: Optional[str] = None,
    alive: Callable[[], bool] = lambda: True,
    server_log: Optional[str] = None,
    attempt_timeout: float = 30.0,
    node_manager_port: Optional[int] = None,
) -> float:
    """Wait until a Ray client connects to `url` and return the seconds waited.

    Each attempt runs `ray.init(url)` in a child interpreter (this process never imports Ray) and
    attempts repeat until `timeout`: a first connect can fail while the head boots. In particular
    Ray's client proxy sometimes loses the per-client server it forks (ray-project/ray#63202, about
    1 start in 8 here) and the client only notices ~40 s later; with `server_log` (the head's
    `ray_client_server.err`) such an attempt is abandoned as soon as the proxy logs the failure.
    An attempt still running `attempt_timeout` s after the client port opened is abandoned too.
    With `node_manager_port`, a connect counts only if it reached the cluster whose node listens
    there: Ray's proxies pick per-client server ports from one machine-wide range (23000-23999) and
    gRPC binds them with SO_REUSEPORT, so when two heads take a first client at the same instant a
    client can land on the other head.
    Raises `RayHeadError` on timeout or when `alive()` turns false.
    """
    started = time.monotonic()
    deadline = started + timeout
    host, port = url[len("ray://") :].rsplit(":", 1)
    env = _clean_env()
    env["RAY_CLIENT_RECONNECT_GRACE_PERIOD"] = "0"  # a probe never reconnects: fail fast instead
    port_open_at: Optional[float] = None
    last_error = "the client port never opened"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RayHeadError(f"no Ray client could connect to {url} within {timeout:.0f} s: {last_error}")
        offset = _file_size(server_log)
        attempt_start = time.monotonic()
        args = [url, str(remaining)] + ([str(node_manager_port)] if node_manager_port else [])
        probe = subprocess.Popen(
            [python or sys.executable, "-c", _PROBE, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )
        abandoned = ""
        try:
            while probe.poll() is None:
                now = time.monotonic()
                if not alive():
                    raise RayHeadError(f"the Ray head at {url} failed before a client could connect")
                if now > deadline:
                    raise RayHeadError(f"no Ray client could connect to {url} within {timeout:.0f} s: {last_error}")
                if port_open_at is None and is_listening(host, int(port)):
                    port_open_at = now
                if "startup failed" in _new_text(server_log, offset):
                    abandoned = "Ray's client proxy failed to start a per-client server (ray-project/ray#63202)"
                    break
                if port_open_at is not None and now - max(port_open_at, attempt_start) > attempt_timeout:
                    abandoned = f"a connect attempt took over {attempt_timeout:.0f} s"
                    break
                time.sleep(0.05)
        finally:
            if probe.poll() is None:
                probe.kill()
            probe.wait()
            detail = (probe.stderr.read() if probe.stderr else b"").decode(errors="replace").strip()
            if probe.stderr:
                probe.stderr.close()
        if not abandoned and probe.returncode == 0:
            return time.monotonic() - started
        last_error = abandoned or detail or f"probe exited with {probe.returncode}"
        time.sleep(0.2)


def _head_temp_dir(head_dir: Path, head_id: str) -> str:
    """The `--temp-dir` for Ray: inside the head dir when short enough, else a short symlink to it."""
    real = head_dir / "ray"
    real.mkdir(parents=True, exist_ok=True)
    if len(str(real)) <= MAX_TEMP_DIR:
        return str(real)
    base = (
        Path("/tmp")
        if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK)
        else Path(__import__("tempfile").gettempdir())
    )
    link = base / f"mxr-{head_id[-12:]}"
    if len(str(link)) > MAX_TEMP_DIR:
        raise RayHeadError(f"no temp directory short enough for Ray's unix sockets (need <= {MAX_TEMP_DIR} chars)")
    unlink_temp_link(str(link), head_dir)  # ours from an earlier attempt; anything else stays
    if link.is_symlink() or link.exists():
        raise RayHeadError(f"{link} already exists and is not this head's: remove it or use a shorter state_dir")
    link.symlink_to(real, target_is_directory=True)
    return str(link)


def _tail(path: str, limit: int = 3000, offset: int = 0) -> str:
    try:
        data = Path(path).read_bytes()[offset:]
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace").strip()


# ---------------------------------------------------------------------------------------------
# Start and stop


def _startup_failure(logs_dir: str) -> str:
    """The fatal error the head's raylet or GCS logged under `logs_dir` ("raylet.err: ..."), or ""."""
    for name in ("raylet.err", "gcs_server.err"):
        path = os.path.join(logs_dir, name)
        if _file_size(path) and (match := _FATAL_LINE.search(_new_text(path, 0))):
            return f"{name}: {_RAY_BUG_NOTE.sub('', match['message']).strip()}"
    return ""


def _port_taken(logs_dir: str, output: str) -> bool:
    """Whether `ray start` (its `output`) or a process of the head (its `*.err` log) failed on a taken port."""
    texts = [output] + [_new_text(str(path), 0) for path in sorted(Path(logs_dir).glob("*.err"))]
    return any(_PORT_TAKEN.search(text) for text in texts)


def start_head(props: dict[str, Any], head_id: str) -> dict[str, Any]:
    """Start a head for normalized inputs `props`; return its outputs.

    A start that fails on a taken port is retried with new ports (twice at most); any other failure
    raises at once with its cause.
    """
    ray = find_ray_executable()
    root = Path(state_path(props.get("state_path") or props["state_dir"]))
    stop_orphaned_heads(root)
    head_dir = root / head_id
    head_dir.mkdir(parents=True, exist_ok=True)
    log_file = str(head_dir / "head.log")
    python = _probe_python(ray)
    failure = ""
    for attempt in range(3):
        temp_dir = _head_temp_dir(head_dir, head_id)
        logs = os.path.join(temp_dir, "session_latest", "logs")
        ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        # Ray binds the GCS, raylet, object manager, agents, metrics, client server and workers to the node
        # address, or to 127.0.0.1 besides it: with the node address on loopback nothing listens elsewhere.
        cmd = [
            ray,
            "start",
            "--head",
            "--block",
            "--temp-dir",
            temp_dir,
            "--node-ip-address",
            LOOPBACK,
            "--dashboard-host",
            LOOPBACK,
            "--min-worker-port",
            "0",
            "--max-worker-port",
            "0",
            "--disable-usage-stats",
        ]
        if not props["include_dashboard"]:
            cmd += ["--include-dashboard", "false"]
        # Otherwise Ray decides: the dashboard when `ray[default]` is installed; with a minimal install
        # (`ray[client]`) there is no dashboard and `ray_dashboard_url` is None.
        for component, flag in PORT_FLAGS.items():
            cmd += [flag, str(ports[component])]
        if props.get("num_cpus") is not None:
            cmd += ["--num-cpus", str(props["num_cpus"])]
        if props.get("num_gpus") is not None:
            cmd += ["--num-gpus", str(props["num_gpus"])]
        env = _clean_env()
        env[MARKER_ENV] = head_id
        # Without this Ray swaps a loopback --node-ip-address for the host's address (a head others can
        # join); with it Ray keeps the node on 127.0.0.1 and refuses to add nodes, as a local head wants.
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        # Ray's client proxy forks then execs a server per client; gRPC's fork handlers make that child
        # die now and then (ray-project/ray#63202: ~1 first connect in 8 here, none in 35 without them).
        # gRPC documents turning them off when every fork is followed by exec.
        env.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
        started = time.monotonic()
        with open(log_file, "ab") as log:
            offset = log.tell()
            log.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} attempt {attempt + 1}: {' '.join(cmd)}\n".encode())
            log.flush()
            proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=str(head_dir),
                env=env,
                start_new_session=True,
                close_fds=True,
            )
        _CHILDREN[proc.pid] = proc
        info = process_info(proc.pid)
        start = info.start if info is not None else 0.0
        _mark_pending(head_dir, proc.pid, start, temp_dir)
        url = f"ray://{LOOPBACK}:{ports['client']}"

        def alive(proc=proc, logs=logs) -> bool:  # this attempt's process and logs (bound: the loop goes on)
            return proc.poll() is None and not _startup_failure(logs)

        try:
            # A raylet or GCS that died makes `ray start` wait 30 s for it: stop waiting as soon as one logs that.
            ready = wait_for_ray_client(
                url,
                float(props["ready_timeout"]),
                python=python,
                alive=alive,
                server_log=os.path.join(logs, "ray_client_server.err"),
                node_manager_port=ports["node_manager"],
            )
        except RayHeadError as exc:
            fatal, exited = _startup_failure(logs), proc.poll() is not None
            stop_session(proc.pid, start, timeout=0.0 if fatal else 5.0, head_id=head_id)  # a dead raylet: no drain
            output = _tail(log_file, offset=offset)
            cause = fatal or _tail(os.path.join(logs, "raylet.err"), 1000)
            failure = f"{exc}" + (f"\ncause: {cause}" if cause else "") + f"\n--- {log_file} (tail):\n{output}"
            retry = (fatal or exited) and attempt < 2 and _port_taken(logs, output)
            _discard_failed_head(temp_dir, head_dir)
            if retry:  # another process took one of the ports between choosing and binding: try new ones
                with open(log_file, "ab") as log:
                    log.write(f"--- a port was taken ({fatal or 'see above'}); retrying with new ports\n".encode())
                continue
            raise RayHeadError(failure) from None
        total = time.monotonic() - started
        # Only our own dashboard counts: a process of this head's session listens on the port.
        members = [m.pid for m in session_members(proc.pid, start, head_id)]
        dashboard = props["include_dashboard"] and any(
            port == ports["dashboard"] for _, _, port in listening_sockets(members)
        )
        return {
            "ray_head_node_url": url,
            "ray_dashboard_url": f"http://{LOOPBACK}:{ports['dashboard']}" if dashboard else None,
            "gcs_address": f"{LOOPBACK}:{ports['gcs']}",
            "client_port": ports["client"],
            "dashboard_port": ports["dashboard"],
            "ports": ports,
            "pid": proc.pid,
            "pgid": proc.pid,
            "sid": proc.pid,
            "start_time": start,
            "boot_id": current_boot_id(),
            "temp_dir": temp_dir,
            "head_dir": str(head_dir),
            "log_file": log_file,
            "ray_version": _ray_version(),
            "ready_seconds": round(total, 3),
            "probe_seconds": round(ready, 3),
        }
    raise RayHeadError(failure)


PENDING_FILE = "creating.json"
#: The name of a head's directory under the state dir, and its resource id.
HEAD_ID = re.compile(r"rayhead-[0-9a-f]{12}\Z")


def _mark_pending(head_dir: Path, pid: int, start: float, temp_dir: str) -> None:
    """Record a head whose create has not returned yet, with the processes of the update creating it."""
    record = {
        "creator": lineage(os.getpid()),
        "pid": pid,
        "start": start,
        "boot_id": current_boot_id(),
        "temp_dir": temp_dir,
    }
    partial = head_dir / f".{PENDING_FILE}.{os.getpid()}"
    partial.write_text(json.dumps(record))
    os.replace(partial, head_dir / PENDING_FILE)  # whole or absent, never half written


def _pending_record(head_dir: Path) -> Optional[tuple[list[tuple[int, float]], HeadSession]]:
    """The creator lineage and head identity a head directory's pending marker records, or None when
    it holds no such record (absent, not a regular file, not the JSON `_mark_pending` writes)."""
    marker = head_dir / PENDING_FILE
    try:
        if not marker.is_file() or marker.is_symlink() or marker.stat().st_size > 65536:
            return None
        record = json.loads(marker.read_text())
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(record, dict) or not isinstance(record.get("creator"), list) or not record["creator"]:
        return None
    creator = []
    for entry in record["creator"]:
        if not isinstance(entry, list) or len(entry) != 2:
            return None
        link = HeadSession.recorded(entry[0], entry[1], head_dir.name)
        if link is None:
            return None
        creator.append((link.pid, link.start))
    session = HeadSession.recorded(record.get("pid"), record.get("start"), head_dir.name, record.get("boot_id"))
    return (creator, session) if session is not None else None


def own_head_dir(path: Any, state_dir: Optional[Any] = None, head_id: Optional[str] = None) -> Optional[Path]:
    """`path` when it is a head's own directory: named like a head (and `head_id` when given), a real
    directory (no symlink), directly under `state_dir` when given; else None."""
    if not isinstance(path, str) or not os.path.isabs(path):
        return None
    head_dir = Path(path)
    if not HEAD_ID.match(head_dir.name) or (head_id is not None and head_dir.name != head_id):
        return None
    if state_dir is not None and (not isinstance(state_dir, str) or head_dir.parent != Path(state_path(state_dir))):
        return None
    if head_dir.is_symlink() or not head_dir.is_dir():
        return None
    return head_dir


def stop_orphaned_heads(root: Path) -> list[str]:
    """Stop the heads under `root` whose create never returned because its update died.

    An engine killed mid-`pulumi up` leaves the head it was starting running in its own session,
    recorded nowhere in the stack's state (its provider host even lives on, orphaned). Its pending
    marker is data, believed only as far as it checks out: the directory is a real `rayhead-<12 hex>`
    directory under `root`, the marker is the record `_mark_pending` writes, its update (provider
    host, plugin script, engine) is gone, and only processes proven this head's (`HeadSession`) are
    stopped. Then the marker and the head's Ray files go; `head.log` stays.
    """
    stopped: list[str] = []
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError:
        return stopped
    for entry in entries:
        head_dir = own_head_dir(entry.path, str(root))
        record = _pending_record(head_dir) if head_dir is not None else None
        if head_dir is None or record is None:
            continue
        creator, session = record
        if lineage_alive(creator):
            continue
        session.stop(timeout=0.0)
        _discard_failed_head(None, head_dir)
        stopped.append(head_dir.name)
    return stopped


def unlink_temp_link(temp_dir: Any, head_dir: Path) -> None:
    """Remove the short symlink Ray was given as its temp dir, only while it points at `head_dir`/ray."""
    if not isinstance(temp_dir, str) or not os.path.islink(temp_dir):
        return
    try:
        if Path(os.readlink(temp_dir)) == head_dir / "ray":
            os.unlink(temp_dir)
    except OSError:
        pass


def _temp_links(head_dir: Path) -> list[str]:
    """Where `_head_temp_dir` may have put the head's symlink."""
    name = f"mxr-{head_dir.name[-12:]}"
    return sorted({os.path.join("/tmp", name), os.path.join(__import__("tempfile").gettempdir(), name)})


def _discard_failed_head(temp_dir: Optional[str], head_dir: Path) -> None:
    """After a failed start: drop Ray's files, the temp dir symlink and the pending marker; keep head.log.

    Only the head's own directory and its own symlink are touched (`temp_dir` None: wherever
    `_head_temp_dir` would have put it).
    """
    for link in [temp_dir] if temp_dir is not None else _temp_links(head_dir):
        unlink_temp_link(link, head_dir)
    (head_dir / PENDING_FILE).unlink(missing_ok=True)
    ray_dir = head_dir / "ray"
    if ray_dir.is_dir() and not ray_dir.is_symlink():
        shutil.rmtree(ray_dir, ignore_errors=True)


def _ray_version() -> Optional[str]:
    from .spec import installed_ray_version

    return installed_ray_version()


def remove_head_dirs(outs: dict[str, Any], head_id: Optional[str] = None) -> None:
    """Remove a stopped head's directory and its temp dir symlink: only the head's own directory under
    its state dir (`head_dir` named `head_id`, directly in `state_path` when recorded), no symlink."""
    head_dir = own_head_dir(outs.get("head_dir"), outs.get("state_path"), head_id)
    if head_dir is None:
        return
    unlink_temp_link(outs.get("temp_dir"), head_dir)
    shutil.rmtree(head_dir, ignore_errors=True)
