"""How many requests the providers make of a Qdrant server, counted at a loopback HTTP endpoint.

`FakeQdrant` (tests/test_faults_qdrant.py) answers qdrant-client's REST calls like a server and logs
every request. Creating the documented seed namespace (one collection with its 3 named vectors, the 5
system payload indexes and the body's 2) through the real providers, as the engine calls them
(`check`, then `create`, values through the wire format), must take at most 12 requests: the direct
qdrant-client calls take 9 (create the collection, the alias users query it by, each index); the 2
more are the read that refuses an existing alias (Qdrant re-points one without a word) and, with a
fixed name, the read by which `check` refuses another namespace's collection at preview. Before the
store kept its collection reads it took 24 (each index read the whole collection before and after
its create); before collections were made behind an alias (so that a migration can switch them at
once, issue 22), 10.

Fewer reads must not mean fewer guards: a collection recorded as another namespace's is still
refused at check and at create, and only reads of payload indexes are ever served from the cache.
"""

from __future__ import annotations

from collections import Counter

import pytest

from test_faults_qdrant import KEY, FakeQdrant, collection_inputs, create, index_inputs, server_spec, wire
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
from mixpeek_infra.qdrant.store import CollectionConflict, QdrantError, forget_stores, open_store
from mixpeek_infra.schema import SYSTEM_INDEXES

pytestmark = [pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()
GOAL = 12
DIRECT = 9


@pytest.fixture
def fake():
    server = FakeQdrant(api_key=KEY)
    yield server
    server.close()
    forget_stores()


@pytest.fixture
def plan(seed):
    return plan_namespace(seed)


def kinds(requests: list[tuple[str, str]], name: str) -> Counter:
    return Counter(f"{method} {path.replace(name, '{name}')}" for method, path in requests)


def create_namespace(plan, target: dict, **extra) -> tuple[dict, list[dict]]:
    coll = create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY, **extra))
    indexes = [create(INDEXES, index_inputs(ix, target, coll["id"], api_key=KEY)) for ix in plan.payload_indexes]
    return coll, indexes


def test_the_seed_namespace_has_the_system_and_the_bodys_indexes(plan):
    fields = [ix.field_name for ix in plan.payload_indexes]
    assert fields[:len(SYSTEM_INDEXES)] == [name for name, _, _ in SYSTEM_INDEXES]
    assert fields[len(SYSTEM_INDEXES):] == ["metadata.title", "metadata.description"]
    assert len(plan.vector_config()) == 3


@pytest.mark.parametrize("fixed_id", [False, True], ids=["generated id", "fixed namespace_id"])
def test_creating_the_seed_namespace_takes_at_most_12_requests(fake, plan, fixed_id):
    target = server_spec(fake.url, 5.0)
    extra = {"namespace_id": "ns_0123456789"} if fixed_id else {}
    coll, indexes = create_namespace(plan, target, **extra)
    name = coll["id"]
    counted = kinds(fake.requests, name)

    assert sum(counted.values()) <= GOAL, counted
    # what the count is made of: one create per resource, the alias (refused when it exists), and one read of
    # the collection after its create (it reports the collection's state and serves every index's "is it there
    # already?"); with a fixed name, `check` also reads the collection to refuse another namespace's at preview.
    assert counted == Counter({"GET /aliases": 1, "PUT /collections/{name}-g1": 1, "POST /collections/aliases": 1,
                               "PUT /collections/{name}/index": len(indexes),
                               "GET /collections/{name}": 2 if fixed_id else 1})

    # The outputs are what the server holds.
    held = fake.collection(name)
    assert held["metadata"] == {"mixpeek_namespace_id": coll["outputs"]["namespace_id"]}
    assert coll["outputs"]["vectors"] == plan.vector_config() and coll["outputs"]["points_count"] == 0
    assert len(indexes) == len(plan.payload_indexes) == 7
    for ix, made in zip(plan.payload_indexes, indexes):
        assert made["outputs"]["field_schema"] == dict(ix.field_schema)
        assert held["payload_schema"][ix.field_name]["params"] == dict(ix.field_schema)

    # A second `pulumi up` of the same program makes no request at all (nothing changed: no diff, no create);
    # a refresh of the namespace reads the collection once for all of its indexes.
    fake.requests.clear()
    forget_stores()  # a new run: a new provider host process
    assert COLLECTIONS.read(name, wire(coll["outputs"])).id == name
    for ix, made in zip(plan.payload_indexes, indexes):
        assert INDEXES.read(made["id"], wire(made["outputs"])).outs["field_schema"] == dict(ix.field_schema)
    assert kinds(fake.requests, name) == Counter({"GET /collections/{name}": 1})


