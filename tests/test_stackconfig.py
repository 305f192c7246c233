"""One stack-config model: `mixpeek-infra validate` refuses exactly what the stack program refuses.

Each stack config is judged twice: by the CLI on a `Pulumi.<stack>.yaml` file (as the PR
workflow runs it), and by the stack program under Pulumi mocks, where every registered dynamic
resource also goes through its provider's `check` (what `pulumi preview` runs before any
create). Both must name the same set of problem paths (so give the same verdict): for the issue's
examples, for one problem at every key of the stack-config schema, and for mutated stack configs.
A mutant `validate` that drops the problems of `qdrant.final_snapshot` and
`ray.kubernetes.service_type` fails 5 tests here (issue 23); dropping them in the shared parser fails 4.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpeek_infra.cli import main
from mixpeek_infra.problems import InvalidInput
from mixpeek_infra.program import StackConfigError
from mixpeek_infra import stackconfig
from mixpeek_infra.stackconfig import parse_stack_config
from mixpeek_infra.settings import StackEntrySettings
from stackmocks import DYNAMIC, FakeMocks, decode_provider, run_program, unwrap_secrets

ROOT = Path(__file__).resolve().parent.parent
SECURE = {"secure": "v1:c2VjcmV0LW5vdC1yZWFsbHk="}  # how a `--secret` value sits in a stack file


def stack_config(stack: str) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def validate_verdict(tmp_path: Path, config: dict[str, Any], secure: set[str]) -> tuple[bool, str]:
    """What `mixpeek-infra validate Pulumi.x.yaml` says: (valid, stderr)."""
    import contextlib
    import io

    path = tmp_path / "Pulumi.x.yaml"
    path.write_text(yaml.safe_dump({"config": {f"mixpeek-infra:{k}": SECURE if k in secure else v
                                               for k, v in config.items()}}))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(["validate", str(path)])
    assert code in (0, 2), err.getvalue()
    return code == 0, err.getvalue()


def validate_paths(err: str) -> set[str]:
    """The config paths `validate` names on stderr: `F: config.mixpeek-infra:PATH: m` is PATH, and
    `F: namespace[i]: REST: m` is `namespaces[i].REST` (the CLI shows a namespace's problems under it)."""
    paths = set()
    for line in err.splitlines():
        rest = line.split(": ", 1)[1]
        if rest.startswith("config.mixpeek-infra:"):
            paths.add(rest.removeprefix("config.mixpeek-infra:").split(": ", 1)[0])
        elif rest.startswith("namespace["):
            label, path, *more = rest.split(": ", 3)
            if path.endswith((".json", ".yaml", ".yml")):  # a body in a request file: `FILE: field` as is
                field = more[0] if len(more) > 1 and re.fullmatch(r"[^\s]+", more[0]) else None
                paths.add(f"{path}: {field}" if field else path)
                continue
            where = "namespaces" + label.removeprefix("namespace")
            paths.add(where if path == "(body)" else f"{where}.{path}")
        else:
            paths.add(f"(file) {rest}")
    return paths


def program_verdict(config: dict[str, Any], secure: set[str]) -> tuple[bool, str, set[str]]:
    """What the stack program says under mocks, providers' `check` included: (deploys, first error, the
    problem paths: a refusal's config paths, or `RESOURCE: check: PROPERTY` for a provider's check)."""
    values = {k: ("top-secret-value" if k in secure else v) for k, v in config.items()}
    mocks = FakeMocks()
    try:
        run_program(values, mocks, secret_keys=secure)
    except (InvalidInput, StackConfigError) as exc:  # a refusal of the input; anything else is a bug
        return False, str(exc), {p.path for p in exc.problems}
    failed = set()
    why = ""
    for rec in mocks.resources:
        if rec.typ.startswith(DYNAMIC):
            inputs = unwrap_secrets(rec.inputs)
            failures = decode_provider(inputs["__provider"]).check({}, inputs).failures
            failed |= {f"{rec.name}: check: {f.property}" for f in failures}
            why = why or (f"{rec.name}: check: {failures[0].property}: {failures[0].reason}" if failures else "")
    return not failed, why, failed


def agree(tmp_path: Path, config: dict[str, Any], secure: set[str] = frozenset()) -> tuple[bool, str, str]:
    """`validate` and the program name the same set of problem paths (so the same verdict)."""
    valid, err = validate_verdict(tmp_path, config, set(secure))
    deploys, why, program_paths = program_verdict(config, set(secure))
    assert validate_paths(err) == program_paths, (
        f"validate names {sorted(validate_paths(err))} ({err.strip()!r}); the program names {sorted(program_paths)} "
        f"({why!r})")
    assert valid == deploys
    return valid, err, why


@pytest.fixture(autouse=True)
def _project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative Qdrant and Ray paths resolve here, never in the repo
    yield


def entry(config: dict[str, Any], i: int) -> dict[str, Any]:
    """namespaces[i] in its {request: body} form (converted in place when it is a bare body)."""
    item = config["namespaces"][i]
    if "request" not in item:
        item = config["namespaces"][i] = {"request": item}
    return item


# -- the issue's examples: refused by both, naming the same path ------------------------------------

EXAMPLES = [
    ("ray.mode", lambda c, s: c.update(ray={"mode": "kubernets"})),
    ("qdrant.tiemout", lambda c, s: c.update(qdrant={"url": "https://q.example:6333", "tiemout": 30})),
    ("qdrant.prefer_grpc", lambda c, s: c.update(qdrant={"url": "https://q.example:6333", "prefer_grpc": "false"})),
    ("qdrant.timeout", lambda c, s: c.update(qdrant={"url": "https://q.example:6333", "timeout": True})),
    ("namespaces[0].ray.num_cpus", lambda c, s: entry(c, 0).update(ray={"mode": "local", "num_cpus": -3})),
    ("qdrant.path", lambda c, s: c.update(qdrant={"path": 5})),
    ("namespaces[0].collection_settings.shard_number",
     lambda c, s: entry(c, 0).update(collection_settings={"shard_number": 0})),
    ("ray.shared_url", lambda c, s: c.update(ray={"shared_url": "ray://h:99999"})),
    ("ray.url", lambda c, s: c.update(ray={"mode": "external", "url": "ray://h:99999"})),
    ("qdrantApiKey", lambda c, s: c.update(qdrantApiKey="plain-text-key")),
    ("rayAuthToken", lambda c, s: c.update(rayAuthToken="plain-text-token")),
    ("ray.kubernetes.auth_token",
     lambda c, s: c.update(ray={"mode": "kubernetes", "kubernetes": {"auth_token": "plain-text-token"}})),
    ("namespaces[0].request.feature_extractors",
     lambda c, s: (c.update(extractors=[{"name": "novec", "version": "v1"}]),
                   entry(c, 0)["request"].update(feature_extractors=[
                       {"feature_extractor_name": "novec", "version": "v1"}]))),
    ("namespaces[0].protect", lambda c, s: entry(c, 0).update(protect="yes")),
    ("namespaces[1].renamed_from", lambda c, s: entry(c, 1).update(renamed_from=entry(c, 0)["request"][
        "namespace_name"])),
    ("bogus", lambda c, s: c.update(bogus=1)),
]


@pytest.mark.parametrize("path, mutate", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_the_issue_examples_are_refused_by_validate_and_program_alike(tmp_path, path, mutate):
    config = stack_config("dev")
    config["namespaces"].append(copy.deepcopy(config["namespaces"][0]))
    entry(config, 1)["request"]["namespace_name"] = "second_namespace"
    secure: set[str] = set()
    mutate(config, secure)
    valid, err, why = agree(tmp_path, config, secure)
    assert not valid
    assert f"config.mixpeek-infra:{path}: " in err or f": {path.split('.', 1)[1]}: " in err, err
    assert f"\n  {path}: " in "\n" + why.split("invalid stack config:", 1)[-1] or path in why, why


def test_plaintext_secret_refusal_says_how_to_set_it(tmp_path):
    config = {**stack_config("dev"), "qdrantApiKey": "plain-text-key"}
    _, err = validate_verdict(tmp_path, config, set())
    assert "pulumi config set --secret mixpeek-infra:qdrantApiKey <value>" in err
    assert "plain-text-key" not in err


def test_both_example_stacks_deploy_and_validate(tmp_path):
    for stack in ("dev", "prod"):
        secure = {"qdrantApiKey", "rayAuthToken"} if stack == "prod" else set()
        config = stack_config(stack)
        config.update({k: "x" for k in secure})
        valid, err, _ = agree(tmp_path, config, secure)
        assert valid, err


def test_the_stack_file_json_schema_flags_the_same_examples(tmp_path, capsys):
    import jsonschema

    assert main(["schema", "--stack-config"]) == 0
    validator = jsonschema.Draft202012Validator(json.loads(capsys.readouterr().out))
    for stack in ("dev", "prod"):
        doc = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())
        assert list(validator.iter_errors(doc)) == [], stack
    # Every example above is flagged by an editor too (beyond what only code can tell: shared collections,
    # name clashes between namespaces).
    for path, mutate in EXAMPLES:
        config = stack_config("dev")
        config["namespaces"].append(copy.deepcopy(config["namespaces"][0]))
        entry(config, 1)["request"]["namespace_name"] = "second_namespace"
        mutate(config, set())
        if path in ("namespaces[1].renamed_from", "namespaces[0].request.feature_extractors"):
            continue  # relations between values: only `validate` knows them
        doc = {"config": {f"mixpeek-infra:{k}": v for k, v in config.items()}}
        assert list(validator.iter_errors(doc)), path


# -- the property: any mutated stack config gets one verdict ----------------------------------------

VALUES = st.sampled_from([
    "false", "true", True, False, 0, -3, 1, 2, 30, 99999, 1.5, None, "", "kubernets", "local", "external",
    "kubernetes", "deployment", "kuberay", "ray://h:99999", "ray://h:10001", "https://q.example:6333",
    "http://10.0.0.1:6333", ".mixpeek/q2", 5, [], {}, {"mode": "local"}, {"mode": "local", "num_cpus": -3},
    {"mode": "external", "url": "ray://h:10001"}, "ns_0123456789", "ns_bad", "shared", "dedicated_cpu",
    {"shard_number": 2}, {"replication_factor": 1}, ["10.0.0.0/8"], "ClusterIP", "x" * 70,
])
PATHS = st.sampled_from([
    ("qdrant", "url"), ("qdrant", "path"), ("qdrant", "timeout"), ("qdrant", "prefer_grpc"),
    ("qdrant", "final_snapshot"), ("qdrant", "tiemout"), ("qdrant",),
    ("ray", "mode"), ("ray", "url"), ("ray", "shared_url"), ("ray", "state_dir"), ("ray", "num_cpus"),
    ("ray", "ready_timeout"), ("ray", "kubernetes"), ("ray",),
    ("ray", "kubernetes", "mode"), ("ray", "kubernetes", "namespace"), ("ray", "kubernetes", "create_namespace"),
    ("ray", "kubernetes", "service_type"), ("ray", "kubernetes", "client_cidrs"),
    ("ns", "key"), ("ns", "renamed_from"), ("ns", "protect"), ("ns", "deletion_protection"), ("ns", "namespace_id"),
    ("ns", "cluster_id"), ("ns", "qdrant"), ("ns", "ray"), ("ns", "collection_settings"), ("ns", "vectors_on_disk"),
    ("ns", "deletion_protecton"),
    ("ns", "request", "namespace_name"), ("ns", "request", "infrastructure"),
    ("ns", "request", "infrastructure", "compute_tier"), ("ns", "request", "infrastructure", "qdrant_collection"),
    ("ns", "request", "infrastructure", "ray_head_node_url"), ("ns", "request", "infrastructure", "gpu_type"),
    ("qdrantApiKey",), ("rayAuthToken",), ("extractors",), ("bogus",), ("namespaces",),
])
MUTATION = st.tuples(PATHS, VALUES, st.booleans(), st.integers(0, 2))  # path, value, delete instead, entry


def mutated(base: str, mutations: list[tuple]) -> tuple[dict[str, Any], set[str]]:
    config = stack_config(base)
    config["namespaces"].append(copy.deepcopy(config["namespaces"][0]))
    entry(config, len(config["namespaces"]) - 1)["request"]["namespace_name"] = "second_namespace"
    secure: set[str] = set()
    for path, value, delete, i in mutations:
        if path[0] in ("qdrantApiKey", "rayAuthToken"):
            config[path[0]] = "x"
            if not delete:  # `delete` here means: set in plain text
                secure.add(path[0])
            continue
        if path[0] == "ns":
            if not isinstance(config.get("namespaces"), list) or len(config["namespaces"]) <= i \
                    or not isinstance(config["namespaces"][i], dict):
                continue
            node: Any = entry(config, i)
            path = path[1:]
        else:
            node = config
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if not isinstance(node, dict):
            continue
        if delete:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return config, secure


@settings(max_examples=int(__import__("os").environ.get("MIXPEEK_STACKCONFIG_EXAMPLES", "80")), deadline=None,
          derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(base=st.sampled_from(["dev", "prod"]), mutations=st.lists(MUTATION, min_size=1, max_size=3))
def test_validate_verdict_equals_program_verdict(tmp_path, base, mutations):
    config, secure = mutated(base, mutations)
    if base == "prod":  # the prod stack's secrets are set with --secret
        for name in ("qdrantApiKey", "rayAuthToken"):
            if name not in config:
                config[name], _ = "x", secure.add(name)
    agree(tmp_path, config, secure)


def test_parse_reports_every_problem_at_once():
    config = parse_stack_config({"ray": {"mode": "kubernets"}, "qdrant": {"path": 5}, "qdrantApiKey": "k",
                                 "namespaces": [{"request": {"namespace_name": "a"}, "protect": 1}]})
    paths = [p.path for p in config.problems]
    assert {"ray.mode", "qdrant.path", "qdrantApiKey", "namespaces[0].protect"} <= set(paths), paths
    assert not config.namespaces


# -- a request body's qdrant_api_key in a stack file (issue 18 item 12) -------------------------------------

API_KEY = "qk-plain-DO-NOT-STORE-5521"


def with_request_key(key: Any) -> dict[str, Any]:
    """The dev stack whose namespace names its own Qdrant server and API key in its body."""
    config = stack_config("dev")
    config["namespaces"][0]["infrastructure"] = {"qdrant_url": "https://q.example:6333", "qdrant_api_key": key}
    return config


def test_a_plain_text_api_key_in_a_request_body_is_refused_with_the_way_out(tmp_path):
    path = "namespaces[0].infrastructure.qdrant_api_key"
    valid, err = validate_verdict(tmp_path, with_request_key(API_KEY), set())
    assert not valid
    assert f": namespace[0]: infrastructure.qdrant_api_key: a secret must not be stored in plain text: run `pulumi " \
           f"config set --secret --path 'mixpeek-infra:{path}' <value>`" in err, err
    assert API_KEY not in err
    deploys, why, _ = program_verdict(with_request_key(API_KEY), set())
    assert not deploys and f"\n  {path}: a secret must not be stored in plain text" in why and API_KEY not in why


def test_the_encrypted_api_key_that_config_set_secret_path_writes_is_accepted_and_stays_secret(tmp_path,
                                                                                              monkeypatch):
    valid, err = validate_verdict(tmp_path, with_request_key(SECURE), set())
    assert valid, err
    # The engine decrypts it for the program and marks all of `namespaces` secret.
    config = with_request_key(API_KEY)
    mocks = FakeMocks()
    outputs, monitor = run_program(config, mocks, secret_keys={"namespaces"})
    assert outputs and API_KEY not in json.dumps(outputs)

    def plain(value: Any) -> Any:  # registrations without their secret-wrapped parts
        if isinstance(value, dict):
            if value.get("4dabf18193072939515e22adb298388d") == "1b47061264138c4ac30d75fd1eb44270":
                return "[secret]"
            return {k: plain(v) for k, v in value.items()}
        return [plain(v) for v in value] if isinstance(value, list) else value

    assert API_KEY in json.dumps(monitor.raw)  # it does reach its collection...
    assert API_KEY not in json.dumps(plain(monitor.raw))  # ...only ever as a secret


# -- one problem at every key of the stack-config schema (issue 23): both name the same paths ---------------

def schema_keys() -> set[str]:
    """Every key `mixpeek-infra schema --stack-config` describes, as a config path with `[]` for list items
    (extractor params, field schemas and free-form Qdrant/Kubernetes objects are one key each)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["schema", "--stack-config"]) == 0
    schema = json.loads(out.getvalue())
    defs = schema["$defs"]
    opaque = {"params", "field_schema", "head_resources", "worker_resources", "hnsw_config", "quantization_config",
              "compute_profiles"}

    def walk(node: dict[str, Any], prefix: str, found: set[str], depth: int = 0) -> None:
        while "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        assert depth < 12, prefix
        for branch in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(branch, []):
                walk(sub, prefix, found, depth + 1)
        if isinstance(node.get("items"), dict):
            walk(node["items"], prefix + "[]", found, depth + 1)
        for key, sub in node.get("properties", {}).items():
            found.add(f"{prefix}.{key}")
            if key not in opaque:
                walk(sub, f"{prefix}.{key}", found, depth + 1)

    found: set[str] = set()
    for full, sub in schema["properties"]["config"]["properties"].items():
        name = full.split(":", 1)[1]
        found.add("." + name)
        walk(sub, "." + name, found)
    return {k[1:] for k in found}


def _k8s(c):
    c["ray"] = {"mode": "kubernetes", "kubernetes": {}}


def _url(c):
    c["qdrant"] = {"url": "https://q.example:6333"}


def _external(c):
    c["ray"] = {"mode": "external", "url": "ray://h:10001"}


def _own(ray: dict[str, Any] | None = None, qdrant: dict[str, Any] | None = None):
    def setup(c):
        item = entry(c, 0)
        item["request"]["infrastructure"] = {"compute_tier": "dedicated_cpu"}
        if ray is not None:
            item["ray"] = copy.deepcopy(ray)
        if qdrant is not None:
            item["qdrant"] = copy.deepcopy(qdrant)
    return setup


def _entry(c):
    entry(c, 0)


def _extractor(c):
    c["extractors"] = [{"name": "mine", "version": "v1", "vectors": [
        {"output": "e", "size": 4, "inference_service": "svc"}]}]


def _vectors(where: str):
    def setup(c):
        body = entry(c, 0)["request"] if where == "request" else c["namespaces"][0]
        body["vector_configs"] = [{"name": "v", "dimension": 4, "metric": "cosine"}]
    return setup


def _no_id(where: str):  # the body's extractor without its id, which would then also disagree
    def setup(c):
        body = entry(c, 0)["request"] if where == "request" else c["namespaces"][0]
        body["feature_extractors"][0].pop("feature_extractor_id")
    return setup


K8S_KEYS = {"client_cidrs": ["not-a-cidr"], "create_namespace": "yes", "gpu_image": "a b", "gpu_node_label": 5,
            "head_resources": {"requests": {"cpu": "lots"}}, "image": "a b", "image_pull_policy": "Sometimes",
            "mode": "bogus", "namespace": "Not_A_Namespace", "service_type": "Bogus",
            "worker_resources": {"limits": {"memory": -1}}}
QDRANT_KEYS = {"final_snapshot": 5, "path": 5, "prefer_grpc": "false", "timeout": True, "url": "ftp://q.example"}
RAY_KEYS = {"mode": "kubernets", "num_cpus": -3, "ready_timeout": -1, "state_dir": 5, "stop_timeout": "soon",
            "url": "ray://h:99999", "kubernetes": "yes"}
REQUEST_KEYS = {
    "adaptive_indexing": "yes", "auto_create_indexes": "yes", "cost_cap_override": 5, "description": 5,
    "feature_extractors": "image", "feature_extractors[].feature_extractor_id": "wrong_v1",
    "feature_extractors[].feature_extractor_name": "nope", "feature_extractors[].params": {"bogus": 1},
    "feature_extractors[].version": "v9", "features": ["text"], "infrastructure": "big",
    "infrastructure.authorization": {"a": 1}, "infrastructure.autoscaling_enabled": "yes",
    "infrastructure.compute_profiles": {"gpu": {"workers": 2}}, "infrastructure.compute_tier": "bogus",
    "infrastructure.gpu_type": "", "infrastructure.gpus_per_worker": 9, "infrastructure.max_concurrent_jobs": 0,
    "infrastructure.max_custom_models": -1, "infrastructure.max_custom_plugins": -1, "infrastructure.max_workers": 0,
    "infrastructure.min_workers": -1, "infrastructure.qdrant_api_key": 5, "infrastructure.qdrant_collection": "a",
    "infrastructure.qdrant_url": "ftp://q.example", "infrastructure.ray_cluster_id": "bad",
    "infrastructure.ray_dashboard_url": "ftp://x", "infrastructure.ray_head_node_url": "http://h:1",
    "infrastructure.s3_plugin_bucket": "", "infrastructure.s3_plugin_prefix": 5, "infrastructure.s3_vector_bucket": "b",
    "mode": "bogus", "namespace_id": "ns_bad", "namespace_name": "bad name/", "namespace_type": "bogus",
    "payload_indexes": "x", "payload_indexes[].field_name": "", "payload_indexes[].field_schema": {"type": "bogus"},
    "payload_indexes[].is_protected": "yes", "payload_indexes[].type": "bogus", "scope": "bogus", "spend_budget": 5,
    "tiering": 5, "trusted_issuers": 5, "ttl_seconds": 5, "vector_configs": "v", "vector_configs[].dimension": 0,
    "vector_configs[].metric": "bogus", "vector_configs[].name": "bad name/"}
ENTRY_KEYS = {"request": 5, "file": 5, "files": 5, "key": "bad key/", "renamed_from": "bad name/", "protect": "yes",
              "deletion_protection": "no", "namespace_id": "ns_bad", "cluster_id": "", "qdrant": 5, "ray": 5,
              "collection_settings": 5, "collection_settings.hnsw_config": {"m": -1},
              "collection_settings.on_disk_payload": "yes", "collection_settings.quantization_config": {"bogus": 1},
              "collection_settings.replication_factor": 0, "collection_settings.shard_number": 0,
              "vectors_on_disk": "yes"}
# A boolean setting needs no example of its own: "yes" is its one problem (settings.py declares the setting once).
ENTRY_KEYS.update({name: "yes" for name, tp in typing.get_type_hints(StackEntrySettings).items()
                   if tp is bool and name not in ENTRY_KEYS})


def _single_problems() -> dict[str, tuple[Any, Any]]:
    """Config path (as `schema_keys` names it) -> (a bad value there, the setup that makes the rest valid)."""
    table: dict[str, tuple[Any, Any]] = {
        "namespaces": ("x", None), "qdrant": (5, None), "ray": (5, None), "extractors": (5, None),
        "qdrantApiKey": ("plain-text", None), "rayAuthToken": ("plain-text", None),
        "qdrantApiKey.secure": (5, None), "rayAuthToken.secure": (5, None), "ray.shared_url": ("ray://h:99999", None),
        "extractors[].name": ("bad name/", _extractor), "extractors[].version": ("", _extractor),
        "extractors[].vectors": ("x", _extractor), "extractors[].vectors[].output": ("", _extractor),
        "extractors[].vectors[].size": (0, _extractor), "extractors[].vectors[].inference_service": ("", _extractor),
        "extractors[].vectors[].distance": ("bogus", _extractor),
        "extractors[].vectors[].datatype": ("bogus", _extractor),
        "extractors[].vectors[].multivector": ("yes", _extractor),
    }
    for key, value in QDRANT_KEYS.items():
        table[f"qdrant.{key}"] = (value, _url if key in ("timeout", "prefer_grpc") else None)
        table[f"namespaces[].qdrant.{key}"] = (value, _own(qdrant={"url": "https://q.example:6333"} if key in (
            "timeout", "prefer_grpc") else {"path": ".mixpeek/q2"}))
    for key, value in RAY_KEYS.items():
        setup = _k8s if key == "kubernetes" else _external if key == "url" else None
        table[f"ray.{key}"] = (value, setup)
        own = {"mode": "kubernetes"} if key == "kubernetes" else {"mode": "external", "url": "ray://h:10001"} \
            if key == "url" else {"mode": "local"}
        table[f"namespaces[].ray.{key}"] = (value, _own(ray=own))
    for key, value in K8S_KEYS.items():
        table[f"ray.kubernetes.{key}"] = (value, _k8s)
        table[f"namespaces[].ray.kubernetes.{key}"] = (value, _own(ray={"mode": "kubernetes", "kubernetes": {}}))
    for key, value in REQUEST_KEYS.items():
        special = _vectors if key.startswith("vector_configs[]") else _no_id if key in (
            "feature_extractors[].feature_extractor_name", "feature_extractors[].version") else None
        table[f"namespaces[].{key}"] = (value, special("bare") if special else None)
        table[f"namespaces[].request.{key}"] = (value, special("request") if special else _entry)
    for key, value in ENTRY_KEYS.items():
        if key.split(".")[0] in stackconfig.ENTRY_KEYS:  # (request files: `file`, `files`)
            table[f"namespaces[].{key}"] = (value, _entry)
    return table


SINGLE = _single_problems()


def test_every_key_of_the_stack_config_schema_has_a_single_problem_example():
    assert set(SINGLE) == schema_keys()


def _put(config: dict[str, Any], key: str, value: Any) -> str:
    """Put `value` at `key` (list items: the first), creating mappings on the way; returns the concrete path."""
    parts = key.replace("[]", ".[]").split(".")
    node: Any = config
    for part, following in zip(parts, parts[1:] + [None]):
        if part == "[]":
            continue
        if following is None:
            node[part] = copy.deepcopy(value)
        else:
            if following == "[]":
                node = node[part][0]
            else:
                if not isinstance(node.get(part), dict):
                    node[part] = {}
                node = node[part]
    return key.replace("[]", "[0]")


def _related(path: str, concrete: str) -> bool:
    return any(a == b or a.startswith(b + ".") or a.startswith(b + "[") for a, b in ((path, concrete), (concrete, path)))


def _single_config(key: str) -> tuple[dict[str, Any], str]:
    value, setup = SINGLE[key]
    config = stack_config("dev")
    if setup is not None:
        setup(config)
    if key.startswith("namespaces[].") and "request" not in config["namespaces"][0] and \
            key.split(".")[1].split("[")[0] in ENTRY_KEYS:
        entry(config, 0)
    return config, _put(config, key, value)


@pytest.mark.parametrize("key", sorted({setup for _, setup in SINGLE.values() if setup is not None}, key=repr),
                         ids=lambda s: getattr(s, "__qualname__", repr(s)))
def test_every_single_problem_setup_is_valid_alone(tmp_path, key):
    config = stack_config("dev")
    key(config)
    valid, err, why = agree(tmp_path, config)
    assert valid, (err, why)


@pytest.mark.parametrize("key", sorted(SINGLE))
def test_one_problem_at_each_schema_key_is_named_alike_by_validate_and_the_program(tmp_path, key):
    config, concrete = _single_config(key)
    valid, err, _ = agree(tmp_path, config)
    assert not valid, f"{concrete}={SINGLE[key][0]!r} passed"
    paths = validate_paths(err)
    assert paths and all(_related(p, concrete) for p in paths), (concrete, paths)


# -- the real engine: `pulumi preview` names what `validate` names (marker pulumi_cli) ----------------------

def _engine(tmp_path: Path, config: dict[str, Any]):
    from pulumicli import PulumiProject, cli_bin_dir

    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(),
                         {"dev": {"config": {f"mixpeek-infra:{k}": v for k, v in config.items()}}})
    proj.init("dev")
    return proj


def _cli_validate(stack_file: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mixpeek_infra.cli", "validate", str(stack_file)],
                          capture_output=True, text=True, timeout=120, cwd=stack_file.parent,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.mark.pulumi_cli
def test_pulumi_preview_names_the_same_problem_paths_as_validate(tmp_path):
    config = stack_config("dev")
    config["qdrant"]["final_snapshot"] = 5
    config["ray"] = {"mode": "kubernetes", "kubernetes": {"service_type": "Bogus"}}
    proj = _engine(tmp_path, config)
    checked = _cli_validate(proj.stack_file("dev"))
    assert checked.returncode == 2, checked.stderr
    expected = validate_paths(checked.stderr)
    assert expected == {"qdrant.final_snapshot", "ray.kubernetes.service_type"}, checked.stderr
    preview = proj.run("preview", "-s", "dev", check=False)
    assert preview.returncode != 0
    shown = preview.stdout + preview.stderr
    assert "invalid stack config:" in shown, shown
    assert {p for p in expected if f"  {p}: " in shown} == expected, shown
    assert proj.export("dev")["deployment"].get("resources") in (None, []), "preview touched the state"


@pytest.mark.pulumi_cli
def test_pulumi_preview_refuses_a_credential_in_a_pass_through_param_unquoted(tmp_path):
    """Issue 18 item 11 with the real engine: nothing reaches an output or the state, the value nowhere."""
    config = stack_config("dev")
    config["namespaces"][0]["feature_extractors"][0]["params"] = {
        "generation_config": {"temperature": 0.2, "openaiApiKey": API_KEY}}
    proj = _engine(tmp_path, config)
    path = "namespaces[0].feature_extractors[0].params.generation_config.openaiApiKey"
    checked = _cli_validate(proj.stack_file("dev"))
    assert validate_paths(checked.stderr) == {path}, checked.stderr
    preview = proj.run("preview", "-s", "dev", check=False)
    shown = preview.stdout + preview.stderr
    assert preview.returncode != 0 and f"  {path}: " in shown, shown
    assert API_KEY not in shown and API_KEY not in checked.stderr
    exported = proj.run("stack", "export", "-s", "dev").stdout
    assert API_KEY not in exported and not json.loads(exported)["deployment"].get("resources")


@pytest.mark.pulumi_cli
def test_config_set_secret_path_writes_a_request_key_validate_accepts_and_preview_keeps_secret(tmp_path):
    """Issue 18 item 12 with the real engine: the encrypted form `pulumi config set --secret --path` writes."""
    proj = _engine(tmp_path, stack_config("dev"))
    where = "mixpeek-infra:namespaces[0].infrastructure"
    proj.run("config", "set", "-s", "dev", "--path", f"{where}.qdrant_url", "https://q.example:6333")
    proj.run("config", "set", "-s", "dev", "--secret", "--path", f"{where}.qdrant_api_key", API_KEY)
    written = proj.stack_file("dev").read_text()
    assert API_KEY not in written
    infra = yaml.safe_load(written)["config"]["mixpeek-infra:namespaces"][0]["infrastructure"]
    assert set(infra["qdrant_api_key"]) == {"secure"}
    checked = _cli_validate(proj.stack_file("dev"))
    assert checked.returncode == 0, checked.stderr
    steps = proj.run("preview", "--diff", "--json", "-s", "dev")
    assert API_KEY not in steps.stdout + steps.stderr
    collection = [s for s in json.loads(steps.stdout)["steps"] if s["urn"].endswith("-collection")]
    assert collection and collection[0]["newState"]["inputs"]["api_key"] == "[secret]", collection


@pytest.mark.parametrize("form", ["file", "files"])
def test_an_api_key_in_a_request_file_is_refused_naming_the_file_and_the_way_out(tmp_path, form):
    """A request file is plain text that is never decrypted: a key in it would sit in the repository."""
    body = copy.deepcopy(stack_config("dev")["namespaces"][0])
    body["infrastructure"] = {"qdrant_url": "https://q.example:6333", "qdrant_api_key": API_KEY}
    (tmp_path / "requests").mkdir()
    (tmp_path / "requests" / "a.json").write_text(json.dumps(body))
    config = stack_config("dev")
    config["namespaces"] = [{"file": "requests/a.json"} if form == "file" else {"files": "requests"}]
    valid, err, why = agree(tmp_path, config)
    assert not valid and API_KEY not in err + why
    assert validate_paths(err) == {"requests/a.json: infrastructure.qdrant_api_key"}, err
    where = "namespaces[0]" if form == "file" else "namespaces[<i>]"
    assert f"pulumi config set --secret --path 'mixpeek-infra:{where}.request.infrastructure.qdrant_api_key'" in err
