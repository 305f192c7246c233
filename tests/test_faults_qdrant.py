"""Faults on both Qdrant targets, through the providers' own methods, with real parts.

Server target: a real qdrant-client (REST) and `ServerStore` against `FakeQdrant`, a local HTTP
endpoint in a thread that emulates the part of Qdrant's REST API qdrant-client uses here (service
info, collection create/get/update/delete, payload index create/delete, points upsert, retrieve and
count), answering with Qdrant-shaped JSON, and that fails or stalls on purpose: a closed port
(unreachable), answers slower than the target's timeout (slow), HTTP errors from the Nth payload
index creation on (failing halfway through a namespace).

Embedded target: real Qdrant Edge shards in temp dirs: a shard held open by another process
(locked), a read-only target directory, a corrupted shard (config, WAL, missing config).

Each fault must end in a clear error (naming the URL or path, never the API key), lose no data
(points upserted before are still there, counted and retrieved), and a following run (the
providers' create/update again, as the next `pulumi up` makes them) must complete once the fault
is gone.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import pytest

from conftest import free_port, require_or_skip
from enginehost import from_struct, to_struct
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
from mixpeek_infra.qdrant.store import (EdgeCorrupt, EdgeLocked, QdrantError, TargetUnavailable, forget_stores,
                                        open_store)
from mixpeek_infra.qdrant.store.edge import close_all_shards

pytestmark = [pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()
KEY = "fault-suite-secret-key-4d9e1b"
VECTOR = "image_extractor_v1_embedding"


# ---------------------------------------------------------------------------------------------
# A Qdrant REST endpoint that misbehaves on purpose


class FakeQdrant:
    """Enough of Qdrant's REST API for qdrant-client and `ServerStore`, in a thread on 127.0.0.1.

    Collections keep their metadata (the owner record `ServerStore` writes) as a server does.

    `on_request(method, path)` may return `("fail", status)` (answer that HTTP error without doing
    anything) or `("sleep", seconds)` (stall until `release()` or `seconds`, then do the work anyway, as a
    slow server does after its client gave up). `requests` logs `(method, path)` of every request received.
    """

    def __init__(self, port: int = 0, *, api_key: str | None = None, version: str = "1.18.0"):
        self.api_key = api_key
        self.version = version
        self.collections: dict[str, dict[str, Any]] = {}
        self.aliases: dict[str, str] = {}  # alias -> collection (Qdrant re-points an existing alias silently)
        self.requests: list[tuple[str, str]] = []
        self.on_request: Callable[[str, str], tuple[str, float] | None] | None = None
        self.lock = threading.Lock()
        self.stopping = threading.Event()  # set by close() or release(): stalled requests go on at once
        self.in_flight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _handle(self) -> None:
                with fake.lock:
                    fake.in_flight += 1
                try:
                    fake._serve(self)
                finally:
                    with fake.lock:
                        fake.in_flight -= 1

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def release(self) -> None:
        """End every stall now (its work is then done, as a slow server does after its client gave up)."""
        self.stopping.set()

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no request is being handled (a stalled one has finished its work)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.in_flight == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("FakeQdrant still busy")

    # -- HTTP plumbing ----------------------------------------------------------------------------

    def _serve(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        method = h.command
        with self.lock:
            self.requests.append((method, path))
        if self.api_key is not None and h.headers.get("api-key") != self.api_key:
            return self._reply(h, 401, {"status": {"error": "Must provide an API key or an Authorization bearer token"}})
        action = self.on_request(method, path) if self.on_request else None
        if action and action[0] == "fail":
            return self._reply(h, int(action[1]), {"status": {"error": f"Service internal error: injected fault "
                                                                         f"{int(action[1])}"}, "time": 0.0})
        if action and action[0] == "sleep":
            self.stopping.wait(float(action[1]))
        body = json.loads(raw) if raw else None
        try:
            status, result = self._route(method, path, body)
        except KeyError as exc:
            status, result = 404, {"status": {"error": f"Not found: Collection `{exc.args[0]}` doesn't exist!"},
                                   "time": 0.0}
        try:
            self._reply(h, status, result)
        except OSError:
            pass  # the client gave up waiting (slow server): the work is done all the same

    @staticmethod
    def _reply(h: BaseHTTPRequestHandler, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        h.wfile.flush()

    @staticmethod
    def _ok(result: Any) -> tuple[int, Any]:
        return 200, {"result": result, "status": "ok", "time": 0.0001}

    # -- the API ----------------------------------------------------------------------------------

    def _route(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if path in ("", "/"):
            return 200, {"title": "qdrant - vector search engine", "version": self.version}
        if path == "/collections" and method == "GET":
            with self.lock:
                return self._ok({"collections": [{"name": n} for n in self.collections]})
        if path == "/aliases" and method == "GET":
            with self.lock:
                return self._ok({"aliases": [{"alias_name": a, "collection_name": c} for a, c in self.aliases.items()]})
        if path == "/collections/aliases" and method == "POST":
            with self.lock:
                for action in body["actions"]:
                    if "create_alias" in action:
                        alias = action["create_alias"]["alias_name"]
                        if alias in self.collections:
                            return 409, {"status": {"error": f"Wrong input: Collection `{alias}` already exists!"}}
                        self.aliases[alias] = action["create_alias"]["collection_name"]
                    else:
                        self.aliases.pop(action["delete_alias"]["alias_name"], None)
                return self._ok(True)
        m = re.fullmatch(r"/collections/([^/]+)(/.*)?", path)
        if not m:
            return 404, {"status": {"error": f"no route {method} {path}"}, "time": 0.0}
        name, rest = m.group(1), m.group(2) or ""
        if not (rest == "" and method in ("PUT", "DELETE")):
            name = self.aliases.get(name, name)  # Qdrant resolves an alias for everything but create and delete
        with self.lock:
            if rest == "" and method == "GET":
                return self._ok(self._info(self.collections[name]))
            if rest == "" and method == "PUT":
                if name in self.collections:
                    return 409, {"status": {"error": f"Wrong input: Collection `{name}` already exists!"}, "time": 0.0}
                self.collections[name] = self._new_collection(body or {})
                return self._ok(True)
            if rest == "" and method == "PATCH":
                coll = self.collections[name]  # 404 when missing
                if (body or {}).get("metadata"):
                    coll["metadata"] = {**(coll.get("metadata") or {}), **body["metadata"]}
                return self._ok(True)
            if rest == "" and method == "DELETE":
                return self._ok(self.collections.pop(name, None) is not None)
            coll = self.collections[name]
            if rest == "/index" and method == "PUT":
                schema = body["field_schema"]
                if isinstance(schema, str):
                    info = {"data_type": schema, "points": 0}
                else:
                    schema = {k: v for k, v in schema.items() if v is not None}
                    info = {"data_type": schema["type"], "params": schema, "points": 0}
                coll["payload_schema"][body["field_name"]] = info
                return self._ok({"operation_id": self._op(coll), "status": "completed"})
            if rest.startswith("/index/") and method == "DELETE":
                coll["payload_schema"].pop(rest[len("/index/"):], None)
                return self._ok({"operation_id": self._op(coll), "status": "completed"})
            if rest == "/points" and method == "PUT":
                for point in body["points"]:
                    coll["points"][point["id"]] = {"id": point["id"], "vector": point.get("vector"),
                                                   "payload": point.get("payload") or {}}
                return self._ok({"operation_id": self._op(coll), "status": "completed"})
            if rest == "/points" and method == "POST":
                found = [coll["points"][i] for i in body["ids"] if i in coll["points"]]
                return self._ok([{"id": p["id"], "payload": p["payload"] if body.get("with_payload") else None,
                                  "vector": p["vector"] if body.get("with_vector") else None} for p in found])
            if rest == "/points/count" and method == "POST":
                return self._ok({"count": len(coll["points"])})
        return 404, {"status": {"error": f"no route {method} {path}"}, "time": 0.0}

    def collection(self, name: str) -> dict[str, Any]:
        """The collection `name` names (an alias resolved), as the server holds it."""
        return self.collections[self.aliases.get(name, name)]

    @staticmethod
    def _op(coll: dict[str, Any]) -> int:
        coll["ops"] += 1
        return coll["ops"]

    @staticmethod
    def _new_collection(body: dict[str, Any]) -> dict[str, Any]:
        vectors = {name: {"size": p["size"], "distance": p["distance"], "datatype": p.get("datatype") or "float32",
                          "on_disk": bool(p.get("on_disk"))} for name, p in body["vectors"].items()}
        hnsw = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000, "max_indexing_threads": 0,
                "on_disk": False}
        hnsw.update({k: v for k, v in (body.get("hnsw_config") or {}).items() if v is not None})
        params = {"vectors": vectors, "shard_number": body.get("shard_number") or 1,
                  "replication_factor": body.get("replication_factor") or 1, "write_consistency_factor": 1,
                  "on_disk_payload": body.get("on_disk_payload", True) is not False}
        return {"params": params, "hnsw": hnsw, "quantization": body.get("quantization_config"),
                "metadata": body.get("metadata"), "payload_schema": {}, "points": {}, "ops": 0}

    @staticmethod
    def _info(coll: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "green", "optimizer_status": "ok", "indexed_vectors_count": 0,
            "points_count": len(coll["points"]), "segments_count": 1,
            "config": {
                "params": coll["params"], "hnsw_config": coll["hnsw"],
                "optimizer_config": {"deleted_threshold": 0.2, "vacuum_min_vector_number": 1000,
                                     "default_segment_number": 0, "indexing_threshold": 10000,
                                     "flush_interval_sec": 5},
                "wal_config": {"wal_capacity_mb": 32, "wal_segments_ahead": 0},
                "quantization_config": coll["quantization"],
                **({"metadata": coll["metadata"]} if coll.get("metadata") else {}),
            },
            "payload_schema": coll["payload_schema"],
        }


# ---------------------------------------------------------------------------------------------
# Helpers: the providers' calls as the engine makes them (values through the wire format)


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def check(provider, news: dict) -> dict:
    result = provider.check({}, wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def create(provider, news: dict) -> dict:
    inputs = check(provider, news)
    result = provider.create(inputs)
    return {"id": result.id, "inputs": inputs, "outputs": wire(result.outs)}


def collection_inputs(plan, target, **extra) -> dict:
    return {"target": target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True, **extra}


def index_inputs(ix, target, collection: str, **extra) -> dict:
    return {"target": target, "collection_name": collection, "field_name": ix.field_name, "field_type": ix.type,
            "field_schema": dict(ix.field_schema), **extra}


def points(n: int = 3) -> list[dict]:
    out = []
    for i in range(n):
        vector = [0.0] * 768
        vector[i] = 1.0
        out.append({"id": i + 1, "vector": {VECTOR: vector},
                    "payload": {"collection_id": f"col_{i}", "metadata": {"title": f"playlist {i + 1}"}}})
    return out


@pytest.fixture
def seed_plan(seed):
    return plan_namespace(seed)


@pytest.fixture(autouse=True)
def _clean_stores():
    yield
    close_all_shards()
    forget_stores()


# ---------------------------------------------------------------------------------------------
# Server: unreachable, slow, failing halfway


def server_spec(url: str, timeout: float) -> dict:
    return {"kind": "server", "url": url, "timeout": timeout, "prefer_grpc": False}


def retrieve(url: str, collection: str, ids: list[int]) -> list[Any]:
    from qdrant_client import QdrantClient

    client = QdrantClient(url=url, api_key=KEY, timeout=5, check_compatibility=False)
    try:
        return client.retrieve(collection, ids, with_payload=True)
    finally:
        client.close()


def test_unreachable_server_fails_fast_naming_the_url_then_a_run_completes_once_it_is_up(seed_plan):
    port = free_port()  # nothing listens here yet
    url = f"http://127.0.0.1:{port}"
    target = server_spec(url, 1.0)
    plan = seed_plan
    ix = plan.payload_indexes[0]
    attempts = {
        "create collection": lambda: create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY,
                                                                           namespace_id="ns_00000000a1")),
        "create index": lambda: create(INDEXES, index_inputs(ix, target, "ns_00000000a1", api_key=KEY)),
        "refresh collection": lambda: COLLECTIONS.read("ns_00000000a1", wire(collection_inputs(
            plan, target, api_key=KEY, created_at="2026-01-01T00:00:00Z"))),
        "destroy collection": lambda: COLLECTIONS.delete("ns_00000000a1", wire(collection_inputs(
            plan, target, api_key=KEY, collection_name="ns_00000000a1"))),
    }
    for what, attempt in attempts.items():
        start = time.monotonic()
        with pytest.raises(TargetUnavailable) as info:
            attempt()
        elapsed = time.monotonic() - start
        message = str(info.value)
        assert url in message, (what, message)
        assert KEY not in message and KEY not in repr(info.value.args), what
        assert "did not answer" in message and "timeout 1s" in message, message
        assert elapsed < 1.0 + 60, (what, elapsed)  # gives up at the target's timeout (room for a loaded machine)

    # The server comes up on that port: the same cached store (client) recovers, the run completes.
    fake = FakeQdrant(port, api_key=KEY)
    try:
        coll = create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY, namespace_id="ns_00000000a1"))
        assert coll["id"] == "ns_00000000a1"
        for ix in plan.payload_indexes:
            create(INDEXES, index_inputs(ix, target, coll["id"], api_key=KEY))
        assert set(fake.collection("ns_00000000a1")["payload_schema"]) == {i.field_name for i in plan.payload_indexes}
    finally:
        fake.close()


@pytest.fixture
def fake():
    server = FakeQdrant(api_key=KEY)
    yield server
    server.close()


def test_slow_server_times_out_clearly_then_a_run_completes(fake, seed_plan):
    target = server_spec(fake.url, 1.0)
    fake.on_request = lambda method, path: ("sleep", 600.0)  # no answer before release(): far past the 1 s timeout
    start = time.monotonic()
    with pytest.raises(TargetUnavailable) as info:
        create(COLLECTIONS, collection_inputs(seed_plan, target, api_key=KEY))
    elapsed = time.monotonic() - start
    message = str(info.value)
    assert fake.url in message and KEY not in message
    assert re.search(r"(Read|Write|Connect|Pool)Timeout|timed out", message), message  # the cause, not just the limit
    assert elapsed < 1.0 + 60, elapsed  # the client gave up at its timeout; it did not wait for the stalled answers
    fake.on_request = None
    fake.release()
    fake.wait_idle()
    coll = create(COLLECTIONS, collection_inputs(seed_plan, target, api_key=KEY))
    assert fake.collection(coll["id"])["params"]["vectors"].keys() == seed_plan.vector_config().keys()


def test_collection_create_applied_after_the_client_gave_up_is_adopted_by_the_rerun(fake, seed_plan):
    """A slow server that finishes the create after the client timed out: the rerun (same fixed id)
    adopts that collection instead of failing on a name conflict."""
    target = server_spec(fake.url, 1.0)
    # The create stalls until released, so the client's 1 s timeout always comes first, however loaded the machine.
    fake.on_request = lambda method, path: ("sleep", 600.0) if method == "PUT" and path.count("/") == 2 else None
    inputs = collection_inputs(seed_plan, target, api_key=KEY, namespace_id="ns_00000000b2")
    with pytest.raises(TargetUnavailable, match="create collection 'ns_00000000b2'"):
        create(COLLECTIONS, inputs)
    fake.on_request = None
    fake.release()
    fake.wait_idle()
    assert "ns_00000000b2-g1" in fake.collections and not fake.aliases  # the server did it after all
    made = fake.collections["ns_00000000b2-g1"]
    coll = create(COLLECTIONS, inputs)
    assert coll["id"] == "ns_00000000b2" and coll["outputs"]["points_count"] == 0
    # The rerun's create of the physical collection is refused (the name is taken); it is this namespace's, so
    # the alias is made to it: the same collection, not created twice.
    assert fake.collection("ns_00000000b2") is made
    assert made["metadata"] == {"mixpeek_namespace_id": "ns_00000000b2"}


def _fail_index_creations(from_nth: int, status: int, times: int | None = None):
    """A hook failing payload index creations number `from_nth` onwards (`times` failures, None: all)."""
    seen = {"creations": 0, "failed": 0}

    def hook(method: str, path: str):
        if method == "PUT" and path.endswith("/index"):
            seen["creations"] += 1
            if seen["creations"] >= from_nth and (times is None or seen["failed"] < times):
                seen["failed"] += 1
                return ("fail", status)
        return None

    return hook


@pytest.mark.parametrize("status, error", [(500, TargetUnavailable), (400, QdrantError)])
def test_server_failing_halfway_through_the_indexes_then_a_rerun_completes(fake, seed_plan, status, error):
    """500 (transient: retried within the timeout, then given up) or 400 (refused at once) from the
    4th index creation on: a clear error naming the URL and the field, the first three indexes and
    the points stay, and the rerun creates the rest (adopting what exists)."""
    target = server_spec(fake.url, 1.5)
    plan = seed_plan
    coll = create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY))
    name = coll["id"]
    open_store(target, KEY).upsert(name, points(3))
    fake.on_request = _fail_index_creations(4, status)
    done = []
    with pytest.raises(error) as info:
        for ix in plan.payload_indexes:
            create(INDEXES, index_inputs(ix, target, name, api_key=KEY))
            done.append(ix.field_name)
    failed = plan.payload_indexes[3].field_name
    message = str(info.value)
    assert done == [ix.field_name for ix in plan.payload_indexes[:3]]
    assert fake.url in message and repr(failed) in message and KEY not in message, message
    assert f"{status}" in message
    if status == 500:
        assert "attempt(s)" in message  # retried before giving up
    assert set(fake.collection(name)["payload_schema"]) == set(done)

    fake.on_request = None
    before = len(fake.requests)
    for ix in plan.payload_indexes:  # the next `pulumi up`; an index already there is adopted
        out = create(INDEXES, index_inputs(ix, target, name, api_key=KEY))
        assert out["outputs"]["field_schema"] == dict(ix.field_schema)
    index_puts = [r for r in fake.requests[before:] if r[0] == "PUT" and r[1].endswith("/index")]
    assert len(index_puts) == len(plan.payload_indexes) - 3
    assert set(fake.collection(name)["payload_schema"]) == {ix.field_name for ix in plan.payload_indexes}
    assert COLLECTIONS.read(name, coll["outputs"]).outs["points_count"] == 3
    got = retrieve(fake.url, name, [1, 2, 3])
    assert sorted(p.id for p in got) == [1, 2, 3]
    assert got[0].payload["metadata"]["title"].startswith("playlist")


def test_a_single_server_error_halfway_is_retried_and_the_run_completes(fake, seed_plan):
    target = server_spec(fake.url, 5.0)
    coll = create(COLLECTIONS, collection_inputs(seed_plan, target, api_key=KEY))
    fake.on_request = _fail_index_creations(4, 503, times=1)
    for ix in seed_plan.payload_indexes:
        create(INDEXES, index_inputs(ix, target, coll["id"], api_key=KEY))
    index_puts = [r for r in fake.requests if r[0] == "PUT" and r[1].endswith("/index")]
    assert len(index_puts) == len(seed_plan.payload_indexes) + 1  # the 4th twice
    assert len(fake.collection(coll["id"])["payload_schema"]) == len(seed_plan.payload_indexes)


# ---------------------------------------------------------------------------------------------
# Embedded: locked, read-only, corrupted


def edge_spec(root, timeout: float = 1.0) -> dict:
    return {"kind": "embedded", "path": str(root), "timeout": timeout}


def deploy_partly(plan, target, indexes: int = 3) -> tuple[dict, str]:
    """The collection, its first `indexes` payload indexes and 3 points; shards closed afterwards."""
    coll = create(COLLECTIONS, collection_inputs(plan, target))
    name = coll["id"]
    for ix in plan.payload_indexes[:indexes]:
        create(INDEXES, index_inputs(ix, target, name))
    open_store(target).upsert(name, points(3))
    close_all_shards()
    return coll, name


def assert_points_intact(target, name: str) -> None:
    """3 points, counted and retrieved with their payload and vector."""
    import qdrant_edge as qe

    store = open_store(target)
    assert store.count_points(name) == 3
    hits = store.query(name, VECTOR, [1.0] + [0.0] * 767, limit=10)
    assert sorted(h["id"] for h in hits) == [1, 2, 3]
    close_all_shards()
    shard = qe.EdgeShard.load(os.path.join(target["path"], name))
    try:
        records = shard.retrieve([1, 2, 3], True, True)
        assert sorted(r.id for r in records) == [1, 2, 3]
        by_id = {r.id: r for r in records}
        assert by_id[2].payload["metadata"]["title"] == "playlist 2"
        assert by_id[2].vector[VECTOR][1] == pytest.approx(1.0)
    finally:
        shard.close()


def rerun_completes(plan, target, coll: dict) -> None:
    """The next `pulumi up`: every index created or adopted, the collection converged in place."""
    name = coll["id"]
    for ix in plan.payload_indexes:
        out = create(INDEXES, index_inputs(ix, target, name))
        assert out["outputs"]["field_schema"] == dict(ix.field_schema)
    updated = COLLECTIONS.update(name, coll["outputs"], check(COLLECTIONS, collection_inputs(plan, target)))
    assert updated.outs["points_count"] == 3
    assert set(open_store(target).read_payload_indexes(name)) == {ix.field_name for ix in plan.payload_indexes}
    close_all_shards()


def tree_digest(path: str) -> str:
    """A digest of every file's name and bytes under `path` (to show nothing was changed or removed).

    Qdrant Edge compacts its mmap trackers' `tracker_journal.dat` files whenever it opens a segment,
    even when the shard then fails to load (e.g. on a bad WAL); those are bookkeeping, not data, and
    are left out."""
    digest = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            if name == "tracker_journal.dat":
                continue
            full = os.path.join(base, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as fh:
                digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def test_shard_locked_by_another_process(tmp_path, seed_plan):
    target = edge_spec(tmp_path / "qdrant", timeout=1.0)
    plan = seed_plan
    coll, name = deploy_partly(plan, target)
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, qdrant_edge as qe
        shard = qe.EdgeShard.load({os.path.join(target['path'], name)!r})
        print(shard.count(qe.CountRequest(exact=True)), flush=True)
        sys.stdin.read()
        shard.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "3"
        unprotected = {**coll["outputs"], "deletion_protection": False}
        attempts = {
            "create index": lambda: create(INDEXES, index_inputs(plan.payload_indexes[3], target, name)),
            "refresh collection": lambda: COLLECTIONS.read(name, coll["outputs"]),
            "destroy (protection off)": lambda: COLLECTIONS.delete(name, unprotected),
        }
        for what, attempt in attempts.items():
            start = time.monotonic()
            with pytest.raises(EdgeLocked) as info:
                attempt()
            assert time.monotonic() - start < 1.0 + 60, what  # gave up at its 1 s timeout, did not hang
            message = str(info.value)
            assert os.path.join(target["path"], name) in message and "locked by another process" in message, message
        assert os.path.isdir(os.path.join(target["path"], name))
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert holder.returncode == 0
    rerun_completes(plan, target, coll)
    assert_points_intact(target, name)


READ_ONLY_CHILD = textwrap.dedent("""
    import json, sys, time
    from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
    args = json.loads(sys.argv[1])
    results = {}

    def attempt(what, fn):
        start = time.monotonic()
        try:
            fn()
            results[what] = {"error": None}
        except Exception as exc:
            results[what] = {"type": type(exc).__name__, "error": str(exc), "seconds": time.monotonic() - start}

    attempt("create index", lambda: PayloadIndexProvider().create(args["index"]))
    attempt("refresh collection", lambda: CollectionProvider().read(args["name"], args["outputs"]))
    attempt("create collection", lambda: CollectionProvider().create(args["new_collection"]))
    print(json.dumps(results))
