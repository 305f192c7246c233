"""The pure core's behaviour pinned where the mutation check (docs/testing.md) found that a changed
comparison, default, key or message of mixpeek_infra.schema, .extractors or .stackconfig passed the rest
of the suite: what `plan` shows a stack deploys, the messages that name what is wrong and how to fix it,
and the paths they name."""

from __future__ import annotations

import copy
import json

import pytest

from mixpeek_infra.extractors import extractor_from_config
from mixpeek_infra.schema import InvalidRequest, parse_request
from mixpeek_infra.stackconfig import parse_stack_config


@pytest.fixture
def body(seed):
    def make(name="ns_a", **infra):
        b = copy.deepcopy(seed)
        b["namespace_name"] = name
        if infra:
            b["infrastructure"] = infra
        return b

    return make


def problems_of(data):
    try:
        parse_request(data)
    except InvalidRequest as exc:
        return [(p.path, p.message) for p in exc.problems]
    return []


def stack_problems(values, **kwargs):
    return [(p.path, p.message) for p in parse_stack_config(values, **kwargs).problems]


# --- StackConfig.deployment: what `mixpeek-infra plan` on a stack file shows each namespace deploys


def test_deployment_names_each_namespaces_key_protection_target_and_head(body, tmp_path):
    config = parse_stack_config(
        {
            "qdrant": {"url": "https://q.example:6333", "final_snapshot": "snaps", "timeout": 7, "prefer_grpc": True},
            "ray": {"mode": "kubernetes", "kubernetes": {"mode": "kuberay"}},
            "qdrantApiKey": {"secure": "v1:x"},
            "rayAuthToken": {"secure": "v1:y"},
            "namespaces": [
                {"request": body("a", compute_tier="dedicated_cpu"), "protect": True, "key": "akey",
                 "renamed_from": ["old"], "deletion_protection": False, "namespace_id": "ns_0123456789",
                 "cluster_id": "c1", "collection_settings": {"hnsw_config": {"m": 32}}},
                {"request": body("b", compute_tier="dedicated_cpu"), "qdrant": {"path": ".data/b"},
                 "ray": {"mode": "local", "num_cpus": 2}},
                body("c", qdrant_url="https://other.example:6333", ray_head_node_url="ray://h.example:10001"),
                body("d"),  # the shared tier: the stack's shared head
                {"request": body("e", compute_tier="dedicated_cpu"),
                 "ray": {"mode": "external", "url": "ray://e.example:10001"},
                 "qdrant": {"url": "https://q.example:6333/"}},
            ],
        },
        secure={"qdrantApiKey", "rayAuthToken"},
        root=tmp_path,
    )
    assert config.problems == ()
    a, b, c, d, e = (config.deployment(entry) for entry in config.namespaces)
    stack_server = {"url": "https://q.example:6333", "timeout": 7.0, "prefer_grpc": True,
                    "api_key": "qdrantApiKey (secret)", "from": "qdrant", "final_snapshot": "snaps"}
    assert a == {
        "key": "akey", "renamed_from": ["old"], "protect": True, "deletion_protection": False,
        "namespace_id": "ns_0123456789", "cluster_id": "c1", "qdrant": stack_server,
        "collection_settings": {"hnsw_config": {"ef_construct": 100, "full_scan_threshold": 10000, "m": 32}},
        "ray": {"mode": "kubernetes", "kubernetes_mode": "kuberay", "kubernetes_namespace": "mixpeek-a",
                "objects": "akey-ray-*", "auth_token": "rayAuthToken (secret)", "from": "ray"},
    }
    defaults = {"renamed_from": [], "protect": False, "deletion_protection": True, "namespace_id": None,
                "cluster_id": None, "collection_settings": {}}
    assert b == {**defaults, "key": "b",
                 "qdrant": {"path": ".data/b", "from": "namespaces[1].qdrant", "final_snapshot": None},
                 "ray": {"mode": "local", "state_dir": ".mixpeek/ray", "num_cpus": 2, "from": "namespaces[1].ray"}}
    assert c == {**defaults, "key": "c",
                 "qdrant": {"url": "https://other.example:6333", "from": "request"},
                 "ray": {"mode": "external", "url": "ray://h.example:10001", "from": "request"}}
    assert d == {**defaults, "key": "d", "qdrant": stack_server,
                 "ray": {"mode": "kubernetes", "kubernetes_mode": "kuberay", "kubernetes_namespace": "mixpeek-shared-ray",
                         "objects": "shared-ray-*", "auth_token": "rayAuthToken (secret)", "head": "shared-ray",
                         "from": "ray (the stack's shared head)"}}
    assert e == {**defaults, "key": "e",
                 "qdrant": {"url": "https://q.example:6333/", "timeout": 10.0, "prefer_grpc": False,
                            "api_key": "qdrantApiKey (secret)", "from": "namespaces[4].qdrant", "final_snapshot": None},
                 "ray": {"mode": "external", "url": "ray://e.example:10001", "from": "namespaces[4].ray"}}


