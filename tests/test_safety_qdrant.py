"""Safety of the Qdrant providers: nothing foreign is removed or adopted, keys go only where they
were configured for, URLs are quoted without passwords, and `check` refuses what `create` cannot do.

Through the real providers on real engines: Qdrant Edge shards in temp dirs (and real processes
racing on one), qdrant-client's local mode behind the server store (it keeps collection metadata,
the owner record), and a loopback HTTP listener that records the headers it receives.

Numbered as in the issue:
1. a create never removes or takes over a directory it did not create;
2. a collection recorded as another namespace's is refused, at check and at create, also when two
   namespaces of one run create it at once;
4. two processes creating one Edge collection: one creates, the other adopts it (same namespace)
   or is refused plainly, never an Edge internal error, never a removed shard;
5. an ambient API key (QDRANT_API_KEY, the stack config's mixpeek-infra:qdrantApiKey) goes only to the
   URL configured with it; no key travels over plain http off loopback (refused at check);
7. passwords in URLs never reach a message;
8. `check` refuses what `create` would fail on: NUL or file paths, bad field names, trailing newlines.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from test_faults_qdrant import FakeQdrant
from pulumi.dynamic import ConfigureRequest

from enginehost import from_struct, to_struct
from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
from mixpeek_infra.qdrant.store import CollectionConflict, QdrantError, forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

pytestmark = [pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning"),
              pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")]

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()
VECTORS = {"image": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}}
OPERATOR_KEY = "operator-key-must-stay-home-5e1f"
NS_A, NS_B = "ns_aaaaaaaaaa", "ns_bbbbbbbbbb"


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def check(provider, news: dict, olds: dict | None = None):
    return provider.check(wire(olds or {}), wire(news))


def checked(provider, news: dict) -> dict:
    result = check(provider, news)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def failures(provider, news: dict) -> dict[str, str]:
    return {f.property: f.reason for f in check(provider, news).failures}


def edge(root) -> dict:
    return {"kind": "embedded", "path": str(root), "timeout": 10.0}


def coll(target: dict, **extra) -> dict:
    return {"target": target, "vectors": VECTORS, "settings": {}, "deletion_protection": True, **extra}


def tree_digest(path) -> str:
    h = hashlib.sha256()
    for base, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        h.update(base.encode())
        for name in sorted(files):
            h.update(name.encode())
            with open(os.path.join(base, name), "rb") as fh:
                h.update(fh.read())
    return h.hexdigest()


@pytest.fixture(autouse=True)
def _clean():
    COLLECTIONS.configure(ConfigureRequest({}))
    yield
    COLLECTIONS.configure(ConfigureRequest({}))
    close_all_shards()
    forget_stores()


@pytest.fixture
def local_server(tmp_path):
    """A server target served by qdrant-client's local mode (it keeps collection metadata)."""
    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store.server import ServerStore

    spec = {"kind": "server", "url": "https://qdrant.test:6333", "timeout": 5.0, "prefer_grpc": False}
    install_store(spec, ServerStore(QdrantClient(path=str(tmp_path / "local")), location=spec["url"]))
    return spec


# ---------------------------------------------------------------------------------------------
# 1. A create never removes or takes over a directory it did not create


@pytest.mark.parametrize("contents", ["user files", "empty segments/", "empty"])
def test_create_never_removes_a_foreign_directory(tmp_path, contents):
    """`path: .` and `qdrant_collection: docs`: the project's docs/ is refused at check and at create, untouched."""
    project = tmp_path / "project"
    docs = project / "docs"
    docs.mkdir(parents=True)
    if contents == "user files":
        (docs / "README.md").write_text("# the user's docs\n")
        (docs / "guide").mkdir()
        (docs / "guide" / "intro.md").write_text("hello\n")
    elif contents == "empty segments/":
        (docs / "segments").mkdir()
    before = tree_digest(docs)
    inputs = coll(edge(project), collection_name="docs")

    reasons = failures(COLLECTIONS, inputs)
    assert set(reasons) == {"collection_name"}, reasons
    assert str(docs) in reasons["collection_name"] and "not created by mixpeek-infra" in reasons["collection_name"]
    assert "another collection name" in reasons["collection_name"]
    with pytest.raises(CollectionConflict) as info:
        COLLECTIONS.create(wire({**inputs, "target": edge(project)}))
    assert str(docs) in str(info.value)
    assert tree_digest(docs) == before
    if contents == "user files":
        assert (docs / "guide" / "intro.md").read_text() == "hello\n"


