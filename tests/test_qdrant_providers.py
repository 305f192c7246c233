"""The Qdrant providers' methods against real engines, in process.

Embedded Qdrant Edge in temp dirs for the whole lifecycle (the design's table row by row, refresh
after out-of-band changes, import, deletion protection with points); qdrant-client's local mode
behind the server store for what differs on a server target (adding a vector by server version,
shard_number). Values pass through the Pulumi wire format first (`wire`), so numbers arrive as
floats as they do from the engine.
"""

from __future__ import annotations

import copy
import shutil

import pytest

from enginehost import from_struct, to_struct
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.resources import CollectionProvider, DeletionProtected, PayloadIndexProvider
from mixpeek_infra.qdrant.store import CollectionConflict, CollectionNotFound, forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import close_all_shards

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()


def wire(props: dict) -> dict:
    """`props` as a provider receives them from the engine (ints arrive as floats)."""
    return from_struct(to_struct(props))


@pytest.fixture
def target(tmp_path):
    spec = {"kind": "embedded", "path": str(tmp_path / "qdrant"), "timeout": 5.0}
    yield spec
    close_all_shards()
    forget_stores()


def collection_inputs(plan, target, **extra):
    return {"target": target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True, **extra}


def index_inputs(ix, target, collection):
    return {"target": target, "collection_name": collection, "field_name": ix.field_name, "field_type": ix.type,
            "field_schema": dict(ix.field_schema)}


def checked(provider, news, olds=None):
    result = provider.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def create(provider, news):
    inputs = checked(provider, news)
    result = provider.create(inputs)
    return {"id": result.id, "inputs": inputs, "outputs": wire(result.outs)}


def diff(provider, state, news):
    return provider.diff(state["id"], state["outputs"], checked(provider, news, state["inputs"]))


def update(provider, state, news):
    inputs = checked(provider, news, state["inputs"])
    outs = provider.update(state["id"], state["outputs"], inputs).outs
    return {"id": state["id"], "inputs": inputs, "outputs": wire(outs)}


def deploy(plan, target):
    """The namespace's collection and all its indexes, as `pulumi up` would create them."""
    coll = create(COLLECTIONS, collection_inputs(plan, target))
    name = coll["outputs"]["collection_name"]
    indexes = {ix.field_name: create(INDEXES, index_inputs(ix, target, name)) for ix in plan.payload_indexes}
    return coll, indexes


def points(n=3):
    titles = ["Summer Hits 2024", "Winter chill", "summer road trip", "x marks"]
    tenants = ["col_a", "col_a", "col_b", "col_b"]
    vec = [0.0] * 768
    out = []
    for i in range(n):
        v = list(vec)
        v[i] = 1.0
        out.append({"id": i + 1, "vector": {"image_extractor_v1_embedding": v},
                    "payload": {"collection_id": tenants[i],
                                "metadata": {"title": titles[i], "description": tenants[i] + "_desc"}}})
    return out


# ---------------------------------------------------------------------------------------------
# The seed namespace, end to end on Qdrant Edge