def test_deployment_of_a_shared_tier_namespace_names_the_shared_url_and_no_secret_unset(body, tmp_path):
    config = parse_stack_config({"ray": {"shared_url": "ray://s.example:10001"}, "namespaces": [body("d")]},
                                root=tmp_path)
    assert config.problems == ()
    assert config.deployment(config.namespaces[0])["ray"] == {
        "mode": "external", "url": "ray://s.example:10001", "from": "ray.shared_url"}
    assert config.deployment(config.namespaces[0])["qdrant"] == {
        "path": ".mixpeek/qdrant", "from": "qdrant", "final_snapshot": None}
    # no rayAuthToken: a Kubernetes head names no token, and no qdrantApiKey goes to a server
    config = parse_stack_config({"qdrant": {"url": "https://q.example:6333"},
                                 "ray": {"mode": "kubernetes", "kubernetes": {"mode": "kuberay"}},
                                 "namespaces": [body("a", compute_tier="dedicated_cpu")]}, root=tmp_path)
    deployment = config.deployment(config.namespaces[0])
    assert deployment["ray"]["auth_token"] is None and deployment["qdrant"]["api_key"] is None


def test_a_collection_problem_of_a_namespace_is_named_at_the_stack_key_that_causes_it(body, tmp_path):
    """What the namespace's Collection would refuse is found by `validate`, at the key to change."""
    assert stack_problems({"namespaces": [{"request": body(), "collection_settings": {"shard_number": 2}}]},
                          root=tmp_path) == [
        ("namespaces[0].collection_settings.shard_number",
         "an embedded Qdrant Edge collection is a single local shard; only 1 is possible (use a server target for more)")]
    shard = tmp_path / "q" / "docs"
    for qdrant, where in (({"path": str(tmp_path / "q"), "final_snapshot": str(shard / "snap")}, "qdrant"),):
        assert stack_problems({"qdrant": qdrant, "namespaces": [body(qdrant_collection="docs")]}, root=tmp_path) == [
            (f"{where}.final_snapshot",
             f"{str(shard / 'snap')!r} is inside the shard directory {shard} of collection 'docs': a snapshot there "
             "would be deleted with the collection it keeps. Give a directory outside every shard, e.g. .mixpeek/snapshots")]
    own = {"request": body(qdrant_collection="docs"), "qdrant": {"path": str(tmp_path / "q"), "final_snapshot": str(shard)}}
    assert [p for p, _ in stack_problems({"namespaces": [own]}, root=tmp_path)] == ["namespaces[0].qdrant.final_snapshot"]


def test_the_stacks_api_key_over_plain_http_is_refused_at_the_qdrant_url(body, tmp_path):
    values = {"qdrant": {"url": "http://q.example:6333"}, "qdrantApiKey": {"secure": "v1:x"}, "namespaces": [body()]}
    assert stack_problems(values, secure={"qdrantApiKey"}, root=tmp_path) == [
        ("qdrant.url", "http://q.example:6333 is plain http to a host that is not loopback, and an API key would "
                       "travel with every request unencrypted; use an https:// URL (infrastructure.qdrant_url / "
                       "QdrantTarget.url)")]
    del values["qdrantApiKey"]
    assert stack_problems(values, root=tmp_path) == []


# --- parse_stack_config: keys, entries and request files


