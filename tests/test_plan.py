"""The plan: the seed's vectors, indexes and inference map exactly; determinism; infrastructure
defaults per tier; purity."""

from __future__ import annotations

import copy
import json

import pytest

from mixpeek_infra.plan import IndexPlan, NamespacePlan, VectorPlan, plan_namespace
from mixpeek_infra.schema import InvalidRequest, parse_request

SEED_INFERENCE_MAP = {
    "multimodal_extractor_v1_multimodal_embedding": "vertex_multimodal_embedding",
    "multimodal_extractor_v1_transcription_embedding": "multilingual_e5_large_instruct_v1",
    "image_extractor_v1_embedding": "google_siglip_base_v1",
}

SYSTEM = [
    ("internal_id", {"type": "keyword", "is_tenant": False}),
    ("namespace_id", {"type": "keyword", "is_tenant": False}),
    ("collection_id", {"type": "keyword", "is_tenant": True}),
    ("document_id", {"type": "keyword", "is_tenant": False}),
    ("bucket_id", {"type": "keyword", "is_tenant": False}),
]


def test_seed_inference_map_is_exactly_the_documented_one(seed):
    plan = plan_namespace(seed)
    assert plan.vector_inference_map == SEED_INFERENCE_MAP
    assert list(plan.vector_inference_map) == list(SEED_INFERENCE_MAP)


def test_seed_vectors(seed):
    plan = plan_namespace(seed)
    assert plan.vectors == (
        VectorPlan("multimodal_extractor_v1_multimodal_embedding", 1408, "cosine", "float32", False,
                   "vertex_multimodal_embedding", "multimodal_extractor_v1"),
        VectorPlan("multimodal_extractor_v1_transcription_embedding", 1024, "cosine", "float32", False,
                   "multilingual_e5_large_instruct_v1", "multimodal_extractor_v1"),
        VectorPlan("image_extractor_v1_embedding", 768, "cosine", "float32", False, "google_siglip_base_v1",
                   "image_extractor_v1"),
    )
    assert sorted(v.size for v in plan.vectors) == [768, 1024, 1408]
    assert plan.vector_config()["image_extractor_v1_embedding"] == {"size": 768, "distance": "cosine",
                                                                    "datatype": "float32", "on_disk": False}


def test_vectors_on_disk(seed):
    plan = plan_namespace(seed, vectors_on_disk=True)
    assert all(v.on_disk for v in plan.vectors)


def test_seed_payload_indexes_system_first_then_custom(seed):
    plan = plan_namespace(seed)
    assert len(plan.payload_indexes) == 7
    system, custom = plan.payload_indexes[:5], plan.payload_indexes[5:]
    assert [(ix.field_name, ix.field_schema) for ix in system] == SYSTEM
    assert all(ix.is_protected and ix.type == "keyword" for ix in system)
    assert custom == (
        IndexPlan("metadata.title", "text", {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                             "max_token_len": 15, "lowercase": True}, False),
        IndexPlan("metadata.description", "keyword", {"type": "keyword", "is_tenant": True}, False),
    )


def test_custom_index_defaults_are_filled_in(seed):
    seed["payload_indexes"] = [
        {"field_name": "metadata.title", "type": "text", "field_schema": {"tokenizer": "multilingual"}},
        {"field_name": "metadata.year", "type": "integer"},
        {"field_name": "metadata.year_range", "type": "integer", "field_schema": {"lookup": False}},
        {"field_name": "metadata.score", "type": "float"},
        {"field_name": "metadata.flag", "type": "bool"},
        {"field_name": "metadata.where", "type": "geo"},
        {"field_name": "metadata.when", "type": "datetime"},
        {"field_name": "metadata.tenant", "type": "uuid", "field_schema": {"is_tenant": True}},
        {"field_name": "tags[]", "type": "keyword"},
    ]
    custom = {ix.field_name: ix.field_schema for ix in plan_namespace(seed).payload_indexes[5:]}
    assert custom == {
        "metadata.title": {"type": "text", "tokenizer": "multilingual", "min_token_len": 2, "max_token_len": 15,
                           "lowercase": True},
        "metadata.year": {"type": "integer", "lookup": True, "range": True},
        "metadata.year_range": {"type": "integer", "lookup": False, "range": True},
        "metadata.score": {"type": "float"},
        "metadata.flag": {"type": "bool"},
        "metadata.where": {"type": "geo"},
        "metadata.when": {"type": "datetime"},
        "metadata.tenant": {"type": "uuid", "is_tenant": True},
        "tags[]": {"type": "keyword", "is_tenant": False},
    }


def test_no_custom_indexes_gives_the_five_system_ones(seed):
    del seed["payload_indexes"]
    plan = plan_namespace(seed)
    assert [ix.field_name for ix in plan.payload_indexes] == [name for name, _ in SYSTEM]


def test_feature_extractors_are_normalised(seed):
    del seed["feature_extractors"][0]["feature_extractor_id"]
    plan = plan_namespace(seed)
    assert plan.feature_extractors == (
        {"feature_extractor_name": "multimodal_extractor", "version": "v1",
         "feature_extractor_id": "multimodal_extractor_v1", "params": {}},
        {"feature_extractor_name": "image_extractor", "version": "v1", "feature_extractor_id": "image_extractor_v1",
         "params": {"model": "siglip_base"}},
    )


