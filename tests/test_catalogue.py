"""The extractor catalogue: every documented row of DESIGN.md's table, params that set dims,
user registration (Python and stack config), and refusal of bad entries."""

from __future__ import annotations

import pytest

from mixpeek_infra import register_extractor
from mixpeek_infra.extractors import (DEFAULT_CATALOGUE, Catalogue, ExtractorVersion, ParamSpec, VectorSpec,
                                      extractor_from_config)
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.schema import InvalidRequest

E5 = "multilingual_e5_large_instruct_v1"

# extractor, version, vector index name, dims, distance, inference service (DESIGN.md section 2)
DOCUMENTED = [
    ("image_extractor", "v1", "image_extractor_v1_embedding", 768, "cosine", "google_siglip_base_v1"),
    ("text_extractor", "v1", "text_extractor_v1_embedding", 1024, "cosine", E5),
    ("multimodal_extractor", "v1", "multimodal_extractor_v1_multimodal_embedding", 1408, "cosine",
     "vertex_multimodal_embedding"),
    ("multimodal_extractor", "v1", "multimodal_extractor_v1_transcription_embedding", 1024, "cosine", E5),
    ("multimodal_extractor", "v2", "multimodal_extractor_v2_multimodal_embedding", 3072, "cosine", "gemini-embedding-2"),
    ("multimodal_extractor", "v2", "multimodal_extractor_v2_transcription_embedding", 1024, "cosine", E5),
    ("face_identity_extractor", "v1", "face_identity_extractor_v1_embedding", 512, "cosine",
     "face_identity_arcface_r100_v1"),
    ("document_graph_extractor", "v1", "document_graph_extractor_v1_text_embedding", 1024, "cosine", E5),
    ("audio_fingerprint_extractor", "v1", "audio_fingerprint_extractor_v1_embedding", 512, "cosine",
     "laion__clap_htsat_tiny"),
]


def body(*extractors: dict) -> dict:
    return {"namespace_name": "catalogue_test", "feature_extractors": list(extractors)}


def fe(name: str, version: str = "v1", **params) -> dict:
    out = {"feature_extractor_name": name, "version": version}
    if params:
        out["params"] = params
    return out


@pytest.mark.parametrize("name, version, vector, dims, distance, service", DOCUMENTED,
                         ids=[row[2] for row in DOCUMENTED])
def test_documented_row(name, version, vector, dims, distance, service):
    entry = DEFAULT_CATALOGUE.entries[(name, version)]
    output = vector[len(f"{name}_{version}_"):]
    spec = {v.output: v for v in entry.vectors}[output]
    assert (spec.size, spec.distance, spec.inference_service, spec.datatype) == (dims, distance, service, "float32")
    plan = plan_namespace(body(fe(name, version)))
    planned = {v.name: v for v in plan.vectors}[vector]
    assert (planned.size, planned.distance, planned.inference_service) == (dims, distance, service)
    assert plan.vector_inference_map[vector] == service


def test_catalogue_holds_exactly_the_documented_extractors():
    documented = {(n, v) for n, v, *_ in DOCUMENTED} | {("passthrough_extractor", "v1")}
    assert set(DEFAULT_CATALOGUE.entries) == documented
    for key, entry in DEFAULT_CATALOGUE.entries.items():
        names = {f"{entry.feature_extractor_id}_{v.output}" for v in entry.vectors}
        assert names == {row[2] for row in DOCUMENTED if row[:2] == key}


def test_passthrough_creates_no_vectors():
    plan = plan_namespace(body(fe("passthrough_extractor"), fe("text_extractor")))
    assert [v.feature_extractor_id for v in plan.vectors] == ["text_extractor_v1"]
    assert plan.feature_extractors[0]["feature_extractor_id"] == "passthrough_extractor_v1"


def test_a_namespace_without_any_vector_is_refused_naming_its_extractors():
    # A Qdrant collection of this project needs a named vector; say so at plan time, not at create.
    with pytest.raises(InvalidRequest) as exc:
        plan_namespace(body(fe("passthrough_extractor")))
    assert exc.value.problems[0].path == "feature_extractors"
    assert "passthrough_extractor v1" in exc.value.problems[0].message


def test_image_model_defaults_to_siglip_base():
    entry = DEFAULT_CATALOGUE.entries[("image_extractor", "v1")]
    assert entry.params == (ParamSpec("model", ("siglip_base",), "siglip_base"),)
    plan = plan_namespace(body(fe("image_extractor")))
    assert plan.feature_extractors[0]["params"] == {"model": "siglip_base"}
    assert plan_namespace(body(fe("image_extractor", model="siglip_base"))).vectors == plan.vectors