def test_project_values_keep_the_projects_keys_whole_and_mark_the_encrypted_ones():
    from mixpeek_infra.stackconfig import project_values

    config = {"mixpeek-infra:namespaces": [1], "mixpeek-infra:odd:key": 2, "other:qdrant": 3, "plain": 4, 5: 6,
              "mixpeek-infra:qdrantApiKey": {"secure": "v1:abc"}, "mixpeek-infra:ray": {"secure": 1}}
    assert project_values(config) == ({"namespaces": [1], "odd:key": 2, "qdrantApiKey": {"secure": "v1:abc"},
                                       "ray": {"secure": 1}}, {"qdrantApiKey"})
    # so a key with a colon in it is reported, not dropped
    assert [p for p, _ in stack_problems({"odd:key": 2, "namespaces": [{}]})][0] == "odd:key"


def test_unknown_keys_of_the_stack_and_of_an_entry_name_the_valid_ones(body, tmp_path):
    from mixpeek_infra.stackconfig import ENTRY_KEYS, KEYS

    problems = stack_problems({"namespace": [body()], "namespaces": [{"request": body(), "protec": True}]},
                              root=tmp_path)
    assert problems == [
        ("namespace", f"unknown key (did you mean 'namespaces'?); valid keys: {', '.join(KEYS)}"),
        ("namespaces[0].protec", f"unknown key (did you mean 'protect'?); valid keys: {', '.join(ENTRY_KEYS)}"),
    ]


def test_malformed_namespaces_and_extractors_are_named_at_their_key(tmp_path):
    assert stack_problems({"namespaces": []}, root=tmp_path) == [
        ("namespaces", "expected a non-empty list of Create Namespace request bodies")]
    assert ("extractors", "expected a list of {name, version, vectors: [...]} entries") in stack_problems(
        {"namespaces": [{}], "extractors": {"name": "x"}}, root=tmp_path)


def test_an_invalid_body_with_a_namespace_id_setting_reports_the_bodys_problems(body, tmp_path):
    """parse_stack_config never raises: an entry whose body fails has no plan to check its namespace_id against."""
    problems = stack_problems({"namespaces": [{"request": body("a b"), "namespace_id": "ns_0123456789"}]},
                              root=tmp_path)
    assert [p for p, _ in problems] == ["namespaces[0].request.namespace_name"]


def test_an_inline_api_key_is_refused_in_plain_text_and_stands_in_encrypted(body, tmp_path):
    plain = {"request": body(qdrant_url="https://q.example:6333", qdrant_api_key="k")}
    assert stack_problems({"namespaces": [plain]}, root=tmp_path) == [
        ("namespaces[0].request.infrastructure.qdrant_api_key",
         "a secret must not be stored in plain text: run `pulumi config set --secret --path "
         "'mixpeek-infra:namespaces[0].request.infrastructure.qdrant_api_key' <value>` (it is then stored "
         "encrypted, and the program gets it as a secret)")]
    encrypted = {"request": body(qdrant_url="https://q.example:6333", qdrant_api_key={"secure": "v1:abc"}),
                 "protect": True}
    config = parse_stack_config({"namespaces": [encrypted]}, secure={"namespaces"}, root=tmp_path)
    assert config.problems == ()
    (entry,) = config.namespaces
    assert entry.protect is True
    assert entry.request.infrastructure.qdrant_api_key.get_secret_value() == "(encrypted in the stack file)"


def test_a_secret_in_the_stacks_qdrant_target_points_to_the_qdrantApiKey_secret(body, tmp_path):
    head = ("a secret does not go in the stack file in plain text: remove it and run `pulumi config set --secret "
            "qdrantApiKey <key>`")
    assert stack_problems({"qdrant": {"url": "https://q.example:6333", "api_key": "k"}, "namespaces": [body()]},
                          root=tmp_path) == [
        ("qdrant.api_key", head + " (stored encrypted; sent only to qdrant.url's server)")]
    own = {"request": body(), "qdrant": {"url": "https://q.example:6333", "api_key": "k"}}
    assert stack_problems({"namespaces": [own]}, root=tmp_path) == [
        ("namespaces[0].qdrant.api_key",
         head + ", sent here when this url is the stack's qdrant.url server (for another server: the body's "
                "infrastructure.qdrant_api_key, set with --secret --path)")]


