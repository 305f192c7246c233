"""The real Qdrant server of the `qdrant_server` tier (`tests/qdrant_server.py`) and the server store on it:
loopback only, the API key enforced, snapshots through the server's API, refusals that name the server."""

from __future__ import annotations

import pytest

from mixpeek_infra.qdrant.errors import QdrantError
from mixpeek_infra.qdrant.store.server import ServerStore
from qdrant_server import VERSION, qdrant_server, qdrant_server_without_key  # noqa: F401 - fixtures

pytestmark = [pytest.mark.qdrant_server,
              pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

VECTORS = {"image": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False},
           "text": {"size": 3, "distance": "dot", "datatype": "float16", "on_disk": True}}


@pytest.mark.parametrize("which", ["qdrant_server", "qdrant_server_without_key"])
def test_listens_on_loopback_only_http_and_grpc_no_peer_port(request, which):
    server = request.getfixturevalue(which)
    assert server.listening() == {("127.0.0.1", server.http_port), ("127.0.0.1", server.grpc_port)}
    assert server.get("/").json()["version"] == VERSION


def test_the_api_key_is_enforced(qdrant_server, qdrant_server_without_key):
    assert qdrant_server.get("/collections").status_code == 200
    assert qdrant_server.get("/collections", api_key="").status_code == 401
    assert qdrant_server.get("/collections", api_key="not-the-key").status_code == 401
    assert qdrant_server_without_key.get("/collections").status_code == 200


@pytest.mark.parametrize("prefer_grpc", [False, True], ids=["rest", "grpc"])
def test_a_wrong_or_missing_key_is_refused_naming_the_server_not_the_key(qdrant_server, prefer_grpc):
    for key in ("qk-wrong-key-0123456789", None):
        store = ServerStore.connect(qdrant_server.url, api_key=key, timeout=30, prefer_grpc=prefer_grpc)
        try:
            with pytest.raises(QdrantError) as info:
                store.read_collection("anything")
        finally:
            store.close()
        said = str(info.value)
        assert f"Qdrant at {qdrant_server.url} refused get collection 'anything'" in said, said
        assert ("HTTP 401" if not prefer_grpc else "UNAUTHENTICATED") in said, said
        assert "check the API key" in said
        assert qdrant_server.api_key not in said and (key is None or key not in said)


def test_a_server_without_a_key_serves_a_store_without_one(qdrant_server_without_key):
    store = ServerStore.connect(qdrant_server_without_key.url, timeout=30)
    try:
        store.create_collection("no_key_here", VECTORS, {}, "ns_00000000aa")
        assert store.read_collection("no_key_here").namespace_id == "ns_00000000aa"
        assert store.delete_collection("no_key_here") is True
    finally:
        store.close()


@pytest.mark.parametrize("prefer_grpc", [False, True], ids=["rest", "grpc"])
def test_snapshot_download_and_upload_restore_on_the_server(qdrant_server, tmp_path, prefer_grpc):
    """The server half of final snapshots: Qdrant's snapshot API, downloaded, uploaded back under the same name;
    points, vectors, payloads, payload indexes and the owner record come back."""
    name = f"snap_{'grpc' if prefer_grpc else 'rest'}"
    store = qdrant_server.store(prefer_grpc=prefer_grpc)
    try:
        store.create_collection(name, VECTORS, {"hnsw_config": {"m": 8, "ef_construct": 50,
                                                                "full_scan_threshold": 2000}}, "ns_0123456789")
        store.create_payload_index(name, "metadata.sku", {"type": "keyword", "is_tenant": True})
        store.create_payload_index(name, "metadata.title", {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                                            "max_token_len": 15, "lowercase": True})
        store.upsert(name, [{"id": i, "vector": {"image": [1.0, i, 0, 0], "text": [0.5, 0.5, i]},
                             "payload": {"metadata": {"sku": f"s{i}", "title": f"summer hit {i}"}}} for i in range(5)])
        before = store.read_collection(name)
        archive = store.snapshot(name, str(tmp_path / "snaps"))
        assert archive.endswith(".snapshot") and (tmp_path / "snaps").is_dir()
        assert [p.name for p in (tmp_path / "snaps").iterdir()] == [archive.rsplit("/", 1)[1]]
        assert store.delete_collection(name) is True
        store.restore(archive, name)
        after = store.read_collection(name)
        assert after == before
        assert store.count_points(name, [{"key": "metadata.title", "text": "summer"}]) == 5
        hits = store.query(name, "image", [1.0, 3, 0, 0], [{"key": "metadata.sku", "value": "s3"}])
        assert [h["id"] for h in hits] == [3] and hits[0]["payload"]["metadata"]["title"] == "summer hit 3"
        # The server kept no copy of the snapshot it served.
        assert store.client.list_snapshots(name) == []
    finally:
        store.delete_collection(name)
        store.close()