def test_an_interrupted_create_of_ours_is_completed_by_the_rerun(tmp_path):
    """What this code leaves when stopped mid-create (its marker, Edge's empty entries) is removed and redone."""
    root = tmp_path / "qdrant"
    shard = root / "docs"
    (shard / "segments").mkdir(parents=True)
    (shard / "wal").mkdir()
    (shard / "mixpeek_collection.json").write_text(json.dumps({"created_by": "mixpeek-infra", "namespace_id": NS_A}))
    created = COLLECTIONS.create(checked(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=NS_A)))
    assert created.id == "docs" and created.outs["vectors"] == VECTORS


# ---------------------------------------------------------------------------------------------
# 2. Adoption of another namespace's collection is refused


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_another_namespaces_collection_is_refused_at_check_and_create(tmp_path, kind, local_server):
    target = edge(tmp_path / "qdrant") if kind == "edge" else local_server
    first = COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A)))
    assert first.outs["namespace_id"] == NS_A
    close_all_shards()

    for other in ({"namespace_id": NS_B}, {}):  # another fixed id, or one generated at creation
        inputs = coll(target, collection_name="docs", **other)
        reasons = failures(COLLECTIONS, inputs)
        assert set(reasons) == {"collection_name"}, reasons
        assert f"belongs to namespace {NS_A}" in reasons["collection_name"]
        assert f"namespace_id: {NS_A}" in reasons["collection_name"]  # the way out when it is this namespace's
        with pytest.raises(CollectionConflict, match=f"belongs to namespace {NS_A}"):
            COLLECTIONS.create(wire({**inputs, "target": target}))

    again = COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A)))
    assert again.id == "docs" and again.outs["namespace_id"] == NS_A  # its own namespace adopts it


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_an_unrecorded_collection_is_adopted_and_then_recorded(tmp_path, kind, local_server):
    target = edge(tmp_path / "qdrant") if kind == "edge" else local_server
    open_store(target).create_collection("docs", VECTORS, {})  # made outside the providers: no owner
    adopted = COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A)))
    assert adopted.outs["namespace_id"] == NS_A
    assert open_store(target).read_collection("docs").namespace_id == NS_A
    assert "collection_name" in failures(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_B))


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_two_namespaces_of_one_run_creating_one_collection_at_once(tmp_path, kind, local_server):
    """The provider host runs creates in threads: one creates, the other gets a clear refusal."""
    target = edge(tmp_path / "qdrant") if kind == "edge" else local_server
    inputs = [checked(COLLECTIONS, coll(target, collection_name="docs")) for _ in range(2)]  # ids generated
    barrier = threading.Barrier(2)
    results: list = [None, None]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = COLLECTIONS.create(inputs[i]).outs["namespace_id"]
        except Exception as exc:  # noqa: BLE001 - inspected below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = [r for r in results if isinstance(r, str)]
    losers = [r for r in results if not isinstance(r, str)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert isinstance(losers[0], CollectionConflict), repr(losers[0])
    assert f"belongs to namespace {winners[0]}" in str(losers[0]) and "already exists" not in str(losers[0])
    assert open_store(target).read_collection("docs").namespace_id == winners[0]


# ---------------------------------------------------------------------------------------------
# 4. Two processes creating one fixed-name Edge collection


def _create_worker(conn, barrier) -> None:
    """Run CollectionProvider.create for each job sent, in step with the other worker."""
    from mixpeek_infra.qdrant.resources import CollectionProvider
    from mixpeek_infra.qdrant.store import forget_stores
    from mixpeek_infra.qdrant.store.edge import close_all_shards

    while True:
        job = conn.recv()
        if job is None:
            return
        barrier.wait()
        try:
            result = CollectionProvider().create(job)
            out = {"ok": True, "id": result.id, "namespace_id": result.outs["namespace_id"]}
        except Exception as exc:  # noqa: BLE001 - reported to the test
            out = {"ok": False, "type": type(exc).__name__, "error": str(exc)}
        close_all_shards()
        forget_stores()
        conn.send(out)


def test_two_processes_creating_one_edge_collection(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXPEEK_EDGE_IDLE_CLOSE", "0.05")
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    pipes = [ctx.Pipe() for _ in range(2)]
    workers = [ctx.Process(target=_create_worker, args=(child, barrier), daemon=True) for _, child in pipes]
    for w in workers:
        w.start()
    problems = []
    try:
        for trial in range(10):
            root = tmp_path / f"trial{trial}"
            same = trial % 2 == 0
            ids = [NS_A, NS_A] if same else [NS_A, NS_B]
            for (parent, _), ns in zip(pipes, ids):
                parent.send(checked(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=ns)))
            outs = [parent.recv() for parent, _ in pipes]
            ok = [o for o in outs if o["ok"]]
            refused = [o for o in outs if not o["ok"]]
            state = EdgeStore(str(root)).read_collection("docs")
            close_all_shards()
            if same:
                good = len(ok) == 2 and {o["namespace_id"] for o in ok} == {NS_A}
            else:
                good = (len(ok) == 1 and len(refused) == 1 and refused[0]["type"] == "CollectionConflict"
                        and f"belongs to namespace {ok[0]['namespace_id']}" in refused[0]["error"])
            good = good and state is not None and state.vectors == VECTORS and \
                state.namespace_id == (ok[0]["namespace_id"] if ok else None)
            if not good:
                problems.append((trial, outs))
    finally:
        for parent, _ in pipes:
            parent.send(None)
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
    assert problems == [], problems


# ---------------------------------------------------------------------------------------------
# 5. Keys go only to the target they were configured for


class HeaderRecorder:
    """A loopback HTTP endpoint that records each request's headers and answers like an empty Qdrant."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                recorder.requests.append((self.command, self.path, {k.lower(): v for k, v in self.headers.items()}))
                if self.command == "GET" and self.path.startswith("/collections/"):
                    status, body = 404, {"status": {"error": "Not found: Collection doesn't exist!"}, "time": 0.0}
                else:
                    status, body = 200, {"result": True, "status": "ok", "time": 0.0}
                FakeQdrant._reply(self, status, body)

            do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def keys(self) -> list[str | None]:
        return [headers.get("api-key") for _, _, headers in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def recorder():
    rec = HeaderRecorder()
    yield rec
    rec.close()


def _run_namespace(target: dict, **extra) -> None:
    """Preview (check) and `up` (create) of a collection at `target`; the create's outcome does not matter."""
    inputs = coll(target, collection_name="docs", **extra)
    result = check(COLLECTIONS, inputs)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    try:
        COLLECTIONS.create(wire(result.inputs))
    except QdrantError:
        pass


def stack_config(url: str, *, legacy: bool = False, as_text: bool = True) -> ConfigureRequest:
    """The provider configuration for a stack with `qdrantApiKey` and `qdrant: {url}` set (the structured
    value as JSON text, or with `as_text=False` as an object); `legacy`: the `mixpeek:` pair earlier docs named."""
    if legacy:
        return ConfigureRequest({"mixpeek:qdrantApiKey": OPERATOR_KEY, "mixpeek:qdrantUrl": url})
    qdrant = {"url": url, "timeout": 5}
    return ConfigureRequest({"mixpeek-infra:qdrantApiKey": OPERATOR_KEY,
                             "mixpeek-infra:qdrant": json.dumps(qdrant) if as_text else qdrant})


@pytest.mark.parametrize("ambient", ["env", "config", "legacy config"])
def test_ambient_key_never_goes_to_a_url_named_in_a_request(recorder, monkeypatch, ambient):
    target = {"kind": "server", "url": recorder.url, "timeout": 2.0, "prefer_grpc": False}
    if ambient == "env":
        monkeypatch.setenv("QDRANT_API_KEY", OPERATOR_KEY)
        monkeypatch.setenv("QDRANT_URL", "https://qdrant.operator.example:6333")
    else:
        monkeypatch.delenv("QDRANT_API_KEY", raising=False)
        COLLECTIONS.configure(stack_config("https://qdrant.operator.example:6333", legacy=ambient == "legacy config"))
    _run_namespace(target)
    assert recorder.requests, "the listener got no request"
    assert OPERATOR_KEY not in recorder.keys(), recorder.keys()

    # The request's own key (infrastructure.qdrant_api_key -> api_key input) is the one it gets.
    recorder.requests.clear()
    forget_stores()
    _run_namespace(target, api_key="the-requests-own-key")
    assert set(recorder.keys()) == {"the-requests-own-key"}


@pytest.mark.parametrize("ambient", ["env", "config", "config object", "legacy config"])
def test_ambient_key_goes_to_the_url_configured_with_it(recorder, monkeypatch, ambient):
    target = {"kind": "server", "url": recorder.url, "timeout": 2.0, "prefer_grpc": False}
    if ambient == "env":
        monkeypatch.setenv("QDRANT_API_KEY", OPERATOR_KEY)
        monkeypatch.setenv("QDRANT_URL", recorder.url + "/")
    else:
        monkeypatch.delenv("QDRANT_API_KEY", raising=False)
        COLLECTIONS.configure(stack_config(recorder.url + "/", legacy=ambient == "legacy config",
                                           as_text=ambient != "config object"))
    _run_namespace(target)
    assert recorder.requests and set(recorder.keys()) == {OPERATOR_KEY}


@pytest.mark.parametrize("how", ["input", "env", "config"])
def test_no_key_over_plain_http_off_loopback(monkeypatch, how):
    url = "http://attacker.example:6333"
    target = {"kind": "server", "url": url, "timeout": 1.0, "prefer_grpc": False}
    extra = {}
    if how == "input":
        extra["api_key"] = "the-requests-own-key"
    elif how == "env":
        monkeypatch.setenv("QDRANT_API_KEY", OPERATOR_KEY)
        monkeypatch.setenv("QDRANT_URL", url)
    else:
        COLLECTIONS.configure(stack_config(url))
    for provider, inputs in ((COLLECTIONS, coll(target, **extra)),
                             (INDEXES, {"target": target, "collection_name": "docs", "field_name": "a",
                                        "field_type": "keyword", "field_schema": None, **extra})):
        reasons = failures(provider, inputs)
        assert set(reasons) == {"target.url"}, reasons
        assert "https://" in reasons["target.url"] and "not loopback" in reasons["target.url"]
    from mixpeek_infra.qdrant.store.server import ServerStore

    with pytest.raises(QdrantError, match="https://"):
        ServerStore.connect(url, api_key="k")


# ---------------------------------------------------------------------------------------------
# 7. Passwords in URLs never reach a message


@pytest.mark.parametrize("url", ["http://admin:s3cret-pw@qdrant host:6333", "htp://admin:s3cret-pw@qdrant:6333",
                                 "http://admin:s3cret-pw@qdrant:6333/\n"])
def test_passwords_in_malformed_urls_are_redacted(url):
    from mixpeek_infra.qdrant.target import InvalidTarget, QdrantTarget

    with pytest.raises(InvalidTarget) as info:
        QdrantTarget(url=url)
    assert "s3cret-pw" not in str(info.value) and "QdrantTarget.url" in str(info.value)
    reasons = failures(COLLECTIONS, coll({"kind": "server", "url": url, "timeout": 1.0}))
    assert reasons and "s3cret-pw" not in json.dumps(reasons), reasons


def test_store_errors_never_quote_a_password():
    from mixpeek_infra.qdrant.store.server import ServerStore

    store = ServerStore.connect("http://admin:s3cret-pw@127.0.0.1:9", timeout=0.5)
    with pytest.raises(QdrantError) as info:
        store.count_points("docs")
    assert "127.0.0.1:9" in str(info.value) and "s3cret-pw" not in str(info.value)
    assert "s3cret-pw" not in store.location


# ---------------------------------------------------------------------------------------------
# 8. What create would fail on fails at check, naming the field


def _file(tmp_path) -> str:
    path = tmp_path / "a-file"
    path.write_text("not a directory")
    return str(path)


@pytest.mark.parametrize("case, field", [
    ("path with NUL", "target.path"),
    ("path is a file", "target.path"),
    ("path under a file", "target.path"),
    ("collection_name with trailing newline", "collection_name"),
    ("namespace_id with trailing newline", "namespace_id"),
    ("final_snapshot is a file", "final_snapshot"),
])
def test_collection_check_refuses_what_create_cannot_do(tmp_path, case, field):
    target = edge(tmp_path / "qdrant")
    inputs = coll(target)
    if case == "path with NUL":
        inputs["target"] = edge(str(tmp_path) + "/qd\x00rant")
    elif case == "path is a file":
        inputs["target"] = edge(_file(tmp_path))
    elif case == "path under a file":
        inputs["target"] = edge(os.path.join(_file(tmp_path), "qdrant"))
    elif case == "collection_name with trailing newline":
        inputs["collection_name"] = "docs\n"
    elif case == "namespace_id with trailing newline":
        inputs["namespace_id"] = "ns_0123456789\n"
    else:
        inputs["final_snapshot"] = _file(tmp_path)
    reasons = failures(COLLECTIONS, inputs)
    assert field in reasons, reasons


@pytest.mark.parametrize("case, field", [
    ("field_name with newline", "field_name"),
    ("field_name with a space", "field_name"),
    ("collection_name with trailing newline", "collection_name"),
    ("path is a file", "target.path"),
])
def test_index_check_refuses_what_create_cannot_do(tmp_path, case, field):
    inputs = {"target": edge(tmp_path / "qdrant"), "collection_name": "docs", "field_name": "metadata.title",
              "field_type": "keyword", "field_schema": None}
    if case == "field_name with newline":
        inputs["field_name"] = "metadata\ntitle"
    elif case == "field_name with a space":
        inputs["field_name"] = "metadata title"
    elif case == "collection_name with trailing newline":
        inputs["collection_name"] = "docs\n"
    else:
        inputs["target"] = edge(_file(tmp_path))
    reasons = failures(INDEXES, inputs)
    assert field in reasons, reasons


def test_field_names_qdrant_accepts_pass_check_and_create(tmp_path):
    target = edge(tmp_path / "qdrant")
    COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs")))
    for name in ("metadata.title", "tags[]", "a[].b", "items[0].price", "métadonnée", "x-y_z"):
        created = INDEXES.create(checked(INDEXES, {"target": target, "collection_name": "docs", "field_name": name,
                                                   "field_type": "keyword", "field_schema": None}))
        assert created.outs["field_name"] == name


# ---------------------------------------------------------------------------------------------
# Issue 18, items 3-7: collections and directories that are not ours


def rechecked(provider, news: dict, olds: dict) -> dict:
    """`check` of an existing resource (the engine passes its old inputs)."""
    result = check(provider, news, olds)
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def index(target: dict, field: str, schema: dict, **extra) -> dict:
    return {"target": target, "collection_name": "docs", "field_name": field, "field_type": schema["type"],
            "field_schema": schema, **extra}


KEYWORD = {"type": "keyword", "is_tenant": False}
INTEGER = {"type": "integer", "lookup": True, "range": True}


@pytest.mark.parametrize("kind", ["edge", "server"])
def test_a_lost_name_taken_by_another_namespace_is_never_changed(tmp_path, kind, local_server, monkeypatch):
    """A's fixed-name collection is deleted out of band and B creates that name: A's next preview, up,
    refresh and destroy refuse (naming B) or leave B's collection, its vectors, settings, indexes and points alone."""
    target = edge(tmp_path / "qdrant") if kind == "edge" else local_server
    a_inputs = checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A))
    a = COLLECTIONS.create(a_inputs)
    a_outs = wire(a.outs)
    a_index = INDEXES.create(checked(INDEXES, index(target, "a_field", KEYWORD, namespace_id=NS_A)))
    a_index_outs = wire(a_index.outs)
    store = open_store(target)
    store.delete_collection("docs")  # lost out of band
    b = COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_B,
                                                     settings={"hnsw_config": {"m": 8}})))
    b_index = INDEXES.create(checked(INDEXES, index(target, "a_field", KEYWORD, namespace_id=NS_B)))
    store.upsert("docs", [{"id": 1, "vector": {"image": [1.0, 0, 0, 0]}, "payload": {"a_field": "x"}}])
    before = store.read_collection("docs")
    before_indexes = store.read_payload_indexes("docs")

    # A's next `up`: a vector added and hnsw m changed -> refused at preview (diff) and at update, naming B.
    more = {**VECTORS, "text": {"size": 4, "distance": "dot", "datatype": "float32", "on_disk": False}}
    news = rechecked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A, vectors=more,
                                       settings={"hnsw_config": {"m": 32}}), a_inputs)
    for attempt in (lambda: COLLECTIONS.diff("docs", a_outs, news), lambda: COLLECTIONS.update("docs", a_outs, news)):
        with pytest.raises(CollectionConflict) as info:
            attempt()
        assert f"belongs to namespace {NS_B}" in str(info.value) and "pulumi refresh" in str(info.value)
    # A's index: changed params, a new index, and its delete (destroy).
    changed = rechecked(INDEXES, index(target, "a_field", INTEGER, namespace_id=NS_A), a_index_outs)
    for attempt in (lambda: INDEXES.diff(a_index.id, a_index_outs, changed),
                    lambda: INDEXES.update(a_index.id, a_index_outs, changed),
                    lambda: INDEXES.create(wire(index(target, "new_field", INTEGER, namespace_id=NS_A)))):
        with pytest.raises(CollectionConflict, match=f"belongs to namespace {NS_B}"):
            attempt()
    # A new index of A is refused already at check (preview), on collection_name, naming B.
    reasons = failures(INDEXES, index(target, "new_field", INTEGER, namespace_id=NS_A))
    assert set(reasons) == {"collection_name"} and f"belongs to namespace {NS_B}" in reasons["collection_name"]
    warned: list[str] = []
    import pulumi

    monkeypatch.setattr(pulumi.log, "warn", lambda message, *args, **kwargs: warned.append(message))
    INDEXES.delete(a_index.id, a_index_outs)
    COLLECTIONS.delete("docs", {**a_outs, "deletion_protection": False})
    assert len(warned) == 2 and all(NS_B in w for w in warned), warned
    # A's refresh sees its collection and index gone (B's are not A's); nothing is touched.
    assert COLLECTIONS.read("docs", a_outs).id == ""
    assert INDEXES.read(a_index.id, a_index_outs).id == ""

    after = open_store(target).read_collection("docs")
    assert after.vectors == before.vectors == VECTORS and after.settings == before.settings
    assert after.points_count == 1 and after.namespace_id == NS_B
    assert open_store(target).read_payload_indexes("docs") == before_indexes
    if kind == "edge":
        assert before_indexes == {"a_field": KEYWORD}
    # B itself goes on as before.
    b_changed = rechecked(INDEXES, index(target, "a_field", INTEGER, namespace_id=NS_B), wire(b_index.outs))
    assert INDEXES.update(b_index.id, wire(b_index.outs), b_changed).outs["field_type"] == "integer"
    assert COLLECTIONS.update("docs", wire(b.outs), checked(COLLECTIONS, coll(
        target, collection_name="docs", namespace_id=NS_B, settings={"hnsw_config": {"m": 12}}))).outs