def test_a_long_value_in_a_stack_problem_is_cut_with_an_ellipsis(body, tmp_path):
    value = [0] * 40
    assert stack_problems({"qdrant": value, "namespaces": [body()]}, root=tmp_path) == [
        ("qdrant", f"expected a mapping with `path` or `url`, got {repr(value)[:57]}...")]
    whole = [0] * 20  # its repr is exactly 60 characters: shown whole
    assert len(repr(whole)) == 60
    assert stack_problems({"qdrant": whole, "namespaces": [body()]}, root=tmp_path) == [
        ("qdrant", f"expected a mapping with `path` or `url`, got {whole!r}")]


def test_files_names_an_empty_directory_and_a_recursive_glob_finds_nested_files(body, tmp_path):
    (tmp_path / "empty").mkdir()
    assert stack_problems({"namespaces": [{"files": "empty"}]}, root=tmp_path) == [
        ("namespaces[0].files", "no request file (*.json, *.yaml, *.yml) in empty")]
    nested = tmp_path / "requests" / "team" / "a.json"
    nested.parent.mkdir(parents=True)
    nested.write_text(json.dumps(body("nested")))
    config = parse_stack_config({"namespaces": [{"files": "requests/**/*.json"}]}, root=tmp_path)
    assert config.problems == ()
    assert [(e.key, e.source) for e in config.namespaces] == [("nested", "requests/team/a.json")]


def test_a_missing_namespaces_key_is_required_unless_a_typo_of_it_is_reported(body, tmp_path):
    assert stack_problems({"namespace": [body()]}, root=tmp_path) == [
        ("namespace", "unknown key (did you mean 'namespaces'?); valid keys: namespaces, qdrant, ray, extractors, "
                      "qdrantApiKey, rayAuthToken")]
    assert stack_problems({"qdrant": {"path": "q"}}, root=tmp_path) == [
        ("namespaces", "required: a list of Create Namespace request bodies")]


def test_namespaces_as_json_text_nested_too_deeply_is_named_at_namespaces(tmp_path):
    problems = stack_problems({"namespaces": "[" * 5000 + "]" * 5000}, root=tmp_path)
    assert problems[0] == ("namespaces", "nested too deeply (more than 64 levels)")


def test_a_refused_qdrant_target_is_not_replaced_by_the_default_in_later_checks(body, tmp_path):
    """The refused `qdrant` is reported once; the embedded default that stands in is checked against nothing."""
    entry = {"request": body(), "collection_settings": {"shard_number": 2}}
    assert [p for p, _ in stack_problems({"qdrant": {"path": 5}, "namespaces": [entry]}, root=tmp_path)] == [
        "qdrant.path"]


# --- schema: the messages of a refused request


def test_an_invalid_namespace_name_is_quoted_cut_to_80_characters(body):
    name = "a b" * 40
    (problem,) = problems_of(body(name))
    assert problem[0] == "namespace_name"
    assert problem[1].startswith(f"invalid name {repr(name)[:80]}... ({len(repr(name)) - 80} more characters): 1-64 "
                                 "characters: ASCII letters")


def test_an_unknown_key_of_a_field_schema_names_the_valid_ones(body):
    b = body()
    b["payload_indexes"][0]["field_schema"]["tokenize"] = "word"
    assert problems_of(b) == [("payload_indexes[0].field_schema.tokenize",
                               "unknown field (did you mean 'tokenizer'?); valid fields: lowercase, max_token_len, "
                               "min_token_len, tokenizer, type")]


# --- extractors: what a pass-through param may hold (generation_config and its response_schema)


def params_problems(body, params):
    b = body()
    b["feature_extractors"][0]["params"] = params  # multimodal_extractor v1
    return problems_of(b)


GC = "feature_extractors[0].params.generation_config"


def nested_items(levels):
    schema = {"type": "string"}
    for _ in range(levels):
        schema = {"items": schema}
    return schema


def test_a_response_schema_as_deep_as_the_body_allows_passes(body):
    assert params_problems(body, {"generation_config": {"response_schema": nested_items(26)}}) == []
    assert params_problems(body, {"generation_config": {"response_schema": nested_items(27)}})[0][1] == (
        "nested too deeply (more than 32 levels)")


