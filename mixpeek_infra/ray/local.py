"""A local Ray head as a Pulumi dynamic resource: `ray start --head --block` in its own process session.

Create picks free ports for every Ray component it can configure (so heads do not collide; only the
per-client servers of Ray Client share a fixed range, see `wait_for_ray_client`), gives the head its own
`--temp-dir` under the state directory (through a short symlink when the path would break Ray's unix
socket length limit), binds every listener to 127.0.0.1 (`--node-ip-address`, `--dashboard-host`),
starts the process detached in a new session (it outlives the provider process, which the engine stops
when `pulumi up` ends) and waits, bounded and retrying, until a Ray client connects. A start that fails
on a taken port (the raylet or GCS logs it fatally) is retried at once with new ports; any other fatal
error of theirs fails the create at once, naming it. Read reports the head gone once its session leader is
dead. Delete stops that session only: SIGTERM to the `ray start` leader (Ray drains and stops its
children), then SIGTERM/SIGKILL to leftovers of the same session; `ray stop`, which kills every Ray
process on the machine, is never used.

The provider keeps no state on `self`; the type token `pulumi-python:dynamic/mixpeek:LocalRayHead`
and this module's import path are part of every stack's state: do not rename them.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic as dynamic

from .. import hostwatch
from ..paths import state_path
from ..redact import redact_url
# Re-exported: the process helpers lived here before and callers import them from this module.
from ._process import (_CHILDREN, MARKER_ENV, ProcInfo, current_boot_id, leader_alive,  # noqa: F401
                       lineage, lineage_alive, listening_sockets, process_info, process_table, session_members,
                       stop_session)

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
#: Inputs whose change restarts the head (replace); the others update in place.
REPLACE_KEYS = ("state_dir", "num_cpus", "num_gpus", "include_dashboard")
UPDATE_KEYS = ("namespace_id", "ready_timeout", "stop_timeout")
INPUT_KEYS = REPLACE_KEYS + UPDATE_KEYS + ("state_path",)
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-value sentinel

# Unix socket paths are limited to 108 bytes (104 on macOS) including the NUL. Ray puts its sockets at
# <temp dir>/session_<YYYY-mm-dd_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store: 64 bytes after the
# temp dir for a 7-digit pid.
_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
_SOCKET_SUFFIX = 64
MAX_TEMP_DIR = _SOCKET_PATH_MAX - _SOCKET_SUFFIX

#: Every listener of a local head binds here (Ray derives each bind address from the node address).
LOOPBACK = "127.0.0.1"
# How the raylet or the GCS reports its death: a fatal line ("[2026-01-01 10:00:00,000 C 12 12] (raylet) x.cc:1:
# message"), or the raylet's error line when an agent it fate-shares with failed.
_FATAL_LINE = re.compile(r"^\[[^\]]* (?:[CF]|E(?=.*The raylet exited)) \d+ \d+\] \((?:raylet|gcs_server)\) "
                         r"(?P<message>.*)$", re.M)
_RAY_BUG_NOTE = re.compile(r"An unexpected system state has occurred\..*?fix it\.\s*")  # Ray's "report this" text
# A taken port, as gRPC (errno:98), Python ([Errno 98] Address already in use) and `ray start` report it.
_PORT_TAKEN = re.compile(r"address already in use|errno:\s*(?:98|48)\b|failed to bind", re.I)

_PORT_LOCK = threading.Lock()
_RECENT_PORTS: dict[int, float] = {}  # ports handed out by this process recently (not yet bound by Ray)

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
# Ports, executables, readiness


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


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def find_ray_executable() -> str:
    """The `ray` CLI next to this interpreter (the same environment), else the one on PATH."""
    candidate = Path(sys.executable).parent / ("ray.exe" if os.name == "nt" else "ray")
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    found = shutil.which("ray")
    if found:
        return found
    raise RayHeadError("the 'ray' command was not found next to the Python interpreter or on PATH; install Ray "
                       "with: pip install 'mixpeek-infra[local]'")


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


def wait_for_ray_client(url: str, timeout: float, *, python: Optional[str] = None,
                        alive: Callable[[], bool] = lambda: True, server_log: Optional[str] = None,
                        attempt_timeout: float = 30.0, node_manager_port: Optional[int] = None) -> float:
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
    host, port = url[len("ray://"):].rsplit(":", 1)
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
        probe = subprocess.Popen([python or sys.executable, "-c", _PROBE, *args],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 env=env)
        abandoned = ""
        try:
            while probe.poll() is None:
                now = time.monotonic()
                if not alive():
                    raise RayHeadError(f"the Ray head at {url} failed before a client could connect")
                if now > deadline:
                    raise RayHeadError(f"no Ray client could connect to {url} within {timeout:.0f} s: {last_error}")
                if port_open_at is None and _listening(host, int(port)):
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
    base = Path("/tmp") if os.path.isdir("/tmp") and os.access("/tmp", os.W_OK) else Path(
        __import__("tempfile").gettempdir())
    link = base / f"mxr-{head_id[-12:]}"
    if len(str(link)) > MAX_TEMP_DIR:
        raise RayHeadError(f"no temp directory short enough for Ray's unix sockets (need <= {MAX_TEMP_DIR} chars)")
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(real, target_is_directory=True)
    return str(link)


def _tail(path: str, limit: int = 3000, offset: int = 0) -> str:
    try:
        data = Path(path).read_bytes()[offset:]
    except OSError:
        return ""
    return data[-limit:].decode(errors="replace").strip()


def _int(value: Any) -> Optional[int]:
    if value is None or value == UNKNOWN:
        return None
    return int(float(value))


# ---------------------------------------------------------------------------------------------
# The provider


def _startup_failure(logs_dir: str) -> str:
    """The fatal error the head's raylet or GCS logged under `logs_dir` ("raylet.err: ..."), or ""."""
    for name in ("raylet.err", "gcs_server.err"):
        path = os.path.join(logs_dir, name)
        if _file_size(path) and (match := _FATAL_LINE.search(_new_text(path, 0))):
            return f"{name}: {_RAY_BUG_NOTE.sub('', match['message']).strip()}"
    return ""