""")


def _run_read_only(root: str, payload: dict) -> dict:
    """Run READ_ONLY_CHILD with `root` read-only: for an unprivileged user by permissions, for root
    (who ignores permissions) inside a private mount namespace with `root` bind-mounted read-only."""
    args = [sys.executable, "-c", READ_ONLY_CHILD, json.dumps(payload)]
    if os.geteuid() != 0:
        modes = {}
        for base, dirs, files in os.walk(root):
            for p in [base] + [os.path.join(base, f) for f in files]:
                modes[p] = stat.S_IMODE(os.stat(p).st_mode)
                os.chmod(p, modes[p] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
        try:
            out = subprocess.run(args, capture_output=True, text=True, timeout=120)
        finally:
            for p, mode in modes.items():
                os.chmod(p, mode)
    else:
        script = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && exec "$@"'
        probe = ["unshare", "-m", "sh", "-c", script, root, "sh", "-c", 'touch "$0/.probe" 2>/dev/null && exit 1 || '
                                                                         'exit 0', root]
        if shutil.which("unshare") is None or subprocess.run(probe, capture_output=True, timeout=60).returncode != 0:
            reason = ("running as root without a working `unshare -m` + read-only bind mount: cannot make a "
                      "directory read-only for root: run the tests as a non-root user, or where unshare -m works "
                      "(a container with CAP_SYS_ADMIN)")
            require_or_skip(reason, "MIXPEEK_REQUIRE_READ_ONLY_MOUNT")
        out = subprocess.run(["unshare", "-m", "sh", "-c", script, root, *args], capture_output=True, text=True,
                             timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_read_only_target_directory(tmp_path, seed_plan):
    root = tmp_path / "qdrant"
    target = edge_spec(root, timeout=1.0)
    plan = seed_plan
    coll, name = deploy_partly(plan, target)
    before = tree_digest(str(root))
    results = _run_read_only(str(root), {
        "index": wire(check(INDEXES, index_inputs(plan.payload_indexes[3], target, name))),
        "name": name,
        "outputs": coll["outputs"],
        "new_collection": wire(check(COLLECTIONS, collection_inputs(plan, target, namespace_id="ns_00000000c3"))),
    })
    for what, result in results.items():
        assert result["error"] is not None, f"{what} succeeded on a read-only target"
        # InvalidSpec: the inputs' check itself sees the read-only mount (target.path), before any write is tried
        assert result["type"] in ("EdgeCorrupt", "QdrantError", "EdgeLocked", "InvalidSpec"), result
        assert str(root) in result["error"], result
        assert re.search(r"read-only file system|permission denied", result["error"], re.I), result
        assert result["seconds"] < 1.0 + 60, result  # a refusal, not a hang
    assert tree_digest(str(root)) == before  # nothing changed, nothing removed
    assert not (root / "ns_00000000c3").exists()
    # Writable again: the next run completes, and the other namespace can be created.
    rerun_completes(plan, target, coll)
    assert_points_intact(target, name)
    assert create(COLLECTIONS, collection_inputs(plan, target, namespace_id="ns_00000000c3"))["id"] == "ns_00000000c3"


def test_read_only_target_is_not_reported_as_corrupt(tmp_path, seed_plan):
    root = tmp_path / "qdrant"
    target = edge_spec(root)
    coll, name = deploy_partly(seed_plan, target, indexes=0)
    results = _run_read_only(str(root), {
        "index": wire(check(INDEXES, index_inputs(seed_plan.payload_indexes[0], target, name))),
        "name": name, "outputs": coll["outputs"],
        "new_collection": wire(check(COLLECTIONS, collection_inputs(seed_plan, target))),
    })
    for result in results.values():
        assert "remove the directory" not in result["error"] and "Restore" not in result["error"], result


def _corrupt_config(shard: str) -> None:
    with open(os.path.join(shard, "edge_config.json"), "w") as fh:
        fh.write('{"vectors": {"image_extractor_v1_emb')  # torn write


def _corrupt_wal(shard: str) -> None:
    with open(os.path.join(shard, "wal", "first-index"), "r+b") as fh:
        fh.write(b"\x00garbage\xff" * 2)


@pytest.mark.parametrize("corrupt", [_corrupt_config, _corrupt_wal], ids=["config", "wal"])
def test_corrupted_shard_is_refused_untouched_and_a_run_completes_once_restored(tmp_path, seed_plan, corrupt):
    root = tmp_path / "qdrant"
    target = edge_spec(root, timeout=1.0)
    plan = seed_plan
    coll, name = deploy_partly(plan, target)
    shard = os.path.join(str(root), name)
    backup = str(tmp_path / "backup")
    shutil.copytree(shard, backup)
    corrupt(shard)
    damaged = tree_digest(shard)
    unprotected = {**coll["outputs"], "deletion_protection": False}
    attempts = {
        "create index": lambda: create(INDEXES, index_inputs(plan.payload_indexes[3], target, name)),
        "refresh collection": lambda: COLLECTIONS.read(name, coll["outputs"]),
        "update collection": lambda: COLLECTIONS.update(name, coll["outputs"],
                                                        check(COLLECTIONS, collection_inputs(plan, target))),
        "destroy (protection off)": lambda: COLLECTIONS.delete(name, unprotected),
        "create again (state lost)": lambda: create(COLLECTIONS, collection_inputs(plan, target, namespace_id=name)),
    }
    for what, attempt in attempts.items():
        with pytest.raises(QdrantError) as info:
            attempt()
        assert shard in str(info.value), (what, str(info.value))
    assert tree_digest(shard) == damaged  # refused without touching (let alone removing) the shard
    # The operator restores the shard from the backup; the next run completes with the points intact.
    shutil.rmtree(shard)
    shutil.copytree(backup, shard)
    rerun_completes(plan, target, coll)
    assert_points_intact(target, name)


def test_corrupted_wal_is_reported_as_corrupt_not_locked(tmp_path, seed_plan):
    root = tmp_path / "qdrant"
    target = edge_spec(root, timeout=1.0)
    coll, name = deploy_partly(seed_plan, target, indexes=0)
    _corrupt_wal(os.path.join(str(root), name))
    with pytest.raises(QdrantError) as info:
        COLLECTIONS.read(name, coll["outputs"])
    assert isinstance(info.value, EdgeCorrupt), f"{type(info.value).__name__}: {info.value}"


def test_shard_without_its_config_is_never_overwritten(tmp_path, seed_plan):
    """Segments without edge_config.json (a torn copy, a config removed by hand): creating the
    collection again refuses rather than wiping the directory, and restoring the config recovers."""
    root = tmp_path / "qdrant"
    target = edge_spec(root, timeout=1.0)
    plan = seed_plan
    coll, name = deploy_partly(plan, target)
    shard = os.path.join(str(root), name)
    config = os.path.join(shard, "edge_config.json")
    saved = open(config, "rb").read()
    os.remove(config)
    damaged = tree_digest(shard)
    inputs = collection_inputs(plan, target, namespace_id=name)
    refused = {f.property: f.reason for f in COLLECTIONS.check({}, wire(inputs)).failures}  # at preview
    assert set(refused) == {"namespace_id"} and shard in refused["namespace_id"], refused
    with pytest.raises(EdgeCorrupt) as info:
        COLLECTIONS.create(wire(inputs))
    assert shard in str(info.value) and "edge_config.json" in str(info.value)
    assert tree_digest(shard) == damaged
    with open(config, "wb") as fh:
        fh.write(saved)
    adopted = create(COLLECTIONS, collection_inputs(plan, target, namespace_id=name))
    assert adopted["id"] == name and adopted["outputs"]["points_count"] == 3
    rerun_completes(plan, target, coll)
    assert_points_intact(target, name)
