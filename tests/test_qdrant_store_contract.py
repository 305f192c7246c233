"""The store contract, run against every real engine available.

- `edge`: Qdrant Edge (qdrant-edge-py) in a temp dir: the real engine, full read-back.
- `local`: the server store's qdrant-client calls against qdrant-client's local mode, which ignores
  payload indexes and most settings and reports neither back (those checks are skipped there).
- `server`, `server-grpc`: the real Qdrant server (`tests/qdrant_server.py`, built by tools/qdrant/install)
  with an API key, over REST and over gRPC (`prefer_grpc`): full read-back.
"""

from __future__ import annotations

import secrets

import pytest

from mixpeek_infra.qdrant.store import CollectionConflict, CollectionNotFound, normalize_field_schema
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

VECTORS = {
    "image": {"size": 8, "distance": "cosine", "datatype": "float32", "on_disk": False},
    "text": {"size": 4, "distance": "dot", "datatype": "float16", "on_disk": True},
}
INDEXES = {
    "metadata.title": {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15, "lowercase": True},
    "metadata.description": {"type": "keyword", "is_tenant": True},
    "collection_id": {"type": "keyword", "is_tenant": False},
    "n": {"type": "integer", "lookup": True, "range": False},
    "f": {"type": "float"},
    "b": {"type": "bool"},
    "g": {"type": "geo"},
    "d": {"type": "datetime"},
    "u": {"type": "uuid", "is_tenant": True},
}


@pytest.fixture(params=["edge", "local", pytest.param("server", marks=pytest.mark.qdrant_server),
                        pytest.param("server-grpc", marks=pytest.mark.qdrant_server)])
def store(request, tmp_path):
    if request.param == "edge":
        from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

        yield EdgeStore(str(tmp_path / "edge"), timeout=5)
        close_all_shards()
    elif request.param == "local":
        from qdrant_client import QdrantClient

        from mixpeek_infra.qdrant.store.server import ServerStore

        s = ServerStore(QdrantClient(path=str(tmp_path / "local")))
        yield s
        s.close()
    else:
        server = request.getfixturevalue("qdrant_server")
        s = server.store(prefer_grpc=request.param == "server-grpc")
        yield s
        s.close()


@pytest.fixture
def name(store):
    collection = f"mixpeek_test_{secrets.token_hex(4)}"
    yield collection
    store.delete_collection(collection)


def _points():
    return [
        {"id": 1, "vector": {"image": [1, 0, 0, 0, 0, 0, 0, 0]},
         "payload": {"metadata": {"title": "Summer Hits 2024", "description": "pop"}, "n": 1}},
        {"id": 2, "vector": {"image": [0, 1, 0, 0, 0, 0, 0, 0]},
         "payload": {"metadata": {"title": "Winter chill", "description": "ambient"}, "n": 2}},
        {"id": 3, "vector": {"image": [0, 0, 1, 0, 0, 0, 0, 0]},
         "payload": {"metadata": {"title": "summer road trip", "description": "rock"}, "n": 3}},
    ]


def test_create_read_and_conflict(store, name):
    assert store.read_collection(name) is None
    settings = {"hnsw_config": {"m": 8, "ef_construct": 64, "full_scan_threshold": 5000},
                "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
                "on_disk_payload": True}
    store.create_collection(name, VECTORS, settings)
    state = store.read_collection(name)
    assert state.vectors == VECTORS
    assert state.points_count == 0
    if getattr(store, "reads_settings", True):
        assert state.settings["hnsw_config"]["m"] == 8
        assert state.settings["hnsw_config"]["ef_construct"] == 64
        assert state.settings["hnsw_config"]["full_scan_threshold"] == 5000
        assert state.settings["quantization_config"] == settings["quantization_config"]
        assert state.settings["on_disk_payload"] is True
    with pytest.raises(CollectionConflict):
        store.create_collection(name, VECTORS, {})


def test_missing_collection_is_reported_not_raised(store, name):
    assert store.read_collection(name) is None
    assert store.read_payload_indexes(name) is None
    assert store.delete_collection(name) is False
    assert store.delete_payload_index(name, "x") is False
    with pytest.raises(CollectionNotFound):
        store.count_points(name)