def _copy_of_a_real_shard(tmp_path, name: str = "other_app") -> str:
    """A Qdrant Edge shard with 2 points written by another application (no marker of ours)."""
    import qdrant_edge as qe

    from mixpeek_infra.qdrant.store.edge import _edge_config

    path = os.path.join(str(tmp_path / "elsewhere"), name)
    os.makedirs(path)
    shard = qe.EdgeShard.create(path, _edge_config(VECTORS, {}))
    try:
        shard.update(qe.UpdateOperation.upsert_points([qe.Point(i, {"image": [1.0, float(i), 0.0, 0.0]}, {"n": i})
                                                       for i in (1, 2)]))
        shard.flush()
    finally:
        shard.close()
    return path


@pytest.mark.parametrize("marker_owner", [NS_B, NS_A])
def test_a_copied_marker_beside_someone_elses_wal_is_never_removed(tmp_path, marker_owner):
    """Item 4: a directory with a copied mixpeek_collection.json plus a WAL holding data (no config): refused at
    check naming the field, untouched at create; whoever the marker names."""
    import shutil

    real = _copy_of_a_real_shard(tmp_path)
    root = tmp_path / "qdrant"
    docs = root / "docs"
    docs.mkdir(parents=True)
    shutil.copytree(os.path.join(real, "wal"), docs / "wal")
    (docs / "segments").mkdir()
    (docs / "mixpeek_collection.json").write_text(json.dumps({"created_by": "mixpeek-infra",
                                                               "namespace_id": marker_owner}))
    before = tree_digest(docs)
    inputs = coll(edge(root), collection_name="docs", namespace_id=NS_A)
    reasons = failures(COLLECTIONS, inputs)
    assert set(reasons) == {"collection_name"}, reasons
    assert str(docs) in reasons["collection_name"] or marker_owner in reasons["collection_name"], reasons
    if marker_owner == NS_B:
        assert f"belongs to namespace {NS_B}" in reasons["collection_name"]
    with pytest.raises(QdrantError):
        COLLECTIONS.create(wire({**inputs, "target": edge(root)}))
    assert tree_digest(docs) == before


