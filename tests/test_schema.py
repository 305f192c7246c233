"""Schema: the documented request parses, typos are refused, defaults fill in, models round-trip,
and every kind of bad input of issue 2 is refused with its field path and a helpful message."""

from __future__ import annotations

import copy
import json
from typing import Any, Callable

import pytest

from conftest import SHARED_REFERENCE, require_shared_reference
from mixpeek_infra import schema as S
from mixpeek_infra.schema import InvalidRequest, NamespaceModel, PayloadIndexConfig, parse_request


def problems_of(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    assert info.value.problems, "InvalidRequest without problems"
    return info.value.problems


def message_at(problems: list[tuple[str, str]], path: str) -> str:
    paths = [p for p, _ in problems]
    assert path in paths, f"{path!r} not among {paths}"
    return " | ".join(m for p, m in problems if p == path)


# --------------------------------------------------------------------------------------------
# The seed


def test_seed_parses(seed):
    req = parse_request(seed)
    assert req.namespace_name == "spotify_playlists_dev"
    assert req.description == "This namespace contains playlists from Spotify"
    assert req.auto_create_indexes is True
    assert [fe.derived_id for fe in req.feature_extractors] == ["multimodal_extractor_v1", "image_extractor_v1"]
    assert req.feature_extractors[1].params == {"model": "siglip_base"}
    title, desc = req.payload_indexes
    assert isinstance(title.field_schema, S.TextIndexParams)
    assert (title.field_schema.tokenizer, title.field_schema.min_token_len, title.field_schema.max_token_len,
            title.field_schema.lowercase) == ("word", 2, 15, True)
    assert isinstance(desc.field_schema, S.KeywordIndexParams) and desc.field_schema.is_tenant is True
    assert req.infrastructure is None


def test_seed_matches_the_documented_example():
    spec = json.loads(require_shared_reference(SHARED_REFERENCE / "mixpeek-namespace-openapi.json").read_text())["schemas"]
    props = spec["CreateNamespaceRequest"]["properties"]
    example = {k: props[k]["example"] for k in props if "example" in props[k]}
    parse_request(example)


def test_minimal_request_defaults():
    req = parse_request({"namespace_name": "n1", "feature_extractors": [
        {"feature_extractor_name": "text_extractor", "version": "v1"}]})
    assert req.description is None and req.payload_indexes is None
    assert req.auto_create_indexes is False
    assert req.feature_extractors[0].feature_extractor_id is None
    assert req.feature_extractors[0].derived_id == "text_extractor_v1"


def test_models_follow_the_documented_schemas():
    spec = json.loads(require_shared_reference(SHARED_REFERENCE / "mixpeek-namespace-openapi.json").read_text())["schemas"]
    pairs = {"CreateNamespaceRequest": S.CreateNamespaceRequest, "BaseFeatureExtractorModel-Input": S.FeatureExtractor,
             "PayloadIndexConfig-Input": S.PayloadIndexConfig, "NamespaceInfrastructure": S.NamespaceInfrastructure,
             "TextIndexParams": S.TextIndexParams, "KeywordIndexParams": S.KeywordIndexParams,
             "IntegerIndexParams": S.IntegerIndexParams, "UuidIndexParams": S.UuidIndexParams,
             "FloatIndexParams": S.FloatIndexParams, "BoolIndexParams": S.BoolIndexParams,
             "GeoIndexParams": S.GeoIndexParams, "DatetimeIndexParams": S.DatetimeIndexParams,
             "NamespaceModel": S.NamespaceModel, "BaseFeatureExtractorModel-Output": S.FeatureExtractorOut,
             "PayloadIndexConfig-Output": S.PayloadIndexOut}
    for name, model in pairs.items():
        documented = spec[name].get("properties", {})
        assert set(documented) <= set(model.model_fields), name
        for field, prop in documented.items():
            info = model.model_fields[field]
            # v0.82 removed compute_tier: absent, it is resolved (a GPU request means dedicated_gpu, else shared).
            if "default" in prop and (name, field) != ("NamespaceInfrastructure", "compute_tier"):
                assert info.default == prop["default"], (name, field)
            bounds = {type(m).__name__: m for m in info.metadata}
            for key, attr, meta in (("minimum", "ge", "Ge"), ("maximum", "le", "Le")):
                if key in prop:
                    assert getattr(bounds[meta], attr) == prop[key], (name, field, key)
    assert list(S.ComputeTier.__args__) == spec["ComputeTier"]["enum"]
    assert list(S.TokenizerType.__args__) == spec["TokenizerType"]["enum"]
    assert sorted(S.PayloadSchemaType.__args__) == sorted(spec["PayloadSchemaType"]["enum"])


# --------------------------------------------------------------------------------------------
# Unknown fields are refused at every level, with the valid field names


@pytest.mark.parametrize("where, mutate, path, valid", [
    ("body", lambda b: b.update(namespace="x"), "namespace", "namespace_name"),
    ("extractor", lambda b: b["feature_extractors"][0].update(parameters={}), "feature_extractors[0].parameters",
     "params"),
    ("payload index", lambda b: b["payload_indexes"][1].update(schema={}), "payload_indexes[1].schema",
     "field_schema"),
    ("text field_schema", lambda b: b["payload_indexes"][0]["field_schema"].update(lower_case=True),
     "payload_indexes[0].field_schema.lower_case", "lowercase"),
    ("keyword field_schema", lambda b: b["payload_indexes"][1]["field_schema"].update(tenant=True),
     "payload_indexes[1].field_schema.tenant", "is_tenant"),
    ("keyword field_schema named like a tag", lambda b: b["payload_indexes"][1]["field_schema"].update(text=1),
     "payload_indexes[1].field_schema.text", "is_tenant"),
    ("infrastructure", lambda b: b.update(infrastructure={"tier": "shared"}), "infrastructure.tier", "compute_tier"),
])
def test_unknown_fields_are_refused(seed, where, mutate, path, valid):
    mutate(seed)
    message = message_at(problems_of(seed), path)
    assert "unknown field" in message and valid in message


# --------------------------------------------------------------------------------------------
# field_schema defaults from type


@pytest.mark.parametrize("kind, expected", [
    ("text", {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15, "lowercase": True}),
    ("keyword", {"type": "keyword", "is_tenant": False}),
    ("integer", {"type": "integer", "lookup": True, "range": True}),
    ("float", {"type": "float"}),
    ("bool", {"type": "bool"}),
    ("geo", {"type": "geo"}),
    ("datetime", {"type": "datetime"}),
    ("uuid", {"type": "uuid", "is_tenant": False}),
])
def test_field_schema_defaults_from_type(kind, expected):
    without = PayloadIndexConfig.model_validate({"field_name": "f", "type": kind})
    assert without.field_schema is None
    assert without.resolved_schema() == expected
    untyped = PayloadIndexConfig.model_validate({"field_name": "f", "type": kind, "field_schema": {}})
    assert untyped.field_schema is not None and untyped.field_schema.type == kind
    assert untyped.resolved_schema() == expected


def test_field_schema_without_type_takes_the_outer_type():
    ix = PayloadIndexConfig.model_validate({"field_name": "f", "type": "text", "field_schema": {"tokenizer": "prefix"}})
    assert ix.resolved_schema() == {"type": "text", "tokenizer": "prefix", "min_token_len": 2, "max_token_len": 15,
                                    "lowercase": True}


# --------------------------------------------------------------------------------------------
# Round trips


def test_request_roundtrips(seed):
    req = parse_request(seed)
    again = parse_request(req.model_dump(exclude_unset=True))
    assert again == req
    assert parse_request(req) == req
    assert parse_request(json.loads(req.model_dump_json(exclude_unset=True))) == req


def test_request_with_secret_roundtrips(seed):
    seed["infrastructure"] = {"compute_tier": "dedicated_cpu", "qdrant_url": "https://q.example:6333",
                              "qdrant_api_key": "s3cr3t-key"}
    req = parse_request(seed)
    assert "s3cr3t-key" not in repr(req) and "s3cr3t-key" not in req.model_dump_json()
    again = parse_request(req)
    assert again.infrastructure.qdrant_api_key.get_secret_value() == "s3cr3t-key"


def test_namespace_model_roundtrips():
    model = NamespaceModel.model_validate({
        "namespace_id": "ns_0123456789", "namespace_name": "spotify_playlists_dev",
        "feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v1",
                                "feature_extractor_id": "image_extractor_v1", "params": {"model": "siglip_base"}}],
        "payload_indexes": [{"field_name": "collection_id", "type": "keyword",
                             "field_schema": {"type": "keyword", "is_tenant": True}, "is_protected": True}],
        "vector_inference_map": {"image_extractor_v1_embedding": "google_siglip_base_v1"},
        "infrastructure": {"qdrant_collection": "ns_0123456789", "compute_tier": "shared"},
        "created_at": "2024-01-01T00:00:00Z", "document_count": 0})
    assert NamespaceModel.model_validate(model.model_dump()) == model
    assert NamespaceModel.model_validate_json(model.model_dump_json()) == model
    with pytest.raises(Exception):
        NamespaceModel.model_validate({**model.model_dump(), "bogus": 1})