def test_every_bad_sub_schema_of_a_list_is_named_after_the_problems_before_it(body):
    rule = ("is not a JSON Schema keyword: a JSON Schema passed through holds only its keywords, and names of your "
            "own only under properties (or $defs), each naming a sub-schema")
    schema = {"bogus": 1, "anyOf": [{"x": 1}, {"y": 2}]}
    assert params_problems(body, {"generation_config": {"response_schema": schema}}) == [
        (f"{GC}.response_schema.{path}", rule) for path in ("bogus", "anyOf[0].x", "anyOf[1].y")]


def test_an_unknown_key_of_a_pass_through_object_lists_the_keys_the_client_declares(body):
    assert params_problems(body, {"generation_config": {"bogus_key": 1}}) == [
        (f"{GC}.bogus_key", "unknown key; valid keys: candidate_count, max_output_tokens, temperature, top_p, "
                            "video_fps, response_mime_type, response_schema (only what the client's model declares "
                            "passes through: it is published)")]


@pytest.mark.parametrize("schema, problems", [
    ({"type": "array", "items": [{"type": "string"}, True]}, []),  # the tuple form of items
    (5, [("", "expected a JSON Schema (an object, or true/false)")]),
    ({"anyOf": 5}, [(".anyOf", "expected a list of JSON Schemas")]),
    ({"bogus": 1, "properties": {"a": {"type": "string"}}},
     [(".bogus", "is not a JSON Schema keyword: a JSON Schema passed through holds only its keywords, and names of "
                 "your own only under properties (or $defs), each naming a sub-schema")]),
    ({"properties": {"a": 5}},
     [(".properties.a", "expected a JSON Schema (an object, or true/false): a name of your own here only names a "
                        "sub-schema")]),
])
def test_a_response_schema_holds_json_schema_keywords_only(body, schema, problems):
    assert params_problems(body, {"generation_config": {"response_schema": schema}}) == [
        (f"{GC}.response_schema{path}", message) for path, message in problems]


def test_a_long_unknown_key_is_cut_to_64_characters_in_its_path(body):
    paths = [p for p, _ in params_problems(body, {"generation_config": {"x" * 65: 1, "y" * 64: 2}})]
    assert paths == [f"{GC}.{'x' * 64}...", f"{GC}.{'y' * 64}"]


def test_a_user_extractors_vector_with_unknown_keys_is_refused_with_a_hint():
    with pytest.raises(ValueError) as info:
        extractor_from_config({"name": "x", "version": "v1",
                               "vectors": [{"output": "o", "sise": 8, 1: 2, "inference_service": "s"}]})
    assert str(info.value) == (
        "extractor config vectors[0]: unknown keys [1, 'sise'] (did you mean 'size'?); valid keys: "
        "['datatype', 'distance', 'inference_service', 'multivector', 'output', 'size']")


def test_a_user_extractors_vector_without_an_output_names_it_empty():
    with pytest.raises(ValueError) as info:
        extractor_from_config({"name": "x", "version": "v1", "vectors": [{"size": 8, "inference_service": "s"}]})
    assert str(info.value).startswith("extractor 'x' 'v1': vector output '' must be 1-64 characters")


@pytest.mark.parametrize("snapshot", [5, "", " ", "a\x00b"])
def test_a_final_snapshot_that_is_no_directory_path_is_named_at_its_key(body, tmp_path, snapshot):
    assert stack_problems({"qdrant": {"path": "q", "final_snapshot": snapshot}, "namespaces": [body()]},
                          root=tmp_path) == [("qdrant.final_snapshot", f"{snapshot!r} is not a directory path")]


