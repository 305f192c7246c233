"""RayHead: constructors, stack config, checks against the plan, and refusal of bad input at preview."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from importlib import metadata

import pulumi
import pytest

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.ray.deploy import deploy_ray_head, deploy_shared_ray_head
from mixpeek_infra.ray.spec import InvalidRayHead, RayHead, default_ray_image, parse_quantity
from mixpeek_infra.schema import InvalidRequest, parse_request
from stackmocks import RecordingMocks



class Parent(pulumi.ComponentResource):
    def __init__(self, name: str = "ns") -> None:
        super().__init__("test:index:Parent", name)


def fields(exc: pytest.ExceptionInfo) -> list[str]:
    return [path for path, _ in exc.value.problems]


# --- external ---------------------------------------------------------------------------------


def test_external_accepts_ray_url():
    spec = RayHead.external("ray://ray-head.shared.svc.cluster.local:10001")
    assert spec.mode == "external" and spec.url.endswith(":10001")


@pytest.mark.parametrize("url", ["http://ray-head:10001", "ray://ray-head", "ray://:10001", "ray://ray-head:99999",
                                 "ray://ray head:10001", "ray-head:10001", "", "ray://ray-head:10001/path"])
def test_external_refuses_non_ray_urls_naming_the_field(url):
    with pytest.raises(InvalidRayHead) as exc:
        RayHead.external(url)
    assert fields(exc) == ["ray.url"]
    assert "ray://host:port" in str(exc.value) or "outside 1-65535" in str(exc.value)
    assert isinstance(exc.value, InvalidRequest) and isinstance(exc.value, ValueError)


def test_external_requires_url():
    with pytest.raises(InvalidRayHead) as exc:
        RayHead.external(None)
    assert fields(exc) == ["ray.url"]


# --- local ------------------------------------------------------------------------------------


def test_local_defaults():
    spec = RayHead.local()
    assert (spec.mode, spec.state_dir, spec.num_cpus) == ("local", ".mixpeek/ray", None)


@pytest.mark.parametrize("kwargs, field", [
    ({"state_dir": ""}, "ray.state_dir"), ({"state_dir": 5}, "ray.state_dir"), ({"state_dir": None}, "ray.state_dir"),
    ({"num_cpus": -1}, "ray.num_cpus"), ({"num_cpus": 1.5}, "ray.num_cpus"), ({"num_cpus": True}, "ray.num_cpus"),
    ({"num_cpus": "2"}, "ray.num_cpus"), ({"num_cpus": float("nan")}, "ray.num_cpus"),
    ({"ready_timeout": 0}, "ray.ready_timeout"), ({"ready_timeout": True}, "ray.ready_timeout"),
    ({"ready_timeout": float("inf")}, "ray.ready_timeout"), ({"stop_timeout": "soon"}, "ray.stop_timeout"),
    ({"stop_timeout": -5}, "ray.stop_timeout"), ({"stop_timeout": False}, "ray.stop_timeout")])
def test_local_refuses_bad_settings(kwargs, field):
    with pytest.raises(InvalidRayHead) as exc:
        RayHead.local(**kwargs)
    assert fields(exc) == [field]


def test_local_normalises_numbers():
    spec = RayHead.local(num_cpus=2.0, ready_timeout=30, stop_timeout=5)
    assert (spec.num_cpus, spec.ready_timeout, spec.stop_timeout) == (2, 30.0, 5.0)
    assert type(spec.num_cpus) is int and type(spec.ready_timeout) is float
    assert RayHead.local(num_cpus=0).num_cpus == 0


def test_unknown_mode_lists_choices():
    with pytest.raises(InvalidRayHead) as exc:
        RayHead(mode="remote")
    assert fields(exc) == ["ray.mode"]
    assert "external, local, kubernetes" in str(exc.value)


# --- kubernetes -------------------------------------------------------------------------------


def test_kubernetes_defaults_pin_image_to_client_ray_and_python():
    spec = RayHead.kubernetes()
    tag = f"{metadata.version('ray')}-py{sys.version_info.major}{sys.version_info.minor}"
    assert spec.k8s.image == f"rayproject/ray:{tag}" == default_ray_image()
    assert spec.k8s.gpu_image == f"rayproject/ray:{tag}-gpu"
    assert (spec.k8s.mode, spec.k8s.service_type, spec.k8s.create_namespace) == ("deployment", "ClusterIP", True)
    assert spec.k8s.head_resources["limits"] == {"cpu": "2", "memory": "4Gi"}


def test_kubernetes_custom_image_is_used_for_gpu_pods_too():
    spec = RayHead.kubernetes(image="registry.example.com/ray:2.60.0-py311-custom")
    assert spec.k8s.gpu_image == spec.k8s.image == "registry.example.com/ray:2.60.0-py311-custom"


@pytest.mark.parametrize("kwargs, field, choices", [
    ({"mode": "helm"}, "ray.kubernetes.mode", "deployment, kuberay"),
    ({"service_type": "ExternalName"}, "ray.kubernetes.service_type", "ClusterIP, NodePort, LoadBalancer"),
    ({"image_pull_policy": "Sometimes"}, "ray.kubernetes.image_pull_policy", "IfNotPresent, Always, Never"),
    ({"namespace": "Mixpeek_NS"}, "ray.kubernetes.namespace", None),
    ({"head_resources": {"cpu": "two", "memory": "4Gi"}}, "ray.kubernetes.head_resources.cpu", None),
    ({"head_resources": {"cpu": "2"}}, "ray.kubernetes.head_resources.memory", None),
    ({"worker_resources": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": "1"}},
     "ray.kubernetes.worker_resources.nvidia.com/gpu", "gpus_per_worker"),
    ({"worker_resources": {"requests": {"cpu": "4", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "1Gi"}}},
     "ray.kubernetes.worker_resources.requests.cpu", None),
    ({"client_cidrs": ["10.0.0.0/8", "everyone"]}, "ray.kubernetes.client_cidrs[1]", None),
    ({"auth_token": ""}, "ray.kubernetes.auth_token", None),
    ({"gpu_node_label": "not a label"}, "ray.kubernetes.gpu_node_label", None),
])
def test_kubernetes_refuses_bad_settings(kwargs, field, choices):
    with pytest.raises(InvalidRayHead) as exc:
        RayHead.kubernetes(**kwargs)
    assert field in fields(exc)
    if choices:
        assert choices in str(exc.value)


def test_kubernetes_repr_never_shows_the_token():
    spec = RayHead.kubernetes(auth_token="hunter2-secret-token")
    assert "hunter2" not in repr(spec) and "hunter2" not in str(spec)


def test_quantities():
    assert parse_quantity("500m") == 0.5 and parse_quantity("4Gi") == 4 * 2 ** 30 and parse_quantity("2") == 2
    with pytest.raises(ValueError):
        parse_quantity("2 cores")


# --- stack config -----------------------------------------------------------------------------


def test_from_config_each_mode():
    assert RayHead.from_config({"mode": "local", "state_dir": ".mixpeek/ray", "num_cpus": 2.0}).num_cpus == 2
    assert RayHead.from_config({"mode": "external", "url": "ray://10.0.0.5:10001"}).url == "ray://10.0.0.5:10001"
    spec = RayHead.from_config({"mode": "kubernetes", "kubernetes": {
        "mode": "kuberay", "namespace": "ray", "create_namespace": False, "service_type": "ClusterIP",
        "head_resources": {"cpu": "1", "memory": "2Gi"}, "client_cidrs": ["10.0.0.0/8"]}})
    assert (spec.k8s.mode, spec.k8s.namespace, spec.k8s.client_cidrs) == ("kuberay", "ray", ("10.0.0.0/8",))


@pytest.mark.parametrize("config, field, hint", [
    ({}, "ray.mode", "external, local, kubernetes"),
    ({"mode": "local", "num_cpus": -3}, "ray.num_cpus", "whole number >= 0"),
    ({"mode": "local", "num_cpus": True}, "ray.num_cpus", "whole number >= 0"),
    ({"mode": "local", "state_dir": 5}, "ray.state_dir", "string"),
    ({"mode": "local", "ready_timeout": True}, "ray.ready_timeout", "seconds > 0"),
    ({"mode": "local", "stop_timeout": 0}, "ray.stop_timeout", "seconds > 0"),
    ({"mode": "external", "url": "ray://h:99999"}, "ray.url", "outside 1-65535"),
    ({"mode": "external", "url": "ray://h:0"}, "ray.url", "outside 1-65535"),
    ({"mode": "external", "url": 5}, "ray.url", "ray://host:port"),
    ({"mode": "kubernetes", "kubernetes": {"create_namespace": "yes"}}, "ray.kubernetes.create_namespace", "false"),
    ({"mode": "kubernetes", "kubernetes": {"create_namespace": 1}}, "ray.kubernetes.create_namespace", "false"),
    ({"mode": "kubernetes", "kubernetes": {"client_cidrs": "10.0.0.0/8"}}, "ray.kubernetes.client_cidrs", "a list"),
    ({"mode": "kubernetes", "kubernetes": {"client_cidrs": True}}, "ray.kubernetes.client_cidrs", "a list"),
    ({"mode": "kubernetes", "kubernetes": {"client_cidrs": False}}, "ray.kubernetes.client_cidrs", "a list"),
    ({"mode": "kubernetes", "kubernetes": {"client_cidrs": [5]}}, "ray.kubernetes.client_cidrs[0]", "CIDR"),
    ({"mode": "kubernetes", "kubernetes": {"auth_token": 12345}}, "ray.kubernetes.auth_token", "a string"),
    ({"mode": "kubernetes", "kubernetes": False}, "ray.kubernetes", "a mapping"),
    ({"mode": "kubernetes", "kubernetes": ["deployment"]}, "ray.kubernetes", "a mapping"),
    ({"mode": "cloud"}, "ray.mode", "external, local, kubernetes"),
    ({"mode": "local", "url": "ray://x:1"}, "ray.url", "state_dir"),
    ({"mode": "external", "url": "http://x:1"}, "ray.url", "ray://host:port"),
    ({"mode": "kubernetes", "kubernetes": {"mode": "operator"}}, "ray.kubernetes.mode", "deployment, kuberay"),
    ({"mode": "kubernetes", "kubernetes": {"replicas": 3}}, "ray.kubernetes.replicas", "service_type"),
])
def test_from_config_errors_name_field_and_choices(config, field, hint):
    with pytest.raises(InvalidRayHead) as exc:
        RayHead.from_config(config, source="Pulumi.dev.yaml")
    assert field in fields(exc)
    assert hint in str(exc.value) and "Pulumi.dev.yaml" in str(exc.value)


# --- against the plan, at preview --------------------------------------------------------------


def _plan(seed, **infra):
    seed["infrastructure"] = {"compute_tier": "dedicated_cpu", **infra}
    return plan_namespace(seed)


def _deploy_under_mocks(spec, plan, *, preview=True):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=preview)

    @pulumi.runtime.test
    def program():
        deploy_ray_head("ns-ray", spec, plan, "ns_0123456789", Parent())

    return mocks, program


@pytest.mark.parametrize("spec_factory", [lambda: RayHead.local(), lambda: RayHead.kubernetes("kuberay"),
                                          lambda: RayHead.kubernetes("deployment")])
def test_gpu_tier_without_gpu_type_is_refused_at_preview(seed, spec_factory):
    plan = _plan(seed)
    bad = dataclasses.replace(plan, infrastructure=dataclasses.replace(
        plan.infrastructure, compute_tier="dedicated_gpu", gpu_type=None, gpus_per_worker=1))
    mocks, program = _deploy_under_mocks(spec_factory(), bad)
    with pytest.raises(InvalidRayHead) as exc:
        program()
    assert fields(exc) == ["infrastructure.gpu_type"]
    assert [r.typ for r in mocks.resources] == ["test:index:Parent"]  # nothing of the head was registered


def test_max_workers_below_min_workers_is_refused_at_preview(seed):
    plan = _plan(seed)
    bad = dataclasses.replace(plan, infrastructure=dataclasses.replace(
        plan.infrastructure, min_workers=5, max_workers=2))
    mocks, program = _deploy_under_mocks(RayHead.kubernetes("kuberay"), bad)
    with pytest.raises(InvalidRayHead) as exc:
        program()
    assert fields(exc) == ["infrastructure.max_workers"]
    assert "below min_workers 5" in str(exc.value)
    assert [r.typ for r in mocks.resources] == ["test:index:Parent"]


def test_gpu_type_must_fit_a_node_label_on_kubernetes(seed):
    plan = _plan(seed, compute_tier="dedicated_gpu", gpu_type="A100 80GB", gpus_per_worker=1)
    _, program = _deploy_under_mocks(RayHead.kubernetes("kuberay"), plan)
    with pytest.raises(InvalidRayHead) as exc:
        program()
    assert fields(exc) == ["infrastructure.gpu_type"]


def test_the_core_schema_refuses_the_same_inconsistencies(seed):
    """The request layer catches these too; the Ray spec's own check covers plans built by other means."""
    seed["infrastructure"] = {"compute_tier": "dedicated_gpu", "min_workers": 4, "max_workers": 2}
    with pytest.raises(InvalidRequest) as exc:
        parse_request(seed)
    assert {"infrastructure.gpu_type", "infrastructure.max_workers"} <= {p for p, _ in exc.value.problems}