def test_adding_a_named_vector_to_a_live_collection(qdrant_server):
    """Qdrant >= 1.18 adds a named vector in place (REST and gRPC): the points stay, the new vector takes writes."""
    for prefer_grpc in (False, True):
        name = f"add_vector_{'grpc' if prefer_grpc else 'rest'}"
        store = qdrant_server.store(prefer_grpc=prefer_grpc)
        try:
            store.create_collection(name, {"image": VECTORS["image"]}, {}, "ns_0123456789")
            store.upsert(name, [{"id": 1, "vector": {"image": [1.0, 0, 0, 0]}, "payload": {}}])
            assert store.server_version() >= (1, 18) and store.supports_add_vector()
            store.add_vector(name, "text", VECTORS["text"])
            store.add_vector(name, "colbert", {"size": 2, "distance": "cosine", "datatype": "float32",
                                               "on_disk": False, "multivector": {"comparator": "max_sim"}})
            state = store.read_collection(name)
            assert state.vectors == {**VECTORS, "colbert": {"size": 2, "distance": "cosine", "datatype": "float32",
                                                            "on_disk": False, "multivector": {"comparator": "max_sim"}}}
            assert state.points_count == 1
            store.upsert(name, [{"id": 2, "vector": {"text": [0.1, 0.2, 0.3], "colbert": [[1, 0], [0, 1]]},
                                 "payload": {}}])
            assert store.count_points(name) == 2
        finally:
            store.delete_collection(name)
            store.close()


def test_two_processes_creating_one_collection_on_the_server(qdrant_server, monkeypatch):
    """Two processes create one collection at once (fixed name): same namespace, both succeed (one creates, the
    other adopts); different namespaces, one succeeds and the other is refused naming the owner. The server's
    refusal of the taken name is what decides; its metadata holds the one owner."""
    import multiprocessing

    from test_safety_qdrant import NS_A, NS_B, _create_worker, checked, coll
    from mixpeek_infra.qdrant.resources import CollectionProvider

    # The workers' key: the ambient one, for this server's URL only.
    monkeypatch.setenv("QDRANT_URL", qdrant_server.url)
    monkeypatch.setenv("QDRANT_API_KEY", qdrant_server.api_key)
    target = {"kind": "server", "url": qdrant_server.url, "timeout": 30.0, "prefer_grpc": False}
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    pipes = [ctx.Pipe() for _ in range(2)]
    workers = [ctx.Process(target=_create_worker, args=(child, barrier), daemon=True) for _, child in pipes]
    for w in workers:
        w.start()
    problems = []
    store = qdrant_server.store()
    try:
        for trial in range(6):
            name = f"raced_{trial}"
            same = trial % 2 == 0
            ids = [NS_A, NS_A] if same else [NS_A, NS_B]
            for (parent, _), ns in zip(pipes, ids):
                parent.send(checked(CollectionProvider(), coll(target, collection_name=name, namespace_id=ns)))
            outs = [parent.recv() for parent, _ in pipes]
            ok = [o for o in outs if o["ok"]]
            refused = [o for o in outs if not o["ok"]]
            state = store.read_collection(name)
            if same:
                good = len(ok) == 2 and {o["namespace_id"] for o in ok} == {NS_A}
            else:
                good = (len(ok) == 1 and len(refused) == 1 and refused[0]["type"] == "CollectionConflict"
                        and f"belongs to namespace {ok[0]['namespace_id']}" in refused[0]["error"])
            good = good and state is not None and state.namespace_id == (ok[0]["namespace_id"] if ok else None)
            if not good:
                problems.append((trial, outs, state))
            store.delete_collection(name)
    finally:
        for parent, _ in pipes:
            parent.send(None)
        for w in workers:
            w.join(30)
            if w.is_alive():
                w.kill()
        store.close()
    assert problems == [], problems