def test_the_direct_qdrant_client_calls_take_9_requests(fake, plan):
    """The yardstick: the same collection and indexes through qdrant-client directly."""
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    client = QdrantClient(url=fake.url, api_key=KEY, timeout=5, check_compatibility=False)
    try:
        client.create_collection("direct", vectors_config={
            v: qm.VectorParams(size=p["size"], distance=qm.Distance.COSINE, on_disk=p["on_disk"])
            for v, p in plan.vector_config().items()})
        client.update_collection_aliases(change_aliases_operations=[
            qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name="direct", alias_name="direct_alias"))])
        for ix in plan.payload_indexes:
            s = dict(ix.field_schema)
            params = qm.TextIndexParams(**s) if s["type"] == "text" else qm.KeywordIndexParams(**s)
            client.create_payload_index("direct", ix.field_name, params, wait=True)
    finally:
        client.close()
    assert len(fake.requests) == DIRECT


def test_another_namespaces_collection_is_still_refused_at_check_and_at_create(fake, plan):
    target = server_spec(fake.url, 5.0)
    theirs, _ = create_namespace(plan, target, collection_name="shared_name", namespace_id="ns_aaaaaaaaaa")
    before = dict(fake.collection("shared_name")["payload_schema"])

    fake.requests.clear()
    inputs = collection_inputs(plan, target, api_key=KEY, collection_name="shared_name", namespace_id="ns_bbbbbbbbbb")
    refused = COLLECTIONS.check({}, wire(inputs))
    assert [f.property for f in refused.failures] == ["collection_name"]
    assert "belongs to namespace ns_aaaaaaaaaa" in refused.failures[0].reason
    assert fake.requests == [("GET", "/collections/shared_name")]  # check reads the owner record

    fake.requests.clear()
    with pytest.raises(CollectionConflict, match="belongs to namespace ns_aaaaaaaaaa"):
        COLLECTIONS.create(wire({**inputs, "api_key": KEY}))
    # the alias is there: the create is refused at once, and the read after it finds the owner record
    assert fake.requests == [("GET", "/aliases"), ("GET", "/collections/shared_name")]
    assert fake.collection("shared_name")["metadata"] == {"mixpeek_namespace_id": "ns_aaaaaaaaaa"}
    assert fake.collection("shared_name")["payload_schema"] == before


def test_an_unrecorded_collection_with_the_same_vectors_is_adopted_and_recorded(fake, plan):
    from qdrant_client import QdrantClient
    from qdrant_client import models as qm

    client = QdrantClient(url=fake.url, api_key=KEY, timeout=5, check_compatibility=False)
    try:
        client.create_collection("made_elsewhere", vectors_config={
            v: qm.VectorParams(size=p["size"], distance=qm.Distance.COSINE) for v, p in plan.vector_config().items()})
    finally:
        client.close()
    fake.requests.clear()
    target = server_spec(fake.url, 5.0)
    coll, _ = create_namespace(plan, target, collection_name="made_elsewhere", namespace_id="ns_cccccccccc")
    assert fake.collection("made_elsewhere")["metadata"] == {"mixpeek_namespace_id": "ns_cccccccccc"}
    assert coll["outputs"]["namespace_id"] == "ns_cccccccccc"
    counted = kinds(fake.requests, "made_elsewhere")
    assert counted["PATCH /collections/{name}"] == 1  # the owner record
    assert counted["PUT /collections/{name}/index"] == len(plan.payload_indexes)


