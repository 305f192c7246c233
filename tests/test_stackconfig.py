"""One stack-config model: `mixpeek-infra validate` refuses exactly what the stack program refuses.

Each stack config is judged twice: by the CLI on a `Pulumi.<stack>.yaml` file (as the PR
workflow runs it), and by the stack program under Pulumi mocks, where every registered dynamic
resource also goes through its provider's `check` (what `pulumi preview` runs before any
create). The verdicts must agree, for the issue's examples and for mutated stack configs.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixpeek_infra.cli import main
from mixpeek_infra.problems import InvalidInput
from mixpeek_infra.program import StackConfigError
from mixpeek_infra.stackconfig import parse_stack_config
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


def program_verdict(config: dict[str, Any], secure: set[str]) -> tuple[bool, str]:
    """What the stack program says under mocks, providers' `check` included: (deploys, first error)."""
    values = {k: ("top-secret-value" if k in secure else v) for k, v in config.items()}
    mocks = FakeMocks()
    try:
        run_program(values, mocks, secret_keys=secure)
    except (InvalidInput, StackConfigError) as exc:  # a refusal of the input; anything else is a bug
        return False, str(exc)
    for rec in mocks.resources:
        if rec.typ.startswith(DYNAMIC):
            inputs = unwrap_secrets(rec.inputs)
            failures = decode_provider(inputs["__provider"]).check({}, inputs).failures
            if failures:
                return False, f"{rec.name}: check: {failures[0].property}: {failures[0].reason}"
    return True, ""


def agree(tmp_path: Path, config: dict[str, Any], secure: set[str] = frozenset()) -> tuple[bool, str, str]:
    valid, err = validate_verdict(tmp_path, config, set(secure))
    deploys, why = program_verdict(config, set(secure))
    assert valid == deploys, f"validate says {valid} ({err.strip()!r}); the program says {deploys} ({why!r})"
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
    deploys, why = program_verdict(with_request_key(API_KEY), set())
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
