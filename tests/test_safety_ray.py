"""Security and robustness of Ray heads, through the real provider and real `ray start --head` processes.

- Every listener of a local head is on loopback (seen by `ss -ltnp` over the head's whole session).
- Credentials inside URLs never reach an error (`RayHead.external`, the local head's errors).
- A taken raylet port makes the start retry with new ports, early; a raylet that fails for another reason
  fails the create at once, naming the cause from `raylet.err`; the dashboard URL is reported only when
  the head's own dashboard listens on it.
- Processes that are not ours are never stopped: after pid reuse refresh and delete spare the unrelated
  session; a `creating.json` naming someone else's session or paths outside the state dir is not believed.

Each test that needs a head starts and deletes its own; `ray stop` is never used. Without Ray these tests
skip, and fail instead where CI sets `MIXPEEK_REQUIRE_RAY=1`.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from mixpeek_infra.processes import process_info, process_table
from mixpeek_infra.ray import head_process
from mixpeek_infra.ray._process import MARKER_ENV, session_members
from mixpeek_infra.ray.head_process import RayHeadError
from mixpeek_infra.ray.local import LocalRayHeadProvider
from mixpeek_infra.ray.spec import InvalidRayHead, RayHead, ray_url_problem
from test_ray_local import inputs, needs_ray, ray_installed, run_task, wait_for  # noqa: F401 (a fixture)

linux_only = pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads sessions and sockets from /proc: run on Linux")


def listeners(pids: set[int]) -> list[tuple[int, str, int]]:
    """(pid, address, port) of every listening TCP socket of `pids`, as `ss -ltnp` reports them."""
    if shutil.which("ss") is None:
        from mixpeek_infra.ray._process import listening_sockets

        return listening_sockets(pids)
    out = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        fields = line.split()
        address, port = fields[3].rsplit(":", 1)
        for pid in map(int, re.findall(r"pid=(\d+)", line)):
            if pid in pids:
                found.append((pid, address.strip("[]"), int(port)))
    return found


def is_loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:  # "*" (every address) and anything else unparsable
        return False
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def session_pids(result) -> set[int]:
    """The pids of the head `result` (a CreateResult), as the provider proves them."""
    return {m.pid for m in session_members(int(result.outs["pid"]), float(result.outs["start_time"]), result.id)}


def processes_of(head_id: str) -> list[int]:
    """Live processes whose environment carries `head_id` (`ray start`, the GCS, the raylet, ... inherit it)."""
    found = []
    for info in process_table():
        try:
            environ = Path(f"/proc/{info.pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"{MARKER_ENV}={head_id}".encode() in environ and not info.zombie:
            found.append(info.pid)
    return found


def checked(state_dir: str, **extra) -> dict:
    result = LocalRayHeadProvider().check({}, inputs(state_dir, **extra))
    assert not result.failures, result.failures
    return result.inputs


@pytest.fixture
def state_dir():
    path = Path(tempfile.mkdtemp(prefix="mxs", dir="/tmp"))  # short: Ray's temp dir lives inside
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Ports(dict):
    """Ports forced on the first choice (component -> port); `calls` holds every choice made."""

    calls: list[dict[str, int]]


@pytest.fixture
def first_ports(monkeypatch) -> Ports:
    """The next create's first port choice uses the ports put here, e.g. `first_ports["node_manager"] = port`."""
    forced = Ports()
    forced.calls = []
    real = head_process.free_ports

    def choose(count: int) -> list[int]:
        ports = dict(zip(head_process.PORT_FLAGS, real(count)))
        if not forced.calls:
            ports.update(forced)
        forced.calls.append(ports)
        return list(ports.values())

    monkeypatch.setattr(head_process, "free_ports", choose)  # start_head looks it up there
    return forced


@pytest.fixture
def created():
    """Heads created by a test, deleted afterwards whatever happens."""
    heads: list = []
    yield heads
    for result in heads:
        LocalRayHeadProvider().delete(result.id, result.outs)