def test_seed_namespace_collection_and_seven_indexes(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    name = coll["id"]
    assert name == coll["outputs"]["namespace_id"] == coll["outputs"]["collection_name"]
    assert name.startswith("ns_") and len(name) == 13
    assert coll["outputs"]["created_at"].endswith("Z") and coll["outputs"]["points_count"] == 0

    state = open_store(target).read_collection(name)
    assert state.vectors == {
        "image_extractor_v1_embedding": {"size": 768, "distance": "cosine", "datatype": "float32", "on_disk": False},
        "multimodal_extractor_v1_multimodal_embedding": {"size": 1408, "distance": "cosine", "datatype": "float32",
                                                         "on_disk": False},
        "multimodal_extractor_v1_transcription_embedding": {"size": 1024, "distance": "cosine",
                                                            "datatype": "float32", "on_disk": False},
    }
    expected = {ix.field_name: dict(ix.field_schema) for ix in plan.payload_indexes}
    assert len(expected) == 7
    assert state.payload_schema == expected
    assert expected["metadata.title"] == {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                          "max_token_len": 15, "lowercase": True}
    assert expected["metadata.description"] == {"type": "keyword", "is_tenant": True}
    assert expected["collection_id"] == {"type": "keyword", "is_tenant": True}
    for field, res in indexes.items():
        assert res["id"] == f"{name}/{field}"
        assert res["outputs"]["field_schema"] == expected[field]
        assert res["outputs"]["field_type"] == expected[field]["type"]


def test_filtered_query_uses_text_and_tenant_indexes(seed, target):
    plan = plan_namespace(seed)
    coll, _ = deploy(plan, target)
    store = open_store(target)
    store.upsert(coll["id"], points(4))
    probe = [0.0] * 768
    probe[2] = 1.0
    hits = store.query(coll["id"], "image_extractor_v1_embedding", probe,
                       [{"key": "metadata.title", "text": "SUMMER"}, {"key": "collection_id", "value": "col_a"}])
    assert [h["id"] for h in hits] == [1]
    assert store.count_points(coll["id"], [{"key": "collection_id", "value": "col_b"}]) == 2
    assert store.count_points(coll["id"], [{"key": "metadata.description", "value": "col_b_desc"}]) == 2
    # The text index's min_token_len=2 is in effect: a one-letter token is not indexed.
    assert store.count_points(coll["id"], [{"key": "metadata.title", "text": "x"}]) == 0
    assert store.count_points(coll["id"], [{"key": "metadata.title", "text": "marks"}]) == 1


# ---------------------------------------------------------------------------------------------
# Lifecycle, row by row


def test_identical_inputs_and_labels_give_no_change(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    relabelled = copy.deepcopy(seed)
    relabelled["namespace_name"] = "renamed_namespace"
    relabelled["description"] = "another description"
    plan2 = plan_namespace(relabelled)
    d = diff(COLLECTIONS, coll, collection_inputs(plan2, target))
    assert (d.changes, d.replaces) == (False, [])
    for ix in plan2.payload_indexes:
        d = diff(INDEXES, indexes[ix.field_name], index_inputs(ix, target, coll["id"]))
        assert (d.changes, d.replaces) == (False, [])


def test_add_change_and_remove_a_custom_index(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    store = open_store(target)
    store.upsert(coll["id"], points())

    # Add: a new PayloadIndex resource.
    added = copy.deepcopy(seed)
    added["payload_indexes"].append({"field_name": "metadata.year", "type": "integer",
                                     "field_schema": {"type": "integer", "lookup": False, "range": True}})
    new_ix = [ix for ix in plan_namespace(added).payload_indexes if ix.field_name == "metadata.year"][0]
    year = create(INDEXES, index_inputs(new_ix, target, coll["id"]))
    assert store.read_payload_index(coll["id"], "metadata.year") == {"type": "integer", "lookup": False,
                                                                      "range": True}

    # Change params: update in place (the index is re-created), points kept.
    changed = copy.deepcopy(seed)
    changed["payload_indexes"][0]["field_schema"].update(tokenizer="prefix", min_token_len=3)
    title = [ix for ix in plan_namespace(changed).payload_indexes if ix.field_name == "metadata.title"][0]
    d = diff(INDEXES, indexes["metadata.title"], index_inputs(title, target, coll["id"]))
    assert d.changes is True and d.replaces == []
    after = update(INDEXES, indexes["metadata.title"], index_inputs(title, target, coll["id"]))
    assert after["outputs"]["field_schema"] == {"type": "text", "tokenizer": "prefix", "min_token_len": 3,
                                                "max_token_len": 15, "lowercase": True}
    assert store.read_payload_index(coll["id"], "metadata.title")["tokenizer"] == "prefix"
    assert store.count_points(coll["id"]) == 3

    # Remove: deleted, idempotently; the data stays.
    INDEXES.delete(year["id"], year["outputs"])
    INDEXES.delete(year["id"], year["outputs"])
    assert store.read_payload_index(coll["id"], "metadata.year") is None
    assert store.count_points(coll["id"]) == 3


def test_add_extractor_adds_a_vector_in_place(seed, target):
    plan = plan_namespace(seed)
    coll, _ = deploy(plan, target)
    store = open_store(target)
    store.upsert(coll["id"], points())
    more = copy.deepcopy(seed)
    more["feature_extractors"].append({"feature_extractor_name": "text_extractor", "version": "v1"})
    plan2 = plan_namespace(more)
    d = diff(COLLECTIONS, coll, collection_inputs(plan2, target))
    assert d.changes is True and d.replaces == []
    after = update(COLLECTIONS, coll, collection_inputs(plan2, target))
    assert after["outputs"]["vectors"]["text_extractor_v1_embedding"]["size"] == 1024
    assert after["outputs"]["namespace_id"] == coll["outputs"]["namespace_id"]
    assert after["outputs"]["created_at"] == coll["outputs"]["created_at"]
    assert after["outputs"]["points_count"] == 3
    assert set(after["outputs"]) == set(coll["outputs"]), "update returns every output"
    assert store.read_collection(coll["id"]).vectors.keys() == plan2.vector_config().keys()
    # A rerun after a partial update (vector already there) converges without error.
    again = COLLECTIONS.update(coll["id"], coll["outputs"], checked(COLLECTIONS, collection_inputs(plan2, target)))
    assert again.outs["vectors"] == after["outputs"]["vectors"]


def resized(plan, size=1024):
    """The plan's vectors with the image extractor's size changed (what a new extractor version does)."""
    vectors = copy.deepcopy(plan.vector_config())
    vectors["image_extractor_v1_embedding"]["size"] = size
    return vectors


def elsewhere(target: dict) -> dict:
    """The same kind of target in another place: moving there is a replace."""
    return {**target, "path": target["path"] + "-elsewhere"}


def test_remove_an_extractor_updates_in_place_reparameterise_migrates(seed, target):
    plan = plan_namespace(seed)
    coll, _ = deploy(plan, target)
    fewer = copy.deepcopy(seed)
    fewer["feature_extractors"] = fewer["feature_extractors"][:1]
    d = diff(COLLECTIONS, coll, collection_inputs(plan_namespace(fewer), target))
    assert d.changes is True and d.replaces == []  # its vectors are dropped in place (tests/test_remove_extractor.py)
    d = diff(COLLECTIONS, coll, collection_inputs(plan, target, vectors=resized(plan)))
    assert d.changes is True and d.replaces == []  # a new size: blue/green migration (tests/test_migration.py)

    v2 = {"namespace_name": "v2", "feature_extractors": [
        {"feature_extractor_name": "multimodal_extractor", "version": "v2", "params": {"output_dimensionality": 1536}}]}
    coll2 = create(COLLECTIONS, collection_inputs(plan_namespace(v2), target))
    v2["feature_extractors"][0]["params"]["output_dimensionality"] = 768
    d = diff(COLLECTIONS, coll2, collection_inputs(plan_namespace(v2), target))
    assert d.changes is True and d.replaces == []


def test_replace_of_a_collection_with_points_is_refused_at_diff(seed, target):
    plan = plan_namespace(seed)
    coll, _ = deploy(plan, target)
    open_store(target).upsert(coll["id"], points())
    with pytest.raises(DeletionProtected) as info:
        diff(COLLECTIONS, coll, collection_inputs(plan, elsewhere(target)))
    message = str(info.value)
    assert "3 point(s)" in message and "deletion_protection" in message and coll["id"] in message
    assert "target location changed" in message
    # Turning protection off is itself an in-place change ...
    off = update(COLLECTIONS, coll, collection_inputs(plan, target, deletion_protection=False))
    assert off["outputs"]["deletion_protection"] is False
    # ... after which the replacement is allowed.
    d = diff(COLLECTIONS, off, collection_inputs(plan, elsewhere(target), deletion_protection=False))
    assert d.replaces == ["target"]


def test_delete_is_refused_with_points_and_idempotent(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    store = open_store(target)
    store.upsert(coll["id"], points(2))
    with pytest.raises(DeletionProtected, match=r"holds 2 point\(s\)"):
        COLLECTIONS.delete(coll["id"], coll["outputs"])
    assert store.read_collection(coll["id"]) is not None
    off = update(COLLECTIONS, coll, collection_inputs(plan, target, deletion_protection=False))
    for res in indexes.values():
        INDEXES.delete(res["id"], res["outputs"])
    COLLECTIONS.delete(off["id"], off["outputs"])
    assert store.read_collection(coll["id"]) is None
    COLLECTIONS.delete(off["id"], off["outputs"])  # already gone: fine
    INDEXES.delete(indexes["metadata.title"]["id"], indexes["metadata.title"]["outputs"])


def test_empty_protected_collection_can_be_deleted(seed, target):
    coll, _ = deploy(plan_namespace(seed), target)
    COLLECTIONS.delete(coll["id"], coll["outputs"])
    assert open_store(target).read_collection(coll["id"]) is None


def test_settings_change_in_place_and_report_real_values(seed, target):
    plan = plan_namespace(seed)
    coll = create(COLLECTIONS, collection_inputs(plan, target, settings={"hnsw_config": {"m": 16}}))
    assert coll["outputs"]["settings"] == {"hnsw_config": {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000}}
    news = collection_inputs(plan, target, settings={"hnsw_config": {"m": 32}, "on_disk_payload": False})
    d = diff(COLLECTIONS, coll, news)
    assert d.changes is True and d.replaces == []
    after = update(COLLECTIONS, coll, news)
    assert after["outputs"]["settings"]["hnsw_config"]["m"] == 32
    assert after["outputs"]["settings"]["on_disk_payload"] is False
    assert diff(COLLECTIONS, after, news).changes is False


# ---------------------------------------------------------------------------------------------
# Refresh, import, idempotent create


def test_refresh_after_out_of_band_deletion_reports_gone(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    store = open_store(target)
    store.delete_payload_index(coll["id"], "metadata.description")
    gone = INDEXES.read(indexes["metadata.description"]["id"], indexes["metadata.description"]["outputs"])
    assert gone.id == "" and gone.outs == {}
    kept = INDEXES.read(indexes["metadata.title"]["id"], indexes["metadata.title"]["outputs"])
    assert kept.id == indexes["metadata.title"]["id"]
    close_all_shards()
    shutil.rmtree(f"{target['path']}/{coll['id']}")
    assert COLLECTIONS.read(coll["id"], coll["outputs"]).id == ""
    assert INDEXES.read(indexes["metadata.title"]["id"], indexes["metadata.title"]["outputs"]).id == ""
    # Updating a collection deleted outside Pulumi says what to do.
    with pytest.raises(CollectionNotFound, match="pulumi refresh"):
        update(COLLECTIONS, coll, collection_inputs(plan, target, deletion_protection=False))


def test_refresh_reports_changed_index_params_and_up_restores_them(seed, target):
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, target)
    store = open_store(target)
    drifted = {"type": "text", "tokenizer": "whitespace", "min_token_len": 1, "max_token_len": 40, "lowercase": False}
    store.create_payload_index(coll["id"], "metadata.title", drifted)
    title = indexes["metadata.title"]
    refreshed = INDEXES.read(title["id"], title["outputs"])
    assert refreshed.outs["field_schema"] == drifted
    state = {**title, "outputs": wire(refreshed.outs)}
    ix = [i for i in plan.payload_indexes if i.field_name == "metadata.title"][0]
    d = diff(INDEXES, state, index_inputs(ix, target, coll["id"]))
    assert d.changes is True and d.replaces == []
    update(INDEXES, state, index_inputs(ix, target, coll["id"]))
    assert store.read_payload_index(coll["id"], "metadata.title") == dict(ix.field_schema)
    # Vector drift shows on the collection too.
    store.add_vector(coll["id"], "extra", {"size": 2, "distance": "dot"})
    refreshed = COLLECTIONS.read(coll["id"], coll["outputs"])
    assert "extra" in refreshed.outs["vectors"]


def test_import_an_existing_collection_by_id(seed, target):
    plan = plan_namespace(seed)
    store = open_store(target)
    store.create_collection("ns_00aa11bb22", plan.vector_config(), {})
    store.upsert("ns_00aa11bb22", points(1))
    inputs = checked(COLLECTIONS, collection_inputs(plan, target))
    result = COLLECTIONS.read("ns_00aa11bb22", inputs)  # import: the engine passes the program's inputs
    assert result.id == "ns_00aa11bb22"
    assert result.outs["namespace_id"] == "ns_00aa11bb22" and result.outs["points_count"] == 1
    assert result.inputs is not None
    state = {"id": result.id, "inputs": inputs, "outputs": wire(result.outs)}
    d = diff(COLLECTIONS, state, collection_inputs(plan, target))
    assert (d.changes, d.replaces) == (False, [])
    missing = COLLECTIONS.read("ns_ffffffffff", inputs)
    assert missing.id == ""


def test_create_adopts_an_identical_collection_and_refuses_a_different_one(seed, target):
    plan = plan_namespace(seed)
    store = open_store(target)
    # A previous run created the collection but its state was lost (e.g. interrupted).
    store.create_collection("ns_0123456789", plan.vector_config(), {})
    store.upsert("ns_0123456789", points(1))
    adopted = create(COLLECTIONS, collection_inputs(plan, target, namespace_id="ns_0123456789"))
    assert adopted["id"] == "ns_0123456789" and adopted["outputs"]["points_count"] == 1

    store.create_collection("taken", {"other": {"size": 3, "distance": "dot"}}, {})
    with pytest.raises(CollectionConflict) as info:
        create(COLLECTIONS, collection_inputs(plan, target, collection_name="taken"))
    assert "import_" in str(info.value) and "another" in str(info.value)


def test_index_on_a_missing_collection_fails_clearly_and_a_rerun_completes(seed, target):
    plan = plan_namespace(seed)
    ix = plan.payload_indexes[0]
    with pytest.raises(CollectionNotFound, match="does not exist"):
        create(INDEXES, index_inputs(ix, target, "ns_0123456789"))
    coll = create(COLLECTIONS, collection_inputs(plan, target, namespace_id="ns_0123456789"))
    res = create(INDEXES, index_inputs(ix, target, coll["id"]))
    assert res["outputs"]["field_schema"] == dict(ix.field_schema)
    # Creating again (state lost after the index was made) adopts it.
    assert create(INDEXES, index_inputs(ix, target, coll["id"]))["id"] == res["id"]


def test_fixed_names_replace_delete_first(seed, target):
    plan = plan_namespace(seed)
    coll = create(COLLECTIONS, collection_inputs(plan, target, namespace_id="ns_0123456789"))
    assert coll["id"] == "ns_0123456789"
    d = diff(COLLECTIONS, coll, collection_inputs(plan, elsewhere(target), namespace_id="ns_0123456789"))
    assert d.replaces == ["target"] and d.delete_before_replace is True
    d = diff(COLLECTIONS, coll, collection_inputs(plan, target, namespace_id="ns_9876543210"))
    assert "namespace_id" in d.replaces
    named = create(COLLECTIONS, collection_inputs(plan, target, collection_name="my_playlists"))
    assert named["id"] == "my_playlists" and named["outputs"]["namespace_id"].startswith("ns_")
    assert diff(COLLECTIONS, named, collection_inputs(plan, target, collection_name="my_playlists")).changes is False


# ---------------------------------------------------------------------------------------------
# check


@pytest.mark.parametrize("patch, field", [
    ({"vectors": {"v": {"size": 1.5, "distance": "cosine"}}}, "vectors.v.size"),
    ({"vectors": {"v": {"size": 8, "distance": "hamming"}}}, "vectors.v.distance"),
    ({"vectors": {"v": {"size": 8, "distance": "cosine", "datatype": "int4"}}}, "vectors.v.datatype"),
    ({"vectors": {}}, "vectors"),
    ({"settings": {"shard_number": 2}}, "settings.shard_number"),
    ({"settings": {"hnsw_config": {"m": "big"}}}, "settings.hnsw_config.m"),
    ({"settings": {"quantization_config": {"scalar": {"quantile": 2}}}}, "settings.quantization_config.scalar.quantile"),
    ({"settings": {"wal": {}}}, "settings.wal"),
    ({"namespace_id": "ns_XYZ"}, "namespace_id"),
    ({"collection_name": "../x"}, "collection_name"),
    ({"deletion_protection": "yes"}, "deletion_protection"),
    ({"api_key": "k"}, "api_key"),
    ({"target": {"kind": "server", "url": "not a url"}}, "target.url"),
])
def test_collection_check_failures_name_the_field(target, patch, field):
    news = {"target": target, "vectors": {"v": {"size": 8, "distance": "cosine"}}, **patch}
    result = COLLECTIONS.check({}, wire(news))
    assert [f.property for f in result.failures] == [field]


def test_check_normalises_floats_and_defaults(target):
    result = COLLECTIONS.check({}, wire({"target": target, "vectors": {"v": {"size": 768, "distance": "Cosine"}},
                                         "settings": {"shard_number": 1, "hnsw_config": {"m": 8}}}))
    assert result.failures == []
    assert result.inputs["vectors"] == {"v": {"size": 768, "distance": "cosine", "datatype": "float32",
                                              "on_disk": False}}
    assert type(result.inputs["vectors"]["v"]["size"]) is int
    assert result.inputs["settings"] == {"shard_number": 1, "hnsw_config": {"m": 8, "ef_construct": 100,
                                                                           "full_scan_threshold": 10000}}
    assert result.inputs["deletion_protection"] is True


@pytest.mark.parametrize("patch, field", [
    ({"field_type": "vector"}, "field_type"),
    ({"field_schema": {"type": "keyword"}}, "field_schema.type"),
    ({"field_schema": {"type": "text", "min_token_len": 20}}, "field_schema.min_token_len"),
    ({"field_schema": {"type": "text", "tokenizer": "ngram"}}, "field_schema.tokenizer"),
    ({"field_schema": {"type": "text", "stemmer": "en"}}, "field_schema.stemmer"),
    ({"field_name": ""}, "field_name"),
    ({"collection_name": None}, "collection_name"),
])
def test_index_check_failures_name_the_field(target, patch, field):
    news = {"target": target, "collection_name": "c", "field_name": "metadata.title", "field_type": "text",
            "field_schema": {"type": "text"}, **patch}
    news = {k: v for k, v in news.items() if v is not None}
    result = INDEXES.check({}, wire(news))
    assert [f.property for f in result.failures] == [field]


def test_index_check_fills_defaults_and_coerces(target):
    result = INDEXES.check({}, wire({"target": target, "collection_name": "c", "field_name": "n",
                                     "field_type": "text", "field_schema": {"min_token_len": 3.0}}))
    assert result.inputs["field_schema"] == {"type": "text", "tokenizer": "word", "min_token_len": 3,
                                             "max_token_len": 15, "lowercase": True}
    assert type(result.inputs["field_schema"]["min_token_len"]) is int


# ---------------------------------------------------------------------------------------------
# A server target (the server store over qdrant-client's local mode)


@pytest.fixture
def server_target(tmp_path):
    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store.server import ServerStore

    spec = {"kind": "server", "url": "http://qdrant.test:6333", "timeout": 5.0, "prefer_grpc": False}
    store = ServerStore(QdrantClient(path=str(tmp_path / "local")), location=spec["url"])
    install_store(spec, store)
    yield spec, store
    forget_stores()


def test_server_target_adds_vectors_in_place_only_from_1_18(seed, server_target):
    spec, store = server_target
    plan = plan_namespace(seed)
    coll, indexes = deploy(plan, spec)
    assert store.read_collection(coll["id"]).vectors == plan.vector_config()
    assert indexes["metadata.title"]["outputs"]["field_schema"] == dict(plan.payload_indexes[5].field_schema)
    assert INDEXES.read(indexes["metadata.title"]["id"], indexes["metadata.title"]["outputs"]).id != ""
    more = copy.deepcopy(seed)
    more["feature_extractors"].append({"feature_extractor_name": "text_extractor", "version": "v1"})
    news = collection_inputs(plan_namespace(more), spec)
    d = diff(COLLECTIONS, coll, news)
    assert d.changes is True and d.replaces == []  # local mode reports version 1.20
    store._version = (1, 17)
    d = diff(COLLECTIONS, coll, news)
    assert d.replaces == ["vectors"]
    store._version = None
    after = update(COLLECTIONS, coll, news)
    assert "text_extractor_v1_embedding" in after["outputs"]["vectors"]


def test_server_shard_number_change_migrates(seed, server_target):
    spec, store = server_target
    plan = plan_namespace(seed)
    coll = create(COLLECTIONS, collection_inputs(plan, spec, settings={"shard_number": 1}))
    store.upsert(coll["id"], points(1))
    d = diff(COLLECTIONS, coll, collection_inputs(plan, spec, settings={"shard_number": 3}))
    assert d.changes is True and d.replaces == []  # deletion protection does not refuse: no point is lost