def test_external_output_url_is_checked_when_it_resolves(seed):
    plan = _plan(seed)
    pulumi.runtime.set_mocks(RecordingMocks(), preview=False)

    @pulumi.runtime.test
    def program():
        out = deploy_ray_head("ns-ray", RayHead.external(pulumi.Output.from_input("http://not-ray:80")), plan,
                              "ns_0123456789", Parent())
        return out.ray_head_node_url

    with pytest.raises(InvalidRayHead) as exc:
        program()
    assert fields(exc) == ["ray.url"]


def test_external_passthrough_registers_nothing(seed):
    plan = _plan(seed)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)

    @pulumi.runtime.test
    def program():
        out = deploy_ray_head("ns-ray", RayHead.external("ray://shared-ray:10001"), plan, "ns_0123456789", Parent())
        assert out.resources == []
        return pulumi.Output.all(out.ray_head_node_url, out.ray_dashboard_url).apply(
            lambda xs: assert_equal(xs, ["ray://shared-ray:10001", None]))

    program()
    assert [r.typ for r in mocks.resources] == ["test:index:Parent"]


def test_local_registers_one_dynamic_resource(seed):
    plan = _plan(seed)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=True)

    @pulumi.runtime.test
    def program():
        out = deploy_ray_head("ns-ray", RayHead.local(".mixpeek/ray"), plan, "ns_0123456789", Parent())
        assert len(out.resources) == 1

    program()
    heads = [r for r in mocks.resources if r.typ != "test:index:Parent"]
    assert [(r.typ, r.name) for r in heads] == [("pulumi-python:dynamic/mixpeek:LocalRayHead", "ns-ray")]
    inputs = heads[0].inputs
    assert inputs["state_dir"] == ".mixpeek/ray" and inputs["namespace_id"] == "ns_0123456789"
    assert inputs["__provider"]  # the serialized provider reaches the engine