def test_a_symlinked_shard_directory_is_refused_at_check_and_never_written(tmp_path):
    """Item 5: ROOT/docs -> another application's Edge shard: refused at check naming the path; create,
    refresh and destroy neither adopt it nor write into the link target, nor fail with a raw OSError."""
    real = _copy_of_a_real_shard(tmp_path)
    root = tmp_path / "qdrant"
    root.mkdir()
    link = root / "docs"
    link.symlink_to(real, target_is_directory=True)
    before = tree_digest(real)
    inputs = coll(edge(root), collection_name="docs", namespace_id=NS_A)
    reasons = failures(COLLECTIONS, inputs)
    assert set(reasons) == {"collection_name"}, reasons
    assert str(link) in reasons["collection_name"] and "symbolic link" in reasons["collection_name"]
    with pytest.raises(CollectionConflict, match="symbolic link"):
        COLLECTIONS.create(wire({**inputs, "target": edge(root)}))
    outs = {**wire(inputs), "collection_name": "docs", "namespace_id": NS_A, "deletion_protection": False}
    for attempt in (lambda: COLLECTIONS.delete("docs", outs), lambda: COLLECTIONS.read("docs", outs)):
        with pytest.raises(CollectionConflict, match="symbolic link"):
            attempt()
    assert os.path.islink(link) and tree_digest(real) == before
    assert not os.path.exists(os.path.join(real, "mixpeek_collection.json"))


