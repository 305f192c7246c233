"""The local Ray head provider against a real Ray on this machine.

Two heads are shared by the module (starting one costs seconds): head A is created in this process,
head B through the Pulumi SDK's dynamic provider host, driven over gRPC as the engine does, and that
host is stopped afterwards, as the engine stops it when `pulumi up` ends. The tests then connect
clients, refresh and diff them; tests that delete or kill a head start one of their own (the shared
ones only watch). Every head is deleted in teardown whatever happens; `ray stop` is never used.
Without Ray these tests skip, and fail instead where CI sets `MIXPEEK_REQUIRE_RAY=1`.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import require_or_skip
from mixpeek_infra.processes import process_info, process_table
from mixpeek_infra.ray import _process, head_process, local
from mixpeek_infra.ray._process import leader_alive, session_members
from mixpeek_infra.ray.head_process import MAX_TEMP_DIR
from mixpeek_infra.ray.local import LocalRayHeadProvider
from mixpeek_infra.ray.ports import port_is_free

URN = "urn:pulumi:dev::mixpeek-infra::pulumi-python:dynamic/mixpeek:LocalRayHead::{}"
RAY_AVAILABLE = importlib.util.find_spec("ray") is not None
#: `serialize_provider(LocalRayHeadProvider())` as the code before the split of ray/local.py wrote it into
#: every stack's state (`__provider`); it must keep loading.
PICKLED_PROVIDER = Path(__file__).parent / "data" / "provider_local_ray_head.b64"



def require_ray() -> None:
    """Skip without Ray; fail instead where `MIXPEEK_REQUIRE_RAY=1` (CI: this tier must run)."""
    if not RAY_AVAILABLE:
        require_or_skip("Ray is not installed: pip install 'mixpeek-infra[local]'", "MIXPEEK_REQUIRE_RAY")


@pytest.fixture
def ray_installed() -> None:
    require_ray()


needs_ray = pytest.mark.usefixtures("ray_installed")


def wait_for(condition, what: str, timeout: float = 120.0):
    """Poll `condition` until it returns a true value and return that; fail naming `what` after `timeout`
    seconds (generous: the machine may be busy)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still waiting after {timeout:.0f} s for {what}"
        time.sleep(0.05)
    return value

TASK = r"""
import sys, ray
ray.init(sys.argv[1])
@ray.remote
def double(x):
    return 2 * x
answer = ray.get(double.remote(21))
ports = sorted(n["NodeManagerPort"] for n in ray.nodes() if n["Alive"])
ray.shutdown()
print(answer, *ports)
"""


