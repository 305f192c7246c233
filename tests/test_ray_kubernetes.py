"""Kubernetes Ray heads under Pulumi mocks: what is rendered, and that it validates.

The manifests are captured from the inputs the mocks receive (what the engine would send to the
Kubernetes provider), then checked with kubernetes-validate (strict, latest Kubernetes schema it
ships), with checkov, and the RayCluster against the KubeRay CRD's openAPIV3Schema.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pulumi
import pytest
import yaml

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.ray.deploy import deploy_ray_head
from mixpeek_infra.ray.spec import RayHead
from conftest import SHARED_REFERENCE, require_or_skip, require_shared_reference
from stackmocks import RecordingMocks

ROOT = Path(__file__).resolve().parent.parent
CRD_PATH = SHARED_REFERENCE / "kuberay" / "ray.io_rayclusters.yaml"
TOKEN = "tok-7d1f0c9e-ray-auth-secret"
NAMESPACE_ID = "ns_0123456789"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's secret signature in mock inputs


class Parent(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("mixpeek:index:Namespace", name)


def plain(value, secrets: list | None = None):
    """Mock inputs as plain manifest data: secrets unwrapped (and collected), whole floats back to ints."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            if secrets is not None:
                secrets.append(value["value"])
            return plain(value["value"], secrets)
        return {k: plain(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v, secrets) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Variants rendered once for the module: (name, RayHead factory, infrastructure block)
VARIANTS = {
    "deployment-cpu": (lambda: RayHead.kubernetes("deployment"), {"compute_tier": "dedicated_cpu"}),
    "deployment-gpu-token": (lambda: RayHead.kubernetes("deployment", auth_token=TOKEN),
                             {"compute_tier": "dedicated_gpu", "gpu_type": "NVIDIA-A100-SXM4-40GB",
                              "gpus_per_worker": 1}),
    "kuberay-gpu-autoscaling-token": (lambda: RayHead.kubernetes("kuberay", auth_token=TOKEN),
                                      {"compute_tier": "dedicated_gpu", "gpu_type": "A100", "gpus_per_worker": 2,
                                       "autoscaling_enabled": True, "min_workers": 1, "max_workers": 4}),
    "kuberay-cpu-fixed": (lambda: RayHead.kubernetes("kuberay", namespace="ray-shared", create_namespace=False),
                          {"compute_tier": "dedicated_cpu", "autoscaling_enabled": False, "min_workers": 3,
                           "max_workers": 3}),
    "deployment-hardened": (lambda: RayHead.kubernetes(
        "deployment", image="rayproject/ray@sha256:" + "ab" * 32, image_pull_policy="Always",
        service_type="LoadBalancer", client_cidrs=["10.20.0.0/16"]), {"compute_tier": "dedicated_cpu"}),
}


@pytest.fixture(scope="module")
def rendered():
    """{variant: {"resources": [MockResourceArgs], "manifests": [dict], "outputs": {...}, "secrets": [...]}}."""
    seed = json.loads((Path(__file__).parent / "data" / "seed.json").read_text())
    out = {}
    for variant, (factory, infra) in VARIANTS.items():
        body = copy.deepcopy(seed)
        body["namespace_name"] = f"spotify_{variant.replace('-', '_')}"
        body["infrastructure"] = infra
        plan = plan_namespace(body)
        mocks = RecordingMocks()
        pulumi.runtime.set_mocks(mocks, preview=False)
        captured = {}

        @pulumi.runtime.test
        def program():
            result = deploy_ray_head(f"{body['namespace_name']}-ray", factory(), plan,
                                     pulumi.Output.from_input(NAMESPACE_ID), Parent(body["namespace_name"]))
            captured["count"] = len(result.resources)
            return pulumi.Output.all(result.ray_head_node_url, result.ray_dashboard_url,
                                     result.kubernetes_namespace).apply(lambda xs: captured.update(urls=xs))

        program()
        secrets: list = []
        children = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
        assert len(children) == captured["count"]
        out[variant] = {"resources": children, "manifests": [plain(dict(r.inputs), secrets) for r in children],
                        "urls": captured["urls"], "secrets": secrets, "plan": plan}
    return out


def by_kind(variant_data, kind):
    return [m for m in variant_data["manifests"] if m["kind"] == kind]


def pod_templates(variant_data):
    """The pod templates of a variant's workloads, as (label, template)."""
    out = []
    for m in by_kind(variant_data, "Deployment"):
        out.append((f"{m['metadata']['name']}", m["spec"]["template"]))
    for m in by_kind(variant_data, "RayCluster"):
        out.append((f"{m['metadata']['name']}-head", m["spec"]["headGroupSpec"]["template"]))
        for group in m["spec"]["workerGroupSpecs"]:
            out.append((f"{m['metadata']['name']}-{group['groupName']}", group["template"]))
    return out


def as_pod(name, namespace, template):
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": template["metadata"]["labels"]},
            "spec": template["spec"]}