def _edge_wal_of_an_empty_shard(tmp_path) -> str:
    """The wal/ a fresh, empty Qdrant Edge shard holds (preallocated segments, nothing in them)."""
    scratch = EdgeStore(str(tmp_path / "scratch"))
    scratch.create_collection("empty", VECTORS, {})
    close_all_shards()
    return os.path.join(str(tmp_path / "scratch"), "empty", "wal")


def test_the_state_a_kill_mid_create_leaves_is_resumed_by_the_same_namespace(tmp_path):
    """Item 6: `.atomicwrite…/tmpfile.tmp` beside wal/ and an empty segments/ (what SIGKILL during
    EdgeShard.create leaves): the same namespace's rerun creates the collection; another's is refused."""
    import shutil

    root = tmp_path / "qdrant"
    docs = root / "docs"
    docs.mkdir(parents=True)
    (docs / "mixpeek_collection.json").write_text(json.dumps({"created_by": "mixpeek-infra", "namespace_id": NS_A}))
    shutil.copytree(_edge_wal_of_an_empty_shard(tmp_path), docs / "wal")
    (docs / "segments").mkdir()
    (docs / ".atomicwriteBaLdn9").mkdir()
    (docs / ".atomicwriteBaLdn9" / "tmpfile.tmp").write_text('{"vectors": {"ima')
    other = coll(edge(root), collection_name="docs", namespace_id=NS_B)
    assert f"belongs to namespace {NS_A}" in failures(COLLECTIONS, other).get("collection_name", ""), \
        failures(COLLECTIONS, other)
    created = COLLECTIONS.create(checked(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=NS_A)))
    assert created.outs["vectors"] == VECTORS and created.outs["namespace_id"] == NS_A