def test_request_models_are_strict_and_frozen(seed):
    req = parse_request(seed)
    with pytest.raises(Exception):
        req.namespace_name = "other"  # type: ignore[misc]
    seed["payload_indexes"][0]["field_schema"]["min_token_len"] = "2"
    message_at(problems_of(seed), "payload_indexes[0].field_schema.min_token_len")


def test_invalid_request_message_lists_every_problem(seed):
    seed["namespace_name"] = ""
    seed["feature_extractors"][1]["params"]["model"] = "clip"
    with pytest.raises(InvalidRequest) as info:
        parse_request(seed, source="stack dev")
    text = str(info.value)
    assert text.startswith("stack dev: invalid namespace request")
    assert "namespace_name" in text and "feature_extractors[1].params.model" in text
    assert isinstance(info.value, ValueError)


# --------------------------------------------------------------------------------------------
# Bad input (issue 2): each refused with the exact field path and a helpful message


def _set(*path_and_value: Any) -> Callable[[dict], None]:
    *path, value = path_and_value

    def mutate(body: dict) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
    return mutate


def _drop(*path: Any) -> Callable[[dict], None]:
    def mutate(body: dict) -> None:
        target = body
        for part in path[:-1]:
            target = target[part]
        del target[path[-1]]
    return mutate