def assert_equal(actual, expected):
    assert actual == expected, (actual, expected)


def test_imports_stay_lazy():
    """Specs, the local provider and the Kubernetes renderer import neither Ray nor pulumi_kubernetes."""
    code = ("import sys, mixpeek_infra\n"
            "from mixpeek_infra.ray.spec import RayHead\n"
            "import mixpeek_infra.ray.local, mixpeek_infra.ray.kubernetes, mixpeek_infra.ray.deploy\n"
            "RayHead.local(); RayHead.kubernetes('kuberay'); RayHead.external('ray://h:1')\n"
            "print(__import__('json').dumps(sorted(m for m in ('ray', 'pulumi_kubernetes', 'qdrant_client', "
            "'qdrant_edge') if m in sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == []


def test_from_config_takes_the_stack_token_for_kubernetes_heads_only():
    token = "stack-level-token-0001"
    k8s = RayHead.from_config({"mode": "kubernetes", "kubernetes": {"mode": "deployment"}}, auth_token=token)
    assert k8s.k8s.auth_token == token
    own = RayHead.from_config({"mode": "kubernetes", "kubernetes": {"auth_token": "own-token"}}, auth_token=token)
    assert own.k8s.auth_token == "own-token"
    assert RayHead.from_config({"mode": "local"}, auth_token=token).k8s is None
    assert RayHead.from_config({"mode": "external", "url": "ray://h:1"}, auth_token=token).mode == "external"


@pytest.mark.parametrize("spec_factory, expected", [
    (lambda: RayHead.local(".mixpeek/ray"), [("pulumi-python:dynamic/mixpeek:LocalRayHead", "shared-ray")]),
    (lambda: RayHead.kubernetes("kuberay"), [("kubernetes:core/v1:Namespace", "shared-ray-namespace"),
                                             ("kubernetes:ray.io/v1:RayCluster", "shared-ray-cluster"),
                                             ("kubernetes:networking.k8s.io/v1:NetworkPolicy",
                                              "shared-ray-network-policy")]),
    (lambda: RayHead.external("ray://ray.example.internal:10001"), []),
])
def test_shared_head_for_the_stack(spec_factory, expected):
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=True)
    urls = {}

    @pulumi.runtime.test
    def program():
        out = deploy_shared_ray_head("shared-ray", spec_factory())
        return out.ray_head_node_url.apply(lambda u: urls.update(url=u))

    program()
    assert sorted((r.typ, r.name) for r in mocks.resources) == sorted(expected)
    for r in mocks.resources:
        if r.typ.startswith("kubernetes:"):
            assert r.inputs["metadata"]["labels"]["mixpeek.io/namespace-id"] == "shared"
    if expected and expected[0][0].startswith("kubernetes:"):
        assert urls["url"] == "ray://shared-ray-head.mixpeek-shared-ray.svc.cluster.local:10001"
    elif not expected:
        assert urls["url"] == "ray://ray.example.internal:10001"