def test_add_vector_and_update_in_place(store, name):
    store.create_collection(name, {"image": VECTORS["image"]}, {})
    store.upsert(name, _points())
    assert store.supports_add_vector()
    store.add_vector(name, "text", VECTORS["text"])
    state = store.read_collection(name)
    assert state.vectors["text"]["size"] == 4 and state.vectors["text"]["distance"] == "dot"
    if not getattr(store, "local_mode", False):  # local mode drops the datatype of an added vector
        assert state.vectors["text"]["datatype"] == "float16"
    assert state.points_count == 3
    store.upsert(name, [{"id": 4, "vector": {"text": [0.1, 0.2, 0.3, 0.4]}, "payload": {}}])
    assert store.count_points(name) == 4
    store.update_collection(name, vectors_on_disk={"image": True},
                            settings={"hnsw_config": {"m": 32, "ef_construct": 100, "full_scan_threshold": 10000}})
    if getattr(store, "reads_settings", True):
        state = store.read_collection(name)
        assert state.vectors["image"]["on_disk"] is True
        assert state.settings["hnsw_config"]["m"] == 32
        assert state.points_count == 4


def test_payload_indexes_with_every_parameter(store, name):
    store.create_collection(name, {"image": VECTORS["image"]}, {})
    for field, schema in INDEXES.items():
        store.create_payload_index(name, field, normalize_field_schema(schema["type"], schema))
    if not store.reads_payload_indexes:
        # qdrant-client local mode accepts payload indexes but reports none back (the Edge and server cases check
        # them); should it start reporting them, `reads_payload_indexes` is wrong and this fails.
        assert store.read_collection(name).payload_schema == {}
        return
    wanted = {k: normalize_field_schema(v["type"], v) for k, v in INDEXES.items()}
    # `read_collection` always asks the engine; `read_payload_indexes` may answer from the server store's
    # cache of collection reads, which its index writes keep in step: both must agree with the engine.
    assert store.read_collection(name).payload_schema == wanted
    assert store.read_payload_indexes(name) == wanted
    # Re-creating with other params (or another type) replaces the index in place.
    prefix = {"type": "text", "tokenizer": "prefix", "min_token_len": 3, "max_token_len": 10, "lowercase": False}
    integer = {"type": "integer", "lookup": True, "range": True}
    store.create_payload_index(name, "metadata.title", prefix)
    store.create_payload_index(name, "collection_id", integer)
    assert store.read_payload_index(name, "metadata.title") == prefix
    assert store.read_payload_index(name, "collection_id") == integer
    engine = store.read_collection(name).payload_schema
    assert engine["metadata.title"] == prefix and engine["collection_id"] == integer
    assert store.delete_payload_index(name, "f") is True
    assert store.delete_payload_index(name, "f") is False
    assert "f" not in store.read_payload_indexes(name)
    assert "f" not in store.read_collection(name).payload_schema


def test_filtered_queries(store, name):
    store.create_collection(name, {"image": VECTORS["image"]}, {})
    store.create_payload_index(name, "metadata.title", INDEXES["metadata.title"])
    store.create_payload_index(name, "metadata.description", INDEXES["metadata.description"])
    store.upsert(name, _points())
    assert store.count_points(name) == 3
    assert store.count_points(name, [{"key": "metadata.title", "text": "summer"}]) == 2
    hits = store.query(name, "image", [0, 0, 1, 0, 0, 0, 0, 0],
                       [{"key": "metadata.title", "text": "summer"}, {"key": "metadata.description", "value": "rock"}])
    assert [h["id"] for h in hits] == [3]
    assert hits[0]["payload"]["metadata"]["title"] == "summer road trip"


def test_delete_removes_data(store, name):
    store.create_collection(name, {"image": VECTORS["image"]}, {})
    store.upsert(name, _points())
    assert store.delete_collection(name) is True
    assert store.read_collection(name) is None


def test_delete_vector_keeps_points_payloads_and_other_vectors(store, name):
    """Removing an extractor drops its named vector in place (issue 22): config and data go, points stay."""
    store.create_collection(name, VECTORS, {})
    store.upsert(name, [{**p, "vector": {**p["vector"], "text": [0.1, 0.2, 0.3, 0.4]}} for p in _points()])
    assert store.delete_vector(name, "text") is True
    assert store.delete_vector(name, "text") is False  # already gone: nothing to do
    state = store.read_collection(name)
    assert set(state.vectors) == {"image"} and state.vectors["image"] == VECTORS["image"]
    assert store.count_points(name) == 3
    hits = store.query(name, "image", [0, 1, 0, 0, 0, 0, 0, 0], limit=3)
    assert {h["id"]: h["payload"] for h in hits} == {p["id"]: p["payload"] for p in _points()}
    with pytest.raises(Exception) as gone:  # noqa: B017 - each engine has its own error type
        store.query(name, "text", [0.1, 0.2, 0.3, 0.4])
    assert "text" in str(gone.value), gone.value  # the engine names the vector it no longer has
