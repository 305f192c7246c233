"""Names that must never be shared, and credentials that must never be quoted.

- Two namespaces of one stack never resolve to one Qdrant collection on one target: refused by the
  stack program and by `mixpeek-infra validate`, with the same message and path.
- Kubernetes object names are unique by construction (a stable hash where slugging changed a
  name), and a Kubernetes namespace several heads share is created once, by the stack.
- `user:password@` inside a URL is never quoted by a request error, a CLI message or a stack error.
- Every name pattern refuses a trailing newline.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml
from google.protobuf import json_format

import stackmocks
from conftest import ROOT, SEED_PATH
from mixpeek_infra.cli import main
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.schema import CreateNamespaceRequest, InvalidRequest, NamespaceModel, parse_request
from stackmocks import FakeMocks, parents, run_program

PASSWORD = "hunter2-Zq81"
K8S_NAMESPACE = "kubernetes:core/v1:Namespace"
SHARED_RAY = {"mode": "external", "shared_url": "ray://10.1.2.3:10001"}
KUBERNETES_RAY = {"mode": "kubernetes", "kubernetes": {"mode": "deployment"}}


def body(name: str, **infrastructure) -> dict:
    """The documented seed body renamed, with an optional infrastructure block."""
    out = copy.deepcopy(json.loads(SEED_PATH.read_text()))
    out["namespace_name"] = name
    if infrastructure:
        out["infrastructure"] = infrastructure
    return out


def stack(namespaces: list, *, ray: dict | None = None, qdrant: dict | None = None) -> dict:
    return {"qdrant": qdrant or {"path": ".mixpeek/qdrant"}, "ray": ray or SHARED_RAY, "namespaces": namespaces}


def refusal(config: dict) -> str:
    """The stack program's refusal of `config`, after checking it registered nothing."""
    mocks = FakeMocks()
    with pytest.raises(Exception) as info:
        run_program(config, mocks)
    assert mocks.resources == []
    return str(info.value)