# --- what is rendered --------------------------------------------------------------------------


def test_resources_and_urls(rendered):
    kinds = {v: sorted(m["kind"] for m in d["manifests"]) for v, d in rendered.items()}
    assert kinds["deployment-cpu"] == ["Deployment", "Namespace", "NetworkPolicy", "Service"]
    assert kinds["deployment-gpu-token"] == ["Deployment", "Namespace", "NetworkPolicy", "Secret", "Service"]
    assert kinds["kuberay-gpu-autoscaling-token"] == ["Namespace", "NetworkPolicy", "RayCluster", "Secret"]
    assert kinds["kuberay-cpu-fixed"] == ["NetworkPolicy", "RayCluster"]  # existing namespace is used, not created
    # `spotify_deployment_cpu` is no DNS label, so its slugged names carry a stable hash of the original.
    url, dashboard, namespace = rendered["deployment-cpu"]["urls"]
    assert namespace == "mixpeek-spotify-deployment-cpu-dc2f04"
    host = "spotify-deployment-cpu-ray-21a70e-head.mixpeek-spotify-deployment-cpu-dc2f04.svc.cluster.local"
    assert url == f"ray://{host}:10001"
    assert dashboard == f"http://{host}:8265"
    url, _, namespace = rendered["kuberay-cpu-fixed"]["urls"]
    assert url == "ray://spotify-kuberay-cpu-fixed-ray-7d77e7-head.ray-shared.svc.cluster.local:10001"
    cluster = by_kind(rendered["kuberay-cpu-fixed"], "RayCluster")[0]
    assert cluster["spec"]["headGroupSpec"]["headService"]["metadata"]["name"] == \
        "spotify-kuberay-cpu-fixed-ray-7d77e7-head"


def test_children_are_parented_named_and_labelled(rendered):
    for variant, data in rendered.items():
        prefix = f"spotify_{variant.replace('-', '_')}-ray-"
        for res, manifest in zip(data["resources"], data["manifests"]):
            assert res.name.startswith(prefix), res.name
            assert manifest["metadata"]["labels"]["mixpeek.io/namespace-id"] == NAMESPACE_ID
            if manifest["kind"] != "Namespace":
                assert manifest["metadata"]["namespace"] == data["urls"][2]
        for _, template in pod_templates(data):
            assert template["metadata"]["labels"]["mixpeek.io/namespace-id"] == NAMESPACE_ID


def test_deployment_head(rendered):
    deployment = by_kind(rendered["deployment-cpu"], "Deployment")[0]
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    container = pod["containers"][0]
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert {p["containerPort"] for p in container["ports"]} >= {6379, 8265, 10001}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/gcs_healthz", "port": 8265}
    assert container["livenessProbe"]["httpGet"]["path"] == "/api/local_raylet_healthz"
    assert set(container["resources"]["requests"]) >= {"cpu", "memory"}
    assert set(container["resources"]["limits"]) >= {"cpu", "memory"}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 1000
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] > 30
    assert container["command"][:4] == ["ray", "start", "--head", "--block"]
    assert "--dashboard-host=0.0.0.0" in container["command"] and "--num-cpus=2" in container["command"]
    from importlib import metadata

    python = f"py{sys.version_info[0]}{sys.version_info[1]}"
    assert container["image"] == f"rayproject/ray:{metadata.version('ray')}-{python}"
    service = by_kind(rendered["deployment-cpu"], "Service")[0]
    assert service["spec"]["type"] == "ClusterIP"
    assert {p["port"] for p in service["spec"]["ports"]} >= {6379, 8265, 10001}
    assert service["spec"]["selector"] == spec["selector"]["matchLabels"]


