"""The stack program and the Namespace component under Pulumi mocks.

Graph tests use `FakeMocks` (no side effects). The end-to-end tests use `ProviderMocks`, which
hand every dynamic resource to its real provider: the dev stack really creates its Qdrant Edge
collection and indexes and a live local Ray head, and a second run diffs through the providers.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

from mixpeek_infra.qdrant.store import forget_stores, open_store
from mixpeek_infra.ray.local import process_info
from stackmocks import SECRET_SIG, FakeMocks, ProviderMocks, parents, run_program

ROOT = Path(__file__).resolve().parent.parent
SEED_MAP = {"multimodal_extractor_v1_multimodal_embedding": "vertex_multimodal_embedding",
            "multimodal_extractor_v1_transcription_embedding": "multilingual_e5_large_instruct_v1",
            "image_extractor_v1_embedding": "google_siglip_base_v1"}
API_KEY = "qdrant-key-7f3a9c1e55d2"
RAY_TOKEN = "ray-token-0c8e2b4d61aa"

COLLECTION = "pulumi-python:dynamic/mixpeek:QdrantCollection"
INDEX = "pulumi-python:dynamic/mixpeek:QdrantPayloadIndex"
LOCAL_HEAD = "pulumi-python:dynamic/mixpeek:LocalRayHead"


def stack_config(stack: str) -> dict:
    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def types(mocks) -> list[tuple[str, str]]:
    return sorted((r.typ, r.name) for r in mocks.resources)


# -- the resource graph -----------------------------------------------------------------------


def test_dev_stack_graph_and_outputs():
    mocks = FakeMocks()
    outputs, monitor = run_program(stack_config("dev"), mocks)
    ns = "spotify_playlists_dev"
    fields = ["internal_id", "namespace_id", "collection_id", "document_id", "bucket_id", "metadata.title",
              "metadata.description"]
    assert types(mocks) == sorted(
        [("mixpeek:index:Namespace", ns), (COLLECTION, f"{ns}-collection"), (LOCAL_HEAD, "shared-ray")]
        + [(INDEX, f"{ns}-index-{f}") for f in fields])
    parent = parents(monitor)
    assert parent[f"{ns}-collection"] == ns
    assert all(parent[f"{ns}-index-{f}"] == f"{ns}-collection" for f in fields)
    # Both sit directly under the root stack (its name is fixed by the first set_mocks in the process).
    assert parent[ns] == parent["shared-ray"] and parent.get(parent[ns], "") == ""

    out = outputs[ns]
    assert out["vector_inference_map"] == SEED_MAP
    assert out["namespace_id"].startswith("ns_") and len(out["namespace_id"]) == 13
    assert out["infrastructure"]["qdrant_collection"] == out["namespace_id"]
    assert out["infrastructure"]["compute_tier"] == "shared"
    assert out["ray_head_node_url"] == out["infrastructure"]["ray_head_node_url"] == "ray://127.0.0.1:10001"
    model = out["namespace"]
    assert model["namespace_name"] == ns and model["description"].startswith("This namespace")
    assert [ix["field_name"] for ix in model["payload_indexes"]] == fields
    assert [fe["feature_extractor_id"] for fe in model["feature_extractors"]] == ["multimodal_extractor_v1",
                                                                                 "image_extractor_v1"]
    collection = next(r for r in mocks.resources if r.typ == COLLECTION)
    assert {k: v["size"] for k, v in collection.inputs["vectors"].items()} == {
        "multimodal_extractor_v1_multimodal_embedding": 1408,
        "multimodal_extractor_v1_transcription_embedding": 1024, "image_extractor_v1_embedding": 768}


def test_prod_stack_graph_secrets_and_outputs():
    mocks = FakeMocks()
    config = {**stack_config("prod"), "qdrantApiKey": API_KEY, "rayAuthToken": RAY_TOKEN}
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger("mixpeek-test-prod")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    outputs, monitor = run_program(config, mocks, stack="prod", logger=logger)

    names = types(mocks)
    assert sum(t == COLLECTION for t, _ in names) == 2
    assert sum(t == INDEX for t, _ in names) == 14
    assert not any(t == LOCAL_HEAD for t, _ in names)
    k8s = [n for t, n in names if t.startswith("kubernetes:")]
    assert ("kubernetes:ray.io/v1:RayCluster", "video_moderation-ray-cluster") in names
    # The shared tier creates no head; the explicit Kubernetes namespace belongs to the stack, not the head.
    assert all(n.startswith("video_moderation-ray") for n in k8s if n != "kubernetes-namespace-mixpeek-prod")
    assert ("kubernetes:core/v1:Namespace", "kubernetes-namespace-mixpeek-prod") in names
    shared, dedicated = outputs["product_catalog"], outputs["video_moderation"]
    assert shared["ray_head_node_url"] == "ray://ray-shared-head-svc.mixpeek-shared.svc.cluster.local:10001"
    assert dedicated["ray_head_node_url"].startswith("ray://") and dedicated["ray_head_node_url"].endswith(
        ".mixpeek-prod.svc.cluster.local:10001")
    assert dedicated["vector_inference_map"] == {
        "multimodal_extractor_v2_multimodal_embedding": "gemini-embedding-2",
        "multimodal_extractor_v2_transcription_embedding": "multilingual_e5_large_instruct_v1",
        "face_identity_extractor_v1_embedding": "face_identity_arcface_r100_v1"}
    video = next(r for r in mocks.resources if r.name == "video_moderation-collection")
    assert video.inputs["vectors"]["multimodal_extractor_v2_multimodal_embedding"]["size"] == 1536
    assert dedicated["infrastructure"]["qdrant_url"] == "https://qdrant.prod.internal:6333"
    assert dedicated["infrastructure"]["gpu_type"] == "T4"

    # No plaintext secret in any registration, any answer, any component output, or any log.
    def plain(node):
        if isinstance(node, dict):
            if node.get("4dabf18193072939515e22adb298388d") == SECRET_SIG:
                return None  # a secret: its value stays encrypted in state
            return {k: plain(v) for k, v in node.items()}
        if isinstance(node, list):
            return [plain(v) for v in node]
        return node

    raw = json.dumps([plain(r) for r in monitor.raw])
    secret_inputs = json.dumps(monitor.raw)
    assert API_KEY in secret_inputs and RAY_TOKEN in secret_inputs  # they were passed, as secrets
    assert API_KEY not in raw and RAY_TOKEN not in raw
    assert API_KEY not in json.dumps(outputs) and RAY_TOKEN not in json.dumps(outputs)
    assert records and not any(API_KEY in r or RAY_TOKEN in r for r in records)


def test_bad_request_in_config_names_the_field_and_registers_nothing():
    config = stack_config("dev")
    config["namespaces"][0]["feature_extractors"][1]["params"]["model"] = "clip_large"
    mocks = FakeMocks()
    with pytest.raises(Exception) as info:
        run_program(config, mocks)
    message = str(info.value)
    assert "namespaces[0].feature_extractors[1].params.model" in message and "siglip_base" in message
    assert mocks.resources == []


def test_shared_tier_component_with_a_non_external_head_is_refused_before_registering():
    # The bare component (no ray) now runs the program's local shared head: tests/test_api_v082.py.
    from mixpeek_infra.namespace import Namespace, NamespaceArgs
    from mixpeek_infra.ray.spec import RayHead
    from mixpeek_infra.schema import InvalidRequest

    mocks = FakeMocks()
    pulumi.runtime.set_mocks(mocks, project="mixpeek-infra", stack="unit")
    body = json.loads((ROOT / "tests" / "data" / "seed.json").read_text())
    with pytest.raises(InvalidRequest) as info:
        Namespace("seed", NamespaceArgs(request=body, ray=RayHead.local()))
    assert info.value.problems[0][0] == "infrastructure.compute_tier"
    assert mocks.resources == []


# -- end to end: real providers behind the mocks --------------------------------------------------


def _dev_config(tmp_path: Path, *, ray: dict | None = None) -> dict:
    config = stack_config("dev")
    config["qdrant"] = {"path": str(tmp_path / "qdrant")}
    config["ray"] = ray or {"mode": "local", "state_dir": str(tmp_path / "ray"), "num_cpus": 1}
    return config


def _ray_task(url: str) -> str:
    code = ("import ray, sys; ray.init(sys.argv[1], logging_level='ERROR'); "
            "print(ray.get(ray.remote(lambda: 'pong').remote())); ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=120)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]


@pytest.mark.ray
def test_dev_stack_end_to_end_creates_real_infrastructure_then_destroys_it(tmp_path):
    mocks = ProviderMocks()
    try:
        outputs, _ = run_program(_dev_config(tmp_path), mocks)
        out = outputs["spotify_playlists_dev"]
        ns_id = out["namespace_id"]
        store = open_store({"kind": "embedded", "path": str(tmp_path / "qdrant")})
        state = store.read_collection(ns_id)
        assert state is not None and state.points_count == 0
        assert {k: (v["size"], v["distance"]) for k, v in state.vectors.items()} == {
            "multimodal_extractor_v1_multimodal_embedding": (1408, "cosine"),
            "multimodal_extractor_v1_transcription_embedding": (1024, "cosine"),
            "image_extractor_v1_embedding": (768, "cosine")}
        indexes = store.read_payload_indexes(ns_id)
        assert indexes["metadata.title"] == {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                             "max_token_len": 15, "lowercase": True}
        assert indexes["metadata.description"] == {"type": "keyword", "is_tenant": True}
        assert indexes["collection_id"] == {"type": "keyword", "is_tenant": True}
        assert set(indexes) == {ix["field_name"] for ix in out["namespace"]["payload_indexes"]}
        assert out["namespace"]["document_count"] == 0
        assert [ix["field_schema"] for ix in out["namespace"]["payload_indexes"]] == [
            indexes[ix["field_name"]] for ix in out["namespace"]["payload_indexes"]]
        assert out["vector_inference_map"] == SEED_MAP

        head = next(r for r in mocks.resources if r.typ == LOCAL_HEAD)
        assert out["ray_head_node_url"] == head.outputs["ray_head_node_url"]
        assert process_info(int(head.outputs["pid"])) is not None
        assert _ray_task(out["ray_head_node_url"]) == "pong"
    finally:
        mocks.destroy()
        forget_stores()
    assert not (tmp_path / "qdrant" / ns_id).exists()
    assert process_info(int(head.outputs["pid"])) is None


def test_second_run_diffs_as_the_lifecycle_table_promises(tmp_path):
    config = _dev_config(tmp_path, ray={"mode": "local", "shared_url": "ray://10.0.0.5:10001"})
    body = config["namespaces"][0]
    body["feature_extractors"].append({"feature_extractor_name": "multimodal_extractor", "version": "v2",
                                       "params": {"output_dimensionality": 3072}})
    first = ProviderMocks()
    try:
        outputs, _ = run_program(config, first)
        ns_id = outputs["spotify_playlists_dev"]["namespace_id"]

        # Labels only: nothing changes in Qdrant.
        relabelled = copy.deepcopy(config)
        relabelled["namespaces"][0]["description"] = "renamed"
        second = ProviderMocks(previous=first.resources, apply_updates=False)
        outputs2, _ = run_program(relabelled, second)
        assert outputs2["spotify_playlists_dev"]["namespace"]["description"] == "renamed"
        assert all(not r.diff.changes for r in second.resources if r.diff is not None)

        # An added index is a new resource; a changed index param is an in-place update;
        # a changed extractor param migrates the collection (an update: blue/green, tests/test_migration.py).
        changed = copy.deepcopy(config)
        nb = changed["namespaces"][0]
        nb["payload_indexes"].append({"field_name": "metadata.year", "type": "integer"})
        nb["payload_indexes"][0]["field_schema"]["min_token_len"] = 3
        nb["feature_extractors"][2]["params"]["output_dimensionality"] = 1536
        third = ProviderMocks(previous=first.resources, apply_updates=False)
        run_program(changed, third)
        by_name = {r.name: r for r in third.resources}
        collection = by_name["spotify_playlists_dev-collection"]
        assert collection.diff.changes and not collection.diff.replaces
        title = by_name["spotify_playlists_dev-index-metadata.title"]
        assert title.diff.changes and not title.diff.replaces

        # With the extractor unchanged, the added index is created and the param change applied.
        nb["feature_extractors"][2]["params"]["output_dimensionality"] = 3072
        fourth = ProviderMocks(previous=first.resources)
        run_program(changed, fourth)
        store = open_store({"kind": "embedded", "path": str(tmp_path / "qdrant")})
        indexes = store.read_payload_indexes(ns_id)
        assert indexes["metadata.year"] == {"type": "integer", "lookup": True, "range": True}
        assert indexes["metadata.title"]["min_token_len"] == 3
        assert "spotify_playlists_dev-index-metadata.year" not in {r.name for r in first.resources}
        first.resources = [r for r in fourth.resources if r.provider is not None]
    finally:
        first.destroy()
        forget_stores()
    assert not (tmp_path / "qdrant" / ns_id).exists()


def test_stable_key_keeps_resource_names_when_the_namespace_is_renamed():
    config = stack_config("prod")
    config["namespaces"][1]["key"] = "moderation"
    mocks = FakeMocks()
    run_program({**config, "qdrantApiKey": API_KEY}, mocks, stack="prod")
    first = {n for _, n in types(mocks)}
    config["namespaces"][1]["request"]["namespace_name"] = "video_moderation_v2"
    renamed = FakeMocks()
    outputs, _ = run_program({**config, "qdrantApiKey": API_KEY}, renamed, stack="prod")
    assert "moderation-collection" in first
    assert {n for _, n in types(renamed)} == first  # same resources: nothing is replaced
    assert outputs["video_moderation_v2"]["namespace"]["namespace_name"] == "video_moderation_v2"


def test_a_key_equal_to_its_own_namespace_name_is_accepted():
    """Fixing `key` to the current name before a rename (what the README advises) is no conflict."""
    config = stack_config("dev")
    body = config["namespaces"][0]
    config["namespaces"] = [{"request": body, "key": body["namespace_name"]}]
    config["ray"] = {"mode": "local", "shared_url": "ray://127.0.0.1:10001"}
    mocks = FakeMocks()
    run_program(config, mocks)
    assert "spotify_playlists_dev-collection" in {n for _, n in types(mocks)}


def test_bad_override_in_config_is_refused_with_its_path():
    config = stack_config("prod")
    config["namespaces"][1]["deletion_protecton"] = False
    config["namespaces"][1]["key"] = "../escape"
    mocks = FakeMocks()
    with pytest.raises(Exception) as info:
        run_program({**config, "qdrantApiKey": API_KEY}, mocks, stack="prod")
    assert "namespaces[1].deletion_protecton" in str(info.value) and "namespaces[1].key" in str(info.value)
    assert mocks.resources == []


def test_all_shared_stack_with_only_a_shared_url_needs_no_default_head():
    config = stack_config("dev")
    config["ray"] = {"mode": "external", "shared_url": "ray://10.1.2.3:10001"}
    mocks = FakeMocks()
    outputs, _ = run_program(config, mocks)
    assert outputs["spotify_playlists_dev"]["ray_head_node_url"] == "ray://10.1.2.3:10001"
    assert not any(r.typ == LOCAL_HEAD for r in mocks.resources)


def test_each_body_is_validated_once_per_run(monkeypatch):
    """The stack parser validates a body; the Namespace component takes that model as is (parse once)."""
    from mixpeek_infra import schema

    calls = []
    original = schema.CreateNamespaceRequest.model_validate.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(schema.CreateNamespaceRequest, "model_validate", classmethod(counting))
    config = stack_config("prod")
    run_program({**config, "qdrantApiKey": API_KEY, "rayAuthToken": RAY_TOKEN}, FakeMocks())
    assert len(calls) == len(config["namespaces"])


def test_the_stack_api_key_goes_only_to_the_server_it_is_configured_for(tmp_path, capsys):
    """qdrantApiKey is for the stack's qdrant.url: a namespace's own qdrant.url on that server gets it,
    one on another server never does (validate's plan says the same)."""
    import yaml as _yaml

    from mixpeek_infra.cli import main

    config = stack_config("prod")  # qdrant.url: https://qdrant.prod.internal:6333
    same, other = copy.deepcopy(config["namespaces"][0]), copy.deepcopy(config["namespaces"][0])
    same["namespace_name"], other["namespace_name"] = "same_server", "other_server"
    config["namespaces"] += [{"request": same, "qdrant": {"url": "https://qdrant.prod.internal:6333/"}},
                             {"request": other, "qdrant": {"url": "https://qdrant.elsewhere.example:6333"}}]
    mocks = FakeMocks()
    run_program({**config, "qdrantApiKey": API_KEY, "rayAuthToken": RAY_TOKEN}, mocks)
    keyed = {r.name: r.inputs.get("api_key") is not None for r in mocks.resources if r.typ == COLLECTION}
    assert keyed == {"product_catalog-collection": True, "video_moderation-collection": True,
                     "same_server-collection": True, "other_server-collection": False}, keyed

    path = tmp_path / "Pulumi.x.yaml"
    secure = {"secure": "v1:not-a-real-ciphertext"}
    path.write_text(_yaml.safe_dump({"config": {**{f"mixpeek-infra:{k}": v for k, v in config.items()},
                                                "mixpeek-infra:qdrantApiKey": secure,
                                                "mixpeek-infra:rayAuthToken": secure}}))
    assert main(["plan", "--json", str(path)]) == 0
    plans = {p["namespace_name"]: p["stack"]["qdrant"].get("api_key") for p in json.loads(capsys.readouterr().out)}
    assert plans == {"product_catalog": "qdrantApiKey (secret)", "video_moderation": "qdrantApiKey (secret)",
                     "same_server": "qdrantApiKey (secret)", "other_server": None}, plans