def _port_taken(logs_dir: str, output: str) -> bool:
    """Whether `ray start` (its `output`) or a process of the head (its `*.err` log) failed on a taken port."""
    texts = [output] + [_new_text(path, 0) for path in sorted(Path(logs_dir).glob("*.err"))]
    return any(_PORT_TAKEN.search(text) for text in texts)


def start_head(props: dict[str, Any], head_id: str) -> dict[str, Any]:
    """Start a head for normalized inputs `props`; return its outputs.

    A start that fails on a taken port is retried with new ports (twice at most); any other failure
    raises at once with its cause.
    """
    ray = find_ray_executable()
    root = Path(props.get("state_path") or state_path(props["state_dir"]))
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
        cmd = [ray, "start", "--head", "--block", "--temp-dir", temp_dir, "--node-ip-address", LOOPBACK,
               "--dashboard-host", LOOPBACK, "--min-worker-port", "0", "--max-worker-port", "0",
               "--disable-usage-stats"]
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
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    cwd=str(head_dir), env=env, start_new_session=True, close_fds=True)
        _CHILDREN[proc.pid] = proc
        info = process_info(proc.pid)
        start = info.start if info is not None else 0.0
        _mark_pending(head_dir, proc.pid, start, temp_dir)
        url = f"ray://{LOOPBACK}:{ports['client']}"
        try:
            # A raylet or GCS that died makes `ray start` wait 30 s for it: stop waiting as soon as one logs that.
            ready = wait_for_ray_client(url, float(props["ready_timeout"]), python=python,
                                        alive=lambda: proc.poll() is None and not _startup_failure(logs),
                                        server_log=os.path.join(logs, "ray_client_server.err"),
                                        node_manager_port=ports["node_manager"])
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
        dashboard = props["include_dashboard"] and any(port == ports["dashboard"]
                                                       for _, _, port in listening_sockets(members))
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


def _mark_pending(head_dir: Path, pid: int, start: float, temp_dir: str) -> None:
    """Record a head whose create has not returned yet, with the processes of the update creating it."""
    record = {"creator": lineage(os.getpid()), "pid": pid, "start": start, "boot_id": current_boot_id(),
              "temp_dir": temp_dir}
    (head_dir / PENDING_FILE).write_text(json.dumps(record))


