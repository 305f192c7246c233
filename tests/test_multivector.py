"""Multi-vector (late interaction, ColBERT/ColQwen style) named vectors, end to end.

A user extractor declares an output `multivector: true`; the plan gives that vector
`multivector: {comparator: max_sim}` (and nothing new for plain vectors); both stores create it as
Qdrant's `multivector_config` with MaxSim and read it back; points hold a list of vectors under it and a
multi-vector query ranks them by MaxSim. Real engines: Qdrant Edge in temp dirs and qdrant-client's
local mode behind the server store, and the Collection provider's own methods.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from enginehost import from_struct, to_struct
from mixpeek_infra.extractors import ExtractorVersion, VectorSpec, extractor_from_config
from mixpeek_infra.json_schema import stack_config_json_schema
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.changes import vector_change
from mixpeek_infra.qdrant.normalize import normalize_vector, normalize_vectors
from mixpeek_infra.qdrant.resources import CollectionProvider, DeletionProtected
from mixpeek_infra.qdrant.store import InvalidSpec, forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import close_all_shards
from mixpeek_infra.render import render_plan
from mixpeek_infra.stackconfig import parse_stack_config

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

MAX_SIM = {"comparator": "max_sim"}
LATE = {"name": "acme_colbert", "version": "v1", "vectors": [
    {"output": "tokens", "size": 4, "inference_service": "acme_colbert_service", "multivector": True},
    {"output": "pooled", "size": 4, "inference_service": "acme_pooled_service", "distance": "dot"}]}
STACK = {"extractors": [LATE], "namespaces": [
    {"namespace_name": "late", "feature_extractors": [{"feature_extractor_name": "acme_colbert", "version": "v1"}]}]}
VECTORS = {
    "colbert": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False, "multivector": MAX_SIM},
    "plain": {"size": 4, "distance": "dot", "datatype": "float32", "on_disk": False},
}
POINTS = [
    {"id": 1, "vector": {"colbert": [[1, 0, 0, 0], [0, 1, 0, 0]], "plain": [1, 0, 0, 0]}, "payload": {"n": 1}},
    {"id": 2, "vector": {"colbert": [[0, 0, 1, 0]], "plain": [0, 1, 0, 0]}, "payload": {"n": 2}},
    {"id": 3, "vector": {"colbert": [[0, 0, 0, 1], [0, 0, 1, 0], [0.5, 0, 0, 0.5]], "plain": [0, 0, 1, 0]},
     "payload": {"n": 3}},
]


def wire(props: dict) -> dict:
    """`props` as a provider receives them from the engine (ints arrive as floats)."""
    return from_struct(to_struct(props))


# ---------------------------------------------------------------------------------------------
# Catalogue, plan, schema


def test_user_extractor_declares_a_multivector_output():
    entry = extractor_from_config(LATE)
    assert entry == ExtractorVersion("acme_colbert", "v1", (
        VectorSpec("tokens", 4, "acme_colbert_service", multivector=True),
        VectorSpec("pooled", 4, "acme_pooled_service", "dot")))
    with pytest.raises(ValueError, match="multivector must be true or false"):
        extractor_from_config({**LATE, "vectors": [{**LATE["vectors"][0], "multivector": "yes"}]})


def test_plan_from_stack_config_adds_max_sim_only_to_the_multivector():
    config = parse_stack_config(STACK)
    assert config.problems == ()
    plan = config.namespaces[0].plan
    assert plan.vector_config() == {
        "acme_colbert_v1_tokens": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False,
                                   "multivector": MAX_SIM},
        "acme_colbert_v1_pooled": {"size": 4, "distance": "dot", "datatype": "float32", "on_disk": False}}
    assert [v.multivector for v in plan.vectors] == [True, False]
    data = plan.to_dict()["vectors"]
    assert data[0]["multivector"] is True and "multivector" not in data[1]
    table = render_plan(plan)
    header = next(line for line in table.splitlines() if "INFERENCE SERVICE" in line)
    assert "MULTIVECTOR" in header
    row = next(line for line in table.splitlines() if line.strip().startswith("acme_colbert_v1_tokens"))
    assert "max_sim" in row
    assert "max_sim" not in next(line for line in table.splitlines()
                                 if line.strip().startswith("acme_colbert_v1_pooled "))


def test_single_vector_configs_are_unchanged(seed):
    for name, params in plan_namespace(seed).vector_config().items():
        assert set(params) == {"size", "distance", "datatype", "on_disk"}, name


def test_stack_config_schema_knows_multivector():
    schema = stack_config_json_schema(parse_stack_config(STACK).catalogue)
    vector = schema["$defs"]["UserExtractor"]["properties"]["vectors"]["items"]
    assert vector["properties"]["multivector"]["type"] == "boolean"
    jsonschema = pytest.importorskip("jsonschema",
                                     reason="jsonschema is not installed: pip install -e '.[dev]'")
    jsonschema.validate({"config": {"mixpeek-infra:extractors": [LATE],
                                    "mixpeek-infra:namespaces": STACK["namespaces"]}}, schema)
    bad = {**LATE, "vectors": [{**LATE["vectors"][0], "multivector": "yes"}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"config": {"mixpeek-infra:extractors": [bad],
                                        "mixpeek-infra:namespaces": STACK["namespaces"]}}, schema)


def test_normalize_vector_accepts_max_sim_and_refuses_anything_else():
    assert normalize_vector("c", {"size": 4.0, "distance": "Cosine", "multivector": {"comparator": "MAX_SIM"}},
                            "vectors.c") == VECTORS["colbert"]
    assert "multivector" not in normalize_vector("c", {"size": 4, "distance": "dot", "multivector": None}, "v.c")
    for bad, path, message in (({"comparator": "sum"}, "vectors.c.multivector.comparator", "max_sim"),
                               ({}, "vectors.c.multivector.comparator", "required; one of max_sim"),
                               (True, "vectors.c.multivector", "comparator: max_sim"),
                               ({"comparator": "max_sim", "x": 1}, "vectors.c.multivector.x", "comparator")):
        with pytest.raises(InvalidSpec) as info:
            normalize_vectors({"c": {"size": 4, "distance": "cosine", "multivector": bad}})
        problem = info.value.problems[0]
        assert problem.path == path and message in problem.message, (bad, problem)


def test_a_multivector_change_is_a_vector_change_that_replaces():
    plain = {"colbert": {k: v for k, v in VECTORS["colbert"].items() if k != "multivector"}}
    replace, added, removed, in_place = vector_change(plain, {"colbert": VECTORS["colbert"]})
    assert replace == ["vector 'colbert' multivector None -> {'comparator': 'max_sim'}"]
    assert added == [] and removed == [] and in_place == []
    assert vector_change(VECTORS, VECTORS) == ([], [], [], [])


# ---------------------------------------------------------------------------------------------
# The stores: Qdrant Edge and qdrant-client's local mode


@pytest.fixture(params=["edge", "local"])
def store(request, tmp_path):
    if request.param == "edge":
        from mixpeek_infra.qdrant.store.edge import EdgeStore

        yield EdgeStore(str(tmp_path / "edge"), timeout=5)
        close_all_shards()
    else:
        from qdrant_client import QdrantClient

        from mixpeek_infra.qdrant.store.server import ServerStore

        s = ServerStore(QdrantClient(location=":memory:"))
        yield s
        s.close()


def test_store_creates_reads_upserts_and_queries_a_multivector(store):
    store.create_collection("late", VECTORS, {})
    assert store.read_collection("late").vectors == VECTORS
    store.upsert("late", POINTS)
    hits = store.query("late", "colbert", [[1, 0, 0, 0], [0, 1, 0, 0]], limit=3)
    # MaxSim: sum over query vectors of the best cosine against the point's vectors: 1 + 1 for point 1.
    assert [h["id"] for h in hits][0] == 1 and hits[0]["score"] == pytest.approx(2.0)
    assert {h["id"] for h in hits} == {1, 2, 3}
    assert [h["id"] for h in store.query("late", "plain", [0, 1, 0, 0], limit=1)] == [2]
    assert store.count_points("late") == 3


def test_store_adds_a_multivector_to_a_live_collection(store):
    store.create_collection("late", {"plain": VECTORS["plain"]}, {})
    store.upsert("late", [{"id": 9, "vector": {"plain": [0, 0, 0, 1]}}])
    store.add_vector("late", "colbert", VECTORS["colbert"])
    assert store.read_collection("late").vectors == VECTORS
    store.upsert("late", POINTS)
    hits = store.query("late", "colbert", [[1, 0, 0, 0], [0, 1, 0, 0]], limit=5)
    assert hits[0]["id"] == 1 and 9 not in {h["id"] for h in hits}  # point 9 has no multi-vector
    assert store.count_points("late") == 4


def test_edge_keeps_the_multivector_across_in_place_updates_and_processes(tmp_path):
    from mixpeek_infra.qdrant.store.edge import EdgeStore

    root = str(tmp_path / "edge")
    store = EdgeStore(root, timeout=5)
    store.create_collection("late", VECTORS, {})
    store.upsert("late", POINTS)
    store.update_collection("late", vectors_on_disk={"colbert": True}, settings={"on_disk_payload": False})
    expected = {**VECTORS, "colbert": {**VECTORS["colbert"], "on_disk": True}}
    assert store.read_collection("late").vectors == expected
    with open(os.path.join(root, "late", "edge_config.json")) as fh:
        assert json.load(fh)["vectors"]["colbert"]["multivector_config"] == MAX_SIM
    close_all_shards()
    code = textwrap.dedent(f"""
        import json
        from mixpeek_infra.qdrant.store.edge import EdgeStore
        store = EdgeStore({root!r})
        hits = store.query("late", "colbert", [[1, 0, 0, 0], [0, 1, 0, 0]], limit=1)
        print(json.dumps([store.read_collection("late").vectors, hits[0]["id"]]))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    vectors, top = json.loads(out)
    assert vectors == expected and top == 1


