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

mixpeek_models = pytest.importorskip(
    "mixpeek.models", reason="the official Mixpeek client (mixpeek.models) is not installed: pip install -e '.[dev]'")
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
    jsonschema = pytest.importorskip("jsonschema",
                                     reason="jsonschema is not installed: pip install -e '.[dev]'")
    from mixpeek_infra import cli

    validator = jsonschema.Draft202012Validator(cli.request_json_schema())
    for data in (seed_body(), body(vector_configs=[VectorConfigSpec(name="v", dimension=4)]),
                 body(feature_extractors=[fe("text_extractor")], infrastructure=NamespaceInfrastructure(gpu_type="T4"),
                      namespace_type="standard", scope="org", adaptive_indexing=False, namespace_id="ns_0123456789")):
        assert list(validator.iter_errors(data)) == []
    for _, fields in HOSTED:
        assert list(validator.iter_errors(body(feature_extractors=[fe("text_extractor")], **fields)))
    assert list(validator.iter_errors(body()))  # neither extractors nor vectors


# -- feature extractor params: the client's params models (issue 12) ---------------------------------------

from mixpeek_infra.extractors import (CREDENTIAL_REFUSAL, DEFAULT_CATALOGUE, DISCRIMINATOR,  # noqa: E402
                                      VECTOR_CHANGE, is_credential)

CATALOGUED = sorted(DEFAULT_CATALOGUE.entries.values(), key=lambda e: e.feature_extractor_id)
SECRET = "sk-proj-DO-NOT-ECHO-4242"


def client_params(entry, **fields) -> dict:
    """The client's params model of `entry`, as its `to_dict()` writes it (every default included). The
    client writes `output_dimensionality: 3072` (v2's) by default: multimodal v1 leaves it out."""
    params = getattr(mixpeek_models, entry.client_model)(**fields).to_dict()
    if entry.feature_extractor_id == "multimodal_extractor_v1":
        params.pop("output_dimensionality")
    return params


def extractor_body(entry, params) -> dict:
    # passthrough writes no vector: the collection then needs one of its own
    extra = {} if entry.vectors else {"vector_configs": [VectorConfigSpec(name="v", dimension=4)]}
    return body(feature_extractors=[fe(entry.name, entry.version, params)], **extra)


def extractor_plan(entry, params):
    return plan_namespace(extractor_body(entry, params))


def vector_set(plan) -> list:
    return [(v.name, v.size, v.distance, v.datatype, v.multivector, v.inference_service) for v in plan.vectors]


def test_every_catalogued_extractor_names_the_clients_params_model_and_classifies_every_field():
    for entry in CATALOGUED:
        assert entry.client_model, entry.feature_extractor_id
        fields = set(getattr(mixpeek_models, entry.client_model).model_fields)
        groups = {"params": {p.name for p in entry.params}, "pinned": {p.name for p in entry.pinned_params},
                  "inert": set(entry.inert_params), "vector": {n for n, _ in entry.vector_params},
                  "credential": {f for f in fields if is_credential(f)}, "discriminator": {DISCRIMINATOR}}
        listed = [n for g in groups.values() for n in g]
        assert len(listed) == len(set(listed)), entry.feature_extractor_id
        # every client field is classified; only the catalogue's own documented params are not the client's
        assert fields <= set(listed), (entry.feature_extractor_id, fields - set(listed))
        assert set(listed) - fields <= {p.name for p in entry.params}, entry.feature_extractor_id


@pytest.mark.parametrize("entry", CATALOGUED, ids=[e.feature_extractor_id for e in CATALOGUED])
def test_the_clients_default_params_are_accepted_echoed_and_change_no_vector(entry):
    params = client_params(entry)
    plan = extractor_plan(entry, params)
    bare = extractor_plan(entry, None)
    assert vector_set(plan) == vector_set(bare)
    echoed = json.loads(json.dumps(params))  # the client's str enums become plain strings
    echoed.pop(DISCRIMINATOR)  # the discriminator repeats feature_extractor_name: dropped
    assert plan.feature_extractors[0]["params"] == {**bare.feature_extractors[0]["params"], **echoed}
    assert json.loads(json.dumps(plan.feature_extractors[0]["params"])) == plan.feature_extractors[0]["params"]