@pytest.mark.parametrize("dims", [3072, 1536, 768])
def test_multimodal_v2_output_dimensionality(dims):
    plan = plan_namespace(body(fe("multimodal_extractor", "v2", output_dimensionality=dims)))
    sizes = {v.name: v.size for v in plan.vectors}
    assert sizes == {"multimodal_extractor_v2_multimodal_embedding": dims,
                     "multimodal_extractor_v2_transcription_embedding": 1024}
    assert plan.feature_extractors[0]["params"] == {"output_dimensionality": dims}
    assert plan.vector_inference_map["multimodal_extractor_v2_multimodal_embedding"] == "gemini-embedding-2"


def test_multimodal_v2_defaults_to_3072():
    plan = plan_namespace(body(fe("multimodal_extractor", "v2")))
    assert plan.vectors[0].size == 3072
    assert plan.feature_extractors[0]["params"] == {"output_dimensionality": 3072}


@pytest.mark.parametrize("value", [1000, 0, -768, "768", True, None, [768], 3072.5])
def test_multimodal_v2_refuses_other_dimensionalities(value):
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(body(fe("multimodal_extractor", "v2", output_dimensionality=value)))
    (path, message), = info.value.problems
    assert path == "feature_extractors[0].params.output_dimensionality"
    assert "valid choices: 3072, 1536, 768" in message


def test_unknown_extractor_and_version_list_the_choices():
    entry, errors = DEFAULT_CATALOGUE.lookup("nope", "v1", "feature_extractors[0]")
    assert entry is None
    assert errors == [("feature_extractors[0].feature_extractor_name",
                       "unknown extractor 'nope'; valid choices: " + ", ".join(DEFAULT_CATALOGUE.names()))]
    entry, errors = DEFAULT_CATALOGUE.lookup("multimodal_extractor", "v7", "x")
    assert errors == [("x.version", "unknown version 'v7' of multimodal_extractor; valid choices: v1, v2")]


# --------------------------------------------------------------------------------------------
# User extractors


CUSTOM = ExtractorVersion("acme_clip", "v3", (VectorSpec("embedding", 512, "acme_clip_service", "dot", "float16"),
                                              VectorSpec("text", 384, "acme_text_service")))


def test_register_in_a_catalogue_copy():
    catalogue = DEFAULT_CATALOGUE.copy()
    catalogue.register(CUSTOM)
    assert ("acme_clip", "v3") not in DEFAULT_CATALOGUE.entries
    plan = plan_namespace(body(fe("acme_clip", "v3")), catalogue=catalogue)
    assert plan.vector_config() == {
        "acme_clip_v3_embedding": {"size": 512, "distance": "dot", "datatype": "float16", "on_disk": False},
        "acme_clip_v3_text": {"size": 384, "distance": "cosine", "datatype": "float32", "on_disk": False}}
    assert plan.vector_inference_map == {"acme_clip_v3_embedding": "acme_clip_service",
                                         "acme_clip_v3_text": "acme_text_service"}
    with pytest.raises(InvalidRequest):
        plan_namespace(body(fe("acme_clip", "v3")))


def test_register_extractor_in_the_default_catalogue(monkeypatch):
    monkeypatch.setattr(DEFAULT_CATALOGUE, "entries", dict(DEFAULT_CATALOGUE.entries))
    assert register_extractor(CUSTOM) is CUSTOM
    register_extractor(CUSTOM)  # the same entry again is fine
    plan = plan_namespace(body(fe("acme_clip", "v3")))
    assert [v.name for v in plan.vectors] == ["acme_clip_v3_embedding", "acme_clip_v3_text"]
    other = ExtractorVersion("acme_clip", "v3", (VectorSpec("embedding", 1024, "acme_clip_service"),))
    with pytest.raises(ValueError, match="already registered"):
        register_extractor(other)
    register_extractor(other, replace=True)
    assert plan_namespace(body(fe("acme_clip", "v3"))).vectors[0].size == 1024


def test_a_documented_extractor_cannot_be_shadowed():
    catalogue = DEFAULT_CATALOGUE.copy()
    with pytest.raises(ValueError, match="already registered"):
        catalogue.register(ExtractorVersion("image_extractor", "v1", (VectorSpec("embedding", 512, "x"),)))


def test_a_new_version_of_a_documented_extractor():
    catalogue = DEFAULT_CATALOGUE.copy()
    catalogue.register(extractor_from_config({"name": "image_extractor", "version": "v2", "vectors": [
        {"output": "embedding", "size": 1152, "inference_service": "google_siglip_so400m"}]}))
    assert catalogue.versions("image_extractor") == ["v1", "v2"]
    plan = plan_namespace(body(fe("image_extractor", "v2")), catalogue=catalogue)
    assert plan.vector_inference_map == {"image_extractor_v2_embedding": "google_siglip_so400m"}
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(body(fe("image_extractor", "v2", model="siglip_base")), catalogue=catalogue)
    assert info.value.problems[0][0] == "feature_extractors[0].params.model"