def test_to_dict_shape(seed):
    data = plan_namespace(seed).to_dict()
    assert {"namespace_name", "vectors", "payload_indexes", "vector_inference_map", "infrastructure",
            "feature_extractors"} <= set(data)
    assert data["namespace_name"] == "spotify_playlists_dev"
    assert all(set(v) == {"name", "size", "distance", "datatype", "on_disk"} for v in data["vectors"])
    assert all(set(ix) == {"field_name", "type", "field_schema", "is_protected"} for ix in data["payload_indexes"])
    assert json.loads(json.dumps(data, allow_nan=False)) == data


def test_plan_is_deterministic(seed):
    first = plan_namespace(seed)
    assert plan_namespace(copy.deepcopy(seed)) == first
    assert json.dumps(plan_namespace(seed).to_dict()) == json.dumps(first.to_dict())
    reordered = {k: seed[k] for k in reversed(list(seed))}
    reordered["payload_indexes"] = [{k: ix[k] for k in reversed(list(ix))} for ix in seed["payload_indexes"]]
    assert plan_namespace(reordered) == first
    assert plan_namespace(parse_request(seed)) == first


def test_plan_does_not_touch_its_input(seed):
    before = copy.deepcopy(seed)
    plan_namespace(seed)
    assert seed == before


def test_labels_do_not_change_vectors_or_indexes(seed):
    plan = plan_namespace(seed)
    seed["namespace_name"], seed["description"] = "renamed", "another description"
    other = plan_namespace(seed)
    assert (other.vectors, other.payload_indexes, other.vector_inference_map) == (
        plan.vectors, plan.payload_indexes, plan.vector_inference_map)


def test_extractor_order_is_the_vector_order(seed):
    seed["feature_extractors"].reverse()
    assert [v.name for v in plan_namespace(seed).vectors] == [
        "image_extractor_v1_embedding", "multimodal_extractor_v1_multimodal_embedding",
        "multimodal_extractor_v1_transcription_embedding"]


def test_invalid_request_raises(seed):
    seed["feature_extractors"] = []
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(seed)
    assert info.value.problems[0][0] == "feature_extractors"


# --------------------------------------------------------------------------------------------
# Infrastructure defaults per tier

DEFAULTS = {"autoscaling_enabled": True, "min_workers": 1, "max_workers": 10, "max_concurrent_jobs": 10,
            "max_custom_models": 0, "max_custom_plugins": 0, "qdrant_collection": None, "qdrant_url": None,
            "ray_cluster_id": None, "ray_head_node_url": None, "ray_dashboard_url": None,
            "s3_plugin_bucket": "mixpeek-plugins", "s3_plugin_prefix": None}


def test_infrastructure_defaults_without_a_block(seed):
    infra = plan_namespace(seed).infrastructure.to_dict()
    assert infra == {"compute_tier": "shared", "gpu_type": None, "gpus_per_worker": 0, **DEFAULTS}


@pytest.mark.parametrize("block, expected", [
    ({"compute_tier": "shared"}, {"compute_tier": "shared", "gpu_type": None, "gpus_per_worker": 0}),
    ({"compute_tier": "shared", "gpu_type": "T4"}, {"compute_tier": "shared", "gpu_type": None, "gpus_per_worker": 0}),
    ({"compute_tier": "dedicated_cpu"}, {"compute_tier": "dedicated_cpu", "gpu_type": None, "gpus_per_worker": 0}),
    ({"compute_tier": "dedicated_gpu", "gpu_type": "A100"},
     {"compute_tier": "dedicated_gpu", "gpu_type": "A100", "gpus_per_worker": 1}),
    ({"compute_tier": "dedicated_gpu", "gpu_type": "A100", "gpus_per_worker": 4},
     {"compute_tier": "dedicated_gpu", "gpu_type": "A100", "gpus_per_worker": 4}),
])
def test_infrastructure_defaults_per_tier(seed, block, expected):
    seed["infrastructure"] = block
    infra = plan_namespace(seed).infrastructure.to_dict()
    assert infra == {**DEFAULTS, **expected}
    assert list(infra)[0] == "compute_tier"


def test_infrastructure_values_carry_through(seed):
    seed["infrastructure"] = {"compute_tier": "dedicated_cpu", "autoscaling_enabled": False, "min_workers": 2,
                              "max_workers": 4, "max_concurrent_jobs": 50, "qdrant_collection": "ns_custom",
                              "qdrant_url": "https://qdrant.example:6333", "qdrant_api_key": "top-secret-key",
                              "ray_cluster_id": "ray_prod_cluster", "ray_head_node_url": "ray://ray-head.ml:10001"}
    plan = plan_namespace(seed)
    infra = plan.infrastructure
    assert (infra.autoscaling_enabled, infra.min_workers, infra.max_workers, infra.max_concurrent_jobs) == (
        False, 2, 4, 50)
    assert infra.qdrant_collection == "ns_custom" and infra.ray_head_node_url == "ray://ray-head.ml:10001"
    assert "qdrant_api_key" not in infra.to_dict()
    assert "top-secret-key" not in json.dumps(plan.to_dict()) and "top-secret-key" not in repr(plan)


def test_plan_is_frozen(seed):
    plan = plan_namespace(seed)
    assert isinstance(plan, NamespacePlan)
    with pytest.raises(Exception):
        plan.namespace_name = "x"  # type: ignore[misc]
