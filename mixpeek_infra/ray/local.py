"""A local Ray head as a Pulumi dynamic resource: `ray start --head --block` in its own process session.

Create picks free ports for every Ray component it can configure (so heads do not collide; only the
per-client servers of Ray Client share a fixed range, see `wait_for_ray_client`), gives the head its own
`--temp-dir` under the state directory (through a short symlink when the path would break Ray's unix
socket length limit), binds the dashboard to 127.0.0.1, starts the process detached in a new session
(it outlives the provider process, which the engine stops when `pulumi up` ends) and waits, bounded
and retrying, until a Ray client connects. Read reports the head gone once its session leader is
dead. Delete stops that session only: SIGTERM to the `ray start` leader (Ray drains and stops its
children), then SIGTERM/SIGKILL to leftovers of the same session; `ray stop`, which kills every Ray
process on the machine, is never used.

The provider keeps no state on `self`; the type token `pulumi-python:dynamic/mixpeek:LocalRayHead`
and this module's import path are part of every stack's state: do not rename them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import pulumi
import pulumi.dynamic as dynamic

from ..paths import state_path

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
MARKER_ENV = "MIXPEEK_RAY_HEAD_ID"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-value sentinel

# Unix socket paths are limited to 108 bytes (104 on macOS) including the NUL. Ray puts its sockets at
# <temp dir>/session_<YYYY-mm-dd_HH-MM-SS_ffffff>_<pid>/sockets/plasma_store: 64 bytes after the
# temp dir for a 7-digit pid.
_SOCKET_PATH_MAX = 103 if sys.platform == "darwin" else 107
_SOCKET_SUFFIX = 64
MAX_TEMP_DIR = _SOCKET_PATH_MAX - _SOCKET_SUFFIX

_PORT_LOCK = threading.Lock()
_RECENT_PORTS: dict[int, float] = {}  # ports handed out by this process recently (not yet bound by Ray)
_CHILDREN: dict[int, subprocess.Popen] = {}  # leaders started by this process, so they can be reaped

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
    """A local Ray head could not be started or stopped."""


# ---------------------------------------------------------------------------------------------
# Process table


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


def _linux() -> bool:
    return os.path.isdir("/proc/self")


def _read_proc(pid: int) -> Optional[ProcInfo]:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    rest = raw[raw.rfind(")") + 2:].split()
    return ProcInfo(pid=pid, state=rest[0], ppid=int(rest[1]), pgid=int(rest[2]), sid=int(rest[3]),
                    start=float(rest[19]))


def _ps_table() -> list[ProcInfo]:
    # Non-Linux POSIX fallback: no session ids, so the process group stands in for the session.
    out = subprocess.run(["ps", "-A", "-o", "pid=,ppid=,pgid=,state=,lstart="], capture_output=True, text=True,
                         check=False).stdout
    table = []
    for line in out.splitlines():
        parts = line.split(None, 4)
        if len(parts) < 5:
            continue
        try:
            start = time.mktime(time.strptime(parts[4].strip(), "%a %b %d %H:%M:%S %Y"))
            table.append(ProcInfo(pid=int(parts[0]), ppid=int(parts[1]), pgid=int(parts[2]), sid=int(parts[2]),
                                  state=parts[3], start=start))
        except ValueError:
            continue
    return table


def process_info(pid: int) -> Optional[ProcInfo]:
    """The process `pid`, or None when there is no such process."""
    if _linux():
        return _read_proc(pid)
    return next((p for p in _ps_table() if p.pid == pid), None)


def process_table() -> list[ProcInfo]:
    """Every process visible to this user."""
    if not _linux():
        return _ps_table()
    table = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _read_proc(int(entry))) is not None:
            table.append(info)
    return table


def _same_start(a: float, b: float) -> bool:
    return a == b if _linux() else abs(a - b) < 1.5


def _reap(pid: int) -> None:
    child = _CHILDREN.get(pid)
    if child is not None:
        if child.poll() is not None:
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


def current_boot_id() -> Optional[str]:
    """This boot's id on Linux (pids and start ticks restart with every boot), else None."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


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


def stop_session(pid: int, start: float, timeout: float = 20.0, head_id: Optional[str] = None,
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
    _reap(pid)
    return [m.pid for m in session_members(pid, start, head_id, boot_id)]


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
                    raise RayHeadError(f"the Ray head at {url} exited before a client could connect")
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


def start_head(props: dict[str, Any], head_id: str) -> dict[str, Any]:
    """Start a head for normalized inputs `props`; return its outputs. Retries once on a port race."""
    ray = find_ray_executable()
    root = Path(props.get("state_path") or state_path(props["state_dir"]))
    head_dir = root / head_id
    head_dir.mkdir(parents=True, exist_ok=True)
    temp_dir = _head_temp_dir(head_dir, head_id)
    log_file = str(head_dir / "head.log")
    python = _probe_python(ray)
    last_error = ""
    for attempt in range(3):
        ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        cmd = [ray, "start", "--head", "--block", "--temp-dir", temp_dir, "--dashboard-host", "127.0.0.1",
               "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats"]
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
        url = f"ray://127.0.0.1:{ports['client']}"
        try:
            ready = wait_for_ray_client(url, float(props["ready_timeout"]), python=python,
                                        alive=lambda: proc.poll() is None,
                                        server_log=os.path.join(temp_dir, "session_latest", "logs",
                                                                "ray_client_server.err"),
                                        node_manager_port=ports["node_manager"])
        except RayHeadError as exc:
            exited = proc.poll() is not None
            stop_session(proc.pid, start, timeout=5.0, head_id=head_id)
            last_error = f"{exc}\n--- {log_file} (tail):\n{_tail(log_file, offset=offset)}"
            output = _tail(log_file, offset=offset).lower()
            if exited and attempt < 2 and any(w in output for w in ("address already in use", "failed to bind",
                                                                     "already in use", "could not bind")):
                continue  # another process took one of the ports between choosing and binding: try new ones
            _discard_failed_head(temp_dir, head_dir)
            raise RayHeadError(last_error) from None
        total = time.monotonic() - started
        dashboard = props["include_dashboard"] and _listening("127.0.0.1", ports["dashboard"])
        return {
            "ray_head_node_url": url,
            "ray_dashboard_url": f"http://127.0.0.1:{ports['dashboard']}" if dashboard else None,
            "gcs_address": f"127.0.0.1:{ports['gcs']}",
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
    _discard_failed_head(temp_dir, head_dir)
    raise RayHeadError(last_error)


def _discard_failed_head(temp_dir: str, head_dir: Path) -> None:
    """After a failed start: drop Ray's files and the temp dir symlink; keep head.log for diagnosis."""
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
        head_id = f"rayhead-{secrets.token_hex(6)}"
        inputs = _normalized({k: props.get(k) for k in INPUT_KEYS})
        outs = start_head(inputs, head_id)
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

    Outputs: `ray_head_node_url` (`ray://127.0.0.1:PORT`), `ray_dashboard_url` (bound to 127.0.0.1),
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