_KILLED_CREATE = """
import sys
from mixpeek_infra.qdrant.resources import CollectionProvider
print("go", flush=True)
CollectionProvider().create(__import__("json").loads(sys.argv[1]))
print("done", flush=True)
"""


def test_a_create_killed_anywhere_is_resumed_by_the_same_namespace(tmp_path):
    """Item 6: SIGKILL at spread-out moments of a create (real processes); every rerun of the same namespace
    completes, and the directory is never mistaken for another namespace's or for damaged data."""
    import random
    import signal
    import subprocess
    import sys
    import time

    problems = []
    for trial in range(12):
        root = tmp_path / f"trial{trial}"
        inputs = checked(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=NS_A))
        child = subprocess.Popen([sys.executable, "-c", _KILLED_CREATE, json.dumps(inputs)], stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"go"
        time.sleep(random.uniform(0.0, 0.25))
        child.send_signal(signal.SIGKILL)
        child.wait(60)
        left = sorted(os.listdir(root / "docs")) if (root / "docs").exists() else None
        try:
            rerun = COLLECTIONS.create(checked(COLLECTIONS, coll(edge(root), collection_name="docs",
                                                                 namespace_id=NS_A)))
            assert rerun.outs["vectors"] == VECTORS and rerun.outs["namespace_id"] == NS_A
        except Exception as exc:  # noqa: BLE001 - collected
            problems.append((trial, left, f"{type(exc).__name__}: {exc}"))
        close_all_shards()
    assert problems == [], problems


@pytest.mark.parametrize("case", ["5000-character path", "/proc", "/sys", "component over 255 bytes"])
@pytest.mark.parametrize("field", ["target.path", "final_snapshot"])
def test_check_refuses_paths_create_cannot_use(tmp_path, case, field):
    """Item 6: what create would fail on (too long, a kernel pseudo file system) is refused at check."""
    path = {"5000-character path": str(tmp_path / ("d" * 200 + "/")) * 25,
            "/proc": "/proc/mixpeek/qdrant", "/sys": "/sys/kernel/mixpeek",
            "component over 255 bytes": str(tmp_path / ("x" * 300))}[case]
    inputs = coll(edge(tmp_path / "qdrant"))
    if field == "target.path":
        inputs["target"] = edge(path)
    else:
        inputs["final_snapshot"] = path
    reasons = failures(COLLECTIONS, inputs)
    assert set(reasons) == {field}, reasons
    if field == "target.path":
        assert set(failures(INDEXES, index(edge(path), "a", KEYWORD))) == {"target.path"}


@pytest.mark.parametrize("where", ["the shard itself", "inside the shard", "inside another target's shard"])
def test_final_snapshot_inside_a_shard_is_refused_at_check_and_at_delete(tmp_path, where):
    """Item 7: a snapshot directory equal to or inside a shard (this collection's, or any other Edge shard) would
    be deleted with it: refused at check; a state that already holds one refuses the delete, nothing lost."""
    from mixpeek_infra.qdrant.resources import FinalSnapshotFailed

    root = tmp_path / "qdrant"
    made = COLLECTIONS.create(checked(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=NS_A)))
    open_store(edge(root)).upsert("docs", [{"id": 1, "vector": {"image": [1.0, 0, 0, 0]}, "payload": {}}])
    snaps = {"the shard itself": root / "docs", "inside the shard": root / "docs" / "backups",
             "inside another target's shard": tmp_path / "elsewhere" / "other_app" / "snaps"}[where]
    if where == "inside another target's shard":
        _copy_of_a_real_shard(tmp_path)
    reasons = failures(COLLECTIONS, coll(edge(root), collection_name="docs", namespace_id=NS_A,
                                         final_snapshot=str(snaps)))
    assert set(reasons) == {"final_snapshot"}, reasons
    assert "shard" in reasons["final_snapshot"] or "target" in reasons["final_snapshot"], reasons
    state = {**wire(made.outs), "deletion_protection": False, "final_snapshot": str(snaps)}
    with pytest.raises(FinalSnapshotFailed):
        COLLECTIONS.delete("docs", state)
    assert open_store(edge(root)).count_points("docs") == 1