# ---------------------------------------------------------------------------------------------
# Through the Collection provider, from a stack config's plan

COLLECTIONS = CollectionProvider()


def _checked(news, olds=None):
    result = COLLECTIONS.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


@pytest.fixture(params=["edge", "local"])
def target(request, tmp_path):
    if request.param == "edge":
        yield {"kind": "embedded", "path": str(tmp_path / "qdrant"), "timeout": 5.0}
        close_all_shards()
    else:
        from qdrant_client import QdrantClient

        from mixpeek_infra.qdrant.store.server import ServerStore

        spec = {"kind": "server", "url": "http://qdrant.test:6333", "timeout": 5.0, "prefer_grpc": False}
        install_store(spec, ServerStore(QdrantClient(location=":memory:"), location=spec["url"]))
        yield spec
    forget_stores()


def test_provider_lifecycle_of_a_multivector_collection(target):
    plan = parse_stack_config(STACK).namespaces[0].plan
    news = {"target": target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True}
    inputs = _checked(news)
    assert inputs["vectors"]["acme_colbert_v1_tokens"]["multivector"] == MAX_SIM
    assert "multivector" not in inputs["vectors"]["acme_colbert_v1_pooled"]
    created = COLLECTIONS.create(inputs)
    outputs = wire(created.outs)
    assert outputs["vectors"] == plan.vector_config()
    store = open_store(target)
    assert store.read_collection(created.id).vectors == plan.vector_config()

    # Refresh reads the same; the same inputs again are no change.
    refreshed = COLLECTIONS.read(created.id, outputs)
    assert refreshed.id == created.id and wire(refreshed.outs)["vectors"] == plan.vector_config()
    same = COLLECTIONS.diff(created.id, outputs, _checked(news, inputs))
    assert same.changes is False and same.replaces == []

    # Turning the multi-vector into a plain vector (or back) migrates the collection blue/green: no replace, and
    # deletion protection has nothing to refuse with points in it (tests/test_migration.py).
    store.upsert(created.id, [{"id": 1, "vector": {"acme_colbert_v1_tokens": [[1, 0, 0, 0], [0, 1, 0, 0]],
                                                   "acme_colbert_v1_pooled": [1, 0, 0, 0]}}])
    hits = store.query(created.id, "acme_colbert_v1_tokens", [[0, 1, 0, 0]], limit=1)
    assert [h["id"] for h in hits] == [1]
    flat = {name: {k: v for k, v in params.items() if k != "multivector"}
            for name, params in plan.vector_config().items()}
    to_flat = _checked({**news, "vectors": flat}, inputs)
    d = COLLECTIONS.diff(created.id, outputs, to_flat)
    assert d.changes is True and d.replaces == []
    moved = wire(COLLECTIONS.update(created.id, outputs, to_flat).outs)
    assert "multivector" not in moved["vectors"]["acme_colbert_v1_tokens"] and moved["points_count"] == 1
    # The point and its unchanged pooled vector are kept; the tokens, now of another shape, are to be embedded again.
    assert [h["id"] for h in store.query(created.id, "acme_colbert_v1_pooled", [1, 0, 0, 0], limit=1)] == [1]
    assert store.query(created.id, "acme_colbert_v1_tokens", [0, 1, 0, 0], limit=1) == []


