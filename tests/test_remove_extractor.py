"""Removing an extractor is an in-place update of the collection (issue 22, first step).

Its named vectors are dropped on the live collection; every point keeps its payload and its other
named vectors; the collection name and the namespace_id stay; deletion protection does not refuse
(no point is deleted) and the preview says which vectors go and how many points keep the rest.

Through the providers on Qdrant Edge, on qdrant-client's local mode behind the server store, and on
a real Qdrant server (the `qdrant_server` tier: skipped without the binary); through the real
Pulumi CLI (`preview --diff`, then `up`).
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path

import pytest
import yaml
from enginehost import from_struct, to_struct
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.errors import QdrantError
from mixpeek_infra.qdrant.resources import CollectionProvider, DeletionProtected
from mixpeek_infra.qdrant.store import forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import close_all_shards

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning",
                                        "ignore:Api key is used with an insecure connection:UserWarning")

COLLECTIONS = CollectionProvider()
IMAGE = "image_extractor_v1_embedding"
MULTIMODAL = "multimodal_extractor_v1_multimodal_embedding"
TRANSCRIPTION = "multimodal_extractor_v1_transcription_embedding"
DROPPED = (MULTIMODAL, TRANSCRIPTION)
SIZES = {IMAGE: 768, MULTIMODAL: 1408, TRANSCRIPTION: 1024}


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def checked(news: dict, olds: dict | None = None) -> dict:
    result = COLLECTIONS.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def inputs(plan, target, **extra) -> dict:
    return {"target": target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True, **extra}


def without_multimodal(seed: dict) -> dict:
    fewer = copy.deepcopy(seed)
    fewer["feature_extractors"] = [fe for fe in fewer["feature_extractors"]
                                   if fe["feature_extractor_name"] != "multimodal_extractor"]
    return fewer


def vector_of(name: str, i: int) -> list[float]:
    v = [0.0] * SIZES[name]
    v[i] = 1.0
    v[i + 1] = 0.5
    return v


POINTS = [{"id": i + 1, "vector": {name: vector_of(name, i) for name in SIZES},
           "payload": {"collection_id": f"col_{i}", "metadata": {"title": f"playlist {i}", "year": 2020 + i}}}
          for i in range(3)]


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


def assert_points_kept_without(records: dict[int, tuple[dict, dict]], dropped=DROPPED) -> None:
    """`records`: id -> (payload, {vector name: vector}) as the engine returns them."""
    assert sorted(records) == [p["id"] for p in POINTS], records.keys()
    for point in POINTS:
        payload, vectors = records[point["id"]]
        assert payload == point["payload"]
        assert set(vectors) == set(SIZES) - set(dropped), vectors.keys()
        for name in vectors:
            assert len(vectors[name]) == SIZES[name]
            assert cosine(vectors[name], point["vector"][name]) == pytest.approx(1.0, abs=1e-5)


def edge_records(root: str, name: str) -> dict[int, tuple[dict, dict]]:
    """Every point of the shard, read by a fresh Edge handle (after the store closed its own)."""
    import qdrant_edge as qe

    close_all_shards()
    shard = qe.EdgeShard.load(os.path.join(root, name))
    try:
        found = shard.retrieve([p["id"] for p in POINTS] + [99], with_payload=True, with_vector=True)
        return {r.id: (r.payload, {k: list(v) for k, v in r.vector.items()}) for r in found}
    finally:
        shard.close()


def client_records(client, name: str) -> dict[int, tuple[dict, dict]]:
    found = client.retrieve(name, [p["id"] for p in POINTS] + [99], with_payload=True, with_vectors=True)
    return {r.id: (r.payload, {k: list(v) for k, v in r.vector.items()}) for r in found}


def deploy_with_points(seed, target) -> dict:
    news = checked(inputs(plan_namespace(seed), target))
    created = COLLECTIONS.create(news)
    open_store(target).upsert(created.id, POINTS)
    return {"id": created.id, "inputs": news, "outputs": wire(created.outs)}


def remove_multimodal(seed, target, coll, provider_log) -> dict:
    """Preview (diff) then `up` (update) of the namespace without its multimodal extractor; returns new outputs."""
    news = checked(inputs(plan_namespace(without_multimodal(seed)), target), coll["inputs"])
    d = COLLECTIONS.diff(coll["id"], coll["outputs"], news)  # deletion protection is on: must not refuse
    assert d.changes is True and d.replaces == [], d
    assert d.delete_before_replace is None
    line = next((w for w in provider_log if "drop" in w), None)
    assert line is not None, provider_log
    assert f"'{MULTIMODAL}'" in line and f"'{TRANSCRIPTION}'" in line and f"'{IMAGE}'" in line, line
    assert "3 point(s)" in line and coll["id"] in line, line
    outs = wire(COLLECTIONS.update(coll["id"], coll["outputs"], news).outs)
    assert set(outs["vectors"]) == {IMAGE}
    assert outs["namespace_id"] == coll["outputs"]["namespace_id"]
    assert outs["collection_name"] == coll["outputs"]["collection_name"] == coll["id"]
    assert outs["points_count"] == 3
    # The next preview shows no change: state and collection agree.
    again = COLLECTIONS.diff(coll["id"], outs, checked(inputs(plan_namespace(without_multimodal(seed)), target),
                                                      news))
    assert again.changes is False
    return outs


# ---------------------------------------------------------------------------------------------
# Qdrant Edge


@pytest.fixture
def edge_target(tmp_path):
    spec = {"kind": "embedded", "path": str(tmp_path / "qdrant"), "timeout": 10.0}
    yield spec
    close_all_shards()
    forget_stores()


def test_edge_remove_an_extractor_drops_its_vectors_in_place(seed, edge_target, provider_log):
    coll = deploy_with_points(seed, edge_target)
    name = coll["id"]
    remove_multimodal(seed, edge_target, coll, provider_log)
    # Read after the store's handle is closed and the shard reopened: the drop is on disk.
    assert_points_kept_without(edge_records(edge_target["path"], name))
    forget_stores()
    state = open_store(edge_target).read_collection(name)
    assert set(state.vectors) == {IMAGE} and state.points_count == 3
    assert state.namespace_id == coll["outputs"]["namespace_id"]
    # Queries by the kept vector still find every point with its payload.
    hits = open_store(edge_target).query(name, IMAGE, vector_of(IMAGE, 0), limit=10)
    assert {h["id"] for h in hits} == {1, 2, 3}


def test_edge_a_version_with_new_vector_names_migrates_and_keeps_the_old_vectors_for_a_rollback(
        seed, edge_target, provider_log):
    """multimodal v1 -> v2: its vectors have other names. Dropping the v1 ones in place would lose them for good, so
    this migrates: the new collection holds every point with its payload and image vector (the v2 vectors empty,
    to be embedded again), the previous one keeps the v1 vectors, and reverting switches back to it."""
    coll = deploy_with_points(seed, edge_target)
    v2 = copy.deepcopy(seed)
    [mm] = [fe for fe in v2["feature_extractors"] if fe["feature_extractor_name"] == "multimodal_extractor"]
    mm.update(version="v2", feature_extractor_id="multimodal_extractor_v2", params={"output_dimensionality": 768})
    news = checked(inputs(plan_namespace(v2), edge_target), coll["inputs"])
    d = COLLECTIONS.diff(coll["id"], coll["outputs"], news)
    assert d.changes is True and d.replaces == []
    added = ("multimodal_extractor_v2_multimodal_embedding", "multimodal_extractor_v2_transcription_embedding")
    [line] = [w for w in provider_log if "migrate:" in w]
    assert "migrate: 3 point(s) copied" in line and f"vectors kept: {IMAGE}" in line, line
    assert f"vectors to re-embed: {', '.join(added)}" in line, line
    assert f"vectors dropped: {MULTIMODAL}, {TRANSCRIPTION}" in line and "previous collection kept as" in line, line
    outs = wire(COLLECTIONS.update(coll["id"], coll["outputs"], news).outs)
    assert set(outs["vectors"]) == {IMAGE, *added}
    assert outs["namespace_id"] == coll["outputs"]["namespace_id"] and outs["collection_name"] == coll["id"]
    [previous] = outs["previous_collections"]
    assert_points_kept_without(edge_records(edge_target["path"], coll["id"]))  # the new vectors are empty
    assert_points_kept_without(edge_records(edge_target["path"], previous), dropped=())  # v1 vectors all there

    # Reverting to v1 switches the previous collection back in, v1 vectors and all, without copying.
    back = checked(inputs(plan_namespace(seed), edge_target), news)
    outs = wire(COLLECTIONS.update(coll["id"], outs, back).outs)
    assert set(outs["vectors"]) == set(SIZES)
    assert_points_kept_without(edge_records(edge_target["path"], coll["id"]), dropped=())


def test_an_added_extractor_beside_a_vector_made_outside_pulumi_stays_in_place(seed, edge_target, provider_log):
    """A vector added to the collection outside Pulumi is not one "replaced" by the new extractor's: adding an
    extractor is the in-place add the preview planned (from the state), no migration, and that vector stays."""
    coll = deploy_with_points(seed, edge_target)
    store = open_store(edge_target)
    store.add_vector(coll["id"], "by_hand", {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False})
    close_all_shards()
    more = copy.deepcopy(seed)
    more["feature_extractors"].append({"feature_extractor_name": "text_extractor", "version": "v1"})
    news = checked(inputs(plan_namespace(more), edge_target), coll["inputs"])
    d = COLLECTIONS.diff(coll["id"], coll["outputs"], news)
    assert d.changes is True and d.replaces == []
    outs = wire(COLLECTIONS.update(coll["id"], coll["outputs"], news).outs)
    assert not [w for w in provider_log if "migrate" in w], provider_log
    assert outs["previous_collections"] == []
    vectors = open_store(edge_target).read_collection(coll["id"]).vectors
    close_all_shards()
    assert {"by_hand", "text_extractor_v1_embedding", *SIZES} == set(vectors)
    assert_points_kept_without(edge_records(edge_target["path"], coll["id"]), dropped=())


def test_edge_store_delete_vector(edge_target):
    store = open_store(edge_target)
    store.create_collection("c", {IMAGE: {"size": 768, "distance": "cosine", "datatype": "float32", "on_disk": False},
                                  MULTIMODAL: {"size": 1408, "distance": "cosine", "datatype": "float32",
                                               "on_disk": False}}, {}, "ns_0123456789")
    assert store.delete_vector("c", MULTIMODAL) is True
    assert store.delete_vector("c", MULTIMODAL) is False  # already gone: nothing to do
    close_all_shards()
    assert set(store.read_collection("c").vectors) == {IMAGE}


# ---------------------------------------------------------------------------------------------
# qdrant-client local mode (the server store's calls)


@pytest.fixture
def local_target(tmp_path):
    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store.server import ServerStore

    spec = {"kind": "server", "url": "http://qdrant.test:6333", "timeout": 5.0, "prefer_grpc": False}
    path = str(tmp_path / "local")
    store = ServerStore(QdrantClient(path=path), location=spec["url"])
    install_store(spec, store)
    yield spec, store, path
    forget_stores()


def test_local_mode_remove_an_extractor_drops_its_vectors_in_place(seed, local_target, provider_log):
    from qdrant_client import QdrantClient

    spec, store, path = local_target
    coll = deploy_with_points(seed, spec)
    remove_multimodal(seed, spec, coll, provider_log)
    assert_points_kept_without(client_records(store.client, coll["id"]))
    assert set(store.read_collection(coll["id"]).vectors) == {IMAGE}
    forget_stores()  # closes the client; local mode persists to `path`
    reopened = QdrantClient(path=path)
    try:
        assert set(reopened.get_collection(coll["id"]).config.params.vectors) == {IMAGE}
        assert_points_kept_without(client_records(reopened, coll["id"]))
    finally:
        reopened.close()


def test_a_server_older_than_1_18_replaces_and_protection_refuses(seed, local_target, provider_log):
    """Deleting a named vector needs Qdrant 1.18, as adding one does: older servers keep the replace."""
    spec, store, _ = local_target
    coll = deploy_with_points(seed, spec)
    store._version = (1, 17)
    news = checked(inputs(plan_namespace(without_multimodal(seed)), spec), coll["inputs"])
    with pytest.raises(DeletionProtected) as info:
        COLLECTIONS.diff(coll["id"], coll["outputs"], news)
    assert "1.18" in str(info.value) and "3 point(s)" in str(info.value)
    with pytest.raises(QdrantError, match="1.18"):
        store.delete_vector(coll["id"], MULTIMODAL)
    assert set(store.read_collection(coll["id"]).vectors) == set(SIZES)


# ---------------------------------------------------------------------------------------------
# A real Qdrant server


@pytest.mark.qdrant_server
@pytest.mark.parametrize("prefer_grpc", [False, True], ids=["rest", "grpc"])
def test_server_remove_an_extractor_drops_its_vectors_in_place(seed, qdrant_server, provider_log, prefer_grpc):
    spec = {"kind": "server", "url": qdrant_server.url, "timeout": 30.0, "prefer_grpc": prefer_grpc}
    store = qdrant_server.store(prefer_grpc=prefer_grpc)
    install_store(spec, store)
    try:
        coll = deploy_with_points(seed, spec)
        remove_multimodal(seed, spec, coll, provider_log)
        assert_points_kept_without(client_records(store.client, coll["id"]))
        state = store.read_collection(coll["id"])
        assert set(state.vectors) == {IMAGE} and state.namespace_id == coll["outputs"]["namespace_id"]
    finally:
        forget_stores()


# ---------------------------------------------------------------------------------------------
# The real Pulumi CLI


NS = "spotify_playlists_dev"
ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.pulumi_cli
def test_pulumi_preview_diff_then_up_removing_an_extractor(tmp_path):
    """`preview --diff`: an update of the collection (no replace, no delete) and one line naming the dropped
    vectors and the points that keep the rest; `up` keeps every point, the namespace_id and the name."""
    from pulumicli import PulumiProject, cli_bin_dir, ops_by_name

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # the salt of the README's empty passphrase; the tests use their own
    # A Ray cluster given by URL: nothing to start (this test is about the collection).
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "url": "ray://127.0.0.1:10001",
                                             "shared_url": "ray://127.0.0.1:10001"}
    project = PulumiProject(tmp_path / "proj", cli_bin_dir(), {"dev": config})
    project.init("dev")
    target = {"kind": "embedded", "path": str(project.root / ".mixpeek" / "qdrant")}
    try:
        project.run("up", "--yes", "--skip-preview", "-s", "dev")
        ns_id = project.outputs("dev")[NS]["namespace_id"]
        open_store(target).upsert(ns_id, POINTS)
        forget_stores()

        stack = project.read_stack("dev")
        [body] = stack["config"]["mixpeek-infra:namespaces"]
        body["feature_extractors"] = [fe for fe in body["feature_extractors"]
                                      if fe["feature_extractor_name"] != "multimodal_extractor"]
        project.write_stack("dev", stack)

        ops = {name: op for name, op in ops_by_name(project.preview_steps("dev")).items() if op != "same"}
        assert ops == {f"{NS}-collection": "update"}, ops
        shown = project.run("preview", "--diff", "-s", "dev")
        said = shown.stdout + shown.stderr
        assert "~ pulumi-python:dynamic/mixpeek:QdrantCollection" in said or "~ update" in said, said
        for word in ("replace", "+-", "- pulumi-python:dynamic/mixpeek:QdrantCollection", "refusing"):
            assert word not in said, said
        [line] = [ln for ln in said.splitlines() if "drop" in ln and MULTIMODAL in ln]
        assert TRANSCRIPTION in line and IMAGE in line and "3 point(s)" in line, line

        project.run("up", "--yes", "--skip-preview", "-s", "dev")
        out = project.outputs("dev")[NS]
        assert out["namespace_id"] == ns_id
        assert out["namespace"]["namespace_id"] == ns_id
        assert set(out["vector_inference_map"]) == {IMAGE}
        assert_points_kept_without(edge_records(target["path"], ns_id))
        state = open_store(target).read_collection(ns_id)
        assert set(state.vectors) == {IMAGE} and state.points_count == 3
        forget_stores()
        project.run("preview", "--expect-no-changes", "-s", "dev")
    finally:
        forget_stores()  # nothing else runs: the collection is a shard under tmp_path, the Ray cluster a URL
