"""EdgeStore specifics against real Qdrant Edge shards in temp dirs: persistence, the text index's
parameters in effect, the shard lock between processes, corruption and interrupted creates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

from mixpeek_infra.qdrant.store import EdgeCorrupt, EdgeLocked, normalize_field_schema
from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

VECTORS = {"image": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}}
TITLE = {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15, "lowercase": True}


@pytest.fixture
def root(tmp_path):
    yield str(tmp_path / "qdrant")
    close_all_shards()


def test_shard_directory_layout_and_persistence(root):
    store = EdgeStore(root)
    store.create_collection("ns_0123456789", VECTORS, {"on_disk_payload": False})
    store.create_payload_index("ns_0123456789", "metadata.title", TITLE)
    path = os.path.join(root, "ns_0123456789")
    assert os.path.isfile(os.path.join(path, "edge_config.json"))
    close_all_shards()
    # A different process sees the same config and index schema.
    code = textwrap.dedent(f"""
        import json
        from mixpeek_infra.qdrant.store.edge import EdgeStore
        state = EdgeStore({root!r}).read_collection("ns_0123456789")
        print(json.dumps([state.vectors, state.payload_schema, state.settings["on_disk_payload"]]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    vectors, schema, on_disk_payload = json.loads(out)
    assert vectors == VECTORS
    assert schema == {"metadata.title": TITLE}
    assert on_disk_payload is False


def test_text_index_parameters_are_in_effect(root):
    """Without an index Edge matches text by plain tokens; the index's min/max token length changes results."""
    store = EdgeStore(root)
    for name, indexed in (("indexed", True), ("plain", False)):
        store.create_collection(name, VECTORS, {})
        if indexed:
            store.create_payload_index(name, "metadata.title", TITLE)
        store.upsert(name, [
            {"id": 1, "vector": {"image": [1, 0, 0, 0]}, "payload": {"metadata": {"title": "SUMMER x hits"}}},
            {"id": 2, "vector": {"image": [0, 1, 0, 0]},
             "payload": {"metadata": {"title": "supercalifragilisticexpialidocious"}}},
        ])
    short = [{"key": "metadata.title", "text": "x"}]
    long_ = [{"key": "metadata.title", "text": "supercalifragilisticexpialidocious"}]
    lower = [{"key": "metadata.title", "text": "summer"}]
    assert store.count_points("plain", short) == 1 and store.count_points("plain", long_) == 1
    assert store.count_points("indexed", short) == 0, "tokens shorter than min_token_len=2 are not indexed"
    assert store.count_points("indexed", long_) == 0, "tokens longer than max_token_len=15 are not indexed"
    assert store.count_points("indexed", lower) == 1, "lowercase=true matches SUMMER"


def test_shard_locked_by_another_process(root):
    store = EdgeStore(root, timeout=0.5)
    store.create_collection("c1", VECTORS, {})
    close_all_shards()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, qdrant_edge
        shard = qdrant_edge.EdgeShard.load({os.path.join(root, 'c1')!r})
        print("ready", flush=True)
        sys.stdin.read()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        start = time.monotonic()
        with pytest.raises(EdgeLocked) as info:
            store.read_collection("c1")
        # The holder never lets go meanwhile, so only the store's own timeout (0.5 s) ends the wait; the bound only
        # tells giving up from hanging, with room for a loaded machine.
        assert time.monotonic() - start < 0.5 + 60
        assert "locked by another process" in str(info.value) and "c1" in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(60)
    # Once the other process has let go, the shard opens.
    assert store.read_collection("c1").vectors == VECTORS


def test_idle_shards_are_released_for_other_processes(root, monkeypatch):
    monkeypatch.setenv("MIXPEEK_EDGE_IDLE_CLOSE", "0.1")
    store = EdgeStore(root)
    store.create_collection("c1", VECTORS, {})
    code = textwrap.dedent(f"""
        import time, qdrant_edge
        start = time.monotonic()
        while True:  # until this process has let go (its idle close), however loaded the machine
            try:
                qdrant_edge.EdgeShard.load({os.path.join(root, 'c1')!r}).close()
                break
            except Exception:
                if time.monotonic() - start > 120:
                    raise
                time.sleep(0.05)
        print("ok")
    """)
    # This process stays alive and keeps the store: the other process can open the shard only because the idle
    # close released it, not because this process exited.
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.stdout.startswith("ok"), out.stderr


def test_corrupt_shard_gives_a_clear_error(root):
    store = EdgeStore(root)
    store.create_collection("c1", VECTORS, {})
    close_all_shards()
    with open(os.path.join(root, "c1", "edge_config.json"), "w") as fh:
        fh.write("garbage")
    with pytest.raises(EdgeCorrupt) as info:
        store.read_collection("c1")
    assert os.path.join(root, "c1") in str(info.value) and "snapshot" in str(info.value)


def test_interrupted_create_is_completed_by_a_rerun(root):
    store = EdgeStore(root)
    os.makedirs(os.path.join(root, "c1", "segments"))  # what an interrupted create leaves behind
    with open(os.path.join(root, "c1", "mixpeek_collection.json"), "w") as marker:  # written before the create
        marker.write('{"created_by": "mixpeek-infra", "namespace_id": null}')
    assert store.read_collection("c1") is None
    store.create_collection("c1", VECTORS, {})
    assert store.read_collection("c1").vectors == VECTORS


def test_collection_names_cannot_escape_the_root(root):
    from mixpeek_infra.qdrant.store import InvalidSpec

    with pytest.raises(InvalidSpec, match="collection_name"):
        EdgeStore(root).read_collection("../etc")


def test_settings_and_on_disk_update_in_place_keep_points(root):
    store = EdgeStore(root)
    store.create_collection("c1", VECTORS, {})
    store.upsert("c1", [{"id": 1, "vector": {"image": [1, 0, 0, 0]}, "payload": {"a": 1}}])
    store.create_payload_index("c1", "a", normalize_field_schema("integer", None))
    store.update_collection("c1", vectors_on_disk={"image": True}, settings={
        "hnsw_config": {"m": 24, "ef_construct": 90, "full_scan_threshold": 100},
        "quantization_config": {"product": {"compression": "x16", "always_ram": True}},
        "on_disk_payload": False})
    state = store.read_collection("c1")
    assert state.vectors["image"]["on_disk"] is True
    assert state.settings["hnsw_config"] == {"m": 24, "ef_construct": 90, "full_scan_threshold": 100}
    assert state.settings["quantization_config"] == {"product": {"compression": "x16", "always_ram": True}}
    assert state.settings["on_disk_payload"] is False
    assert state.points_count == 1
    assert state.payload_schema == {"a": {"type": "integer", "lookup": True, "range": True}}