def stop_orphaned_heads(root: Path) -> list[str]:
    """Stop the heads under `root` whose create never returned because its update died.

    An engine killed mid-`pulumi up` leaves the head it was starting running in its own session,
    recorded nowhere in the stack's state (its provider host even lives on, orphaned). Such a head
    is ours by construction (its directory and pending marker were written here, its processes
    carry the head id); one whose update (provider host, plugin script, engine) is still alive is
    left alone.
    """
    stopped = []
    for marker in sorted(root.glob(f"rayhead-*/{PENDING_FILE}")):
        try:
            record = json.loads(marker.read_text())
            creator_alive = bool(record["creator"]) and lineage_alive(record["creator"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if creator_alive:
            continue
        head_id = marker.parent.name
        stop_session(int(record["pid"]), float(record["start"]), timeout=0.0, head_id=head_id,
                     boot_id=record.get("boot_id"))
        _discard_failed_head(record.get("temp_dir") or "", marker.parent)
        stopped.append(head_id)
    return stopped


def _discard_failed_head(temp_dir: str, head_dir: Path) -> None:
    """After a failed start: drop Ray's files, the temp dir symlink and the pending marker; keep head.log."""
    (head_dir / PENDING_FILE).unlink(missing_ok=True)
    if os.path.islink(temp_dir):
        try:
            os.unlink(temp_dir)
        except OSError:
            pass
    shutil.rmtree(head_dir / "ray", ignore_errors=True)


def _ray_version() -> Optional[str]:
    from .spec import installed_ray_version

    return installed_ray_version()


def _remove_dirs(outs: dict[str, Any]) -> None:
    temp_dir, head_dir = outs.get("temp_dir"), outs.get("head_dir")
    if temp_dir and os.path.islink(temp_dir):
        try:
            os.unlink(temp_dir)
        except OSError:
            pass
    if head_dir and Path(head_dir).name.startswith("rayhead-"):
        shutil.rmtree(head_dir, ignore_errors=True)


def _normalized(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs with the engine's floats turned back into whole numbers where Ray needs them."""
    out = dict(inputs)
    for key in ("num_cpus", "num_gpus"):
        out[key] = _int(out.get(key))
    for key, default in (("ready_timeout", 120.0), ("stop_timeout", 20.0)):
        value = out.get(key)
        out[key] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else default
    if out.get("include_dashboard") is None:
        out["include_dashboard"] = True
    return out


class LocalRayHeadProvider(dynamic.ResourceProvider):
    """Dynamic provider of `LocalRayHead`. Holds no state: everything it needs is in the resource's outputs."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        inputs = dict(news)
        failures: list[dynamic.CheckFailure] = []

        def fail(prop: str, reason: str) -> None:
            failures.append(dynamic.CheckFailure(prop, reason))

        state_dir = inputs.get("state_dir")
        if state_dir != UNKNOWN and (not isinstance(state_dir, str) or not state_dir.strip()):
            fail("state_dir", "required: a directory for the head's temp dir and logs")
        for key in ("num_cpus", "num_gpus"):
            value = inputs.get(key)
            if value is None or value == UNKNOWN:
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
                    or float(value) != int(value)):
                fail(key, f"expected a whole number >= 0, got {value!r}")
            else:
                inputs[key] = int(value)
        for key, default in (("ready_timeout", 120.0), ("stop_timeout", 20.0)):
            value = inputs.get(key, default)
            if value == UNKNOWN:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                fail(key, f"expected a number of seconds > 0, got {value!r}")
            else:
                inputs[key] = float(value)
        if inputs.get("include_dashboard") is None:
            inputs["include_dashboard"] = True
        elif not isinstance(inputs["include_dashboard"], bool) and inputs["include_dashboard"] != UNKNOWN:
            fail("include_dashboard", f"expected true or false, got {inputs['include_dashboard']!r}")
        if os.name == "nt":
            fail("state_dir", "local Ray heads need a POSIX system (Linux or macOS); use RayHead.kubernetes or "
                              "RayHead.external on Windows")
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed, replaces = [], []
        for key in REPLACE_KEYS + UPDATE_KEYS:
            old, new = olds.get(key), news.get(key)
            if key in ("num_cpus", "num_gpus"):
                old, new = (_int(old) if old != UNKNOWN else old), (_int(new) if new != UNKNOWN else new)
            elif key in ("ready_timeout", "stop_timeout"):
                old = float(old) if isinstance(old, (int, float)) else old
                new = float(new) if isinstance(new, (int, float)) else new
            if new == UNKNOWN or old != new:
                changed.append(key)
                if key in REPLACE_KEYS:
                    replaces.append(key)
        return dynamic.DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        hostwatch.watch()
        head_id = f"rayhead-{secrets.token_hex(6)}"
        inputs = _normalized({k: props.get(k) for k in INPUT_KEYS})
        outs = start_head(inputs, head_id)
        (Path(outs["head_dir"]) / PENDING_FILE).unlink(missing_ok=True)
        return dynamic.CreateResult(head_id, {**inputs, **outs})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        pid, start = _int(props.get("pid")), props.get("start_time")
        if pid is None or start is None:
            return dynamic.ReadResult("", {})
        start, boot_id = float(start), props.get("boot_id")
        if leader_alive(pid, start, id_ or None, boot_id):
            outs = {k: v for k, v in props.items() if k != "__provider"}
            return dynamic.ReadResult(id_, outs)
        # The leader is dead: sweep what is left of its session (Ray's agents can outlive it and hold
        # ports), then report the head gone so the next `pulumi up` starts a new one. Logs stay in head_dir.
        stop_session(pid, start, timeout=0.0, head_id=id_ or None, boot_id=boot_id)
        if props.get("temp_dir") and os.path.islink(props["temp_dir"]):
            try:
                os.unlink(props["temp_dir"])
            except OSError:
                pass
        return dynamic.ReadResult("", {})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        outs = {k: v for k, v in olds.items() if k != "__provider"}
        fresh = _normalized(news)
        for key in UPDATE_KEYS:
            outs[key] = fresh.get(key)
        outs["state_path"] = olds.get("state_path")
        return dynamic.UpdateResult(outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        pid, start = _int(props.get("pid")), props.get("start_time")
        if pid is not None and start is not None:
            left = stop_session(pid, float(start), timeout=float(props.get("stop_timeout") or 20.0),
                                head_id=_id or None, boot_id=props.get("boot_id"))
            if left:
                raise RayHeadError(f"processes {left} of the Ray head session {pid} survived SIGKILL")
            ports = [int(float(p)) for p in (props.get("ports") or {}).values()]
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not all(port_is_free(p) for p in ports):
                time.sleep(0.1)
        _remove_dirs(props)


class LocalRayHead(dynamic.Resource, module="mixpeek", name="LocalRayHead"):
    """A Ray head process on this machine, created by `pulumi up` and stopped by `pulumi destroy`.

    Outputs: `ray_head_node_url` (`ray://127.0.0.1:PORT`), `ray_dashboard_url` (set when its own dashboard listens),
    `pid` / `pgid` / `sid` of the `ray start` session leader, `start_time`, `ports` (every Ray
    component's port), `client_port`, `dashboard_port`, `gcs_address`, `temp_dir` (Ray's `--temp-dir`),
    `head_dir` (under `state_dir`), `log_file`, `ray_version`, `boot_id` and `ready_seconds` (start to
    ready; `probe_seconds` of it spent waiting for a client to connect).
    """

    ray_head_node_url: pulumi.Output[str]
    ray_dashboard_url: pulumi.Output[Optional[str]]
    gcs_address: pulumi.Output[str]
    client_port: pulumi.Output[int]
    dashboard_port: pulumi.Output[int]
    ports: pulumi.Output[dict]
    pid: pulumi.Output[int]
    pgid: pulumi.Output[int]
    sid: pulumi.Output[int]
    start_time: pulumi.Output[float]
    temp_dir: pulumi.Output[str]
    head_dir: pulumi.Output[str]
    log_file: pulumi.Output[str]
    ray_version: pulumi.Output[str]
    ready_seconds: pulumi.Output[float]

    def __init__(self, name: str, *, state_dir: str = ".mixpeek/ray", namespace_id: pulumi.Input[str] | None = None,
                 num_cpus: int | None = None, num_gpus: int | None = None, include_dashboard: bool = True,
                 ready_timeout: float = 120.0, stop_timeout: float = 20.0,
                 opts: pulumi.ResourceOptions | None = None):
        props: dict[str, Any] = {
            "state_dir": state_dir,
            # Resolved against the project root; not diffed, so moving the checkout changes nothing.
            "state_path": state_path(state_dir),
            "namespace_id": namespace_id,
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "include_dashboard": include_dashboard,
            "ready_timeout": float(ready_timeout),
            "stop_timeout": float(stop_timeout),
        }
        for out in ("ray_head_node_url", "ray_dashboard_url", "gcs_address", "client_port", "dashboard_port", "ports",
                    "pid", "pgid", "sid", "start_time", "boot_id", "temp_dir", "head_dir", "log_file", "ray_version",
                    "ready_seconds", "probe_seconds"):
            props[out] = None
        super().__init__(LocalRayHeadProvider(), name, props, opts)