def head_log(state_dir: Path) -> str:
    logs = list(state_dir.glob("rayhead-*/head.log"))
    assert len(logs) == 1, logs
    return logs[0].read_text(errors="replace")


# --- 6. every listener on loopback -----------------------------------------------------------------


@needs_ray
@linux_only
@pytest.mark.ray
def test_every_listener_of_a_local_head_is_on_loopback(state_dir, created):
    result = LocalRayHeadProvider().create(checked(str(state_dir)))
    created.append(result)
    outs = result.outs
    ports = {int(p) for p in outs["ports"].values()}
    seen: set[int] = set()
    for stage in ("ready", "after a task"):  # the task adds a worker and a per-client server
        if stage == "after a task":
            assert run_task(outs) == "42"
        found = listeners(session_pids(result))
        print(f"\nlisteners of the head's session, {stage}:", sorted({(a, p) for _, a, p in found}))
        elsewhere = [(pid, address, port) for pid, address, port in found if not is_loopback(address)]
        assert not elsewhere, f"listening beyond loopback ({stage}): {elsewhere}"
        seen |= {port for _, _, port in found}
    for component in ("gcs", "client", "node_manager", "object_manager", "runtime_env_agent"):
        assert int(outs["ports"][component]) in seen, component
    assert seen - ports, "no worker or per-client server port was seen"


# --- 7. credentials in URLs ----------------------------------------------------------------------------


def test_ray_url_credentials_never_reach_the_error():
    for url in ("ray://admin:s3cret@ray-head.example:10001", "ray://s3cret@ray-head.example:10001"):
        with pytest.raises(InvalidRayHead) as info:
            RayHead.external(url)
        message = str(info.value)
        assert "s3cret" not in message and "admin" not in message and "s3cret" not in repr(info.value.problems)
        assert "ray.url" in message and "ray://***@ray-head.example:10001" in message
        assert "ray://host:port" in message and "RAY_AUTH_TOKEN" in message  # the way out
        with pytest.raises(InvalidRayHead) as info:
            RayHead.from_config({"mode": "external", "url": url}, source="Pulumi.dev.yaml")
        assert "s3cret" not in str(info.value)
    assert "s3cret" not in ray_url_problem("ray://u:s3cret@h:99999")[1]
    assert ray_url_problem("ray://ray-head.example:10001") is None


@needs_ray
def test_local_head_errors_never_show_url_credentials():
    with pytest.raises(RayHeadError) as info:
        head_process.wait_for_ray_client("ray://user:s3cret@127.0.0.1:1", 1.0)
    assert "s3cret" not in str(info.value) and "ray://***@127.0.0.1:1" in str(info.value)
    assert "s3cret" not in str(RayHeadError("ray start said: see http://user:s3cret@proxy.example:3128"))


# --- 9. a taken raylet port, other raylet failures, the dashboard URL ----------------------------------------


@needs_ray
@linux_only
@pytest.mark.ray
def test_a_taken_raylet_port_is_retried_early_with_new_ports(state_dir, first_ports, created):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        first_ports["node_manager"] = port
        started = time.monotonic()
        result = LocalRayHeadProvider().create(checked(str(state_dir)))
        created.append(result)
        print(f"\nup after {time.monotonic() - started:.1f} s, two attempts")
    assert int(result.outs["ports"]["node_manager"]) != port
    assert not set(first_ports.calls[0].values()) & {int(p) for p in result.outs["ports"].values()}
    log = head_log(state_dir)
    assert "attempt 2:" in log and "attempt 3:" not in log
    assert re.search(rf"a port was taken \(raylet\.err: .*The specified port is {port}\b.*\); retrying with new ports",
                     log), log[-3000:]
    assert "timed out during startup" not in log  # abandoned before Ray's own 30 s wait for the raylet
    assert run_task(result.outs) == "42"


