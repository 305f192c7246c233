"""Blue/green migration of a collection whose vectors change shape (issue 22).

A namespace whose multimodal extractor (v2) moves from 768 to 1536 dimensions keeps its name: the
collection is copied into a new generation with the new vector config (points, payloads, the
image vectors and every payload index kept; the changed vector left empty to be embedded again),
then switched in under the same name at once; the previous collection stays for rollback. Through
the providers on Qdrant Edge, on qdrant-client's local mode behind the server store, and on a real
Qdrant server (the `qdrant_server` tier), with the faults a kill can leave.
"""

from __future__ import annotations

import copy
import math
import threading

import pytest
from enginehost import from_struct, to_struct
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.migration import migrate
from mixpeek_infra.qdrant.resources import CollectionProvider, DeletionProtected
from mixpeek_infra.qdrant.store import forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import close_all_shards

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning",
                                        "ignore:Api key is used with an insecure connection:UserWarning")

COLLECTIONS = CollectionProvider()
IMAGE = "image_extractor_v1_embedding"
MULTIMODAL = "multimodal_extractor_v2_multimodal_embedding"
TRANSCRIPTION = "multimodal_extractor_v2_transcription_embedding"
INDEXES = {"metadata.title": {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15,
                              "lowercase": True},
           "metadata.year": {"type": "integer", "lookup": True, "range": True}}


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def body(seed: dict, dims: int) -> dict:
    out = copy.deepcopy(seed)
    [mm] = [fe for fe in out["feature_extractors"] if fe["feature_extractor_name"] == "multimodal_extractor"]
    mm.update(version="v2", feature_extractor_id="multimodal_extractor_v2", params={"output_dimensionality": dims})
    return out


def inputs(seed: dict, dims: int, target: dict, olds: dict | None = None, **extra) -> dict:
    news = {"target": target, "vectors": plan_namespace(body(seed, dims)).vector_config(), "settings": {},
            "deletion_protection": True, **extra}
    result = COLLECTIONS.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def unit(size: int, i: int) -> list[float]:
    v = [0.0] * size
    v[i] = 1.0
    v[i + 1] = 0.5
    return v


def points(n: int = 3) -> list[dict]:
    return [{"id": i + 1,
             "vector": {IMAGE: unit(768, i), MULTIMODAL: unit(768, i + 1), TRANSCRIPTION: unit(1024, i)},
             "payload": {"metadata": {"title": f"playlist {i}", "year": 2020 + i}}} for i in range(n)]