def _append(key: str, item: Any) -> Callable[[dict], None]:
    return lambda body: body[key].append(copy.deepcopy(item))


V2 = {"feature_extractor_name": "multimodal_extractor", "version": "v2"}
INT_INDEX = {"field_name": "metadata.year", "type": "integer", "field_schema": {"lookup": False, "range": False}}
TOKENIZERS = "'word', 'whitespace', 'prefix' or 'multilingual'"

BAD_INPUT = [
    # feature_extractors missing, empty, wrong type
    ("missing extractors", _drop("feature_extractors"), "feature_extractors", "required"),
    ("empty extractors", _set("feature_extractors", []), "feature_extractors", "at least 1"),
    # v0.82: feature_extractors is optional (standalone namespaces); absent or null, managed mode still needs one.
    ("null extractors", _set("feature_extractors", None), "feature_extractors", "at least 1"),
    ("extractors as a string", _set("feature_extractors", "image_extractor"), "feature_extractors", "valid list"),
    ("extractor as a string", _set("feature_extractors", 0, "image_extractor_v1"), "feature_extractors[0]",
     "valid dictionary"),
    # unknown extractor, version, param, param value
    ("unknown extractor", _set("feature_extractors", 0, "feature_extractor_name", "video_extractor"),
     "feature_extractors[0].feature_extractor_name", "valid choices: audio_fingerprint_extractor, "),
    ("unknown version", _set("feature_extractors", 1, "version", "v9"), "feature_extractors[1].version",
     "valid choices: v1"),
    ("unknown multimodal version", _set("feature_extractors", 0, "version", "v3"), "feature_extractors[0].version",
     "valid choices: v1, v2"),
    ("unknown param", _set("feature_extractors", 1, "params", {"size": 768}), "feature_extractors[1].params.size",
     "valid params: enable_thumbnails, extractor_type, model, use_cdn"),
    ("param of another extractor", _set("feature_extractors", 0, "params", {"model": "siglip_base"}),
     "feature_extractors[0].params.model", "unknown param for multimodal_extractor_v1; valid params: "),
    ("unknown param value", _set("feature_extractors", 1, "params", "model", "clip_large"),
     "feature_extractors[1].params.model", "valid choices: 'siglip_base'"),
    ("unknown output_dimensionality", _set("feature_extractors", 0, {**V2, "params": {"output_dimensionality": 1000}}),
     "feature_extractors[0].params.output_dimensionality", "valid choices: 3072, 1536, 768"),
    ("output_dimensionality as a string",
     _set("feature_extractors", 0, {**V2, "params": {"output_dimensionality": "768"}}),
     "feature_extractors[0].params.output_dimensionality", "valid choices: 3072, 1536, 768"),
    ("output_dimensionality as a bool",
     _set("feature_extractors", 0, {**V2, "params": {"output_dimensionality": True}}),
     "feature_extractors[0].params.output_dimensionality", "valid choices"),
    ("params as a list", _set("feature_extractors", 1, "params", ["siglip_base"]), "feature_extractors[1].params",
     "valid dictionary"),
    # feature_extractor_id disagreeing, duplicates
    ("id disagrees with name", _set("feature_extractors", 0, "feature_extractor_id", "image_extractor_v1"),
     "feature_extractors[0].feature_extractor_id", "expected 'multimodal_extractor_v1'"),
    ("id disagrees with version", _set("feature_extractors", 1, "feature_extractor_id", "image_extractor_v2"),
     "feature_extractors[1].feature_extractor_id", "expected 'image_extractor_v1'"),
    ("same extractor twice", _append("feature_extractors", {"feature_extractor_name": "multimodal_extractor",
                                                            "version": "v1"}),
     "feature_extractors[2]", "already listed at feature_extractors[0]"),
    ("version as a number", _set("feature_extractors", 1, "version", 1), "feature_extractors[1].version",
     "valid string"),
    # namespace_name
    ("empty name", _set("namespace_name", ""), "namespace_name", "1-64 characters"),
    ("name too long", _set("namespace_name", "n" * 65), "namespace_name", "1-64 characters"),
    ("name with a space", _set("namespace_name", "my playlists"), "namespace_name", "letters, digits"),
    ("name with a slash", _set("namespace_name", "team/playlists"), "namespace_name", "letters, digits"),
    ("name '..'", _set("namespace_name", ".."), "namespace_name", "not '.' or '..'"),
    ("name with a trailing newline", _set("namespace_name", "playlists\n"), "namespace_name", "1-64 characters"),
    ("name as a number", _set("namespace_name", 42), "namespace_name", "valid string"),
    ("missing name", _drop("namespace_name"), "namespace_name", "required"),
    # payload indexes
    ("index on a protected field", _set("payload_indexes", 0, "field_name", "internal_id"),
     "payload_indexes[0].field_name", "protected system field"),
    ("index on created_at", _set("payload_indexes", 1, "field_name", "created_at"), "payload_indexes[1].field_name",
     "protected"),
    ("custom index marked protected", _set("payload_indexes", 0, "is_protected", True),
     "payload_indexes[0].is_protected", "only system indexes"),
    ("duplicate field_name", _set("payload_indexes", 1, "field_name", "metadata.title"),
     "payload_indexes[1].field_name", "duplicate field_name 'metadata.title' (also at payload_indexes[0])"),
    ("field_schema.type differs", _set("payload_indexes", 0, "field_schema", "type", "keyword"),
     "payload_indexes[0].field_schema.type", "must equal type 'text'"),
    ("min_token_len above max", _set("payload_indexes", 0, "field_schema", "min_token_len", 20),
     "payload_indexes[0].field_schema.min_token_len", "exceeds max_token_len 15"),
    ("zero min_token_len", _set("payload_indexes", 0, "field_schema", "min_token_len", 0),
     "payload_indexes[0].field_schema.min_token_len", "between 1 and 1024"),
    ("negative max_token_len", _set("payload_indexes", 0, "field_schema", "max_token_len", -1),
     "payload_indexes[0].field_schema.max_token_len", "between 1 and 1024"),
    ("unknown tokenizer", _set("payload_indexes", 0, "field_schema", "tokenizer", "ngram"),
     "payload_indexes[0].field_schema.tokenizer", TOKENIZERS),
    ("token length as a float", _set("payload_indexes", 0, "field_schema", "min_token_len", 2.0),
     "payload_indexes[0].field_schema.min_token_len", "valid integer"),
    ("integer index without lookup and range", _append("payload_indexes", INT_INDEX), "payload_indexes[2].field_schema",
     "lookup or range"),
    ("unknown index type", _set("payload_indexes", 1, {"field_name": "x", "type": "string"}), "payload_indexes[1].type",
     "'keyword', 'integer', 'float', 'bool', 'geo', 'datetime', 'text' or 'uuid'"),
    ("unknown field_schema type", _set("payload_indexes", 1, {"field_name": "x", "type": "keyword",
                                                              "field_schema": {"type": "string"}}),
     "payload_indexes[1].field_schema.type", "must equal type 'keyword'"),
    ("empty field_name", _set("payload_indexes", 0, "field_name", ""), "payload_indexes[0].field_name", "at least 1"),
    ("field_name too long", _set("payload_indexes", 0, "field_name", "f" * 256), "payload_indexes[0].field_name",
     "at most 255"),
    ("field_name with an empty segment", _set("payload_indexes", 0, "field_name", "metadata..title"),
     "payload_indexes[0].field_name", "invalid field name"),
    ("field_name as a number", _set("payload_indexes", 0, "field_name", 7), "payload_indexes[0].field_name",
     "valid string"),
    ("payload_indexes as an object", _set("payload_indexes", {"metadata.title": "text"}), "payload_indexes",
     "valid list"),
    ("field_schema as a string", _set("payload_indexes", 0, "field_schema", "text"), "payload_indexes[0].field_schema",
     "valid dictionary"),
    # other wrong types
    ("description as a number", _set("description", 3), "description", "valid string"),
    ("auto_create_indexes as a string", _set("auto_create_indexes", "yes"), "auto_create_indexes", "valid boolean"),
    ("is_tenant as a string", _set("payload_indexes", 1, "field_schema", "is_tenant", "true"),
     "payload_indexes[1].field_schema.is_tenant", "valid boolean"),
    # unknown fields
    ("unknown top-level field", _set("auto_create_index", True), "auto_create_index", "valid fields: "),
    ("unknown extractor field", _set("feature_extractors", 0, "name", "x"), "feature_extractors[0].name",
     "valid fields: feature_extractor_id, feature_extractor_name, params, version"),
    ("unknown index field", _set("payload_indexes", 0, "index_type", "text"), "payload_indexes[0].index_type",
     "valid fields: field_name, field_schema, is_protected, type"),
    # infrastructure
    ("unknown compute tier", _set("infrastructure", {"compute_tier": "gpu"}), "infrastructure.compute_tier",
     "'shared', 'dedicated_cpu' or 'dedicated_gpu'"),
    ("gpu tier without gpu_type", _set("infrastructure", {"compute_tier": "dedicated_gpu"}), "infrastructure.gpu_type",
     "required for compute_tier 'dedicated_gpu'"),
    ("max_workers below min_workers", _set("infrastructure", {"min_workers": 5, "max_workers": 2}),
     "infrastructure.max_workers", "below min_workers 5"),
    ("min_workers as a string", _set("infrastructure", {"min_workers": "1"}), "infrastructure.min_workers",
     "valid integer"),
    ("bad ray head url", _set("infrastructure", {"ray_head_node_url": "http://ray:10001"}),
     "infrastructure.ray_head_node_url", "ray://host:port"),
    ("api key without url", _set("infrastructure", {"qdrant_api_key": "k"}), "infrastructure.qdrant_api_key",
     "without infrastructure.qdrant_url"),
    ("infrastructure as a list", _set("infrastructure", ["shared"]), "infrastructure", "valid dictionary"),
]