def test_the_cache_of_collection_reads(fake):
    """Index writes update the cached read; every other write drops it; `read_collection` always asks."""
    from qdrant_client import QdrantClient

    spec = server_spec(fake.url, 5.0)
    store = open_store(spec, KEY)
    vectors = {"v": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}}
    keyword = {"type": "keyword", "is_tenant": False}
    store.create_collection("c", vectors, {}, "ns_0123456789")

    def requests_of(action) -> list[tuple[str, str]]:
        fake.requests.clear()
        action()
        return list(fake.requests)

    assert requests_of(lambda: store.read_payload_indexes("c")) == [("GET", "/collections/c")]
    assert requests_of(lambda: store.read_payload_indexes("c")) == []  # served from the cache
    assert requests_of(lambda: store.create_payload_index("c", "a", keyword)) == [("PUT", "/collections/c/index")]
    assert requests_of(lambda: store.read_payload_index("c", "a")) == []
    assert store.read_payload_index("c", "a") == keyword

    # Someone else changes the collection: `read_collection` (ownership, adopt, delete, refresh) sees it at once.
    other = QdrantClient(url=fake.url, api_key=KEY, timeout=5, check_compatibility=False)
    try:
        other.delete_payload_index("c", "a", wait=True)
    finally:
        other.close()
    assert requests_of(lambda: store.read_collection("c")) == [("GET", "/collections/c")]
    assert store.read_payload_index("c", "a") is None  # and the cache took the fresh read

    # A write that is not an index write drops the entry; so does a failed index write.
    store.update_collection("c", vectors_on_disk={"v": True}, settings={})
    assert requests_of(lambda: store.read_payload_indexes("c")) == [("GET", "/collections/c")]
    fake.on_request = lambda method, path: ("fail", 400) if path.endswith("/index") else None
    with pytest.raises(QdrantError):
        store.create_payload_index("c", "b", keyword)
    fake.on_request = None
    assert requests_of(lambda: store.read_payload_indexes("c")) == [("GET", "/collections/c")]

    # A delete decides on a fresh read, then keeps the cache in step.
    store.create_payload_index("c", "b", keyword)
    assert requests_of(lambda: store.delete_payload_index("c", "b")) == [("GET", "/collections/c"),
                                                                         ("DELETE", "/collections/c/index/b")]
    assert requests_of(lambda: store.read_payload_indexes("c")) == []
    assert store.read_payload_indexes("c") == {}
    store.delete_collection("c")
    assert requests_of(lambda: store.read_payload_indexes("c")) == [("GET", "/collections/c")]
    assert store.read_payload_indexes("c") is None


def test_a_key_that_may_not_create_collections_still_adopts_its_own(fake, plan):
    """The create is tried first; refused for any reason, the read that follows decides (the old flow read first)."""
    target = server_spec(fake.url, 5.0)
    create_namespace(plan, target, namespace_id="ns_dddddddddd")
    forget_stores()
    fake.on_request = lambda method, path: ("fail", 403) if (method, path) == ("PUT", "/collections/ns_dddddddddd") \
        else None
    again = create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY, namespace_id="ns_dddddddddd"))
    assert again["id"] == "ns_dddddddddd"

    fake.on_request = lambda method, path: ("fail", 403) if method == "PUT" else None
    with pytest.raises(QdrantError, match=r"refused create collection 'ns_eeeeeeeeee' \(HTTP 403\)"):
        create(COLLECTIONS, collection_inputs(plan, target, api_key=KEY, namespace_id="ns_eeeeeeeeee"))
    assert "ns_eeeeeeeeee" not in fake.collections