@needs_ray
@linux_only
@pytest.mark.ray
def test_a_raylet_failing_for_another_reason_fails_the_create_at_once_naming_the_cause(state_dir, monkeypatch):
    monkeypatch.setenv("RAY_memory_usage_threshold", "2")  # the raylet refuses it at startup (must be <= 1)
    started = time.monotonic()
    with pytest.raises(RayHeadError) as info:
        LocalRayHeadProvider().create(checked(str(state_dir)))
    elapsed = time.monotonic() - started
    print(f"\nfailed after {elapsed:.1f} s: {str(info.value)[:300]}")
    message = str(info.value)
    assert "cause: raylet.err: " in message and "usage_threshold must be <= 1" in message
    assert "unexpected system state" not in message.split("---")[0]  # Ray's boilerplate is dropped
    log = head_log(state_dir)
    assert "attempt 2:" not in log and "timed out during startup" not in log
    assert processes_of(next(state_dir.glob("rayhead-*")).name) == []  # nothing of it is left running


@needs_ray
@linux_only
@pytest.mark.ray
def test_the_dashboard_url_is_reported_only_for_the_heads_own_dashboard(state_dir, first_ports, created):
    """Another process listens on the dashboard port once Ray has checked it: that is not our dashboard."""
    imposter = socket.socket()
    bound: list[int] = []
    done = threading.Event()

    def listen_when_ray_checked_the_port() -> None:
        while not done.is_set():
            if first_ports.calls and list(state_dir.glob("rayhead-*/ray/session_latest/logs/raylet.out")):
                port = int(first_ports.calls[0]["dashboard"])
                try:
                    imposter.bind(("127.0.0.1", port))
                    imposter.listen()
                    bound.append(port)
                except OSError:
                    pass  # our own dashboard holds it (a full `ray[default]` install)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=listen_when_ray_checked_the_port)
    thread.start()
    try:
        result = LocalRayHeadProvider().create(checked(str(state_dir)))
        created.append(result)
    finally:
        done.set()
        thread.join()
    try:
        outs = result.outs
        ours = {port for _, _, port in listeners(session_pids(result))}
        dashboard = int(outs["ports"]["dashboard"])
        print(f"\nimposter on {bound}, dashboard port {dashboard}, ours: {dashboard in ours}, "
              f"url {outs['ray_dashboard_url']}")
        # The imposter really holds the head's dashboard port (with `ray[default]` Ray's dashboard may bind
        # it first; then this test cannot stage its case and says so).
        assert bound == [dashboard], f"the imposter could not take the dashboard port {dashboard} (bound: {bound})"
        assert imposter.getsockname() == ("127.0.0.1", dashboard)
        assert dashboard not in ours and outs["ray_dashboard_url"] is None
    finally:
        imposter.close()


def test_a_head_whose_creator_died_mid_create_is_stopped_by_the_next_create(tmp_path):
    """An engine killed during `pulumi up` kills the provider host while the head it was starting runs on,
    recorded in no state; the next create under the same state dir stops it (and only it)."""
    import json
    import multiprocessing

    from mixpeek_infra.ray.head_process import PENDING_FILE, stop_orphaned_heads

    root = tmp_path / "ray"
    head_dir = root / "rayhead-0123456789ab"
    head_dir.mkdir(parents=True)
    # A stand-in for the half-started head: a session leader carrying the head id, as `ray start` is.
    from mixpeek_infra.processes import process_info
    env = {**os.environ, MARKER_ENV: head_dir.name}
    head = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], env=env, start_new_session=True)
    # Its update: this process and one that has exited (as the killed engine has).
    creator = multiprocessing.get_context("spawn").Process(target=int)
    creator.start()
    creator_info = process_info(creator.pid)
    creator.join()
    record = {"creator": [[os.getpid(), process_info(os.getpid()).start], [creator.pid, creator_info.start]],
              "pid": head.pid, "start": process_info(head.pid).start, "boot_id": None, "temp_dir": ""}
    (head_dir / PENDING_FILE).write_text(json.dumps(record))
    # Another head still being created by a live process (this one) is left alone.
    busy = root / "rayhead-ba9876543210"
    busy.mkdir()
    me = process_info(os.getpid())
    (busy / PENDING_FILE).write_text(json.dumps({**record, "creator": [[os.getpid(), me.start]]}))
    try:
        assert stop_orphaned_heads(root) == [head_dir.name]
        assert head.wait(timeout=120) is not None  # generous: the machine may be busy
        assert not (head_dir / PENDING_FILE).exists() and (busy / PENDING_FILE).exists()
    finally:
        if head.poll() is None:
            head.kill()