@pytest.mark.pulumi_cli
def test_a_stack_whose_collection_name_another_namespace_took_touches_nothing_of_it(tmp_path):
    """Item 3 through the real Pulumi CLI: stack A (collection name fixed to `docs`) loses its collection out of
    band and namespace B creates `docs`. A's preview and up of an added extractor fail naming B; A's destroy
    leaves B's collection, settings, indexes and points exactly as they were."""
    import yaml

    from pulumicli import ROOT, PulumiProject, cli_bin_dir

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # a salt there belongs to someone else's passphrase, not this project's
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "url": "ray://127.0.0.1:10001"}  # no head process
    [body] = config["config"]["mixpeek-infra:namespaces"]
    body["infrastructure"] = {"qdrant_collection": "docs"}
    config["config"]["mixpeek-infra:namespaces"] = [{"request": body, "deletion_protection": False}]
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {"dev": config})
    proj.init("dev")
    target = edge(proj.root / ".mixpeek" / "qdrant")
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", "dev")
        store = open_store(target)
        assert store.read_collection("docs").namespace_id not in (None, NS_B)
        store.delete_collection("docs")  # lost out of band
        store.create_collection("docs", VECTORS, {"hnsw_config": {"m": 8, "ef_construct": 100,
                                                                  "full_scan_threshold": 10000}}, NS_B)
        store.create_payload_index("docs", "b_field", KEYWORD)
        store.upsert("docs", [{"id": 1, "vector": {"image": [1.0, 0, 0, 0]}, "payload": {"b_field": "x"}}])
        before, before_indexes = store.read_collection("docs"), store.read_payload_indexes("docs")
        close_all_shards()
        forget_stores()

        body["feature_extractors"].append({"feature_extractor_name": "text_extractor", "version": "v1"})
        proj.write_stack("dev", config)
        for command in (("preview", "--diff"), ("up", "--yes", "--skip-preview")):
            refused = proj.run(*command, "-s", "dev", check=False)
            said = refused.stdout + refused.stderr
            assert refused.returncode != 0, said
            assert f"belongs to namespace {NS_B}" in said and "pulumi refresh" in said, said
        proj.run("destroy", "--yes", "--skip-preview", "-s", "dev", check=False)

        store = open_store(target)
        after = store.read_collection("docs")
        assert (after.vectors, after.settings, after.points_count, after.namespace_id) == \
            (before.vectors, before.settings, 1, NS_B)
        assert store.read_payload_indexes("docs") == before_indexes == {"b_field": KEYWORD}
    finally:
        close_all_shards()
        forget_stores()
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "dev", check=False)