def test_a_shared_collection_is_named_at_the_setting_and_names_the_other_namespace_as_the_config_does(body, tmp_path):
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "a.json").write_text(json.dumps(body("a")))
    shared_id = {"namespaces": [{"file": "requests/a.json", "namespace_id": "ns_0123456789"},
                                {"request": body("b"), "namespace_id": "ns_0123456789"}]}
    assert stack_problems(shared_id, root=tmp_path) == [
        ("namespaces[1].namespace_id",
         "its collection 'ns_0123456789' (named after namespace_id) is already used by requests/a.json (same Qdrant "
         "target); two namespaces must never share a collection: give this namespace its own namespace_id, or leave "
         "it out")]
    shared_name = {"namespaces": [{"file": "requests/a.json"}, {"request": body("b", qdrant_collection="a_coll")},
                                  body("c", qdrant_collection="a_coll")]}
    assert stack_problems(shared_name, root=tmp_path) == [
        ("namespaces[2].infrastructure.qdrant_collection",
         "'a_coll' is already used by namespaces[1] (same Qdrant target); two namespaces must never share a "
         "collection: name another collection, or leave qdrant_collection out to name it after this namespace's "
         "own id")]


def test_a_ray_setting_that_is_no_mapping_is_quoted(body, tmp_path):
    assert stack_problems({"ray": [0] * 40, "namespaces": [body()]}, root=tmp_path) == [
        ("ray", f"expected a mapping with a 'mode' key, got {repr([0] * 40)[:57]}...")]


def test_head_problems_are_named_in_the_namespaces_body(body, tmp_path):
    assert stack_problems({"namespaces": [{"request": body("b"), "ray": {"mode": "local"}}]}, root=tmp_path) == [
        ("namespaces[0].request.infrastructure.compute_tier",
         "'shared' uses a shared Ray cluster and creates no head of its own, but a 'local' head is given: give an "
         "external head (its URL), or none for the shared head, or choose 'dedicated_cpu' or 'dedicated_gpu' for a "
         "head of its own")]
    gpu = {"ray": {"mode": "kubernetes"},
           "namespaces": [{"request": body("b", compute_tier="dedicated_gpu", gpu_type="A 100")}]}
    assert stack_problems(gpu, root=tmp_path) == [
        ("namespaces[0].request.infrastructure.gpu_type",
         "'A 100' cannot be matched against the node label nvidia.com/gpu.product: use letters, digits, '-', '_' "
         "and '.' (at most 63)")]


def test_a_kubernetes_head_in_the_shared_heads_default_namespace_is_refused(body, tmp_path):
    values = {"ray": {"mode": "kubernetes"}, "namespaces": [body("d"), body("shared-ray", compute_tier="dedicated_cpu")]}
    assert stack_problems(values, root=tmp_path) == [
        ("ray.kubernetes.namespace",
         "Kubernetes namespace 'mixpeek-shared-ray' is also the shared Ray head's, and a head's default namespace is "
         "its own (created and deleted with it): set another namespace, or the same explicit "
         "ray.kubernetes.namespace for both so the stack owns it")]


def test_a_kubernetes_head_whose_objects_would_be_the_shared_heads_is_named_at_its_key(body, tmp_path):
    values = {"ray": {"mode": "kubernetes", "kubernetes": {"namespace": "team"}},
              "namespaces": [body("d"), {"request": body("x", compute_tier="dedicated_cpu"), "key": "shared"}]}
    assert stack_problems(values, root=tmp_path) == [
        ("namespaces[1].key", "its Ray head's Kubernetes objects (shared-ray-*) in namespace 'team' would be the "
                              "shared Ray head's; set a `key` that names it differently")]


@pytest.mark.parametrize("change, problem", [
    ({"payload_indexes": [{"field_name": "x", "field_schema": {"type": "txt"}}]},
     ("payload_indexes[0].field_schema", "unknown type 'txt' (did you mean 'text'?); valid choices: 'text', 'keyword', "
                                         "'integer', 'float', 'bool', 'geo', 'datetime', 'uuid'")),
    ({"payload_indexes": [{"field_name": "x", "type": "txt"}]},
     ("payload_indexes[0].type", "Input should be 'keyword', 'integer', 'float', 'bool', 'geo', 'datetime', 'text' "
                                 "or 'uuid' (did you mean 'text'?)")),
    ({"infrastructure": {"compute_tier": "shard"}},
     ("infrastructure.compute_tier", "Input should be 'shared', 'dedicated_cpu' or 'dedicated_gpu' (did you mean "
                                     "'shared'?)")),
    ({"mode": "managd"}, ("mode", "Input should be 'managed' or 'standalone' (did you mean 'managed'?)")),
])
def test_a_misspelt_choice_is_answered_with_the_likely_one(body, change, problem):
    assert problem in problems_of({**body(), **change})