def cosine(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(params=["edge", "local", pytest.param("server", marks=pytest.mark.qdrant_server)])
def target(request, tmp_path):
    if request.param == "edge":
        spec = {"kind": "embedded", "path": str(tmp_path / "qdrant"), "timeout": 10.0}
        yield spec
        close_all_shards()
    elif request.param == "local":
        from qdrant_client import QdrantClient

        from mixpeek_infra.qdrant.store.server import ServerStore

        spec = {"kind": "server", "url": f"http://local-mode.invalid/{tmp_path.name}", "timeout": 10.0}
        store = ServerStore(QdrantClient(path=str(tmp_path / "local")))
        install_store(spec, store)
        yield spec
        store.close()
    else:
        server = request.getfixturevalue("qdrant_server")
        spec = {"kind": "server", "url": server.url, "timeout": 30.0, "prefer_grpc": False}
        install_store(spec, server.store())
        yield spec
    forget_stores()


def deployed(seed: dict, target: dict, dims: int = 768, **extra) -> dict:
    news = inputs(seed, dims, target, **extra)
    created = COLLECTIONS.create(news)
    store = open_store(target)
    store.upsert(created.id, points())
    for field_name, schema in INDEXES.items():
        store.create_payload_index(created.id, field_name, schema)
    return {"id": created.id, "inputs": news, "outputs": wire(COLLECTIONS.read(created.id, created.outs).outs)}


def records(target: dict, name: str) -> dict:
    """id -> (payload, {vector name: vector}) of collection `name` as the engine returns it."""
    store = open_store(target)
    if target["kind"] == "embedded":
        import os

        import qdrant_edge as qe

        close_all_shards()
        shard = qe.EdgeShard.load(os.path.join(target["path"], name))
        try:
            found = shard.retrieve([1, 2, 3, 99], with_payload=True, with_vector=True)
        finally:
            shard.close()
    else:
        found = store.client.retrieve(name, [1, 2, 3, 99], with_payload=True, with_vectors=True)
    return {r.id: (r.payload, {k: list(v) for k, v in (r.vector or {}).items()}) for r in found}


def assert_migrated(target: dict, name: str, *, resized: str = MULTIMODAL) -> None:
    got = records(target, name)
    want = {p["id"]: p for p in points()}
    assert sorted(got) == sorted(want)
    for pid, (payload, vectors) in got.items():
        assert payload == want[pid]["payload"]
        assert resized not in vectors, "a vector whose shape changed is left empty, to be embedded again"
        assert set(vectors) == {IMAGE, TRANSCRIPTION, MULTIMODAL} - {resized}
        for vname, v in vectors.items():
            assert cosine(v, want[pid]["vector"][vname]) == pytest.approx(1.0, abs=1e-5)


def move(coll: dict, seed: dict, target: dict, dims: int, provider_log: list[str], **extra) -> dict:
    news = inputs(seed, dims, target, coll["inputs"], **extra)
    d = COLLECTIONS.diff(coll["id"], coll["outputs"], news)
    assert d.changes is True and d.replaces == [] and d.delete_before_replace is None, d
    outs = wire(COLLECTIONS.update(coll["id"], coll["outputs"], news).outs)
    return {"id": coll["id"], "inputs": news, "outputs": outs}


def test_a_changed_vector_size_migrates_blue_green_keeping_every_point(seed, target, provider_log):
    coll = deployed(seed, target)
    name = coll["id"]
    news = inputs(seed, 1536, target, coll["inputs"])
    d = COLLECTIONS.diff(name, coll["outputs"], news)  # deletion protection on, 3 points: no refusal, no replace
    assert d.changes is True and d.replaces == []
    [line] = [s for s in provider_log if "migrate:" in s]
    assert "3 point(s) copied" in line, line
    assert f"vectors kept: {IMAGE}, {TRANSCRIPTION}" in line and f"vectors to re-embed: {MULTIMODAL}" in line, line
    assert "size 768 -> 1536" in line and "previous collection kept as" in line, line
    kept_as = line.split("previous collection kept as '")[1].split("'")[0]

    after = move(coll, seed, target, 1536, provider_log)["outputs"]
    assert after["namespace_id"] == coll["outputs"]["namespace_id"] and after["collection_name"] == name
    assert after["vectors"][MULTIMODAL]["size"] == 1536 and after["points_count"] == 3
    assert after["previous_collections"] == [kept_as]
    assert_migrated(target, name)
    store = open_store(target)
    state = store.read_collection(name)
    assert state.namespace_id == coll["outputs"]["namespace_id"] and not state.staging
    if store.reads_payload_indexes:
        assert state.payload_schema == INDEXES
    previous = store.read_collection(kept_as)
    assert previous.vectors[MULTIMODAL]["size"] == 768 and previous.points_count == 3
    assert previous.namespace_id == coll["outputs"]["namespace_id"]
    # The previous collection is untouched: every vector as it was.
    for _, vectors in records(target, kept_as).values():
        assert set(vectors) == {IMAGE, MULTIMODAL, TRANSCRIPTION}
    # Queries by name answer from the new collection; the next preview shows no change.
    assert {h["id"] for h in store.query(name, IMAGE, unit(768, 0))} == {1, 2, 3}
    again = COLLECTIONS.diff(name, after, inputs(seed, 1536, target, news))
    assert again.changes is False


def test_rollback_switches_back_to_the_kept_collection(seed, target, provider_log):
    coll = deployed(seed, target)
    moved = move(coll, seed, target, 1536, provider_log)
    assert len(moved["outputs"]["previous_collections"]) == 1
    provider_log.clear()
    back = move(moved, seed, target, 768, provider_log)["outputs"]
    assert any("migrate:" in s for s in provider_log), provider_log
    assert back["vectors"][MULTIMODAL]["size"] == 768 and back["points_count"] == 3
    # The old multimodal vectors are back (no copy: the kept collection itself serves again) ...
    for pid, (_, vectors) in records(target, coll["id"]).items():
        assert set(vectors) == {IMAGE, MULTIMODAL, TRANSCRIPTION}
        assert cosine(vectors[MULTIMODAL], points()[pid - 1]["vector"][MULTIMODAL]) == pytest.approx(1.0, abs=1e-5)
    # ... and the collection rolled back from is kept in its turn.
    assert len(back["previous_collections"]) == 1  # (Edge: the same name, whose directory was exchanged again)
    assert open_store(target).read_collection(back["previous_collections"][0]).vectors[MULTIMODAL]["size"] == 1536


def test_retain_previous_false_deletes_the_previous_collection(seed, target, provider_log):
    coll = deployed(seed, target, retain_previous=False)
    after = move(coll, seed, target, 1536, provider_log, retain_previous=False)["outputs"]
    assert after["previous_collections"] == []
    assert [s for s in provider_log if "previous collection deleted after the switch" in s]
    store = open_store(target)
    assert store.generations(coll["id"], coll["outputs"]["namespace_id"]) == {}
    assert_migrated(target, coll["id"])


def test_a_kill_during_the_copy_is_finished_by_the_next_up(seed, target, provider_log):
    """A generation still `staging` (half copied, never switched in) is deleted and built again."""
    coll = deployed(seed, target)
    name, ns = coll["id"], coll["outputs"]["namespace_id"]
    store = open_store(target)
    news = inputs(seed, 1536, target, coll["inputs"])
    half = store.next_generation(name)
    store.create_generation(half, news["vectors"], {}, ns)
    store.upsert(half, [{"id": 1, "vector": {IMAGE: unit(768, 0)}, "payload": {}}])  # what a kill mid-copy leaves
    assert store.read_collection(half).staging
    assert store.read_collection(name).vectors[MULTIMODAL]["size"] == 768  # readers never saw it
    after = wire(COLLECTIONS.update(name, coll["outputs"], news).outs)
    assert after["points_count"] == 3 and len(after["previous_collections"]) == 1
    assert_migrated(target, name)
    assert half not in after["previous_collections"] or not store.read_collection(half).staging


def test_a_kill_after_the_switch_is_recognised_by_the_next_up(seed, target, provider_log):
    """The switch happened but the state was never written: the next `up` copies nothing again."""
    coll = deployed(seed, target)
    name, ns = coll["id"], coll["outputs"]["namespace_id"]
    news = inputs(seed, 1536, target, coll["inputs"])
    done = migrate(open_store(target), name, ns, news["vectors"], {}, retain_previous=True)
    assert done.copied == 3
    provider_log.clear()
    after = wire(COLLECTIONS.update(name, coll["outputs"], news).outs)
    assert not [s for s in provider_log if "migrated" in s], provider_log
    assert after["previous_collections"] == [done.previous] and after["vectors"][MULTIMODAL]["size"] == 1536
    assert_migrated(target, name)


def test_destroy_is_refused_while_a_kept_collection_holds_points(seed, target, provider_log):
    coll = deployed(seed, target)
    moved = move(coll, seed, target, 1536, provider_log)
    store = open_store(target)
    # Empty the current collection: only the kept one holds points, and protection still guards it.
    store.client.delete(coll["id"], points_selector=[1, 2, 3]) if target["kind"] == "server" else None
    if target["kind"] == "server":
        with pytest.raises(DeletionProtected, match=moved["outputs"]["previous_collections"][0]):
            COLLECTIONS.delete(coll["id"], moved["outputs"])
    else:
        with pytest.raises(DeletionProtected):
            COLLECTIONS.delete(coll["id"], moved["outputs"])
    unprotected = dict(moved["outputs"], deletion_protection=False)
    COLLECTIONS.delete(coll["id"], unprotected)
    assert store.read_collection(coll["id"]) is None
    assert store.read_collection(moved["outputs"]["previous_collections"][0]) is None


def test_queries_by_name_never_fail_during_a_migration(seed, target, provider_log):
    """A query loop by the collection's name runs through the whole migration: every query answers, with all
    three points."""
    coll = deployed(seed, target)
    store = open_store(target)
    failures: list[str] = []
    answered = [0]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                hits = store.query(coll["id"], IMAGE, unit(768, 0), limit=10)
                if {h["id"] for h in hits} != {1, 2, 3}:
                    failures.append(f"answered {sorted(h['id'] for h in hits)}")
                answered[0] += 1
            except Exception as exc:  # noqa: BLE001 - each failure is the finding
                failures.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        move(coll, seed, target, 1536, provider_log)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert failures == [] and answered[0] > 0, (failures[:5], answered)


@pytest.mark.qdrant_server
def test_a_collection_made_before_aliases_migrates_once_into_the_alias_form(seed, qdrant_server, provider_log):  # noqa: F811
    """State of an earlier version: the physical collection is the namespace's name itself. Its first migration
    keeps a copy as a generation, and the name becomes an alias (the preview says queries can fail a moment)."""
    target = {"kind": "server", "url": qdrant_server.url, "timeout": 30.0, "prefer_grpc": False}
    install_store(target, qdrant_server.store())
    try:
        store = open_store(target)
        legacy, ns = "legacy_collection", "ns_00000000aa"
        news = inputs(seed, 768, target, collection_name=legacy, namespace_id=ns)
        store._create(legacy, news["vectors"], {}, {"mixpeek_namespace_id": ns})  # no alias: as earlier versions made it
        store.upsert(legacy, points())
        outs = wire(COLLECTIONS.read(legacy, dict(news, created_at="2026-01-01T00:00:00Z")).outs)
        coll = {"id": legacy, "inputs": news, "outputs": outs}
        moved = move(coll, seed, target, 1536, provider_log, collection_name=legacy, namespace_id=ns)
        [line] = [s for s in provider_log if "migrate:" in s]
        assert "made before aliases" in line, line
        assert store._alias_target(legacy) is not None
        assert_migrated(target, legacy)
        [kept] = moved["outputs"]["previous_collections"]
        assert store.read_collection(kept).points_count == 3
    finally:
        forget_stores()


V = {"size": 8, "distance": "cosine", "datatype": "float32", "multivector": None, "on_disk": False}


@pytest.mark.parametrize(("old", "new", "settings", "migrates", "reason"), [
    ({"a": V}, {"a": V, "b": V}, ({}, {}), False, None),  # an extractor added: in place
    ({"a": V, "b": V}, {"a": V}, ({}, {}), False, None),  # an extractor removed: dropped in place
    ({"a": V}, {"a": {**V, "on_disk": True}}, ({}, {}), False, None),  # on_disk is no shape: in place
    ({"a": V}, {"a": {**V, "size": 16}}, ({}, {}), True, "vector 'a' size 8 -> 16"),
    ({"a": V}, {"a": {**V, "distance": "dot"}}, ({}, {}), True, "vector 'a' distance 'cosine' -> 'dot'"),
    ({"a": V, "v1": V}, {"a": V, "v2": V}, ({}, {}), True, "vector(s) 'v1' -> 'v2'"),  # a new version
    ({"a": V}, {"a": V}, ({"shard_number": 1}, {"shard_number": 3}), True, "shard_number 1 -> 3"),
    ({"a": V}, {"a": V}, ({}, {"shard_number": 1}), False, None),  # 1 is the default
])
def test_which_vector_changes_migrate_and_the_reason_the_preview_gives(old, new, settings, migrates, reason):
    from mixpeek_infra.qdrant.migration import needs_migration, plan_migration

    assert needs_migration(old, new, *settings) is migrates
    if reason:
        assert reason in plan_migration(old, new, *settings).reasons