def test_no_public_exposure_unless_asked(rendered):
    for variant, data in rendered.items():
        types = [m["spec"]["type"] for m in by_kind(data, "Service")]
        types += [m["spec"]["headGroupSpec"]["serviceType"] for m in by_kind(data, "RayCluster")]
        assert types == (["LoadBalancer"] if variant == "deployment-hardened" else ["ClusterIP"])


def test_gpu_tier_on_a_deployment(rendered):
    pod = by_kind(rendered["deployment-gpu-token"], "Deployment")[0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-40GB"}
    assert container["image"].endswith("-gpu") and "--num-gpus=1" in container["command"]


def test_kuberay_cluster(rendered):
    cluster = by_kind(rendered["kuberay-gpu-autoscaling-token"], "RayCluster")[0]
    spec = cluster["spec"]
    assert cluster["apiVersion"] == "ray.io/v1"
    assert spec["enableInTreeAutoscaling"] is True and "autoscalerOptions" in spec
    group = spec["workerGroupSpecs"][0]
    assert (group["minReplicas"], group["maxReplicas"], group["replicas"]) == (1, 4, 1)
    worker = group["template"]["spec"]
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert worker["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "2"
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "A100"}
    assert group["rayStartParams"]["num-gpus"] == "2"
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert {p["name"]: p["containerPort"] for p in head["ports"]} == {
        "gcs-server": 6379, "dashboard": 8265, "client": 10001, "metrics": 8080, "dashboard-agent": 52365}
    assert {p["containerPort"] for p in worker["containers"][0]["ports"]} == {8080, 52365}
    assert spec["rayVersion"] == head["image"].split(":")[1].split("-")[0]
    fixed = by_kind(rendered["kuberay-cpu-fixed"], "RayCluster")[0]["spec"]
    assert fixed["enableInTreeAutoscaling"] is False and "autoscalerOptions" not in fixed
    assert (fixed["workerGroupSpecs"][0]["minReplicas"], fixed["workerGroupSpecs"][0]["maxReplicas"]) == (3, 3)
    assert "nodeSelector" not in fixed["workerGroupSpecs"][0]["template"]["spec"]


def test_network_policy_admits_ray_ports_from_the_same_namespace_only(rendered):
    for variant, data in rendered.items():
        policy = by_kind(data, "NetworkPolicy")[0]["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        namespace_rule = policy["ingress"][0]
        assert namespace_rule["from"] == [{"podSelector": {}}]  # no namespaceSelector: this namespace only
        assert sorted(p["port"] for p in namespace_rule["ports"]) == [6379, 8265, 10001]
        cluster_rule = policy["ingress"][1]
        assert cluster_rule["from"] == [{"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}}]
        extra = policy["ingress"][2:]
        if variant == "deployment-hardened":
            assert extra == [{"from": [{"ipBlock": {"cidr": "10.20.0.0/16"}}],
                              "ports": [{"protocol": "TCP", "port": 10001}]}]
        else:
            assert extra == []
        for _, template in pod_templates(data):  # the policy selects every Ray pod
            labels = template["metadata"]["labels"]
            assert policy["podSelector"]["matchLabels"].items() <= labels.items()


def test_token_is_a_secret_and_only_in_the_secret(rendered):
    for variant in ("deployment-gpu-token", "kuberay-gpu-autoscaling-token"):
        data = rendered[variant]
        assert data["secrets"] == [{"auth_token": TOKEN}]  # delivered to the engine as a Pulumi secret
        secret_index = [m["kind"] for m in data["manifests"]].index("Secret")
        for i, res in enumerate(data["resources"]):
            if i != secret_index:
                assert TOKEN not in json.dumps(plain(dict(res.inputs)), default=str)
        name = data["manifests"][secret_index]["metadata"]["name"]
        if variant.startswith("deployment"):
            pod = by_kind(data, "Deployment")[0]["spec"]["template"]["spec"]
            env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
            assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/etc/ray/auth/auth_token"
            assert any(v.get("secret", {}).get("secretName") == name for v in pod["volumes"])
        else:
            auth = by_kind(data, "RayCluster")[0]["spec"]["authOptions"]
            assert auth == {"mode": "token", "secretName": name}
    for variant in ("deployment-cpu", "kuberay-cpu-fixed"):
        assert by_kind(rendered[variant], "Secret") == [] and rendered[variant]["secrets"] == []


def test_provider_is_passed_to_every_child(seed):
    import pulumi_kubernetes as k8s

    seed["infrastructure"] = {"compute_tier": "dedicated_cpu"}
    plan = plan_namespace(seed)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=True)

    @pulumi.runtime.test
    def program():
        provider = k8s.Provider("cluster-a", kubeconfig="{}")
        deploy_ray_head("ns-ray", RayHead.kubernetes("kuberay", provider=provider), plan, NAMESPACE_ID, Parent("ns"))

    program()
    children = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert children and all(r.provider and "cluster-a" in r.provider for r in children)


# --- validation ------------------------------------------------------------------------------------


def test_manifests_validate_with_kubernetes_validate(rendered):
    import kubernetes_validate

    version = kubernetes_validate.latest_version()
    checked = 0
    for data in rendered.values():
        for manifest in data["manifests"]:
            if manifest["kind"] == "RayCluster":
                for name, template in pod_templates({"manifests": [manifest]}):
                    kubernetes_validate.validate(as_pod(name, manifest["metadata"]["namespace"], template), version,
                                                 strict=True)
                    checked += 1
                continue
            kubernetes_validate.validate(manifest, version, strict=True)
            checked += 1
    assert checked >= 20


def _strict(schema):
    """A copy of a structural schema that refuses unknown fields, as the API server's pruning would drop them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (out.get("type") == "object" and "properties" in out and "additionalProperties" not in out
                and not out.get("x-kubernetes-preserve-unknown-fields")):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def test_raycluster_validates_against_the_kuberay_crd(rendered):
    import jsonschema

    crd = yaml.safe_load(require_shared_reference(CRD_PATH).read_text())
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1"
    schema = _strict(version["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft7Validator(schema)
    clusters = [m for d in rendered.values() for m in by_kind(d, "RayCluster")]
    assert len(clusters) == 2
    for cluster in clusters:
        errors = sorted(validator.iter_errors(cluster), key=lambda e: list(e.path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])
    # The strict schema does catch a misspelt field.
    broken = copy.deepcopy(clusters[0])
    broken["spec"]["workerGroupSpecs"][0]["maxReplica"] = 3
    assert list(validator.iter_errors(broken))


# checkov: the checks that apply to these workloads and must pass.
REQUIRED_CHECKS = {
    "CKV_K8S_8": "liveness probe", "CKV_K8S_9": "readiness probe",
    "CKV_K8S_10": "CPU requests", "CKV_K8S_11": "CPU limits",
    "CKV_K8S_12": "memory requests", "CKV_K8S_13": "memory limits",
    "CKV_K8S_14": "image tag fixed (not latest/blank)", "CKV_K8S_16": "not privileged",
    "CKV_K8S_17": "no hostPID", "CKV_K8S_18": "no hostIPC", "CKV_K8S_19": "no hostNetwork",
    "CKV_K8S_20": "allowPrivilegeEscalation false", "CKV_K8S_21": "not in the default namespace",
    "CKV_K8S_23": "no root containers", "CKV_K8S_25": "no added capabilities",
    "CKV_K8S_28": "NET_RAW dropped", "CKV_K8S_29": "pod securityContext",
    "CKV_K8S_30": "container securityContext", "CKV_K8S_31": "seccomp RuntimeDefault",
    "CKV_K8S_37": "capabilities minimized (drop ALL)", "CKV_K8S_35": "secrets as files, not env vars",
    "CKV_K8S_38": "service account token not mounted",
}
# Checks that do not apply, or are options of the user, with the reason; (check, variant or None for all).
DOCUMENTED_FAILURES = {
    "CKV_K8S_22": "read-only root filesystem: Ray writes its session, logs, spilled objects and runtime envs "
                  "under /tmp and the home directory of the image, where its Python also lives",
    "CKV_K8S_40": "high UID: the rayproject/ray images run as uid 1000, which owns their Python install",
    "CKV_K8S_43": "image digest: the tag is pinned to the client's Ray version; pass image='...@sha256:...' "
                  "to pin a digest (the hardened variant does)",
    "CKV_K8S_15": "imagePullPolicy Always: IfNotPresent by default for the version-pinned tag; "
                  "image_pull_policy='Always' satisfies it (the hardened variant does)",
    "CKV_K8S_38": "service account token: the KubeRay head mounts it only when in-tree autoscaling is on, "
                  "because the autoscaler sidecar talks to the Kubernetes API",
}


def _checkov_command() -> list[str]:
    """checkov from MIXPEEK_CHECKOV (CI: a venv of its own), else this interpreter's; CI fails without it."""
    given = os.environ.get("MIXPEEK_CHECKOV")
    if given:
        found = shutil.which(given)
        if found is None:
            pytest.fail(f"MIXPEEK_CHECKOV={given!r} is not an executable")
        return [found]
    if importlib.util.find_spec("checkov") is not None:
        return [sys.executable, "-m", "checkov.main"]
    require_or_skip("checkov is not installed: pip install -e '.[scan]' (or set MIXPEEK_CHECKOV)",
                    "MIXPEEK_REQUIRE_CHECKOV")


@pytest.fixture(scope="module")
def checkov_report(rendered, tmp_path_factory):
    command = _checkov_command()
    directory = tmp_path_factory.mktemp("manifests")
    for variant, data in rendered.items():
        for i, manifest in enumerate(data["manifests"]):
            docs = [manifest]
            if manifest["kind"] == "RayCluster":  # checkov does not look inside custom resources
                docs = [as_pod(n, manifest["metadata"]["namespace"], t)
                        for n, t in pod_templates({"manifests": [manifest]})]
            for j, doc in enumerate(docs):
                (directory / f"{variant}-{i}-{j}.yaml").write_text(yaml.safe_dump(doc))
    proc = subprocess.run([*command, "-d", str(directory), "--framework", "kubernetes",
                           "-o", "json", "--skip-download", "--compact"],
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    return report[0] if isinstance(report, list) else report


def _variant_of(check) -> str:
    path = check["file_path"].lstrip("/")
    return next(v for v in VARIANTS if path.startswith(v + "-"))


def test_checkov_required_checks_pass(checkov_report):
    """Every workload (Deployment, or Pod of a RayCluster) passes every required check, except the
    documented service-account exception of the autoscaling KubeRay head."""
    results = checkov_report["results"]
    passed = {(c["check_id"], c["resource"]) for c in results["passed_checks"]}
    workloads = {c["resource"] for c in results["passed_checks"] + results["failed_checks"]
                 if c["resource"].split(".")[0] in ("Deployment", "Pod") and c["check_id"].startswith("CKV_K8S_")}
    assert len(workloads) == 7  # 3 Deployments, 2 RayClusters x (head + workers)
    missing = []
    for resource in sorted(workloads):
        for check_id, what in REQUIRED_CHECKS.items():
            if (check_id, resource) not in passed:
                if check_id == "CKV_K8S_38" and "autoscaling" in resource and resource.endswith("-head"):
                    continue
                missing.append(f"{check_id} ({what}) on {resource}")
    assert not missing, missing
    # Graph check CKV2_K8S_6: every workload is selected by a NetworkPolicy.
    assert len([c for c in results["passed_checks"] if c["check_id"] == "CKV2_K8S_6"]) == len(workloads)


def test_checkov_failures_are_only_the_documented_ones(checkov_report):
    failed = checkov_report["results"]["failed_checks"]
    unexpected = [(c["check_id"], c["resource"]) for c in failed if c["check_id"] not in DOCUMENTED_FAILURES]
    assert not unexpected, unexpected
    by_check = {}
    for c in failed:
        by_check.setdefault(c["check_id"], set()).add(_variant_of(c))
    # The options named in the reasons do satisfy those checks.
    assert "deployment-hardened" not in by_check.get("CKV_K8S_43", set())
    assert "deployment-hardened" not in by_check.get("CKV_K8S_15", set())
    # The service account token is mounted only for the autoscaling KubeRay head.
    sa = [c["resource"] for c in failed if c["check_id"] == "CKV_K8S_38"]
    assert all("head" in r for r in sa) and by_check.get("CKV_K8S_38", set()) <= {"kuberay-gpu-autoscaling-token"}