INERT = [
    ("image_extractor", "v1", dict(enable_thumbnails=False, use_cdn=True)),
    ("text_extractor", "v1", dict(split_by="words", chunk_size=200, chunk_overlap=20, language="de",
                                  source_type="youtube", embedding_task="retrieval_query")),
    ("multimodal_extractor", "v1", dict(split_method="scene", scene_detection_threshold=0.4, run_transcription=True,
                                        transcription_language="fa", enable_thumbnails=False,
                                        generation_config=mixpeek_models.GenerationConfig(temperature=0.1))),
    ("multimodal_extractor", "v2", dict(split_method="time", time_split_interval=5, run_transcription=True,
                                        run_transcription_embedding=True, task_type="SEMANTIC_SIMILARITY",
                                        output_dimensionality=768)),
    ("face_identity_extractor", "v1", dict(detection_model="scrfd_10g", detection_threshold=0.7, min_face_size=40,
                                           video_sampling_fps=2.0, normalize_embeddings=False)),
    ("document_graph_extractor", "v1", dict(fast_mode=True, layout_detector="docling", render_dpi=300,
                                            thumbnail_mode="segment")),
    ("audio_fingerprint_extractor", "v1", dict(segment_duration_sec=3.0, segment_hop_sec=1.5, sample_rate=44100)),
    ("passthrough_extractor", "v1", dict(preserve_metadata=False, row_format="parquet")),
]


@pytest.mark.parametrize("name, version, fields", INERT, ids=[f"{n}_{v}" for n, v, _ in INERT])
def test_params_that_change_no_vector_pass_through_unchanged(name, version, fields):
    entry = DEFAULT_CATALOGUE.entries[(name, version)]
    params = client_params(entry, **fields)
    plan = extractor_plan(entry, params)
    echoed = plan.feature_extractors[0]["params"]
    for key in fields:
        assert echoed[key] == json.loads(json.dumps(params[key])), key
    bare = vector_set(extractor_plan(entry, None))
    if "output_dimensionality" in fields:  # the documented ParamSpec, not an inert param
        assert [v[1] for v in vector_set(plan)] == [768, 1024]
    else:
        assert vector_set(plan) == bare
    assert DISCRIMINATOR not in echoed


def test_an_inert_param_alone_in_a_hand_written_body_is_echoed():
    plan = plan_namespace({"namespace_name": "hand", "feature_extractors": [
        {"feature_extractor_name": "image_extractor", "version": "v1", "params": {"enable_thumbnails": False}}]})
    assert plan.feature_extractors[0]["params"] == {"model": "siglip_base", "enable_thumbnails": False}


CREDENTIALS = [
    ("text_extractor", "v1", "llm_api_key", lambda e: client_params(e, llm_api_key=SECRET)),
    ("document_graph_extractor", "v1", "llm_api_key", lambda e: client_params(e, llm_api_key=SECRET)),
    ("image_extractor", "v1", "openai_api_key", lambda e: {**client_params(e), "openai_api_key": SECRET}),
    ("passthrough_extractor", "v1", "api_key", lambda e: {"api_key": SECRET}),
    ("multimodal_extractor", "v2", "generation_config.gemini_api_key",
     lambda e: {**client_params(e), "generation_config": {"temperature": 0.2, "gemini_api_key": SECRET}}),
]


@pytest.mark.parametrize("name, version, key, build", CREDENTIALS, ids=[f"{n}_{k}" for n, _, k, _ in CREDENTIALS])
def test_credential_params_are_refused_without_echoing_the_value(name, version, key, build):
    entry = DEFAULT_CATALOGUE.entries[(name, version)]
    with pytest.raises(InvalidRequest) as info:
        extractor_plan(entry, build(entry))
    assert info.value.problems == [(f"feature_extractors[0].params.{key}", CREDENTIAL_REFUSAL)]
    assert SECRET not in str(info.value) and SECRET not in repr(info.value.problems)


def test_a_credential_param_of_a_user_extractor_is_refused_as_a_credential_too():
    from mixpeek_infra.extractors import ExtractorVersion, VectorSpec
    catalogue = DEFAULT_CATALOGUE.copy()
    catalogue.register(ExtractorVersion("mine", "v1", (VectorSpec("e", 4, "svc"),)))
    with pytest.raises(InvalidRequest) as info:
        plan_namespace({"namespace_name": "mine", "feature_extractors": [
            {"feature_extractor_name": "mine", "version": "v1", "params": {"hf_api_key": SECRET, "x": 1}}]},
            catalogue=catalogue)
    assert dict(info.value.problems) == {
        "feature_extractors[0].params.hf_api_key": CREDENTIAL_REFUSAL,
        "feature_extractors[0].params.x": "unknown param for mine_v1; valid params: none (this extractor takes no params)"}
    assert SECRET not in str(info.value)


