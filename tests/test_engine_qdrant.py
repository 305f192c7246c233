"""Engine protocol: the Qdrant providers through the SDK's own dynamic provider host, over gRPC.

The host (`python -u -m pulumi.dynamic`) runs in a temp project directory with an embedded target
(relative path, resolved by the host), or, for the server target and the secret checks, with the
server store over qdrant-client's local mode installed in the host process at start.
"""

from __future__ import annotations

import base64
import copy
import json

import pytest

from enginehost import (UNKNOWN, EngineHost, ProviderError, dynamic_type, is_secret, plaintext_contains, secret,
                        serialize_provider, with_provider)
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.resources import Collection, CollectionProvider, PayloadIndex, PayloadIndexProvider
from mixpeek_infra.qdrant.store import forget_stores
from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

pytestmark = [pytest.mark.engine, pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning"),
              pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

COLLECTION = dynamic_type(Collection)
INDEX = dynamic_type(PayloadIndex)
CP = serialize_provider(CollectionProvider())
IP = serialize_provider(PayloadIndexProvider())
EDGE = {"kind": "embedded", "path": "state/qdrant", "timeout": 10}
HOST_ENV = {"MIXPEEK_EDGE_IDLE_CLOSE": "0.05"}
KEY = "qdrant-api-key-7f3a9c1e5b"
URL = "https://qdrant.internal:6333"


def collection(plan, target=EDGE, **extra):
    return with_provider(CP, {"target": target, "vectors": plan.vector_config(), "settings": {},
                              "deletion_protection": True, **extra})


def index(ix, collection_name, target=EDGE, **extra):
    return with_provider(IP, {"target": target, "collection_name": collection_name, "field_name": ix.field_name,
                              "field_type": ix.type, "field_schema": dict(ix.field_schema), **extra})


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return tmp_path_factory.mktemp("project")


@pytest.fixture(scope="module")
def host(project):
    with EngineHost(cwd=str(project), env=HOST_ENV) as h:
        assert h.configure({"mixpeek-infra:unrelated": "x"})["accept_secrets"] is False
        yield h


@pytest.fixture
def edge(project):
    """The test process's view of the host's embedded target (waits for the host to let go of a shard)."""
    yield EdgeStore(str(project / "state" / "qdrant"), timeout=10)
    close_all_shards()
    forget_stores()


def up(host, plan, state=None, **extra):
    """The namespace's collection and indexes, one `pulumi up`; returns (ops, state)."""
    coll_state = state["collection"] if state else None
    step = host.step(COLLECTION, "ns-collection", collection(plan, **extra), coll_state)
    name = step["state"]["outputs"]["collection_name"]
    ops = {"collection": step["op"]}
    new_state = {"collection": step["state"], "indexes": {}}
    for ix in plan.payload_indexes:
        prev = state["indexes"].get(ix.field_name) if state else None
        s = host.step(INDEX, f"ns-index-{ix.field_name}", index(ix, name), prev)
        ops[ix.field_name] = s["op"]
        new_state["indexes"][ix.field_name] = s["state"]
    return ops, new_state


# ---------------------------------------------------------------------------------------------


def test_serialized_provider_is_small_plain_and_importable():
    for provider, blob in ((CollectionProvider, CP), (PayloadIndexProvider, IP)):
        assert len(blob) < 256, len(blob)
        raw = base64.b64decode(blob)
        assert b"mixpeek_infra.qdrant.resources" in raw and provider.__name__.encode() in raw
    assert CollectionProvider.serialize_as_secret_always is False


PROGRAM = """
import json, pulumi
from mixpeek_infra.qdrant.resources import Collection, PayloadIndex
from mixpeek_infra.qdrant.target import QdrantTarget

seen = []

class Mocks(pulumi.runtime.Mocks):
    def new_resource(self, args):
        seen.append({"type": args.typ, "inputs": args.inputs})
        return [args.name + "-id", dict(args.inputs)]

    def call(self, args):
        return {}

pulumi.runtime.set_mocks(Mocks(), preview=False)
target = QdrantTarget(url=%(url)r, api_key=%(key)r)
coll = Collection("c", vectors={"v": {"size": 4, "distance": "cosine"}}, target=target)
ix = PayloadIndex("i", collection_name=coll.collection_name, field_name="f", field_type="keyword",
                  field_schema={"type": "keyword", "is_tenant": True}, target=target)

@pulumi.runtime.test
def run():
    return pulumi.Output.all(coll.urn, ix.urn).apply(lambda _: None)

run()
print(json.dumps(seen))
"""


def test_program_side_inputs_carry_the_key_only_as_a_secret():
    """What a program sends for each resource (under the SDK's mocks, in a fresh process so the
    runtime's global state stays clean): `__provider` plain and small, the key only as a secret."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", PROGRAM % {"url": URL, "key": KEY}], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert [r["type"] for r in seen] == [COLLECTION, INDEX]
    for resource in seen:
        inputs = resource["inputs"]
        assert len(inputs["__provider"]) < 256
        assert is_secret(inputs["api_key"])
        assert not plaintext_contains(inputs, KEY)


def test_check_coerces_floats_and_names_failing_fields(host, seed):
    plan = plan_namespace(seed)
    checked = host.check(COLLECTION, "c", collection(plan))
    assert checked["failures"] == []
    assert checked["inputs"]["vectors"]["multimodal_extractor_v1_multimodal_embedding"]["size"] == 1408
    bad = collection(plan)
    bad["vectors"] = {"v": {"size": 12.5, "distance": "cosine"}}
    bad["settings"] = {}
    assert host.check(COLLECTION, "c", bad)["failures"] == [
        {"property": "vectors.v.size", "reason": "12.5 is not an integer"}]
    ix = plan.payload_indexes[5]
    bad_ix = index(ix, "c", field_schema={"type": "text", "min_token_len": 30})
    failures = host.check(INDEX, "i", bad_ix)["failures"]
    assert failures[0]["property"] == "field_schema.min_token_len"


def test_up_then_identical_inputs_are_no_change(host, edge, seed):
    plan = plan_namespace(seed)
    ops, state = up(host, plan)
    assert set(ops.values()) == {"create"}
    name = state["collection"]["id"]
    outputs = state["collection"]["outputs"]
    assert outputs["points_count"] == 0 and outputs["namespace_id"] == name
    # The host resolved the relative path against its working directory (the project).
    assert edge.read_collection(name).vectors == plan.vector_config()
    assert set(edge.read_payload_indexes(name)) == {ix.field_name for ix in plan.payload_indexes}
    close_all_shards()
    # Outputs come back with numbers as floats; the next diff still finds nothing to do.
    assert isinstance(outputs["vectors"]["image_extractor_v1_embedding"]["size"], float)
    ops, state2 = up(host, plan, state)
    assert set(ops.values()) == {"same"}
    relabelled = copy.deepcopy(seed)
    relabelled["description"] = "labels change nothing in Qdrant"
    ops, _ = up(host, plan_namespace(relabelled), state)
    assert set(ops.values()) == {"same"}


def test_diff_migrates_a_resized_vector_replaces_a_moved_target_and_updates_index_params(host, edge):
    request = {"namespace_name": "v2", "feature_extractors": [
        {"feature_extractor_name": "multimodal_extractor", "version": "v2", "params": {"output_dimensionality": 1536}}],
        "payload_indexes": [{"field_name": "title", "type": "text"}]}
    plan = plan_namespace(request)
    ops, state = up(host, plan)
    request["feature_extractors"][0]["params"]["output_dimensionality"] = 768
    coll = state["collection"]
    resized = host.check(COLLECTION, "ns-collection", collection(plan_namespace(request)))["inputs"]
    diff = host.diff(COLLECTION, "ns-collection", coll["id"], coll["outputs"], resized)
    assert diff["changes"] == "some" and diff["replaces"] == []  # a vector's new size migrates in place
    moved = host.check(COLLECTION, "ns-collection", collection(plan, target={**EDGE, "path": "state/other"}))["inputs"]
    diff = host.diff(COLLECTION, "ns-collection", coll["id"], coll["outputs"], moved)
    assert diff["changes"] == "some" and diff["replaces"] == ["target"]
    assert diff["delete_before_replace"] is False  # a new namespace id: create the new one, then delete this one

    request["feature_extractors"][0]["params"]["output_dimensionality"] = 1536
    request["payload_indexes"][0]["field_schema"] = {"type": "text", "tokenizer": "multilingual"}
    ops, state2 = up(host, plan_namespace(request), state)
    assert ops == {"collection": "same", **{ix.field_name: "same" for ix in plan.payload_indexes[:5]},
                   "title": "update"}
    assert state2["indexes"]["title"]["outputs"]["field_schema"]["tokenizer"] == "multilingual"
    assert edge.read_payload_index(coll["id"], "title")["tokenizer"] == "multilingual"


def test_preview_with_unknown_inputs_creates_and_updates_nothing(host, edge, seed):
    plan = plan_namespace(seed)
    _, state = up(host, plan)
    name = state["collection"]["id"]
    ix = plan.payload_indexes[5]
    # A brand-new index on a collection that does not exist yet: its name is unknown at preview.
    checked = host.check(INDEX, "new-index", index(ix, UNKNOWN))
    assert checked["failures"] == [] and checked["inputs"]["collection_name"] == UNKNOWN
    assert host.step(INDEX, "new-index", index(ix, UNKNOWN), preview=True)["op"] == "create"
    # An existing index whose collection is being replaced: the unknown name means replace.
    step = host.step(INDEX, f"ns-index-{ix.field_name}", index(ix, UNKNOWN), state["indexes"][ix.field_name],
                     preview=True)
    assert step["op"] == "replace" and step["diff"]["replaces"] == ["collection_name"]
    # Unknown vectors on the collection: replace, reported without touching Qdrant.
    unknown_vectors = collection(plan)
    unknown_vectors["vectors"] = UNKNOWN
    step = host.step(COLLECTION, "ns-collection", unknown_vectors, state["collection"], preview=True)
    assert step["op"] == "replace"
    assert edge.read_collection(name).vectors == plan.vector_config()
    assert edge.read_payload_indexes(name)[ix.field_name] == dict(ix.field_schema)


def test_refresh_sees_out_of_band_deletion(host, edge, seed):
    plan = plan_namespace(seed)
    _, state = up(host, plan)
    name = state["collection"]["id"]
    edge.delete_payload_index(name, "metadata.description")
    close_all_shards()
    res = state["indexes"]["metadata.description"]
    assert host.read(INDEX, "i", res["id"], res["outputs"])["id"] == ""
    title = state["indexes"]["metadata.title"]
    read = host.read(INDEX, "i", title["id"], title["outputs"])
    assert read["id"] == title["id"] and read["properties"]["field_schema"]["max_token_len"] == 15
    refreshed = host.read(COLLECTION, "c", name, state["collection"]["outputs"])
    assert refreshed["id"] == name and refreshed["inputs"] is None


def test_import_by_id_through_the_host(host, edge, seed):
    plan = plan_namespace(seed)
    edge.create_collection("ns_abcdefabcd", plan.vector_config(), {})
    close_all_shards()
    inputs = collection(plan)
    read = host.read(COLLECTION, "imported", "ns_abcdefabcd", props=None, inputs=inputs)
    assert read["id"] == "ns_abcdefabcd" and read["properties"]["namespace_id"] == "ns_abcdefabcd"
    checked = host.check(COLLECTION, "imported", inputs)["inputs"]
    diff = host.diff(COLLECTION, "imported", read["id"], read["properties"], checked)
    assert diff["changes"] == "none"


def test_protection_fails_preview_and_destroy_with_the_point_count(host, edge, seed):
    plan = plan_namespace(seed)
    _, state = up(host, plan)
    name = state["collection"]["id"]
    edge.upsert(name, [{"id": i, "vector": {"image_extractor_v1_embedding": [0.1] * 768}, "payload": {}}
                       for i in range(1, 4)])
    close_all_shards()
    moved = {**EDGE, "path": "state/elsewhere"}  # another target: a replace (a vector's new size migrates)
    with pytest.raises(ProviderError) as info:
        host.step(COLLECTION, "ns-collection", collection(plan, target=moved), state["collection"], preview=True)
    assert info.value.code == "UNKNOWN"  # the host's way of returning a provider exception
    assert "DeletionProtected" in info.value.details and "holds 3 point(s)" in info.value.details
    coll = state["collection"]
    with pytest.raises(ProviderError, match=r"refusing to delete .* holds 3 point\(s\)"):
        host.delete(COLLECTION, "ns-collection", coll["id"], coll["outputs"])
    assert edge.count_points(name) == 3
    close_all_shards()
    # Protection off (an in-place update), then destroy works, and a second delete is a no-op.
    step = host.step(COLLECTION, "ns-collection", collection(plan, deletion_protection=False), coll)
    assert step["op"] == "update" and step["state"]["outputs"]["deletion_protection"] is False
    for res in state["indexes"].values():
        host.delete(INDEX, "i", res["id"], res["outputs"])
    host.delete(COLLECTION, "ns-collection", coll["id"], step["state"]["outputs"])
    host.delete(COLLECTION, "ns-collection", coll["id"], step["state"]["outputs"])
    assert edge.read_collection(name) is None


# ---------------------------------------------------------------------------------------------
# Secrets: a server target (the server store over qdrant-client's local mode, inside the host)

SITE_HOOK = """
import os, json
_spec = os.environ.get("MIXPEEK_TEST_LOCAL_QDRANT")
if _spec:
    _spec = json.loads(_spec)
    from qdrant_client import QdrantClient
    from mixpeek_infra.qdrant.store import install_store
    from mixpeek_infra.qdrant.store.server import ServerStore
    _target = {"kind": "server", "url": _spec["url"], "timeout": 5.0, "prefer_grpc": False}
    install_store(_target, ServerStore(QdrantClient(path=_spec["path"]), location=_spec["url"]), api_key=_spec["key"])
"""


def _server_host(tmp_path, key, **env):
    spec = json.dumps({"url": URL, "path": str(tmp_path / "local"), "key": key})
    return EngineHost(cwd=str(tmp_path), env={"MIXPEEK_TEST_LOCAL_QDRANT": spec, **env}, site_hook=SITE_HOOK)


SERVER = {"kind": "server", "url": URL, "timeout": 5.0, "prefer_grpc": False}


def test_api_key_input_never_appears_in_plaintext(tmp_path, seed):
    plan = plan_namespace(seed)
    with _server_host(tmp_path, KEY) as h:
        h.configure({})
        inputs = collection(plan, target=SERVER, api_key=secret(KEY))
        checked = h.check(COLLECTION, "c", inputs)
        assert is_secret(checked["inputs"]["api_key"])
        created = h.create(COLLECTION, "c", checked["inputs"])  # raw provider response, no engine annotation
        outputs = created["properties"]
        assert is_secret(outputs["api_key"])
        ix = plan.payload_indexes[5]
        ix_inputs = index(ix, created["id"], target=SERVER, api_key=secret(KEY))
        ix_checked = h.check(INDEX, "i", ix_inputs)["inputs"]
        ix_created = h.create(INDEX, "i", ix_checked)
        read = h.read(COLLECTION, "c", created["id"], outputs)
        assert is_secret(read["properties"]["api_key"])
        imported = h.read(COLLECTION, "c2", created["id"], props=None, inputs=inputs)  # import: inputs only
        assert is_secret(imported["inputs"]["api_key"]) and is_secret(imported["properties"]["api_key"])
        more = copy.deepcopy(seed)
        more["feature_extractors"].append({"feature_extractor_name": "text_extractor", "version": "v1"})
        news = h.check(COLLECTION, "c", collection(plan_namespace(more), target=SERVER, api_key=secret(KEY)))["inputs"]
        diff = h.diff(COLLECTION, "c", created["id"], outputs, news)
        assert diff["changes"] == "some" and diff["replaces"] == []  # server >= 1.18 adds the vector in place
        updated = h.update(COLLECTION, "c", created["id"], outputs, news)
        assert "text_extractor_v1_embedding" in updated["properties"]["vectors"]
        for blob in (inputs, checked, created, ix_inputs, ix_checked, ix_created, read, imported, updated):
            assert not plaintext_contains(blob, KEY), blob
        for provider_blob in (inputs["__provider"], ix_inputs["__provider"]):
            assert KEY.encode() not in base64.b64decode(provider_blob)
        assert KEY not in h.stderr_text()
        h.delete(INDEX, "i", ix_created["id"], ix_created["properties"])
        h.delete(COLLECTION, "c", created["id"], updated["properties"])


def test_api_key_from_provider_configuration(tmp_path, seed):
    """`mixpeek:qdrantApiKey` reaches the provider through Configure; no output carries it."""
    plan = plan_namespace(seed)
    config_key = "key-from-stack-config-42"
    with _server_host(tmp_path, config_key) as h:
        h.configure({"mixpeek:qdrantApiKey": secret(config_key), "mixpeek:qdrantUrl": URL, "mixpeek-infra:other": "x"})
        step = h.step(COLLECTION, "c", collection(plan, target=SERVER))
        outputs = step["state"]["outputs"]
        assert "api_key" not in outputs
        assert not plaintext_contains(step, config_key)
        h.delete(COLLECTION, "c", step["state"]["id"], outputs)


def test_api_key_from_environment(tmp_path, seed):
    plan = plan_namespace(seed)
    env_key = "key-from-env-99"
    with _server_host(tmp_path, env_key, QDRANT_API_KEY=env_key, QDRANT_URL=URL) as h:
        h.configure({})
        step = h.step(COLLECTION, "c", collection(plan, target=SERVER))
        assert "api_key" not in step["state"]["outputs"]


def test_unreachable_server_fails_naming_the_url_not_the_key(tmp_path, seed):
    plan = plan_namespace(seed)
    target = {"kind": "server", "url": "http://127.0.0.1:9", "timeout": 1.0, "prefer_grpc": False}
    with EngineHost(cwd=str(tmp_path)) as h:
        h.configure({})
        inputs = h.check(COLLECTION, "c", collection(plan, target=target, api_key=secret(KEY)))["inputs"]
        with pytest.raises(ProviderError) as info:
            h.create(COLLECTION, "c", inputs)
    assert "http://127.0.0.1:9" in info.value.details and "TargetUnavailable" in info.value.details
    assert KEY not in info.value.details


def test_replace_gives_a_new_namespace_id_or_deletes_first_when_fixed(host, edge, project):
    """A move to another target is a replace: a new namespace id (create, then delete), or with the id fixed the
    old collection deleted first."""
    request = {"namespace_name": "r", "feature_extractors": [
        {"feature_extractor_name": "multimodal_extractor", "version": "v2", "params": {"output_dimensionality": 768}}]}
    plan = plan_namespace(request)
    moved = {**EDGE, "path": "state/moved"}
    there = EdgeStore(str(project / "state" / "moved"), timeout=10)
    first = host.step(COLLECTION, "r", collection(plan, deletion_protection=False))
    old_id = first["state"]["id"]
    second = host.step(COLLECTION, "r", collection(plan, target=moved, deletion_protection=False), first["state"])
    assert second["op"] == "replace" and second["diff"]["delete_before_replace"] is False
    new_id = second["state"]["id"]
    assert new_id != old_id and second["state"]["outputs"]["namespace_id"] == new_id
    assert edge.read_collection(old_id) is None
    assert there.read_collection(new_id).vectors["multimodal_extractor_v2_multimodal_embedding"]["size"] == 768
    close_all_shards()

    fixed = host.step(COLLECTION, "f", collection(plan, namespace_id="ns_00000000ff", deletion_protection=False))
    again = host.step(COLLECTION, "f", collection(plan, target=moved, namespace_id="ns_00000000ff",
                                                  deletion_protection=False), fixed["state"])
    assert again["op"] == "replace" and again["diff"]["delete_before_replace"] is True
    assert again["state"]["id"] == "ns_00000000ff"
    assert edge.read_collection("ns_00000000ff") is None
    assert there.read_collection("ns_00000000ff").vectors["multimodal_extractor_v2_multimodal_embedding"]["size"] == 768
    close_all_shards()