def cli_validate(capsys, tmp_path: Path, config: dict) -> tuple[int, str, str]:
    """`mixpeek-infra validate` on `config` written as a Pulumi stack file."""
    path = tmp_path / "Pulumi.test.yaml"
    path.write_text(yaml.safe_dump({"config": {f"mixpeek-infra:{k}": v for k, v in config.items()}}))
    code = main(["validate", str(path)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def k8s_objects(mocks: FakeMocks) -> list[tuple[str, str | None, str]]:
    """(kind, Kubernetes namespace, object name) of every Kubernetes object the program registered."""
    out = []
    for r in mocks.resources:
        if r.typ.startswith("kubernetes:"):
            meta = r.inputs["metadata"]
            out.append((r.typ.rsplit(":", 1)[-1], meta.get("namespace"), meta["name"]))
    return out


# -- 2. one collection per namespace ------------------------------------------------------------


def test_two_namespaces_naming_one_collection_are_refused_by_program_and_cli_alike(capsys, tmp_path):
    config = stack([body("first", qdrant_collection="docs"), body("second", qdrant_collection="docs")])
    message = refusal(config)
    line = next(x.strip() for x in message.splitlines() if "qdrant_collection" in x)
    assert line.startswith("namespaces[1].infrastructure.qdrant_collection: 'docs' is already used by "
                           "namespaces[0] (same Qdrant target)")
    assert "leave qdrant_collection out" in line  # the way out

    code, out, err = cli_validate(capsys, tmp_path, config)
    assert code == 2 and "namespace[0] first: ok" in out
    cli_line = next(x for x in err.splitlines() if "qdrant_collection" in x)
    path_and_message = line.removeprefix("namespaces[1].")
    assert cli_line.endswith(f"namespace[1]: {path_and_message}")


def test_an_explicit_collection_equal_to_another_namespaces_id_is_refused(capsys, tmp_path):
    fixed = {"request": body("first"), "namespace_id": "ns_0123456789"}
    explicit = body("second", qdrant_collection="ns_0123456789")
    message = refusal(stack([fixed, explicit]))
    assert "namespaces[1].infrastructure.qdrant_collection: 'ns_0123456789' is already used by namespaces[0]" in message
    # The other order: the fixed id's default collection is the one already taken.
    message = refusal(stack([explicit, fixed]))
    assert "namespaces[1].namespace_id: its collection 'ns_0123456789' (named after namespace_id) is already used " \
           "by namespaces[0]" in message
    code, _, err = cli_validate(capsys, tmp_path, stack([explicit, fixed]))
    assert code == 2 and "namespace[1]: namespace_id: its collection 'ns_0123456789'" in err


def test_one_collection_name_on_two_targets_is_allowed(capsys, tmp_path):
    other = {"request": body("second", qdrant_collection="docs"), "qdrant": {"path": ".mixpeek/other"}}
    config = stack([body("first", qdrant_collection="docs"), other])
    outputs, _ = run_program(config, FakeMocks())
    assert {o["qdrant_collection"] for o in outputs.values()} == {"docs"}
    assert cli_validate(capsys, tmp_path, config)[0] == 0


def test_the_collection_rule_resolves_targets_like_the_program():
    from mixpeek_infra.plan import collection_conflicts

    def plan(name, **infra):
        return plan_namespace(body(name, **infra))

    server = {"url": "https://qdrant.internal"}
    # Same server however its URL is spelled (qdrant-client's default port is 6333).
    assert [c[:2] for c in collection_conflicts(
        [(0, plan("a", qdrant_collection="docs"), {}),
         (3, plan("b", qdrant_collection="docs"), {"qdrant": {"url": "https://QDRANT.internal:6333/"}})],
        server)] == [(3, "infrastructure.qdrant_collection")]
    # A request's own qdrant_url wins over the stack's target; a generated id never clashes.
    assert collection_conflicts(
        [(0, plan("a", qdrant_collection="docs", qdrant_url="https://elsewhere:6333"), {}),
         (1, plan("b", qdrant_collection="docs"), {}), (2, plan("c"), {}), (3, plan("d"), {})], server) == []


# -- 3. Kubernetes names ------------------------------------------------------------------------

SPELLINGS = ["catalog_v2", "catalog-v2", "catalog.v2", "Catalog_V2"]


def test_four_spellings_of_one_name_render_distinct_kubernetes_objects():
    mocks = FakeMocks()
    run_program(stack([body(n, compute_tier="dedicated_cpu") for n in SPELLINGS], ray=KUBERNETES_RAY), mocks)
    objects = k8s_objects(mocks)
    assert len(objects) == 4 * 4 and len(set(objects)) == len(objects)  # Namespace, Deployment, Service, policy
    namespaces = {name for kind, _, name in objects if kind == "Namespace"}
    assert len(namespaces) == 4 and all(len(n) <= 63 for n in namespaces)
    # A name that already is a DNS label is kept, so existing stacks do not churn.
    assert ("Namespace", None, "mixpeek-catalog-v2") in objects
    assert ("Deployment", "mixpeek-catalog-v2", "catalog-v2-ray-head") in objects


def test_four_spellings_in_one_explicit_namespace_share_one_namespace_object():
    ray = {"mode": "kubernetes", "kubernetes": {"mode": "deployment", "namespace": "mixpeek-apps"}}
    mocks = FakeMocks()
    run_program(stack([body(n, compute_tier="dedicated_cpu") for n in SPELLINGS], ray=ray), mocks)
    objects = k8s_objects(mocks)
    assert [o for o in objects if o[0] == "Namespace"] == [("Namespace", None, "mixpeek-apps")]
    workloads = [o for o in objects if o[0] != "Namespace"]
    assert len(workloads) == 12 and len(set(workloads)) == 12
    assert {ns for _, ns, _ in workloads} == {"mixpeek-apps"}


def test_removing_a_tenant_keeps_the_shared_kubernetes_namespace():
    ray = {"mode": "kubernetes", "kubernetes": {"mode": "kuberay", "namespace": "mixpeek-apps"}}
    both = FakeMocks()
    _, monitor = run_program(stack([body("a", compute_tier="dedicated_cpu"),
                                    body("b", compute_tier="dedicated_cpu")], ray=ray), both)
    registered = [(r.typ, r.name) for r in both.resources if r.typ == K8S_NAMESPACE]
    assert registered == [(K8S_NAMESPACE, "kubernetes-namespace-mixpeek-apps")]
    parent = parents(monitor)
    assert parent["kubernetes-namespace-mixpeek-apps"] == parent["a"]  # the stack's, not a tenant's

    only_b = FakeMocks()
    _, monitor = run_program(stack([body("b", compute_tier="dedicated_cpu")], ray=ray), only_b)
    assert [(r.typ, r.name) for r in only_b.resources if r.typ == K8S_NAMESPACE] == registered
    assert parents(monitor)["kubernetes-namespace-mixpeek-apps"] == parent["a"]
    assert {o[1] for o in k8s_objects(only_b) if o[0] != "Namespace"} == {"mixpeek-apps"}


def test_the_stack_namespace_adopts_the_one_a_head_created_before(monkeypatch):
    aliases: dict[str, list] = {}

    class AliasMonitor(stackmocks.RecordingMonitor):
        def RegisterResource(self, request):
            aliases[request.name] = json_format.MessageToDict(request).get("aliases", [])
            return super().RegisterResource(request)

    monkeypatch.setattr(stackmocks, "RecordingMonitor", AliasMonitor)
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    run_program({k.split(":", 1)[1]: v for k, v in config.items()}, FakeMocks(), stack="prod")
    specs = [a.get("spec", a) for a in aliases["kubernetes-namespace-mixpeek-prod"]]
    assert {"name": "video_moderation-ray-namespace",
            "parentUrn": "urn:pulumi:prod::mixpeek-infra::mixpeek:index:Namespace::video_moderation"} in specs


def test_prod_stack_with_a_second_dedicated_namespace_creates_its_kubernetes_namespace_once():
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    config = {k.split(":", 1)[1]: v for k, v in config.items()}
    second = copy.deepcopy(config["namespaces"][1])
    second["request"]["namespace_name"] = "video_search"
    config["namespaces"].append(second)
    mocks = FakeMocks()
    run_program({**config, "qdrantApiKey": "k"}, mocks, stack="prod")
    assert [r.inputs["metadata"]["name"] for r in mocks.resources if r.typ == K8S_NAMESPACE] == ["mixpeek-prod"]
    clusters = [name for kind, ns, name in k8s_objects(mocks) if kind == "RayCluster"]
    assert len(set(clusters)) == 2


def test_a_key_that_names_a_head_like_the_shared_one_is_refused():
    ray = {"mode": "kubernetes", "kubernetes": {"mode": "deployment", "namespace": "mixpeek-apps"}}
    dedicated = {"request": body("catalog", compute_tier="dedicated_cpu"), "key": "shared"}
    message = refusal(stack([body("playlists"), dedicated], ray=ray))  # the first runs on the shared head
    assert "namespaces[1].key: its Ray head's Kubernetes objects (shared-ray-*) in namespace 'mixpeek-apps' " \
           "would be the shared Ray head's" in message


def test_an_explicit_namespace_equal_to_another_heads_own_is_refused():
    own = {"request": body("catalog", compute_tier="dedicated_cpu"), "ray": KUBERNETES_RAY}
    intruder = {"request": body("search", compute_tier="dedicated_cpu"),
                "ray": {"mode": "kubernetes", "kubernetes": {"namespace": "mixpeek-catalog"}}}
    message = refusal(stack([own, intruder]))
    assert "namespaces[1].ray.kubernetes.namespace: Kubernetes namespace 'mixpeek-catalog' is also namespaces[0]'s" \
           in message


def test_object_names_are_kept_when_valid_and_otherwise_hashed_within_the_limit():
    from mixpeek_infra.ray.kubernetes import object_name

    assert object_name("catalog-v2-ray", 40, letter_first=True) == "catalog-v2-ray"
    hashed = {object_name(f"{n}-ray", 40, letter_first=True) for n in SPELLINGS}
    assert len(hashed) == 4 and all(re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", n) for n in hashed)
    assert object_name("catalog_v2-ray", 40) == object_name("catalog_v2-ray", 40)  # stable
    long = object_name("A" * 100, 63)
    assert len(long) == 63 and long != object_name("A" * 99, 63)
    assert object_name("1abc-ray", 40, letter_first=True)[0].isalpha()


# -- 7. credentials in URLs ---------------------------------------------------------------------

CREDENTIAL_URLS = {"qdrant_url": f"https://admin:{PASSWORD}@qdrant.example:6333",
                   "ray_head_node_url": f"ray://admin:{PASSWORD}@ray-head:10001",
                   "ray_dashboard_url": f"http://admin:{PASSWORD}@ray-head:8265"}


def test_request_errors_name_the_url_field_without_its_password():
    with pytest.raises(InvalidRequest) as info:
        parse_request(body("x", **CREDENTIAL_URLS))
    message = str(info.value)
    assert PASSWORD not in message
    for field in CREDENTIAL_URLS:
        assert f"infrastructure.{field}: '" in message
    assert "***@qdrant.example:6333" in message and "pass them as secrets" in message


def test_model_errors_never_echo_their_input():
    request = {"namespace_name": "x", "feature_extractors": [{"feature_extractor_name": "nope", "version": "v1"}],
               "infrastructure": {"qdrant_url": "https://q:6333", "qdrant_api_key": PASSWORD}}
    with pytest.raises(Exception) as info:
        CreateNamespaceRequest.model_validate(request)
    assert PASSWORD not in str(info.value)
    with pytest.raises(Exception) as info:
        NamespaceModel.model_validate({"namespace_id": "ns_0123456789", "namespace_name": "x",
                                       "infrastructure": {"qdrant_url": CREDENTIAL_URLS["qdrant_url"]}})
    assert "infrastructure.qdrant_collection" in str(info.value) and PASSWORD not in str(info.value)


def test_cli_never_prints_a_url_password(capsys, tmp_path):
    path = tmp_path / "body.json"
    path.write_text(json.dumps(body("x", **CREDENTIAL_URLS)))
    code = main(["validate", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and PASSWORD not in err and "infrastructure.qdrant_url: 'https://***@qdrant.example" in err


def test_a_cut_message_never_keeps_part_of_a_password(capsys, tmp_path):
    # The quoted value is cut inside the password: no fragment of it may remain.
    name = "x" * 60 + f" https://admin:{PASSWORD}@host:6333"
    with pytest.raises(InvalidRequest) as info:
        parse_request(body(name))
    assert "admin:hunt" not in str(info.value) and "more characters" in str(info.value)
    key = "k" * 40 + f" https://admin:{PASSWORD}@host:6333"
    code, _, err = cli_validate(capsys, tmp_path, stack([{"request": body("x"), "key": key}]))
    assert code == 2 and "namespace[0]: key:" in err and "admin:hunt" not in err


def test_stack_program_errors_never_quote_a_url_password():
    message = refusal(stack([body("x")], ray={"mode": "local", "shared_url": f"ray://admin:{PASSWORD}@head:10001"}))
    assert "\n  ray.shared_url: " in message and PASSWORD not in message
    message = refusal(stack([body("x", **CREDENTIAL_URLS)]))
    assert "namespaces[0].infrastructure.qdrant_url" in message and PASSWORD not in message


def test_preview_workflow_never_echoes_bodies_or_debug_output():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "preview.yml").read_text())
    steps = workflow["jobs"]["preview"]["steps"]
    commands = " ".join(step.get("run", "") for step in steps)
    assert "mixpeek-infra validate" in commands
    for risky in ("cat ", "echo ", "set -x", "--debug", "MIXPEEK_INFRA_DEBUG", "plan --json", "-v=", "--verbose"):
        assert risky not in commands, risky
    assert "MIXPEEK_INFRA_DEBUG" not in json.dumps(workflow.get("env", {})) + json.dumps(workflow["jobs"])


# -- 8. a trailing newline is never part of a name ----------------------------------------------


@pytest.mark.parametrize("field, value", [
    ("namespace_name", "catalog\n"),
    ("infrastructure.qdrant_collection", "docs\n"),
    ("infrastructure.ray_cluster_id", "ray_abc\n"),
    ("infrastructure.ray_head_node_url", "ray://head:10001\n"),
    ("infrastructure.qdrant_url", "https://q.example:6333\n"),
    ("infrastructure.ray_dashboard_url", "http://head:8265\n"),
    ("payload_indexes[0].field_name", "metadata.title\n"),
])
def test_request_names_refuse_a_trailing_newline(field, value):
    data = body("x")
    data["infrastructure"] = {"compute_tier": "shared"}
    data["payload_indexes"] = [{"field_name": "metadata.title", "type": "keyword"}]
    where, _, name = field.rpartition(".")
    target = data["infrastructure"] if where == "infrastructure" else (
        data["payload_indexes"][0] if where else data)
    target[name] = value
    with pytest.raises(InvalidRequest) as info:
        parse_request(data)
    assert field in [p for p, _ in info.value.problems]


@pytest.mark.parametrize("key, value", [("namespace_id", "ns_0123456789\n"), ("key", "catalog\n")])
def test_stack_entry_names_refuse_a_trailing_newline(capsys, tmp_path, key, value):
    config = stack([{"request": body("x"), key: value}])
    assert f"namespaces[0].{key}:" in refusal(config)
    code, _, err = cli_validate(capsys, tmp_path, config)
    assert code == 2 and f"namespace[0]: {key}:" in err