def test_extractor_from_config():
    entry = extractor_from_config({"name": "acme_clip", "version": "v3", "vectors": [
        {"output": "embedding", "size": 512.0, "inference_service": "acme_clip_service", "distance": "dot",
         "datatype": "float16"},
        {"output": "text", "size": 384, "inference_service": "acme_text_service"}]})
    assert entry == CUSTOM
    assert isinstance(entry.vectors[0].size, int)
    assert extractor_from_config({"name": "raw", "version": "v1"}).vectors == ()


GOOD_VECTOR = {"output": "embedding", "size": 512, "inference_service": "svc"}

BAD_ENTRIES = [
    ("not a mapping", ["acme", "v1"], "expected a mapping"),
    ("a string", "acme_v1", "expected a mapping"),
    ("unknown key", {"name": "a", "version": "v1", "vectors": [], "params": {}}, "unknown keys ['params']"),
    ("missing name", {"version": "v1", "vectors": [GOOD_VECTOR]}, "name must be"),
    ("empty version", {"name": "a", "version": "", "vectors": [GOOD_VECTOR]}, "version must be"),
    ("name not a string", {"name": 5, "version": "v1"}, "name must be"),
    ("name with a slash", {"name": "../a", "version": "v1"}, "name must be"),
    ("version with a space", {"name": "a", "version": "v 1"}, "version must be"),
    ("vectors not a list", {"name": "a", "version": "v1", "vectors": "embedding"}, "vectors must be a list"),
    ("vector not a mapping", {"name": "a", "version": "v1", "vectors": [512]}, "expected a mapping"),
    ("vector unknown key", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "dims": 3}]},
     "unknown keys ['dims']"),
    ("vector without output", {"name": "a", "version": "v1", "vectors": [{"size": 3, "inference_service": "s"}]},
     "vector output"),
    ("output not a string", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "output": 1}]},
     "vector output"),
    ("duplicate outputs", {"name": "a", "version": "v1", "vectors": [GOOD_VECTOR, GOOD_VECTOR]}, "unique"),
    ("size zero", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": 0}]}, "1..65536"),
    ("size too large", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": 70000}]}, "1..65536"),
    ("size a bool", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": True}]}, "1..65536"),
    ("size a string", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": "512"}]}, "1..65536"),
    ("size fractional", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": 512.5}]}, "1..65536"),
    ("size NaN", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "size": float("nan")}]}, "1..65536"),
    ("missing inference service", {"name": "a", "version": "v1", "vectors": [{"output": "e", "size": 3}]},
     "inference_service"),
    ("unknown distance", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "distance": "cos"}]},
     "cosine, dot, euclid, manhattan"),
    ("unknown datatype", {"name": "a", "version": "v1", "vectors": [{**GOOD_VECTOR, "datatype": "float64"}]},
     "float32, float16, uint8"),
]


@pytest.mark.parametrize("name, item, message", BAD_ENTRIES, ids=[c[0] for c in BAD_ENTRIES])
def test_bad_entries_are_refused(name, item, message):
    with pytest.raises(ValueError) as info:
        extractor_from_config(item)
    assert message in str(info.value)


@pytest.mark.parametrize("entry", [
    ExtractorVersion("", "v1"),
    ExtractorVersion("a", "v1", (VectorSpec("e", 0, "s"),)),
    ExtractorVersion("a", "v1", (VectorSpec("e", 3, ""),)),
    ExtractorVersion("a", "v1", (VectorSpec("e", 3, "s", distance="l2"),)),
])
def test_bad_python_entries_are_refused(entry):
    catalogue = Catalogue()
    with pytest.raises(ValueError):
        catalogue.register(entry)
    assert catalogue.entries == {}


def test_catalogue_data_is_consistent():
    for entry in DEFAULT_CATALOGUE.entries.values():
        for p in entry.params:
            assert p.default in p.choices
            if p.sets_size_of:
                assert p.sets_size_of in {v.output for v in entry.vectors}
        assert entry.resolve_params(None) == {p.name: p.default for p in entry.params}


@pytest.mark.parametrize("entry", [
    ExtractorVersion("a", "v1", inert_params=frozenset({"x"}), vector_params=(("x", "why"),)),
    ExtractorVersion("a", "v1", inert_params=frozenset({"llm_api_key"})),
    ExtractorVersion("a", "v1", inert_params=frozenset({"extractor_type"})),
    ExtractorVersion("a", "v1", pinned_params=(ParamSpec("run", (True,), False),)),
])
def test_inconsistent_param_classes_are_refused(entry):
    with pytest.raises(ValueError):
        Catalogue().register(entry)


def test_catalogue_param_classes_are_disjoint_and_pinned_defaults_valid():
    for entry in DEFAULT_CATALOGUE.entries.values():
        for p in entry.pinned_params:
            assert p.default in p.choices and p.sets_size_of is None
        assert not {p.name for p in entry.pinned_params} & set(entry.inert_params)