VECTOR_CHANGING = [
    ("text_extractor", "v1", "embedding_model", dict(embedding_model="text-embedding-3-small")),
    ("text_extractor", "v1", "response_shape", dict(response_shape={"title": "the title"})),
    ("multimodal_extractor", "v2", "run_ocr_embedding", dict(run_ocr=True, run_ocr_embedding=True)),
    ("multimodal_extractor", "v2", "run_description_embedding", dict(run_description_embedding=True)),
    ("multimodal_extractor", "v2", "run_multimodal_embedding", dict(run_multimodal_embedding=False)),
    ("multimodal_extractor", "v2", "response_shape", dict(response_shape={"summary": "one line"})),
    ("multimodal_extractor", "v1", "output_dimensionality", dict(output_dimensionality=768)),
    ("face_identity_extractor", "v1", "output_mode", dict(output_mode="per_image")),
    ("document_graph_extractor", "v1", "run_text_embedding", dict(run_text_embedding=False)),
    ("passthrough_extractor", "v1", "vector_fields",
     dict(vector_fields=[mixpeek_models.VectorFieldSpec(field="emb", name="emb", dimensions=4, distance="cosine")])),
]


@pytest.mark.parametrize("name, version, key, fields", VECTOR_CHANGING, ids=[f"{n}_{v}_{k}" for n, v, k, _ in VECTOR_CHANGING])
def test_params_that_change_vectors_undocumented_are_refused_naming_the_param(name, version, key, fields):
    entry = DEFAULT_CATALOGUE.entries[(name, version)]
    params = {**client_params(entry), **getattr(mixpeek_models, entry.client_model)(**fields).to_dict()}
    if key == "output_dimensionality":
        params[key] = 768
    with pytest.raises(InvalidRequest) as info:
        extractor_plan(entry, params)
    assert [path for path, _ in info.value.problems] == [f"feature_extractors[0].params.{key}"]
    message = info.value.problems[0][1]
    assert key in message and VECTOR_CHANGE in message


def test_the_catalogues_own_embedding_model_is_accepted_and_echoed():
    entry = DEFAULT_CATALOGUE.entries[("text_extractor", "v1")]
    plan = extractor_plan(entry, client_params(entry, embedding_model="multilingual_e5_large_instruct_v1"))
    assert plan.feature_extractors[0]["params"]["embedding_model"] == "multilingual_e5_large_instruct_v1"
    assert type(plan.feature_extractors[0]["params"]["embedding_model"]) is str
    assert vector_set(plan) == vector_set(extractor_plan(entry, None))


def test_the_discriminator_must_name_the_extractor_and_unknown_params_list_the_valid_ones():
    entry = DEFAULT_CATALOGUE.entries[("image_extractor", "v1")]
    problems = problems_of(body(feature_extractors=[fe("image_extractor", params={
        DISCRIMINATOR: "text_extractor", "thumbnails": True})]))
    assert dict(problems) == {
        "feature_extractors[0].params.extractor_type": "invalid value 'text_extractor': the client's discriminator "
                                                       "of ImageExtractorParams must be 'image_extractor' (or left out)",
        "feature_extractors[0].params.thumbnails": "unknown param for image_extractor_v1 (did you mean "
                                                   "'enable_thumbnails'?); valid params: "
                                                   "enable_thumbnails, extractor_type, model, use_cdn"}
    assert entry.valid_param_names() == ["enable_thumbnails", "extractor_type", "model", "use_cdn"]


def test_an_inert_param_must_be_a_json_value():
    problems = problems_of(body(feature_extractors=[fe("image_extractor", params={"use_cdn": object()})]))
    assert problems[0][0] == "feature_extractors[0].params.use_cdn" and "JSON value" in problems[0][1]


def test_the_json_schema_allows_the_clients_params_and_refuses_the_others():
    jsonschema = pytest.importorskip("jsonschema",
                                     reason="jsonschema is not installed: pip install -e '.[dev]'")
    from mixpeek_infra import cli

    validator = jsonschema.Draft202012Validator(cli.request_json_schema())

    def errors(entry, params):
        return list(validator.iter_errors(json.loads(json.dumps(extractor_body(entry, params)))))

    for entry in CATALOGUED:
        assert errors(entry, client_params(entry)) == [], entry.feature_extractor_id
    for name, version, fields in INERT:
        entry = DEFAULT_CATALOGUE.entries[(name, version)]
        assert errors(entry, client_params(entry, **fields)) == [], entry.feature_extractor_id
    for name, version, key, fields in VECTOR_CHANGING:
        entry = DEFAULT_CATALOGUE.entries[(name, version)]
        params = {**client_params(entry), **getattr(mixpeek_models, entry.client_model)(**fields).to_dict()}
        assert errors(entry, params), (entry.feature_extractor_id, key)
    for name, version, key, build in CREDENTIALS:  # nested ones too: generation_config holds only its own keys
        entry = DEFAULT_CATALOGUE.entries[(name, version)]
        assert errors(entry, build(entry)), (entry.feature_extractor_id, key)
    image = DEFAULT_CATALOGUE.entries[("image_extractor", "v1")]
    assert errors(image, {DISCRIMINATOR: "text_extractor"}) and errors(image, {"thumbnails": True})