# --- processes that are not ours (issue 18, items 1 and 2) ------------------------------------------


def session_of(leader: int) -> set[tuple[int, float]]:
    """(pid, start) of every live process whose session id is `leader`."""
    return {(p.pid, p.start) for p in process_table() if p.sid == leader and not p.zombie}


@pytest.fixture
def unrelated_session():
    """Someone else's program: a session leader (sh) with two children (sleep), none carrying a head id.

    Yields its `Popen`; everything of the session is killed afterwards.
    """
    env = {k: v for k, v in os.environ.items() if k != MARKER_ENV}
    procs: list[subprocess.Popen] = []

    def start(leader_exits: bool = False) -> subprocess.Popen:
        script = "sleep 300 & sleep 300 & " + ("exit 0" if leader_exits else "wait")
        proc = subprocess.Popen(["sh", "-c", script], start_new_session=True, env=env)
        procs.append(proc)
        wait_for(lambda: len({pid for pid, _ in session_of(proc.pid)} - {proc.pid}) == 2, "the two sleeps")
        if leader_exits:
            proc.wait(timeout=120)  # reaped: its pid is free, its children keep the session id
        return proc

    yield start
    for proc in procs:
        for pid, _ in session_of(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def a_dead_update() -> list[list[float]]:
    """The lineage of an update that is gone (as `creating.json` records its creator): one exited process."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    start = wait_for(lambda: process_info(proc.pid), "the creator to start").start
    proc.wait(timeout=120)
    return [[proc.pid, start]]


@needs_ray
@linux_only
@pytest.mark.ray
def test_after_pid_reuse_refresh_and_delete_spare_the_unrelated_session(state_dir, unrelated_session):
    """A head's session is killed out of band (a crash); an unrelated program then holds the leader's pid.

    Refresh (`read`) and `delete` sweep nothing of that program: its processes do not carry the head id.
    """
    provider = LocalRayHeadProvider()
    result = provider.create(checked(str(state_dir)))
    outs = result.outs
    os.killpg(int(outs["pid"]), signal.SIGKILL)
    wait_for(lambda: not processes_of(result.id), "the crashed head's processes to go")
    other = unrelated_session()
    reused = {**outs, "pid": other.pid, "pgid": other.pid, "sid": other.pid}  # the state's pid, now someone else's
    before = session_of(other.pid)
    assert len(before) == 3
    assert provider.read(result.id, dict(reused)).id == ""
    assert session_of(other.pid) == before
    provider.delete(result.id, dict(reused))
    assert session_of(other.pid) == before and other.poll() is None
    assert not os.path.exists(outs["head_dir"])


@linux_only
def test_refresh_spares_a_session_whose_leader_exited_after_pid_reuse(unrelated_session):
    """The reused pid's own leader has exited too: its children keep the session id, and are still not ours."""
    other = unrelated_session(leader_exits=True)
    before = session_of(other.pid)
    assert len(before) == 2 and process_info(other.pid) is None
    start = min(s for _, s in before) - 100  # the crashed head started before any of them
    state = {"pid": other.pid, "start_time": start, "boot_id": None, "ports": {}}
    assert LocalRayHeadProvider().read("rayhead-0123456789ab", dict(state)).id == ""
    LocalRayHeadProvider().delete("rayhead-0123456789ab", dict(state))
    assert session_of(other.pid) == before


@needs_ray
@linux_only
@pytest.mark.ray
def test_a_pending_marker_is_checked_before_it_is_believed(state_dir, tmp_path, unrelated_session, created):
    """`creating.json` files naming a dead creator, an unrelated session and paths outside the state dir:
    the next create stops nothing of that session and removes nothing outside the state dir."""
    import json

    from mixpeek_infra.processes import current_boot_id
    from mixpeek_infra.ray.head_process import PENDING_FILE

    other = unrelated_session()
    before = session_of(other.pid)
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_text("someone else's")
    link = tmp_path / "someone-elses-link"
    link.symlink_to(precious, target_is_directory=True)
    record = {"creator": a_dead_update(), "pid": other.pid, "start": process_info(other.pid).start,
              "boot_id": current_boot_id(), "temp_dir": str(link)}
    planted = state_dir / "rayhead-0123456789ab"
    planted.mkdir()
    (planted / PENDING_FILE).write_text(json.dumps(record))
    # A head directory that is a symlink to someone else's directory, holding a marker and a `ray/`.
    foreign = tmp_path / "foreign"
    (foreign / "ray").mkdir(parents=True)
    (foreign / "ray" / "keep").write_text("someone else's")
    (foreign / PENDING_FILE).write_text(json.dumps(record))
    (state_dir / "rayhead-ba9876543210").symlink_to(foreign, target_is_directory=True)
    # Markers that are not records at all.
    for name, text in (("rayhead-aaaaaaaaaaaa", json.dumps({**record, "pid": 1})),
                       ("rayhead-bbbbbbbbbbbb", json.dumps({**record, "pid": str(other.pid)})),
                       ("rayhead-cccccccccccc", json.dumps([record])), ("not-a-head", json.dumps(record))):
        (state_dir / name).mkdir()
        (state_dir / name / PENDING_FILE).write_text(text)

    result = LocalRayHeadProvider().create(checked(str(state_dir)))
    created.append(result)
    assert session_of(other.pid) == before and other.poll() is None
    assert link.is_symlink() and (precious / "keep").exists()
    assert (foreign / "ray" / "keep").exists() and (foreign / PENDING_FILE).exists()
    assert run_task(result.outs) == "42"


# --- a preview shows only real changes (issue 18, item 10) ----------------------------------------------


@needs_ray
@linux_only
@pytest.mark.ray
@pytest.mark.pulumi_cli
def test_an_in_place_collection_update_previews_no_change_of_the_local_ray_head(tmp_path, state_dir):
    """Adding `final_snapshot` updates each collection in place and touches no Ray head: the preview shows
    the collections only, for a generated and for a fixed namespace id, and `up` leaves the heads as they
    were. A change that does give a namespace a new id (its collection replaced) still shows the head."""
    import copy
    import json

    import yaml
    from pulumicli import ROOT, PulumiProject, cli_bin_dir, ops_by_name, ray_sessions

    bin_dir = cli_bin_dir()
    dev = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    body = dev["config"]["mixpeek-infra:namespaces"][0]
    body["infrastructure"] = {"compute_tier": "dedicated_cpu", "min_workers": 0, "max_workers": 1}
    fixed = {**copy.deepcopy(body), "namespace_name": "playlists_fixed_id"}
    config = {"config": {"mixpeek-infra:qdrant": {"path": str(tmp_path / "qdrant")},
                         "mixpeek-infra:ray": {"mode": "local", "state_dir": str(state_dir),
                                               "num_cpus": 1},
                         "mixpeek-infra:namespaces": [body, {"request": fixed, "namespace_id": "ns_0123456789"}]}}
    proj = PulumiProject(tmp_path / "proj", bin_dir, {"t": config})
    proj.init("t")
    heads = {"spotify_playlists_dev-ray", "playlists_fixed_id-ray"}
    collections = {"spotify_playlists_dev-collection", "playlists_fixed_id-collection"}

    def head_outputs() -> dict[str, dict]:
        return {r["urn"].split("::")[-1]: r["outputs"] for r in proj.resources("t")
                if r["type"].endswith("mixpeek:LocalRayHead")}

    try:
        proj.run("up", "--yes", "-s", "t", timeout=1200)
        before = head_outputs()
        assert set(before) == heads
        config["config"]["mixpeek-infra:qdrant"]["final_snapshot"] = str(tmp_path / "snapshots")
        proj.write_stack("t", config)
        ops = ops_by_name(proj.preview_steps("t"))
        changed = {name: op for name, op in ops.items() if op != "same"}
        assert changed == {name: "update" for name in collections}, ops
        proj.run("up", "--yes", "-s", "t", timeout=1200)
        after = head_outputs()
        for name in heads:
            assert {k: after[name][k] for k in ("pid", "start_time", "namespace_id")} == \
                   {k: before[name][k] for k in ("pid", "start_time", "namespace_id")}
        assert before["playlists_fixed_id-ray"]["namespace_id"] == "ns_0123456789"
        assert set(ops_by_name(proj.preview_steps("t")).values()) <= {"same"}  # nothing left to do
        # A new collection name replaces the collection, and a generated id is generated anew: a real change.
        config["config"]["mixpeek-infra:namespaces"][0]["infrastructure"]["qdrant_collection"] = "playlists_moved"
        proj.write_stack("t", config)
        ops = ops_by_name(proj.preview_steps("t"))
        assert ops["spotify_playlists_dev-collection"] in ("replace", "create-replacement", "delete-replaced"), ops
        assert ops["spotify_playlists_dev-ray"] == "update" and ops.get("playlists_fixed_id-ray", "same") == "same", ops
    finally:
        config["config"]["mixpeek-infra:namespaces"][0].setdefault("infrastructure", {}).pop("qdrant_collection", None)
        for entry in config["config"]["mixpeek-infra:namespaces"]:
            if isinstance(entry, dict) and "request" in entry:
                entry["deletion_protection"] = False
        proj.write_stack("t", config)
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "t", check=False, timeout=1200)
        for session in ray_sessions(proj):
            try:
                os.killpg(session, signal.SIGKILL)
            except ProcessLookupError:
                pass
        print(json.dumps({"left": sorted(ray_sessions(proj))}))


