"""The v0.82 Create Namespace body, as the official Python client (`mixpeek` on PyPI) writes it.

Bodies are built with the client's own models and serialized with its `to_dict()` (which always writes
`mode: managed` and the infrastructure block's defaults). Fields in scope are accepted and mapped; the
hosted service's fields are refused with their reason; the `namespace` output parses with the client's
NamespaceModel. The decisions are documented in docs/api-v0.82.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import pulumi
import pytest

mixpeek_models = pytest.importorskip("mixpeek.models")
from mixpeek.models import (BaseFeatureExtractorModelInput, BoolIndexParams, CreateNamespaceRequest,  # noqa: E402
                            DatetimeIndexParams, FloatIndexParams, GeoIndexParams, IntegerIndexParams,
                            KeywordIndexParams, NamespaceAuthorizationConfig, NamespaceCostCapOverride,
                            NamespaceInfrastructure, NamespaceModel, NamespaceSpendBudgetUpdate,
                            NamespaceTrustedIssuer, PayloadIndexConfigInput, TextIndexParams, TieringOverride,
                            UuidIndexParams, VectorConfigSpec)
from mixpeek.models.field_schema import FieldSchema  # noqa: E402
from stackmocks import FakeMocks  # noqa: E402

from mixpeek_infra.plan import plan_namespace  # noqa: E402
from mixpeek_infra.schema import HOSTED_ONLY, InvalidRequest, parse_request  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
COLLECTION = "pulumi-python:dynamic/mixpeek:QdrantCollection"
LOCAL_HEAD = "pulumi-python:dynamic/mixpeek:LocalRayHead"


def fe(name: str, version: str = "v1", params: dict | None = None) -> BaseFeatureExtractorModelInput:
    return BaseFeatureExtractorModelInput(feature_extractor_name=name, version=version, params=params)


def body(**fields) -> dict:
    fields.setdefault("namespace_name", "spotify_playlists_dev")
    return CreateNamespaceRequest(**fields).to_dict()


def problems_of(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(data)
    return info.value.problems


def seed_body() -> dict:
    return body(feature_extractors=[fe("multimodal_extractor"), fe("image_extractor", params={"model": "siglip_base"})],
                description="This namespace contains playlists from Spotify", auto_create_indexes=True,
                payload_indexes=[
                    PayloadIndexConfigInput(field_name="metadata.title", type="text",
                                            field_schema=FieldSchema(TextIndexParams(tokenizer="word"))),
                    PayloadIndexConfigInput(field_name="metadata.description", type="keyword",
                                            field_schema=FieldSchema(KeywordIndexParams(is_tenant=True)))])


# -- accepted: everything in scope ---------------------------------------------------------------------


def test_the_clients_seed_body_is_accepted_with_mode_managed():
    data = seed_body()
    assert data["mode"] == "managed"  # the client always writes it
    plan = plan_namespace(data)
    assert plan.mode == "managed"
    assert {v.name for v in plan.vectors} == {"multimodal_extractor_v1_multimodal_embedding",
                                              "multimodal_extractor_v1_transcription_embedding",
                                              "image_extractor_v1_embedding"}
    assert plan.infrastructure.compute_tier == "shared"
    assert plan.warnings == ()


def test_every_payload_index_type_the_client_writes_is_accepted():
    kinds = {"text": TextIndexParams(), "keyword": KeywordIndexParams(), "integer": IntegerIndexParams(),
             "float": FloatIndexParams(), "bool": BoolIndexParams(), "geo": GeoIndexParams(),
             "datetime": DatetimeIndexParams(), "uuid": UuidIndexParams(is_tenant=True)}
    indexes = [PayloadIndexConfigInput(field_name=f"f_{k}", type=k, field_schema=FieldSchema(p)) for k, p in kinds.items()]
    indexes += [PayloadIndexConfigInput(field_name=f"bare_{k}", type=k) for k in kinds]
    plan = plan_namespace(body(feature_extractors=[fe("text_extractor")], payload_indexes=indexes))
    user = {ix.field_name: ix for ix in plan.payload_indexes if not ix.is_protected}
    assert len(user) == 16 and user["f_uuid"].field_schema == {"type": "uuid", "is_tenant": True}


def test_the_clients_default_infrastructure_block_is_the_shared_tier():
    data = body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure())
    assert data["infrastructure"]["gpus_per_worker"] == 1  # written by the client as a default
    plan = plan_namespace(data)
    assert plan.infrastructure.compute_tier == "shared" and plan.infrastructure.gpu_type is None
    assert plan.warnings == ()


def test_a_gpu_request_without_a_tier_means_dedicated_gpu():
    plan = plan_namespace(body(feature_extractors=[fe("text_extractor")],
                               infrastructure=NamespaceInfrastructure(gpu_type="T4", gpus_per_worker=1)))
    assert plan.infrastructure.compute_tier == "dedicated_gpu"
    assert (plan.infrastructure.gpu_type, plan.infrastructure.gpus_per_worker) == ("T4", 1)


def test_an_explicit_tier_wins_over_a_gpu_and_the_dropped_gpu_is_warned_about():
    data = body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure(gpu_type="T4"))
    data["infrastructure"]["compute_tier"] = "dedicated_cpu"  # v0.81 field, still accepted
    plan = plan_namespace(data)
    assert plan.infrastructure.compute_tier == "dedicated_cpu" and plan.infrastructure.gpu_type is None
    assert [p for p, _ in plan.warnings] == ["infrastructure.gpu_type"]


def test_gpus_per_worker_above_the_default_without_gpu_type_is_refused():
    data = body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure(gpus_per_worker=2))
    assert "gpu_type" in dict(problems_of(data))["infrastructure.gpus_per_worker"]


@pytest.mark.parametrize("metric, distance", [("cosine", "cosine"), ("euclidean", "euclid"), ("dot_product", "dot"),
                                              ("Cosine", "cosine"), ("Euclid", "euclid"), ("Dot", "dot")])
def test_standalone_is_inferred_from_vector_configs_alone(metric, distance):
    data = body(vector_configs=[VectorConfigSpec(name="clip", dimension=512, metric=metric)])
    assert data["mode"] == "managed" and "feature_extractors" not in data
    plan = plan_namespace(data)
    assert plan.mode == "standalone"
    assert plan.vector_config() == {"clip": {"size": 512, "distance": distance, "datatype": "float32", "on_disk": False}}
    assert plan.vector_inference_map == {"clip": None}  # no inference service
    api = {"cosine": "cosine", "euclid": "euclidean", "dot": "dot_product"}[distance]
    assert plan.vector_configs == ({"name": "clip", "dimension": 512, "metric": api},)


def test_explicit_standalone_mode_and_vector_configs_beside_extractors():
    plan = plan_namespace(body(mode="standalone", vector_configs=[VectorConfigSpec(name="v", dimension=8)]))
    assert plan.mode == "standalone" and [v.name for v in plan.vectors] == ["v"]
    plan = plan_namespace(body(feature_extractors=[fe("text_extractor")],
                               vector_configs=[VectorConfigSpec(name="byo", dimension=3, metric="dot_product")]))
    assert plan.mode == "managed"
    assert [v.name for v in plan.vectors] == ["text_extractor_v1_embedding", "byo"]
    assert plan.vector_inference_map["byo"] is None


def test_vector_config_problems_are_refused_naming_the_field():
    assert "not used in mode 'standalone'" in dict(problems_of(
        body(mode="standalone", feature_extractors=[fe("text_extractor")],
             vector_configs=[VectorConfigSpec(name="v", dimension=8)])))["feature_extractors"]
    assert "required in mode 'standalone'" in dict(problems_of(body(mode="standalone")))["vector_configs"]
    assert "unknown metric" in dict(problems_of(
        body(vector_configs=[VectorConfigSpec(name="v", dimension=8, metric="hamming")])))["vector_configs[0].metric"]
    assert "duplicate" in dict(problems_of(
        body(vector_configs=[VectorConfigSpec(name="v", dimension=8), VectorConfigSpec(name="v", dimension=4)])
    ))["vector_configs[1].name"]
    assert "already a vector of extractor" in dict(problems_of(
        body(feature_extractors=[fe("text_extractor")],
             vector_configs=[VectorConfigSpec(name="text_extractor_v1_embedding", dimension=8)])
    ))["vector_configs[0].name"]


def test_neither_extractors_nor_vectors_is_refused():
    assert "at least 1 extractor" in dict(problems_of(body()))["feature_extractors"]


def test_namespace_id_labels_and_names_are_accepted():
    data = body(namespace_id="ns_0123456789", feature_extractors=[fe("text_extractor")], namespace_type="marketplace",
                scope="org", adaptive_indexing=True)
    plan = plan_namespace(data)
    assert plan.namespace_id == "ns_0123456789"
    assert plan.labels == {"namespace_type": "marketplace", "scope": "org", "adaptive_indexing": True}
    assert "namespace_id" in dict(problems_of(body(namespace_id="my-id", feature_extractors=[fe("text_extractor")])))
    for name in ("abc", "n" * 64, "_playlists", "playlists-", "team.playlists-2026"):
        assert plan_namespace(body(namespace_name=name, feature_extractors=[fe("text_extractor")])).namespace_name == name


# -- refused: with the reason ----------------------------------------------------------------------------


HOSTED = [
    ("ttl_seconds", {"ttl_seconds": 3600}),
    ("tiering", {"tiering": TieringOverride(enabled=False)}),
    ("trusted_issuers", {"trusted_issuers": [NamespaceTrustedIssuer(issuer="https://id.example.com",
                                                                     jwks_url="https://id.example.com/jwks")]}),
    ("spend_budget", {"spend_budget": NamespaceSpendBudgetUpdate(daily_usd=5)}),
    ("cost_cap_override", {"cost_cap_override": NamespaceCostCapOverride(daily_usd=5, reason="a pilot customer",
                                                                         owner="team-search")}),
    ("infrastructure.s3_vector_bucket", {"infrastructure": NamespaceInfrastructure(s3_vector_bucket="vectors")}),
    ("infrastructure.authorization",
     {"infrastructure": NamespaceInfrastructure(authorization=NamespaceAuthorizationConfig(enabled=True))}),
]


@pytest.mark.parametrize("path, fields", HOSTED, ids=[h[0] for h in HOSTED])
def test_the_hosted_services_fields_are_refused_never_dropped(path, fields):
    problems = dict(problems_of(body(feature_extractors=[fe("text_extractor")], **fields)))
    assert problems[path] == HOSTED_ONLY


def test_features_are_refused_pointing_at_feature_extractors():
    problems = dict(problems_of(body(features=["image_search"])))
    assert "feature_extractors" in problems["features"]


def test_compute_profiles_are_refused_with_the_reason():
    problems = dict(problems_of(body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure(
        compute_profiles={"text_extractor_v1": {"num_gpus": 1}}))))
    assert "min_workers" in problems["infrastructure.compute_profiles"]


def test_parse_request_keeps_the_v082_fields():
    req = parse_request(body(feature_extractors=[fe("text_extractor")], scope="system"))
    assert req.scope == "system" and req.mode == "managed"


# -- the component: bare minimum, and the namespace model round trip --------------------------------------


def _run(build) -> tuple[FakeMocks, dict]:
    mocks = FakeMocks()
    pulumi.runtime.set_mocks(mocks, project="mixpeek-infra", stack="unit")
    resolved: dict = {}

    @pulumi.runtime.test
    def program():
        namespaces = build()
        return pulumi.Output.all(**{k: ns.namespace for k, ns in namespaces.items()}).apply(resolved.update)

    program()
    return mocks, resolved


def test_bare_minimum_seed_uses_embedded_edge_and_one_shared_local_ray_head_per_program():
    from mixpeek_infra.namespace import Namespace, NamespaceArgs

    seed = json.loads((ROOT / "tests" / "data" / "seed.json").read_text())
    other = dict(seed, namespace_name="other_shared")

    def build():
        return {"seed": Namespace("seed", NamespaceArgs(request=seed)),
                "other": Namespace("other", NamespaceArgs(request=other))}

    mocks, resolved = _run(build)
    heads = [r for r in mocks.resources if r.typ == LOCAL_HEAD]
    assert [h.name for h in heads] == ["shared-ray"]  # created once, reused
    assert heads[0].inputs.get("namespace_id") == "shared"
    collections = {r.name: r for r in mocks.resources if r.typ == COLLECTION}
    assert set(collections) == {"seed-collection", "other-collection"}
    for c in collections.values():
        assert c.inputs["target"]["kind"] == "embedded" and c.inputs["target"]["path"] == ".mixpeek/qdrant"
    for key in ("seed", "other"):
        assert resolved[key]["infrastructure"]["ray_head_node_url"] == "ray://127.0.0.1:10001"
        assert resolved[key]["infrastructure"]["compute_tier"] == "shared"

    # A second program gets its own shared head.
    mocks2, _ = _run(lambda: {"seed": Namespace("seed", NamespaceArgs(request=seed))})
    assert [r.name for r in mocks2.resources if r.typ == LOCAL_HEAD] == ["shared-ray"]


def test_namespace_output_round_trips_through_the_clients_namespace_model():
    from mixpeek_infra.namespace import Namespace, NamespaceArgs

    data = body(namespace_id="ns_00000000ab", feature_extractors=[fe("text_extractor")], namespace_type="standard",
                scope="org", adaptive_indexing=True,
                vector_configs=[VectorConfigSpec(name="byo", dimension=16, metric="euclidean")],
                payload_indexes=[PayloadIndexConfigInput(field_name="title", type="text",
                                                         field_schema=FieldSchema(TextIndexParams()))],
                infrastructure=NamespaceInfrastructure(gpu_type="T4", min_workers=0, max_workers=2))
    _, resolved = _run(lambda: {"ns": Namespace("ns", NamespaceArgs(request=data))})
    out = resolved["ns"]
    model = NamespaceModel.from_dict(out)
    assert model.object == "namespace" and model.mode == "managed"
    assert model.namespace_id == "ns_00000000ab" == out["namespace_id"]
    assert (model.namespace_type.value, model.scope.value, model.adaptive_indexing) == ("standard", "org", True)
    assert model.vector_configs == [{"name": "byo", "dimension": 16, "metric": "euclidean"}]
    assert model.vector_inference_map == {"text_extractor_v1_embedding": "multilingual_e5_large_instruct_v1"}
    assert model.payload_index_count == 1 and model.namespace_ready is True and model.document_count_complete is True
    assert model.document_count == 0 and isinstance(out["document_count"], int)
    assert model.infrastructure.gpu_type == "T4" and model.infrastructure.max_workers == 2
    assert out["infrastructure"]["compute_tier"] == "dedicated_gpu"
    text = next(ix for ix in model.payload_indexes if ix.field_name == "title")
    assert text.field_schema.actual_instance.min_token_len == 2
    raw = next(ix for ix in out["payload_indexes"] if ix["field_name"] == "title")["field_schema"]
    assert type(raw["min_token_len"]) is int and type(raw["max_token_len"]) is int  # never 2.0
    assert [fe_.feature_extractor_id for fe_ in model.feature_extractors] == ["text_extractor_v1"]
    # Nothing both models know is lost.
    back = model.to_dict()
    for key in ("namespace_id", "namespace_name", "mode", "description", "vector_configs", "payload_index_count",
                "auto_create_indexes", "adaptive_indexing", "vector_inference_map"):
        assert back.get(key) == out.get(key), key


def test_body_and_args_namespace_id_must_agree():
    from mixpeek_infra.namespace import Namespace, NamespaceArgs

    data = body(namespace_id="ns_00000000ab", feature_extractors=[fe("text_extractor")])
    mocks = FakeMocks()
    pulumi.runtime.set_mocks(mocks, project="mixpeek-infra", stack="unit")
    with pytest.raises(InvalidRequest) as info:
        Namespace("ns", NamespaceArgs(request=data, namespace_id="ns_00000000cd"))
    assert info.value.problems[0][0] == "namespace_id" and mocks.resources == []
    # Equal ids are fine.
    _, resolved = _run(lambda: {"ns": Namespace("ns", NamespaceArgs(request=data, namespace_id="ns_00000000ab"))})
    assert resolved["ns"]["namespace_id"] == "ns_00000000ab"


def test_the_cli_json_schema_accepts_the_clients_bodies_and_flags_hosted_fields():
    jsonschema = pytest.importorskip("jsonschema")
    from mixpeek_infra import cli

    validator = jsonschema.Draft202012Validator(cli.request_json_schema())
    for data in (seed_body(), body(vector_configs=[VectorConfigSpec(name="v", dimension=4)]),
                 body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure(gpu_type="T4"),
                      namespace_type="standard", scope="org", adaptive_indexing=False, namespace_id="ns_0123456789")):
        assert list(validator.iter_errors(data)) == []
    for _, fields in HOSTED:
        assert list(validator.iter_errors(body(feature_extractors=[fe("text_extractor")], **fields)))
    assert list(validator.iter_errors(body()))  # neither extractors nor vectors