@pytest.mark.parametrize("change, paths", [
    ({"infrastructure": {"min_workers": 5, "max_workers": 2}}, ["infrastructure.max_workers"]),
    ({"mode": "standalone"}, ["feature_extractors", "vector_configs"]),
    ({"namespace_id": "ns_1"}, ["namespace_id"]),
    ({"ttl_seconds": 5}, ["ttl_seconds"]),
    ({"features": ["x"]}, ["features"]),
    ({"vector_configs": [{"name": "v", "dimension": 4, "metric": "cosin"}]}, ["vector_configs[0].metric"]),
    ({"namespace_name": "a b"}, ["namespace_name"]),
    ({"payload_indexes": [{"field_name": "created_at", "type": "keyword"}]}, ["payload_indexes[0].field_name"]),
    ({"feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v9"}]},
     ["feature_extractors[0].version"]),
])
def test_a_structural_error_does_not_hide_the_other_problems_of_the_body(body, change, paths):
    """Every problem is reported at once: the cross-field checks run on the parts that are valid."""
    problems = problems_of({**body(), "description": 5, **change})
    assert [p for p, _ in problems] == ["description", *paths]


def test_a_url_credential_is_never_quoted_whole_or_cut(body):
    (problem,) = problems_of({**body(), "infrastructure": {"ray_head_node_url": "ray://user:hunter2@h.example:10001"}})
    assert problem[0] == "infrastructure.ray_head_node_url"
    assert problem[1].startswith("'ray://***@h.example:10001' is not a ray://host:port URL; credentials inside a URL")
    # a cut that splits `user:password@` drops the fragment, so no part of the password shows either
    (problem,) = problems_of(body("x" * 60 + " https://user:hunter2@host.example/"))
    assert problem[1].startswith(f"invalid name '{'x' * 60} https... (17 more characters): ")
    assert "user" not in problem[1] and "hunte" not in problem[1]


def test_an_unknown_field_where_no_valid_fields_are_known_says_only_that():
    from pydantic import BaseModel, ConfigDict, ValidationError

    from mixpeek_infra.schema import problems_from_validation_error

    class Inner(BaseModel):
        model_config = ConfigDict(extra="forbid")
        size: int = 1

    class Outer(BaseModel):
        model_config = ConfigDict(extra="forbid")
        by_name: dict[str, Inner] = {}

    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"by_name": {"a": {"size": 2, "colour": "red"}}})
    # `by_name.a` is a key of a mapping, not a field: no list of valid fields can be given there
    assert problems_from_validation_error(caught.value, Outer) == [("by_name.a.colour", "unknown field")]
    with pytest.raises(ValidationError) as caught:
        Outer.model_validate({"colour": "red"})
    assert problems_from_validation_error(caught.value, Outer, prefix="x.") == [
        ("x.colour", "unknown field; valid fields: by_name")
    ]


# --- found by the second sample (seed 4711, docs/testing.md): messages and checks no test read


def test_an_invalid_param_value_says_why_when_pinned_and_is_cut_at_80_characters():
    from mixpeek_infra.extractors import DEFAULT_CATALOGUE, VECTOR_CHANGE

    v2 = DEFAULT_CATALOGUE.lookup("multimodal_extractor", "v2", "fe")[0]
    assert v2.param_errors({"run_ocr_embedding": 5, "output_dimensionality": 7}, "p") == [
        ("p.run_ocr_embedding", f"invalid value 5: run_ocr_embedding=5 {VECTOR_CHANGE}; valid choices: False"),
        ("p.output_dimensionality", "invalid value 7; valid choices: 3072, 1536, 768"),
    ]
    image = DEFAULT_CATALOGUE.lookup("image_extractor", "v1", "fe")[0]
    assert image.param_errors({"model": "m" * 100}, "p") == [
        ("p.model", f"invalid value {repr('m' * 100)[:80]}...; valid choices: 'siglip_base'")]
    assert v2.param_errors({"extractor_type": "z" * 100}, "p") == [
        ("p.extractor_type", f"invalid value {repr('z' * 100)[:80]}...: the client's discriminator of "
                             "MultimodalExtractorParams must be 'multimodal_extractor' (or left out)")]