def test_delete_and_refresh_remove_nothing_outside_the_heads_own_directory(tmp_path, unrelated_session):
    """State outputs are data too: a `head_dir` outside the state dir (or not named after the head), a
    `temp_dir` that is someone else's symlink and a pid of someone else's are left alone."""
    state = tmp_path / "state"
    state.mkdir()
    elsewhere = tmp_path / "elsewhere" / "rayhead-0123456789ab"  # a head's name, outside its state dir
    elsewhere.mkdir(parents=True)
    (elsewhere / "keep").write_text("someone else's")
    precious = tmp_path / "precious"
    precious.mkdir()
    link = tmp_path / "someone-elses-link"
    link.symlink_to(precious, target_is_directory=True)
    other = unrelated_session()
    before = session_of(other.pid)
    outs = {"pid": other.pid, "start_time": process_info(other.pid).start, "boot_id": None, "ports": {},
            "state_path": str(state), "head_dir": str(elsewhere), "temp_dir": str(link)}
    provider = LocalRayHeadProvider()
    assert provider.read("rayhead-0123456789ab", dict(outs)).id == ""
    provider.delete("rayhead-0123456789ab", dict(outs))
    mine = state / "rayhead-0123456789ab"
    mine.mkdir()
    provider.delete("rayhead-ba9876543210", {**outs, "head_dir": str(mine)})  # another head's directory
    assert (elsewhere / "keep").exists() and link.is_symlink() and mine.is_dir()
    assert session_of(other.pid) == before
    provider.delete("rayhead-0123456789ab", {**outs, "head_dir": str(mine), "temp_dir": None})
    assert not mine.exists()  # the head's own directory does go