def test_provider_refuses_to_adopt_a_plain_vector_for_a_multivector(target):
    plan = parse_stack_config(STACK).namespaces[0].plan
    flat = {name: {k: v for k, v in params.items() if k != "multivector"}
            for name, params in plan.vector_config().items()}
    first = COLLECTIONS.create(_checked({"target": target, "vectors": flat, "settings": {},
                                         "namespace_id": "ns_00000000aa"}))
    from mixpeek_infra.qdrant.store import CollectionConflict

    with pytest.raises(CollectionConflict, match="different vectors"):
        COLLECTIONS.create(_checked({"target": target, "vectors": plan.vector_config(), "settings": {},
                                     "namespace_id": "ns_00000000aa"}))
    assert first.id == "ns_00000000aa"


def test_cli_plans_a_user_multivector_extractor(capsys, tmp_path):
    from mixpeek_infra.cli import main

    extractors, request = tmp_path / "extractors.json", tmp_path / "late.json"
    extractors.write_text(json.dumps([LATE]))
    request.write_text(json.dumps(STACK["namespaces"][0]))
    assert main(["plan", "--json", "--extractors", str(extractors), str(request)]) == 0
    plan, = json.loads(capsys.readouterr().out)
    assert plan["vectors"][0] == {"name": "acme_colbert_v1_tokens", "size": 4, "distance": "cosine",
                                  "datatype": "float32", "on_disk": False, "multivector": True}
    assert main(["plan", "--extractors", str(extractors), str(request)]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.strip().startswith("acme_colbert_v1_tokens"))
    assert row.split() == ["acme_colbert_v1_tokens", "4", "cosine", "float32", "false", "max_sim",
                           "acme_colbert_service"]