def test_an_unknown_version_suggests_the_near_one_of_that_extractor():
    from mixpeek_infra.extractors import DEFAULT_CATALOGUE

    assert DEFAULT_CATALOGUE.lookup("image_extractor", "v11", "fe") == (None, [
        ("fe.version", "unknown version 'v11' of image_extractor (did you mean 'v1'?); valid choices: v1")])


def test_a_credential_name_is_read_whatever_its_separators_up_to_256_characters():
    from mixpeek_infra.extractors import is_credential

    assert is_credential("_api_key_") and is_credential("X-Api-Key")
    assert not is_credential("k" * 250 + "_api_key")  # longer than 256: not read (and refused elsewhere)
    assert is_credential("k" * 240 + "_api_key")


def test_a_protected_user_index_and_a_plain_string_stack_value_are_named(body, tmp_path):
    b = body()
    b["payload_indexes"] = [{"field_name": "x", "type": "keyword", "is_protected": True}]
    assert problems_of(b) == [("payload_indexes[0].is_protected",
                               "user indexes cannot be protected; only system indexes are")]
    assert stack_problems({"namespaces": "not json at all"}, root=tmp_path) == [
        ("namespaces", "expected an object or list, got a plain string"),
        ("namespaces", "expected a non-empty list of Create Namespace request bodies")]


def test_an_inline_kubernetes_token_is_refused_with_the_secret_to_set(body, tmp_path):
    assert stack_problems({"namespaces": [body()], "ray": {"mode": "kubernetes", "kubernetes": {
        "mode": "kuberay", "auth_token": "t0ken"}}}, root=tmp_path) == [
        ("ray.kubernetes.auth_token", "a secret must not be stored in plain text: run `pulumi config set --secret "
                                      "mixpeek-infra:rayAuthToken <value>` (every Kubernetes head of the stack then "
                                      "uses it)")]


def test_a_lone_surrogate_in_a_stack_setting_is_named_beside_the_other_problems(body, tmp_path):
    problems = stack_problems({"namespaces": [body()], "qdrant": {"path": "a\ud800"}, "bogus": 1}, root=tmp_path)
    assert [path for path, _ in problems] == ["bogus", "qdrant.path"]
    assert problems[1][1].startswith("holds a lone surrogate (\\ud800), which is not Unicode text")


def test_a_key_that_is_no_text_is_named_by_its_value_in_the_path(body):
    # a YAML request file may hold an integer key
    paths = [p for p, _ in params_problems(body, {"generation_config": {1: "x"}})]
    assert paths == [f"{GC}.1"]


# --- found by the first sample's names re-run in forkserver mode (docs/testing.md)


@pytest.mark.parametrize("infra, problem", [
    ({"compute_tier": "dedicated_gpu"},
     ("infrastructure.gpu_type", "required for compute_tier 'dedicated_gpu' (e.g. A100, T4)")),
    ({"compute_tier": "dedicated_gpu", "gpu_type": "A100", "gpus_per_worker": 0},
     ("infrastructure.gpus_per_worker", "must be at least 1 for compute_tier 'dedicated_gpu'")),
])
def test_a_gpu_tier_without_its_gpus_is_named_at_the_missing_setting(body, infra, problem):
    b = body()
    b["infrastructure"] = infra
    assert problems_of(b) == [problem]


def test_a_protected_field_name_lists_the_protected_fields(body):
    b = body()
    b["payload_indexes"] = [{"field_name": "document_id", "type": "keyword"}]
    assert problems_of(b) == [("payload_indexes[0].field_name", (
        "'document_id' is a protected system field; protected fields: internal_id, namespace_id, collection_id, "
        "document_id, bucket_id, object_id, root_object_id, root_bucket_id, source_object_id, created_at, "
        "updated_at"))]


def test_a_malformed_namespace_id_is_quoted_in_its_message(body):
    b = body()
    b["namespace_id"] = "ns_XYZ"
    assert problems_of(b) == [("namespace_id", "'ns_XYZ' is not 'ns_' followed by 10 lowercase hex characters "
                                               "(the collection is named after it)")]
