"""Hostile and arbitrary input: every adversarial body fails validation with a field path and
touches nothing; arbitrary JSON and mutations of the seed yield a plan or `InvalidRequest`, never
another exception.

Issue 6 ("Hostile requests" in its fault suite) asks for the same corpus categories: deep nesting,
huge strings, unicode confusables in names, path traversal in names and paths, NaN and
infinities, negative and enormous numbers, wrong types at every level, and a hypothesis test over
generated bodies. Each case below says in its last column whether its category is one issue 6
lists (`I6`) or is an extra of this suite (`--`: control characters, bidi and invisible
characters, non-string keys...). Issue 6 can reuse `HOSTILE` rather than re-listing it.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import SEED_PATH
from mixpeek_infra.cli import main
from mixpeek_infra.extractors import DEFAULT_CATALOGUE
from mixpeek_infra.plan import NamespacePlan, plan_namespace
from mixpeek_infra.schema import InvalidRequest, parse_request

SEED: dict[str, Any] = json.loads(SEED_PATH.read_text())
NAN, INF = float("nan"), float("inf")


def seed_with(*path_and_value: Any) -> dict[str, Any]:
    """A copy of the seed with the value at `path` replaced."""
    *path, value = path_and_value
    body = copy.deepcopy(SEED)
    target: Any = body
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return body


def nested_list(depth: int, leaf: Any = "x") -> Any:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def nested_dict(depth: int, key: str = "a", leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {key: value}
    return value


MB = 1024 * 1024
FE0, FE1, IX0, IX1 = ("feature_extractors", 0), ("feature_extractors", 1), ("payload_indexes", 0), ("payload_indexes", 1)

# (id, body, expected field path, path is a prefix (deep structures), category in issue 6)
HOSTILE: list[tuple[str, Any, str, bool, str]] = [
    # ---- deep nesting
    ("deep list as the name", seed_with("namespace_name", nested_list(5000)), "namespace_name", True, "I6"),
    ("deep dict in params", seed_with(*FE1, "params", nested_dict(5000, "model")), "feature_extractors[1].params",
     True, "I6"),
    ("deep dict as the description", seed_with("description", nested_dict(200)), "description", True, "I6"),
    ("deep dict under an unknown key", seed_with("extra", nested_dict(200)), "extra", True, "I6"),
    ("deep lists of extractors", seed_with("feature_extractors", nested_list(100, SEED["feature_extractors"][0])),
     "feature_extractors", True, "I6"),
    ("deep field_schema", seed_with(*IX0, "field_schema", nested_dict(100, "field_schema")),
     "payload_indexes[0].field_schema", True, "I6"),
    ("body nested in lists", nested_list(1000, SEED), "(body)", False, "I6"),
    # ---- huge strings
    ("1 MB name", seed_with("namespace_name", "n" * MB), "namespace_name", False, "I6"),
    ("huge description", seed_with("description", "d" * 100_000), "description", False, "I6"),
    ("huge field_name", seed_with(*IX0, "field_name", "f" * 100_000), "payload_indexes[0].field_name", False, "I6"),
    ("1 MB extractor name", seed_with(*FE0, "feature_extractor_name", "e" * MB),
     "feature_extractors[0].feature_extractor_name", False, "I6"),
    ("huge version", seed_with(*FE0, "version", "v" * 100_000), "feature_extractors[0].version", False, "I6"),
    ("huge param value", seed_with(*FE1, "params", "model", "m" * MB), "feature_extractors[1].params.model", False,
     "I6"),
    ("huge qdrant_url", seed_with("infrastructure", {"qdrant_url": "http://" + "q" * MB}),
     "infrastructure.qdrant_url", False, "I6"),
    ("huge gpu_type", seed_with("infrastructure", {"compute_tier": "dedicated_gpu", "gpu_type": "g" * 100_000}),
     "infrastructure.gpu_type", False, "I6"),
    # ---- unicode confusables and invisible characters in names
    ("cyrillic a in the name", seed_with("namespace_name", "spotify_pl\u0430ylists_dev"), "namespace_name", False,
     "I6"),
    ("greek omicron in the name", seed_with("namespace_name", "sp\u03bftify_playlists_dev"), "namespace_name", False,
     "I6"),
    ("fullwidth letters in the name", seed_with("namespace_name", "\uff53\uff50\uff4f\uff54\uff49\uff46\uff59"),
     "namespace_name", False, "I6"),
    ("mathematical bold name", seed_with("namespace_name", "\U0001d42c\U0001d429\U0001d428\U0001d42d"),
     "namespace_name", False, "I6"),
    ("cyrillic a in an extractor name", seed_with(*FE1, "feature_extractor_name", "im\u0430ge_extractor"),
     "feature_extractors[1].feature_extractor_name", False, "I6"),
    ("fullwidth digit in a version", seed_with(*FE1, "version", "v\uff11"), "feature_extractors[1].version", False,
     "I6"),
    ("ukrainian i in a field name", seed_with(*IX0, "field_name", "metadata.t\u0456tle"),
     "payload_indexes[0].field_name", False, "I6"),
    ("confusable protected field", seed_with(*IX0, "field_name", "\u0456nternal_id"), "payload_indexes[0].field_name",
     False, "I6"),
    ("cyrillic o in a tokenizer", seed_with(*IX0, "field_schema", "tokenizer", "w\u043erd"),
     "payload_indexes[0].field_schema.tokenizer", False, "I6"),
    ("cyrillic e in an index type", seed_with(*IX1, "type", "k\u0435yword"), "payload_indexes[1].type", False, "I6"),
    ("cyrillic in a param value", seed_with(*FE1, "params", "model", "sigl\u0456p_base"),
     "feature_extractors[1].params.model", False, "I6"),
    ("zero-width space in the name", seed_with("namespace_name", "spotify\u200b_playlists"), "namespace_name", False,
     "--"),
    ("right-to-left override in the name", seed_with("namespace_name", "spotify\u202eved"), "namespace_name", False,
     "--"),
    ("no-break space in a field name", seed_with(*IX0, "field_name", "metadata.\u00a0title"),
     "payload_indexes[0].field_name", False, "--"),
    ("NUL byte in the name", seed_with("namespace_name", "spotify\x00dev"), "namespace_name", False, "--"),
    ("escape sequence in the name", seed_with("namespace_name", "\x1b[31mred"), "namespace_name", False, "--"),
    ("newline-terminated field name", seed_with(*IX0, "field_name", "metadata.title\n"),
     "payload_indexes[0].field_name", False, "--"),
    # ---- path traversal in names and paths
    ("../ as the name", seed_with("namespace_name", "../x"), "namespace_name", False, "I6"),
    ("slash in the name", seed_with("namespace_name", "a/b"), "namespace_name", False, "I6"),
    (".. as the name", seed_with("namespace_name", ".."), "namespace_name", False, "I6"),
    ("windows traversal in the name", seed_with("namespace_name", "..\\..\\windows"), "namespace_name", False, "I6"),
    ("absolute path as the name", seed_with("namespace_name", "/etc/passwd"), "namespace_name", False, "I6"),
    ("../ as a field name", seed_with(*IX0, "field_name", "../x"), "payload_indexes[0].field_name", False, "I6"),
    ("slash in a field name", seed_with(*IX0, "field_name", "a/b"), "payload_indexes[0].field_name", False, "I6"),
    ("traversal in an extractor name", seed_with(*FE1, "feature_extractor_name", "../image_extractor"),
     "feature_extractors[1].feature_extractor_name", False, "I6"),
    ("traversal in a version", seed_with(*FE1, "version", "../v1"), "feature_extractors[1].version", False, "I6"),
    ("traversal as an unknown key", seed_with("../x", 1), "../x", False, "I6"),
    ("traversal as a param name", seed_with(*FE1, "params", {"../model": "siglip_base"}),
     "feature_extractors[1].params.../model", False, "I6"),
    ("traversal in qdrant_collection", seed_with("infrastructure", {"qdrant_collection": "../../etc"}),
     "infrastructure.qdrant_collection", False, "I6"),
    ("url-encoded traversal in the name", seed_with("namespace_name", "%2e%2e%2fx"), "namespace_name", False, "I6"),
    # ---- NaN and infinities
    ("NaN min_workers", seed_with("infrastructure", {"min_workers": NAN}), "infrastructure.min_workers", False, "I6"),
    ("infinite max_token_len", seed_with(*IX0, "field_schema", "max_token_len", INF),
     "payload_indexes[0].field_schema.max_token_len", False, "I6"),
    ("-inf output_dimensionality", seed_with(*FE1, {"feature_extractor_name": "multimodal_extractor",
                                                     "version": "v2", "params": {"output_dimensionality": -INF}}),
     "feature_extractors[1].params.output_dimensionality", False, "I6"),
    ("NaN as the description", seed_with("description", NAN), "description", False, "I6"),
    ("NaN under an unknown key", seed_with("junk", {"x": NAN}), "junk.x", False, "I6"),
    ("NaN as a name", seed_with("namespace_name", NAN), "namespace_name", False, "I6"),
    # ---- negative and enormous numbers
    ("negative min_workers", seed_with("infrastructure", {"min_workers": -1}), "infrastructure.min_workers", False,
     "I6"),
    ("googol max_workers", seed_with("infrastructure", {"max_workers": 10 ** 100}), "infrastructure.max_workers",
     False, "I6"),
    ("negative enormous max_concurrent_jobs", seed_with("infrastructure", {"max_concurrent_jobs": -(10 ** 30)}),
     "infrastructure.max_concurrent_jobs", False, "I6"),
    ("enormous min_token_len", seed_with(*IX0, "field_schema", "min_token_len", 10 ** 20),
     "payload_indexes[0].field_schema.min_token_len", False, "I6"),
    ("negative max_token_len", seed_with(*IX0, "field_schema", "max_token_len", -5),
     "payload_indexes[0].field_schema.max_token_len", False, "I6"),
    ("too many gpus", seed_with("infrastructure", {"compute_tier": "dedicated_gpu", "gpu_type": "A100",
                                                   "gpus_per_worker": 9}), "infrastructure.gpus_per_worker", False,
     "I6"),
    ("2**63 custom models", seed_with("infrastructure", {"max_custom_models": 2 ** 63}),
     "infrastructure.max_custom_models", False, "I6"),
    ("enormous output_dimensionality", seed_with(*FE1, {"feature_extractor_name": "multimodal_extractor",
                                                         "version": "v2",
                                                         "params": {"output_dimensionality": 10 ** 9}}),
     "feature_extractors[1].params.output_dimensionality", False, "I6"),
    # ---- wrong types at every level
    ("body is a list", [SEED], "(body)", False, "I6"),
    ("body is a string", json.dumps(SEED), "(body)", False, "I6"),
    ("body is null", None, "(body)", False, "I6"),
    ("body is a number", 42, "(body)", False, "I6"),
    ("name is a bool", seed_with("namespace_name", True), "namespace_name", False, "I6"),
    ("extractors is a dict", seed_with("feature_extractors", {"0": SEED["feature_extractors"][0]}),
     "feature_extractors", False, "I6"),
    ("extractor is null", seed_with(*FE0, None), "feature_extractors[0]", False, "I6"),
    ("extractor is a list", seed_with(*FE0, ["multimodal_extractor", "v1"]), "feature_extractors[0]", False, "I6"),
    ("extractor name is a list", seed_with(*FE0, "feature_extractor_name", ["multimodal_extractor"]),
     "feature_extractors[0].feature_extractor_name", False, "I6"),
    ("params is a string", seed_with(*FE1, "params", "model=siglip_base"), "feature_extractors[1].params", False,
     "I6"),
    ("payload index is a list", seed_with(*IX0, ["metadata.title", "text"]), "payload_indexes[0]", False, "I6"),
    ("field_schema is a list", seed_with(*IX0, "field_schema", [{"type": "text"}]), "payload_indexes[0].field_schema",
     False, "I6"),
    ("field_name is a number", seed_with(*IX0, "field_name", 3.14), "payload_indexes[0].field_name", False, "I6"),
    ("index type is null", seed_with(*IX1, "type", None), "payload_indexes[1].type", False, "I6"),
    ("is_protected is a string", seed_with(*IX0, "is_protected", "false"), "payload_indexes[0].is_protected", False,
     "I6"),
    ("lowercase is an int", seed_with(*IX0, "field_schema", "lowercase", 1), "payload_indexes[0].field_schema.lowercase",
     False, "I6"),
    ("is_tenant is a string", seed_with(*IX1, "field_schema", "is_tenant", "true"),
     "payload_indexes[1].field_schema.is_tenant", False, "I6"),
    ("infrastructure is a string", seed_with("infrastructure", "dedicated_gpu"), "infrastructure", False, "I6"),
    ("autoscaling is an int", seed_with("infrastructure", {"autoscaling_enabled": 0}),
     "infrastructure.autoscaling_enabled", False, "I6"),
    ("min_workers is a bool", seed_with("infrastructure", {"min_workers": True}), "infrastructure.min_workers", False,
     "I6"),
    ("api key is a number", seed_with("infrastructure", {"qdrant_url": "http://q:6333", "qdrant_api_key": 12345}),
     "infrastructure.qdrant_api_key", False, "I6"),
    ("auto_create_indexes is a list", seed_with("auto_create_indexes", [True]), "auto_create_indexes", False, "I6"),
    ("non-string key", {**SEED, 1: "one"}, "[1]", False, "--"),
]


def test_corpus_size_and_ids():
    assert len(HOSTILE) >= 50
    assert len({case[0] for case in HOSTILE}) == len(HOSTILE)
    assert sum(case[4] == "I6" for case in HOSTILE) >= 50


def _problems(body: Any) -> list[tuple[str, str]]:
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(body)
    problems = info.value.problems
    assert problems and all(isinstance(p, str) and p and isinstance(m, str) and m for p, m in problems)
    return problems


@pytest.mark.parametrize("name, body, path, prefix, category", HOSTILE, ids=[c[0] for c in HOSTILE])
def test_hostile_body_fails_with_a_field_path(name, body, path, prefix, category, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    catalogue_before = dict(DEFAULT_CATALOGUE.entries)
    problems = _problems(body)
    paths = [p for p, _ in problems]
    if prefix:
        assert any(p.startswith(path) for p in paths), paths
    else:
        assert path in paths, paths
    # a hostile value cannot flood the message: what is echoed back is cut short
    assert all(len(m) < 2000 for _, m in problems)
    # ...and nothing is touched
    assert DEFAULT_CATALOGUE.entries == catalogue_before
    assert list(Path(tmp_path).iterdir()) == []


def test_hostile_corpus_through_the_cli(tmp_path, capsys, monkeypatch):
    """Each body in its own file: exit 2, an error line for every file, nothing on stdout, no traceback."""
    monkeypatch.chdir(tmp_path)
    files = []
    for i, (_, body, *_rest) in enumerate(HOSTILE):
        if isinstance(body, dict) and any(not isinstance(k, str) for k in body):
            continue  # not representable in JSON
        if isinstance(body, list) and len(body) == 1 and body[0] == SEED:
            continue  # a file may hold a list of bodies: this one is valid there
        path = tmp_path / f"case{i:03d}.json"
        try:
            path.write_text(json.dumps(body))
        except (RecursionError, ValueError):
            continue
        files.append(str(path))
    assert len(files) >= 50
    code = main(["validate", *files])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "Traceback" not in err and "internal error" not in err
    reported = {line.split(": ", 1)[0] for line in err.splitlines()}
    assert reported == set(files)
    assert len(err) < 2_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(f).name for f in files)


# --------------------------------------------------------------------------------------------
# Property tests


FIELD_NAMES = ["namespace_name", "feature_extractors", "description", "payload_indexes", "auto_create_indexes",
               "infrastructure", "feature_extractor_name", "version", "params", "feature_extractor_id", "field_name",
               "type", "field_schema", "is_protected", "tokenizer", "min_token_len", "max_token_len", "lowercase",
               "is_tenant", "lookup", "range", "compute_tier", "min_workers", "max_workers", "gpu_type",
               "gpus_per_worker", "qdrant_url", "qdrant_api_key", "ray_head_node_url", "model",
               "output_dimensionality"]
INFRA_KEYS = ["compute_tier", "autoscaling_enabled", "min_workers", "max_workers", "max_concurrent_jobs", "gpu_type",
              "gpus_per_worker", "qdrant_url", "qdrant_api_key", "ray_head_node_url", "qdrant_collection"]
WORDS = ["image_extractor", "multimodal_extractor", "text_extractor", "passthrough_extractor", "v1", "v2", "v3",
         "siglip_base", "text", "keyword", "integer", "uuid", "geo", "word", "prefix", "shared", "dedicated_gpu",
         "internal_id", "metadata.title", "spotify_playlists_dev", "../x", "a/b", "\u0430", "", "ray://h:1",
         "http://q:6333", "image_extractor_v1"]

keys = st.sampled_from(FIELD_NAMES) | st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers() | st.integers(min_value=-3, max_value=3100)
           | st.sampled_from([3072, 1536, 768, 2, 15, 0, -1, 10 ** 30])
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(WORDS))
json_values = st.recursive(
    scalars, lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=25)


def mostly(good: st.SearchStrategy) -> st.SearchStrategy:
    """`good` about four times in five, else arbitrary JSON (so some generated bodies are valid)."""
    return st.one_of(good, good, good, good, json_values)


extractor_like = st.fixed_dictionaries(
    {"feature_extractor_name": mostly(st.sampled_from(WORDS[:4])),
     "version": mostly(st.sampled_from(["v1", "v1", "v2"]))},
    optional={"params": mostly(st.dictionaries(st.sampled_from(["model", "output_dimensionality"]),
                                               st.sampled_from(["siglip_base", 3072, 1536, 768]) | scalars,
                                               max_size=1)),
              "feature_extractor_id": mostly(st.sampled_from(WORDS))})
index_like = st.fixed_dictionaries(
    {"field_name": mostly(st.sampled_from(["metadata.title", "metadata.year", "tags[]", "internal_id", "a.b-c_d"])),
     "type": mostly(st.sampled_from(["text", "keyword", "integer", "float", "bool", "geo", "datetime", "uuid"]))},
    optional={"field_schema": mostly(st.dictionaries(st.sampled_from(["tokenizer", "min_token_len", "max_token_len",
                                                                      "lowercase", "is_tenant", "lookup", "range"]),
                                                     scalars, max_size=3)),
              "is_protected": mostly(st.booleans())})
request_like = st.fixed_dictionaries(
    {"namespace_name": mostly(st.sampled_from(WORDS) | st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,70}", fullmatch=True)),
     "feature_extractors": mostly(st.lists(extractor_like, min_size=1, max_size=3))},
    optional={"description": mostly(st.text(max_size=20)),
              "payload_indexes": mostly(st.lists(index_like, max_size=3)),
              "auto_create_indexes": mostly(st.booleans()),
              "infrastructure": mostly(st.dictionaries(st.sampled_from(INFRA_KEYS), scalars, max_size=4)),
              "extra": json_values})


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


@st.composite
def mutated_seeds(draw) -> Any:
    body: Any = copy.deepcopy(SEED)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(_paths(body)))
        action = draw(st.sampled_from(["replace", "delete", "insert"]))
        if not path:
            if action == "replace":
                body = draw(json_values)
            continue
        parent = body
        for part in path[:-1]:
            parent = parent[part]
        target = parent[path[-1]]
        if action == "delete":
            del parent[path[-1]]
        elif action == "insert" and isinstance(target, dict):
            target[draw(keys)] = draw(json_values)
        elif action == "insert" and isinstance(target, list):
            target.insert(draw(st.integers(0, len(target))), draw(json_values | st.just(copy.deepcopy(target[0])
                                                                                         if target else None)))
        else:
            parent[path[-1]] = draw(json_values)
    return body


def check_outcome(body: Any) -> None:
    """A plan (consistent and JSON-ready) or InvalidRequest with (path, message) pairs; nothing else."""
    try:
        plan = plan_namespace(body)
    except InvalidRequest as exc:
        assert exc.problems
        for path, message in exc.problems:
            assert isinstance(path, str) and path and isinstance(message, str) and message
        return
    assert isinstance(plan, NamespacePlan)
    data = plan.to_dict()
    json.dumps(data, allow_nan=False)
    names = [v["name"] for v in data["vectors"]]
    assert len(names) == len(set(names))
    assert set(plan.vector_inference_map) == set(names)
    assert all(isinstance(v.size, int) and v.size > 0 for v in plan.vectors)
    assert [ix.field_name for ix in plan.payload_indexes[:5]] == ["internal_id", "namespace_id", "collection_id",
                                                                 "document_id", "bucket_id"]
    fields = [ix.field_name for ix in plan.payload_indexes]
    assert len(fields) == len(set(fields))
    assert plan_namespace(body) == plan  # deterministic
    assert parse_request(body).namespace_name == plan.namespace_name


PROPERTY = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(json_values)
def test_arbitrary_json_yields_a_plan_or_a_validation_error(body):
    check_outcome(body)


@PROPERTY
@given(request_like)
def test_request_shaped_json_yields_a_plan_or_a_validation_error(body):
    check_outcome(body)


@PROPERTY
@given(mutated_seeds())
def test_mutated_seed_yields_a_plan_or_a_validation_error(body):
    check_outcome(body)


def test_non_finite_numbers_never_reach_a_plan():
    for value in (NAN, INF, -INF):
        body = seed_with("infrastructure", {"max_workers": value})
        problems = _problems(body)
        assert problems == [("infrastructure.max_workers", f"{value} is not a finite number")]
        assert not math.isfinite(value)


# -- secrets and hostile text (issue 18, items 11 and 13) -----------------------------------------------
#
# Pass-through (inert) params are published: the plan, `plan --json`, the component's outputs and so the
# state carry them. The rule: a pass-through value holds only the keys the client's params model declares
# (generation_config's fields; a JSON Schema's keywords in response_schema), and under any other name
# nothing but a sub-schema. So a credential under a name nobody listed is refused like a listed one.

import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import yaml  # noqa: E402

from stackmocks import FakeMocks, run_program  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CREDENTIAL = "sk-live-DO-NOT-PUBLISH-7319"
CREDENTIAL_NAMES = ["openaiApiKey", "OpenAIApiKey", "OPENAI_API_KEY", "openai-api-key", "secret_key", "SecretKey",
                    "aws_secret_access_key", "hf_token", "HF_TOKEN", "token", "api-key", "X-Api-Key", "Authorization",
                    "authorization", "bearer", "clientSecret", "password", "passphrase", "sessionCookie",
                    "privateKeyPem", "a_name_nobody_listed", "ключ", "x"]
# Where under generation_config a name is put: (path template, value builder).
NESTINGS = [
    ("{k}", lambda k: {k: CREDENTIAL}),
    ("headers", lambda k: {"headers": {k: CREDENTIAL}}),
    ("extra", lambda k: {"extra": [{k: CREDENTIAL}]}),
    ("response_schema.{k}", lambda k: {"response_schema": {"type": "object", k: CREDENTIAL}}),
    ("response_schema.properties.{k}", lambda k: {"response_schema": {"properties": {k: CREDENTIAL}}}),
    ("response_schema.properties.a.items.{k}",
     lambda k: {"response_schema": {"properties": {"a": {"items": {k: {"deep": [CREDENTIAL]}}}}}}),
    ("response_schema.default", lambda k: {"response_schema": {"default": {k: CREDENTIAL}}}),
    ("response_schema.anyOf[1].enum", lambda k: {"response_schema": {"anyOf": [{"type": "string"},
                                                                               {"enum": [{k: CREDENTIAL}]}]}}),
]


def generation_config_body(value: Any) -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["feature_extractors"][0]["params"] = {"generation_config": value}
    return body


GC = "feature_extractors[0].params.generation_config"


@pytest.mark.parametrize("where, build", NESTINGS, ids=[n[0] for n in NESTINGS])
@pytest.mark.parametrize("name", CREDENTIAL_NAMES)
def test_a_credential_under_any_name_in_a_pass_through_param_is_refused_unquoted(name, where, build):
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(generation_config_body(build(name)))
    paths = [p for p, _ in info.value.problems]
    assert paths == [f"{GC}.{where.format(k=name)}"], paths
    assert CREDENTIAL not in str(info.value) and CREDENTIAL not in repr(info.value.problems)


def test_what_the_client_writes_in_a_pass_through_param_is_still_echoed():
    config = {"temperature": 0.1, "top_p": 0.8, "candidate_count": 1, "max_output_tokens": 1024, "video_fps": 4,
              "response_mime_type": "application/json",
              "response_schema": {"type": "object", "required": ["api_key", "token"], "properties": {
                  "api_key": {"type": "string", "description": "a field of the description, named like a key"},
                  "token": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
                  "nested": {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "null"}]}},
                  "additionalProperties": False}}
    plan = plan_namespace(generation_config_body(config))
    assert plan.feature_extractors[0]["params"]["generation_config"] == config


def test_a_credential_in_a_pass_through_param_is_refused_by_plan_json_and_validate(tmp_path):
    """The CLI as a subprocess: exit 2 naming the path, nothing on stdout, the value nowhere."""
    path = tmp_path / "body.json"
    path.write_text(json.dumps(generation_config_body({"temperature": 0.2, "headers": {"Authorization": CREDENTIAL},
                                                       "openaiApiKey": CREDENTIAL})))
    for command in (["plan", "--json"], ["validate"]):
        proc = subprocess.run([sys.executable, "-m", "mixpeek_infra.cli", *command, str(path)], capture_output=True,
                              text=True, cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert proc.returncode == 2, proc.stderr
        assert proc.stdout == ""
        assert f"namespace[0]: {GC}.headers: " in proc.stderr and f"namespace[0]: {GC}.openaiApiKey: " in proc.stderr
        assert CREDENTIAL not in proc.stderr


def dev_config() -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def test_a_credential_in_a_pass_through_param_never_reaches_the_components_outputs(tmp_path, monkeypatch):
    """The program under mocks: refused before any resource (so before any output or state)."""
    from mixpeek_infra.program import StackConfigError

    monkeypatch.chdir(tmp_path)
    config = dev_config()
    config["namespaces"][0]["feature_extractors"][0]["params"] = {"generation_config": {"hf_token": CREDENTIAL}}
    mocks = FakeMocks()
    with pytest.raises(StackConfigError) as info:
        run_program(config, mocks)
    assert [p.path for p in info.value.problems] == [f"namespaces[0].{GC}.hf_token"]
    assert CREDENTIAL not in str(info.value)
    assert mocks.resources == []


# Text that crashed: a lone surrogate as a key or a value, and nesting deeper than any parser's stack.
SURROGATE = "\ud800"
ESCAPED = "\\ud800"  # how a path names it (text that encodes anywhere)


def _cli(tmp_path: Path, name: str, text: str, *command: str) -> subprocess.CompletedProcess:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "mixpeek_infra.cli", *(command or ("validate",)), str(path)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _surrogate_key_body() -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["feature_extractors"][0]["params"] = {SURROGATE: 1}
    return body


def _surrogate_value_body() -> dict[str, Any]:
    body = copy.deepcopy(SEED)
    body["feature_extractors"][0]["params"] = {"description_prompt": f"a{SURROGATE}b"}
    return body


HOSTILE_TEXT = [  # (id, body, the path validate and the program must name)
    ("surrogate key", _surrogate_key_body, f"feature_extractors[0].params.{ESCAPED}"),
    ("surrogate value", _surrogate_value_body, "feature_extractors[0].params.description_prompt"),
    ("surrogate namespace_name", lambda: seed_with("namespace_name", SURROGATE), "namespace_name"),
    ("surrogate top-level key", lambda: {**SEED, SURROGATE: 1}, ESCAPED),
]


@pytest.mark.parametrize("name, build, path", HOSTILE_TEXT, ids=[c[0] for c in HOSTILE_TEXT])
def test_a_lone_surrogate_is_refused_with_its_path_by_validate_plan_and_the_program(name, build, path, tmp_path,
                                                                                    monkeypatch):
    from mixpeek_infra.program import StackConfigError

    monkeypatch.chdir(tmp_path)
    body = build()
    assert [p for p, _ in _problems(body)] == [path]
    for command in (("validate",), ("plan", "--json")):
        proc = _cli(tmp_path, "body.json", json.dumps(body), *command)
        assert proc.returncode == 2 and proc.stdout == "", proc.stderr
        assert proc.stderr.startswith(f"{tmp_path / 'body.json'}: namespace[0]: {path}: "), proc.stderr
        assert "internal error" not in proc.stderr
    # in a stack file (the engine passes objects as JSON text; json.dumps keeps the surrogate escaped)
    stack = {"config": {"mixpeek-infra:namespaces": json.dumps([body])}}
    proc = _cli(tmp_path, "Pulumi.x.yaml", yaml.safe_dump(stack))
    assert proc.returncode == 2, proc.stderr
    assert f": namespace[0]: {path}: " in proc.stderr or f": config.mixpeek-infra:namespaces[0].{path}: " in proc.stderr
    assert "internal error" not in proc.stderr
    mocks = FakeMocks()
    with pytest.raises(StackConfigError) as info:
        run_program({"namespaces": [body]}, mocks)
    assert [p.path for p in info.value.problems] == [f"namespaces[0].{path}"]
    assert str(info.value).encode("utf-8")  # the message itself encodes (it crosses gRPC)
    assert mocks.resources == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.x.yaml", "body.json"]  # nothing else touched


def test_namespaces_as_json_text_nested_5000_deep_is_refused_by_validate_and_the_program(tmp_path, monkeypatch):
    from mixpeek_infra.program import StackConfigError

    monkeypatch.chdir(tmp_path)
    deep = "[" * 5000 + "]" * 5000
    proc = _cli(tmp_path, "Pulumi.x.yaml", yaml.safe_dump({"config": {"mixpeek-infra:namespaces": deep}}))
    assert proc.returncode == 2, proc.stderr
    assert "config.mixpeek-infra:namespaces: " in proc.stderr and "nested too deeply" in proc.stderr
    assert "internal error" not in proc.stderr
    for value in (deep, json.dumps([{"namespace_name": "x", "description": nested_list(100)}])[:-1] + "]"):
        mocks = FakeMocks()
        with pytest.raises(StackConfigError) as info:
            run_program({"namespaces": value}, mocks)
        assert [p.path for p in info.value.problems][0].startswith("namespaces"), info.value.problems
        assert "nested too deeply" in str(info.value)
        assert mocks.resources == []


def test_a_stack_setting_nested_deeper_than_the_bound_is_refused_with_its_path(tmp_path, monkeypatch):
    from mixpeek_infra.program import StackConfigError

    monkeypatch.chdir(tmp_path)
    config = {**dev_config(), "ray": {"mode": "local", "state_dir": nested_dict(200)}}
    proc = _cli(tmp_path, "Pulumi.x.yaml", yaml.safe_dump(
        {"config": {f"mixpeek-infra:{k}": json.dumps(v) for k, v in config.items()}}))
    assert proc.returncode == 2 and "config.mixpeek-infra:ray.state_dir" in proc.stderr, proc.stderr
    assert "nested too deeply" in proc.stderr and "internal error" not in proc.stderr
    with pytest.raises(StackConfigError) as info:
        run_program(config, FakeMocks())
    assert "nested too deeply" in str(info.value) and "ray.state_dir" in str(info.value)


def test_thousands_of_unknown_keys_in_a_pass_through_param_are_refused_without_a_flood():
    with pytest.raises(InvalidRequest) as info:
        plan_namespace(generation_config_body({f"k{i}": CREDENTIAL for i in range(5000)}))
    problems = info.value.problems
    assert len(problems) == 21 and problems[-1] == (GC, "4980 more problems like the ones above"), problems[-1]
    assert CREDENTIAL not in str(info.value)