def test_an_index_state_from_before_the_owner_record_gets_it_by_an_in_place_update(tmp_path):
    """State written before payload indexes recorded their namespace: one in-place update records it (the index is
    not re-created); from then on its writes and delete are checked against the collection's owner."""
    target = edge(tmp_path / "qdrant")
    COLLECTIONS.create(checked(COLLECTIONS, coll(target, collection_name="docs", namespace_id=NS_A)))
    made = INDEXES.create(checked(INDEXES, index(target, "a_field", KEYWORD)))
    old_outs = {k: v for k, v in wire(made.outs).items() if k != "namespace_id"}  # as an earlier version wrote it
    news = rechecked(INDEXES, index(target, "a_field", KEYWORD, namespace_id=NS_A), old_outs)
    diff = INDEXES.diff(made.id, old_outs, news)
    assert diff.changes is True and diff.replaces == []
    assert wire(INDEXES.update(made.id, old_outs, news).outs)["namespace_id"] == NS_A
    assert INDEXES.diff(made.id, wire(INDEXES.update(made.id, old_outs, news).outs), news).changes is False
    # Unknown at preview (its collection is being updated): no change of its own.
    from pulumi.runtime import rpc

    assert INDEXES.diff(made.id, wire(made.outs), {**news, "namespace_id": rpc.UNKNOWN}).changes is False