def run_task(outs: dict, attempt_timeout: float = 40.0, attempts: int = 3) -> str:
    """Run one Ray task on a head through Ray Client; return its result, checking it ran on that head.

    A client connect can fail or stall for reasons upstream of this project, so a client that
    fails or stalls is retried, at most `attempts` times.
    """
    env = {**os.environ, "RAY_CLIENT_RECONNECT_GRACE_PERIOD": "0"}  # fail fast instead of reconnecting
    errors = []
    for attempt in range(attempts):
        proc = subprocess.Popen([sys.executable, "-c", TASK, outs["ray_head_node_url"]], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)
        try:
            out, err = proc.communicate(timeout=attempt_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            err = f"stalled for {attempt_timeout:.0f} s\n{err}"
        if proc.returncode == 0 and out.strip():
            answer, *ports = out.strip().splitlines()[-1].split()
            assert [int(p) for p in ports] == [int(outs["ports"]["node_manager"])]  # this head, no other
            if errors:
                print(f"\n{outs['ray_head_node_url']}: task ran on attempt {attempt + 1}; before: {errors}")
            return answer
        errors.append(err[-400:])
    raise AssertionError(f"no task ran on {outs['ray_head_node_url']}: {errors}")


def inputs(state_dir: str, **extra) -> dict:
    """Inputs as the resource sends them (before check)."""
    return {"state_dir": state_dir, "state_path": state_dir, "namespace_id": "ns_0123456789", "num_cpus": 1,
            "num_gpus": None, "include_dashboard": True, "ready_timeout": 90.0, "stop_timeout": 20.0, **extra}


class ProviderHost:
    """The SDK's dynamic provider host (`python -m pulumi.dynamic`), driven over gRPC like the engine."""

    def __init__(self) -> None:
        import grpc
        from google.protobuf import struct_pb2
        from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

        self.pb, self.struct = provider_pb2, struct_pb2
        self.proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.dynamic"], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env={**os.environ, "PULUMI_PROJECT": "mixpeek-infra"})
        port = int(self.proc.stdout.readline())
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        self.stub.Configure(provider_pb2.ConfigureRequest(args=struct_pb2.Struct(), acceptSecrets=False))

    @staticmethod
    def serialize(props: dict):
        from pulumi.runtime import rpc

        return asyncio.run(rpc.serialize_properties(props, {}))

    def create(self, name: str, props: dict) -> tuple[str, dict]:
        from pulumi.dynamic.dynamic import serialize_provider
        from pulumi.runtime import rpc

        news = self.serialize({**props, "__provider": serialize_provider(LocalRayHeadProvider())})
        checked = self.stub.Check(self.pb.CheckRequest(urn=URN.format(name), olds=self.struct.Struct(), news=news))
        assert not checked.failures, checked.failures
        created = self.stub.Create(self.pb.CreateRequest(urn=URN.format(name), properties=checked.inputs, timeout=300))
        return created.id, rpc.deserialize_properties(created.properties)

    def stop(self) -> None:
        self.channel.close()
        self.proc.terminate()
        self.proc.wait(timeout=120)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()


@pytest.fixture(scope="module")
def heads(tmp_path_factory):
    """Heads A (created in this process) and B (created through a provider host that then exits)."""
    require_ray()
    provider = LocalRayHeadProvider()
    short_dir = tempfile.mkdtemp(prefix="mxt", dir="/tmp")  # short: Ray's temp dir lives inside it
    long_dir = str(tmp_path_factory.mktemp("a-state-directory-with-a-deliberately-long-name") / "ray" / "state")
    created: dict[str, dict] = {}
    errors: list[BaseException] = []

    def create_b() -> None:
        try:
            host = ProviderHost()
            try:
                head_id, outs = host.create("head-b", inputs(long_dir))
                created["B"] = {"id": head_id, "outs": outs, "host_pid": host.proc.pid}
            finally:
                host.stop()
        except BaseException as exc:  # reported in the main thread
            errors.append(exc)

    thread = threading.Thread(target=create_b)
    started = time.monotonic()
    thread.start()
    try:
        try:
            checked = provider.check({}, inputs(short_dir))
            assert not checked.failures
            result = provider.create(checked.inputs)
            created["A"] = {"id": result.id, "outs": result.outs}
        finally:
            thread.join(timeout=900)  # generous: B's create is bounded by the RPC's own timeout
        assert not thread.is_alive(), "head B's create through the provider host never returned"
        if errors:
            raise errors[0]
        created["wall_seconds"] = time.monotonic() - started
        yield created
    finally:
        for key in ("A", "B"):
            if key in created:
                provider.delete(created[key]["id"], created[key]["outs"])
        shutil.rmtree(short_dir, ignore_errors=True)


def _listen_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port` (Linux /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local_addr, state = line.split()[1], line.split()[3]
            addr, hex_port = local_addr.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.add(addr)
    return found


@needs_ray
@pytest.mark.ray
def test_heads_are_ready_on_distinct_free_ports(heads):
    a, b = heads["A"]["outs"], heads["B"]["outs"]
    print(f"\nready: A {a['ready_seconds']} s, B {b['ready_seconds']} s (both started together; wall "
          f"{heads['wall_seconds']:.1f} s)")
    for outs in (a, b):
        ports = {k: int(v) for k, v in outs["ports"].items()}
        assert set(ports) == set(head_process.PORT_FLAGS) and len(set(ports.values())) == len(ports)
        assert outs["ray_head_node_url"] == f"ray://127.0.0.1:{ports['client']}"
        assert outs["gcs_address"] == f"127.0.0.1:{ports['gcs']}"
        assert outs["pid"] == outs["pgid"] == outs["sid"]
        assert outs["ray_version"]
        assert 0 < outs["ready_seconds"] < 90
    assert not set(a["ports"].values()) & set(b["ports"].values())
    assert heads["A"]["id"] != heads["B"]["id"]


@needs_ray
@pytest.mark.ray
def test_temp_dirs_are_short_and_belong_to_the_state_dir(heads):
    a, b = heads["A"]["outs"], heads["B"]["outs"]
    for outs in (a, b):
        assert len(outs["temp_dir"]) <= MAX_TEMP_DIR
        assert os.path.realpath(outs["temp_dir"]).startswith(os.path.realpath(outs["head_dir"]))
        assert outs["head_dir"].startswith(outs["state_path"])
        sockets = list(Path(outs["temp_dir"]).glob("session_*/sockets/*"))
        assert sockets and all(len(str(s)) <= MAX_TEMP_DIR + 64 for s in sockets)
    short = len(os.path.join(a["state_path"], heads["A"]["id"], "ray")) <= MAX_TEMP_DIR
    assert os.path.islink(a["temp_dir"]) is not short  # short state dir: Ray's temp dir is inside it
    assert os.path.islink(b["temp_dir"])  # long state dir: a short symlink points into it


@needs_ray
@pytest.mark.ray
def test_dashboard_binds_loopback_only(heads):
    for outs in (heads["A"]["outs"], heads["B"]["outs"]):
        addresses = _listen_addresses(int(outs["ports"]["dashboard"]))
        # 0100007F is 127.0.0.1 in /proc/net/tcp; with a minimal Ray install there is no dashboard at all.
        assert addresses <= {"0100007F", "0000000000000000FFFF00000100007F"}, addresses
        if outs.get("ray_dashboard_url") is not None:
            assert outs["ray_dashboard_url"].startswith("http://127.0.0.1:")
        else:
            assert not addresses


@needs_ray
@pytest.mark.ray
def test_head_outlives_the_provider_host_that_created_it(heads):
    b = heads["B"]
    host = process_info(b["host_pid"])
    assert host is None or host.zombie  # the provider host has exited
    leader = process_info(int(b["outs"]["pid"]))
    assert leader is not None and leader.sid == leader.pid and leader.ppid != b["host_pid"]
    assert alive(b)


@needs_ray
@pytest.mark.ray
def test_clients_connect_and_run_tasks(heads):
    # One after the other: Ray's client proxies share one port range machine-wide, so two heads taking
    # their first client at the same instant can cross wires (see docs/ray.md, "Known limits").
    assert run_task(heads["A"]["outs"]) == "42"
    assert run_task(heads["B"]["outs"]) == "42"


@needs_ray
@pytest.mark.ray
def test_refresh_and_diff_of_a_live_head(heads):
    provider = LocalRayHeadProvider()
    a = heads["A"]
    read = provider.read(a["id"], dict(a["outs"]))
    assert read.id == a["id"] and read.outs["pid"] == a["outs"]["pid"]
    # The engine passes old outputs as olds and numbers as floats: identical inputs give no change.
    as_sent = {**inputs(a["outs"]["state_dir"]), "num_cpus": 1.0, "ready_timeout": 90, "stop_timeout": 20}
    news = provider.check(a["outs"], as_sent).inputs
    same = provider.diff(a["id"], a["outs"], news)
    assert (same.changes, same.replaces) == (False, [])
    renamed = provider.diff(a["id"], a["outs"], {**news, "namespace_id": "ns_abcdefabcd"})
    assert (renamed.changes, renamed.replaces) == (True, [])
    moved = provider.diff(a["id"], a["outs"], {**news, "state_dir": "/elsewhere"})
    assert moved.changes and moved.replaces == ["state_dir"]
    updated = provider.update(a["id"], a["outs"], {**news, "namespace_id": "ns_abcdefabcd"})
    assert updated.outs["namespace_id"] == "ns_abcdefabcd" and updated.outs["pid"] == a["outs"]["pid"]


@pytest.fixture
def own_head(tmp_path):
    """A head of the test's own (to delete or kill), deleted afterwards whatever happens."""
    require_ray()
    provider = LocalRayHeadProvider()
    result = provider.create(provider.check({}, inputs(str(tmp_path / "ray"))).inputs)
    yield {"id": result.id, "outs": result.outs}
    provider.delete(result.id, result.outs)


def members(head: dict) -> list:
    """The live processes of `head` (`{"id", "outs"}`), as the provider proves them."""
    return session_members(int(head["outs"]["pid"]), float(head["outs"]["start_time"]), head["id"])


def alive(head: dict) -> bool:
    return leader_alive(int(head["outs"]["pid"]), float(head["outs"]["start_time"]), head["id"])


@needs_ray
@pytest.mark.ray
def test_delete_stops_only_its_own_session(own_head, heads):
    provider = LocalRayHeadProvider()
    mine, b = own_head, heads["B"]
    assert len(members(mine)) > 3  # ray start, gcs, raylet, agents, ...
    t0 = time.monotonic()
    provider.delete(mine["id"], mine["outs"])
    print(f"\ndelete took {time.monotonic() - t0:.1f} s")
    assert members(mine) == []
    assert all(port_is_free(int(p)) for p in mine["outs"]["ports"].values())
    assert not os.path.exists(mine["outs"]["head_dir"])
    provider.delete(mine["id"], mine["outs"])  # deleting again succeeds
    assert provider.read(mine["id"], mine["outs"]).id == ""
    # The other head did not notice.
    assert alive(b)
    assert run_task(b["outs"]) == "42"


@needs_ray
@pytest.mark.ray
def test_killed_head_reads_as_gone_and_deletes_cleanly(own_head):
    provider = LocalRayHeadProvider()
    head = own_head
    os.kill(int(head["outs"]["pid"]), signal.SIGKILL)
    wait_for(lambda: not alive(head), "the killed leader to read as dead")
    read = provider.read(head["id"], dict(head["outs"]))
    assert read.id == ""  # the engine drops it from state; the next `pulumi up` creates a new head
    # Leftovers of the dead session were signalled by the sweep; under load they may take a moment to go.
    wait_for(lambda: members(head) == [], "the swept session's processes to go")
    provider.delete(head["id"], head["outs"])  # deleting a dead head succeeds
    wait_for(lambda: all(port_is_free(int(p)) for p in head["outs"]["ports"].values()), "the dead head's ports")


@needs_ray
@pytest.mark.ray
def test_head_killed_during_start_fails_clearly_and_the_next_run_completes(tmp_path):
    """SIGKILL the head's session while create waits for readiness: create fails with a clear error,
    nothing of that session is left, and a following create (the next `pulumi up`) succeeds."""
    provider = LocalRayHeadProvider()
    news = provider.check({}, inputs(str(tmp_path / "ray"))).inputs
    before = set(_process._CHILDREN)
    killed: list[int] = []

    def kill_when_started() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            fresh = set(_process._CHILDREN) - before
            if fresh and gcs_started(pid := next(iter(fresh))):
                # Mid-start: the GCS runs, so Ray is starting its components; the client server comes later.
                start = process_info(pid).start
                os.killpg(pid, signal.SIGKILL)
                killed.append((pid, start))
                return
            time.sleep(0.02)

    def gcs_started(leader: int) -> bool:
        for info in process_table():
            if info.sid == leader and not info.zombie:
                try:
                    if b"gcs_server" in Path(f"/proc/{info.pid}/cmdline").read_bytes():
                        return True
                except OSError:
                    pass
        return False

    killer = threading.Thread(target=kill_when_started)
    killer.start()
    with pytest.raises(head_process.RayHeadError) as info:
        provider.create(news)
    killer.join()
    assert killed and "ray://127.0.0.1:" in str(info.value)
    pid, start = killed[0]
    dead = {"id": next((tmp_path / "ray").glob("rayhead-*")).name, "outs": {"pid": pid, "start_time": start}}
    assert not alive(dead) and members(dead) == []
    result = provider.create(news)
    try:
        assert run_task(result.outs) == "42"
    finally:
        provider.delete(result.id, result.outs)
    assert not alive({"id": result.id, "outs": result.outs})


# --- without Ray ---------------------------------------------------------------------------------


def test_check_names_bad_inputs():
    result = LocalRayHeadProvider().check({}, {"state_dir": "", "num_cpus": 1.5, "ready_timeout": -1,
                                               "include_dashboard": "yes"})
    assert sorted(f.property for f in result.failures) == ["include_dashboard", "num_cpus", "ready_timeout",
                                                           "state_dir"]


def test_check_coerces_engine_floats():
    result = LocalRayHeadProvider().check({}, {"state_dir": ".mixpeek/ray", "num_cpus": 2.0, "ready_timeout": 30})
    assert not result.failures
    assert result.inputs["num_cpus"] == 2 and isinstance(result.inputs["num_cpus"], int)
    assert result.inputs["ready_timeout"] == 30.0 and result.inputs["include_dashboard"] is True


def test_unknown_inputs_at_preview_show_as_changes():
    unknown = local.UNKNOWN
    olds = {"state_dir": ".mixpeek/ray", "namespace_id": "ns_0123456789", "num_cpus": None, "num_gpus": None,
            "include_dashboard": True, "ready_timeout": 120.0, "stop_timeout": 20.0}
    diff = LocalRayHeadProvider().diff("rayhead-x", olds, {**olds, "namespace_id": unknown})
    assert diff.changes and diff.replaces == []


def test_delete_of_a_head_that_never_ran_succeeds(tmp_path):
    LocalRayHeadProvider().delete("rayhead-000000000000", {"pid": 2 ** 22 - 1, "start_time": 1.0, "ports": {}})
    assert LocalRayHeadProvider().read("rayhead-000000000000", {"pid": 2 ** 22 - 1, "start_time": 1.0}).id == ""


def test_serialized_provider_is_small_and_importable():
    """`__provider` pickles the class by reference: small, and loadable where mixpeek_infra is importable."""
    from pulumi.dynamic.dynamic import serialize_provider

    blob = serialize_provider(LocalRayHeadProvider())
    assert len(blob) <= 256, len(blob)
    code = ("import base64, sys, dill\n"
            f"p = dill.loads(base64.b64decode({blob!r}))\n"
            "assert type(p).__module__ == 'mixpeek_infra.ray.local' and vars(p) == {}\n"
            "assert 'ray' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_provider_pickled_by_earlier_code_still_loads_and_checks():
    """A `__provider` from a stack's state, written before ray/local.py was split, unpickles in a fresh
    interpreter as the SDK's provider host does it, and its check and create work as today's."""
    blob = PICKLED_PROVIDER.read_text().strip()
    code = ("import base64, sys, dill\n"
            f"p = dill.loads(base64.b64decode({blob!r}))\n"
            "cls = type(p)\n"
            "assert (cls.__module__, cls.__qualname__) == ('mixpeek_infra.ray.local', 'LocalRayHeadProvider'), cls\n"
            "assert callable(p.create) and callable(p.check) and callable(p.delete) and vars(p) == {}\n"
            "r = p.check({}, {'state_dir': '.mixpeek/ray', 'num_cpus': 2.0, 'ready_timeout': 30})\n"
            "assert not r.failures, r.failures\n"
            "assert (r.inputs['num_cpus'], r.inputs['ready_timeout'], r.inputs['stop_timeout']) == (2, 30.0, 20.0)\n"
            "bad = p.check({}, {'state_dir': 5, 'num_cpus': -3})\n"
            "assert sorted(f.property for f in bad.failures) == ['num_cpus', 'state_dir'], bad.failures\n"
            "assert not {'ray', 'pydantic'} & set(sys.modules), 'loading the provider stays light'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_check_and_the_spec_share_one_normaliser():
    """`RayHead.local` and the provider's check refuse the same values with the same messages."""
    from mixpeek_infra.ray.spec import InvalidRayHead, RayHead

    bad = [{"num_cpus": -3}, {"num_cpus": True}, {"num_cpus": 1.5}, {"num_cpus": "2"}, {"state_dir": 5},
           {"state_dir": "  "}, {"ready_timeout": True}, {"ready_timeout": 0}, {"stop_timeout": -1},
           {"stop_timeout": float("inf")}, {"ready_timeout": "soon"}]
    for values in bad:
        with pytest.raises(InvalidRayHead) as exc:
            RayHead.local(**values)
        checked = LocalRayHeadProvider().check({}, {"state_dir": ".mixpeek/ray", **values})
        assert [(f"ray.{f.property}", f.reason) for f in checked.failures] == list(exc.value.problems), values


def test_check_passes_unknown_values_at_preview():
    unknown = local.UNKNOWN
    result = LocalRayHeadProvider().check({}, {"state_dir": unknown, "num_cpus": unknown, "ready_timeout": unknown})
    assert not result.failures
    assert result.inputs["state_dir"] == result.inputs["num_cpus"] == result.inputs["ready_timeout"] == unknown


def _fake_session(head_id: str) -> tuple[int, float]:
    """A session leader with a child, both carrying `head_id` like a head's processes (no Ray needed)."""
    proc = subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True,
                            env={**os.environ, _process.MARKER_ENV: head_id})
    _process._CHILDREN[proc.pid] = proc  # reaped like a head started by this process
    start = process_info(proc.pid).start
    wait_for(lambda: len(session_members(proc.pid, start, head_id)) == 3, "sh and its two sleeps")
    return proc.pid, start


def test_stop_session_spares_processes_of_another_head():
    """A session whose processes carry another head's id (e.g. a reused pid) is left alone."""
    pid, start = _fake_session("rayhead-someoneelse")
    try:
        assert not leader_alive(pid, start, "rayhead-mine")
        assert stop_session_for(pid, start, "rayhead-mine") == []
        assert session_members(pid, start, "rayhead-mine") == []
        assert len(session_members(pid, start, "rayhead-someoneelse")) == 3  # sh and both sleeps still run
    finally:
        assert stop_session_for(pid, start, "rayhead-someoneelse") == []
    assert session_members(pid, start, "rayhead-someoneelse") == []


def stop_session_for(pid, start, head_id):
    return _process.stop_session(pid, start, timeout=2.0, head_id=head_id)