def test_bad_input_table_is_large_and_distinct():
    assert len(BAD_INPUT) >= 30
    assert len({case[0] for case in BAD_INPUT}) == len(BAD_INPUT)


@pytest.mark.parametrize("name, mutate, path, expected", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_refused_naming_the_field(seed, name, mutate, path, expected):
    mutate(seed)
    problems = problems_of(seed)
    assert expected in message_at(problems, path)
    for p, m in problems:
        assert isinstance(p, str) and p and isinstance(m, str) and m


def test_every_problem_is_reported_at_once(seed):
    seed["namespace_name"] = "bad name"
    seed["feature_extractors"][1]["params"]["model"] = "clip"
    seed["payload_indexes"][0]["field_name"] = "internal_id"
    paths = {p for p, _ in problems_of(seed)}
    assert {"namespace_name", "feature_extractors[1].params.model", "payload_indexes[0].field_name"} <= paths


def test_structural_and_semantic_errors_do_not_hide_each_other(seed):
    seed["payload_indexes"][0]["field_schema"]["tokenizer"] = "ngram"  # structural
    seed["namespace_name"] = "bad name"  # semantic, on a valid part
    seed["feature_extractors"][1]["params"]["model"] = "clip"
    seed["payload_indexes"][1]["field_name"] = "internal_id"
    seed["feature_extractors"].append({"feature_extractor_name": "image_extractor", "version": 1})  # structural
    problems = problems_of(seed)
    paths = [p for p, _ in problems]
    assert {"payload_indexes[0].field_schema.tokenizer", "namespace_name", "feature_extractors[1].params.model",
            "payload_indexes[1].field_name", "feature_extractors[2].version"} <= set(paths)
    assert len(paths) == len(set(problems)), "a problem is reported twice"


def test_non_object_bodies_are_refused():
    for body in ([], "x", 1, None, 1.5, True):
        assert problems_of(body)[0][0] == "(body)"
