"""The KubeRay operator reconciling the RayClusters we render (the `kubernetes` tier).

The control plane of `k8s_control_plane.py` (etcd, kube-apiserver, kube-controller-manager,
kube-scheduler, KWOK fake nodes, the reference RayCluster CRD) runs on loopback with the KubeRay
operator built from its Go module by `tools/k8s/kuberay/install` (bin directory in
`MIXPEEK_KUBERAY_BIN_DIR`). The manifests are what the program registers with pulumi-kubernetes
(captured under Pulumi mocks from `deploy_ray_head`, as tests/test_ray_kubernetes.py does; the
`pulumi up` path that stores them unchanged is tests/test_kubernetes_engine.py); they are created
over REST, and everything asserted is read back from the API server.

KWOK pods run no container: Ray itself, its probes and the token are not exercised; what is shown
is what the operator makes of our spec, and that those pods are admitted, scheduled and Ready.
Without the operator this module skips, and fails where CI sets MIXPEEK_REQUIRE_KUBERNETES=1.
"""

from __future__ import annotations

import base64
import copy
import time
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from k8s_control_plane import KUBERAY_OPERATOR, ControlPlane, k8s_bin_dir, kuberay_bin_dir, listening_sockets
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.ray import RayHead, deploy_ray_head
from stackmocks import RecordingMocks

pytestmark = pytest.mark.kubernetes

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "rt-kuberay-operator-test-token"
NAMESPACE_ID = "ns_0123456789"
PROD = "video_moderation"  # the prod stack's dedicated GPU namespace, rendered exactly as the stack does
WARM = "video_warm"  # the same request with one GPU worker kept warm (min_workers 1)
K8S_NS = "mixpeek-prod"
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # Pulumi's secret marker in mock inputs


class _Parent(pulumi.ComponentResource):
    def __init__(self, name: str) -> None:
        super().__init__("mixpeek:index:Namespace", name)


def _plain(value: Any) -> Any:
    """Mock inputs as manifest data: secrets unwrapped, whole floats back to ints."""
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return _plain(value["value"])
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def prod_entry(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(request body, ray config) of a namespace of stacks/Pulumi.prod.yaml."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())["config"]
    ray = {k: v for k, v in config["mixpeek-infra:ray"].items() if k != "shared_url"}
    for entry in config["mixpeek-infra:namespaces"]:
        body = entry.get("request", entry)
        if body["namespace_name"] == name:
            return copy.deepcopy(body), ray
    raise KeyError(name)


def render(body: dict[str, Any], ray_config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{kind: manifest} of the Kubernetes resources `deploy_ray_head` registers for `body`."""
    plan = plan_namespace(body)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    name = body["namespace_name"]

    @pulumi.runtime.test
    def program():
        spec = RayHead.from_config(ray_config, auth_token=TOKEN)
        return deploy_ray_head(f"{name}-ray", spec, plan, pulumi.Output.from_input(NAMESPACE_ID),
                               _Parent(name)).ray_head_node_url

    program()
    manifests = [_plain(dict(r.inputs)) for r in mocks.resources if r.typ.startswith("kubernetes:")]
    return {m["kind"]: m for m in manifests}


PATHS = {"Namespace": "/api/v1/namespaces", "Secret": "/api/v1/namespaces/{ns}/secrets",
         "RayCluster": "/apis/ray.io/v1/namespaces/{ns}/rayclusters",
         "NetworkPolicy": "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies"}


def create(cluster: ControlPlane, manifest: dict[str, Any]) -> dict[str, Any]:
    path = PATHS[manifest["kind"]].format(ns=manifest["metadata"].get("namespace", ""))
    if manifest["kind"] == "Namespace" and cluster.get(f"{path}/{manifest['metadata']['name']}"):
        return cluster.get(f"{path}/{manifest['metadata']['name']}")
    return cluster.call("POST", path + "?fieldValidation=Strict", manifest)


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    operator_dir = kuberay_bin_dir()
    cp = ControlPlane(k8s_bin_dir(), tmp_path_factory.mktemp("k8s"))
    try:
        cp.start()
        t0 = time.monotonic()
        cp.start_kuberay_operator(operator_dir)
        cp.timings["kuberay-operator"] = time.monotonic() - t0
    except BaseException:
        cp.stop()
        raise
    cp.operator_dir = operator_dir
    print(f"control plane and operator up: {cp.timings}")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def heads(cluster):
    """The prod namespace's head and a warm-worker variant, created in `mixpeek-prod`."""
    body, ray = prod_entry(PROD)
    warm = copy.deepcopy(body)
    warm["namespace_name"] = WARM
    warm["infrastructure"].update(min_workers=1, max_workers=2)
    out = {}
    for b in (body, warm):
        rendered = render(b, ray)
        for kind in ("Namespace", "Secret", "RayCluster", "NetworkPolicy"):
            create(cluster, rendered[kind])
        out[b["namespace_name"]] = rendered
    return out


# ------------------------------------------------------------------------------------------------
# helpers


def raycluster(cluster: ControlPlane, rendered: dict[str, Any]) -> dict[str, Any]:
    name = rendered["RayCluster"]["metadata"]["name"]
    return cluster.call("GET", f"/apis/ray.io/v1/namespaces/{K8S_NS}/rayclusters/{name}")


def ray_pods(cluster: ControlPlane, rendered: dict[str, Any], node_type: str) -> list[dict[str, Any]]:
    name = rendered["RayCluster"]["metadata"]["name"]
    return cluster.call("GET", f"/api/v1/namespaces/{K8S_NS}/pods?labelSelector=ray.io/cluster={name},"
                                f"ray.io/node-type={node_type}")["items"]


def wait_ready(cluster: ControlPlane, rendered: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    def ready() -> bool:
        return (raycluster(cluster, rendered).get("status") or {}).get("state") == "ready"

    try:
        cluster.wait_for(ready, timeout, f"RayCluster {rendered['RayCluster']['metadata']['name']} to be ready")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}\nstatus: {raycluster(cluster, rendered).get('status')}\n"
                             f"operator log:\n{cluster.log(KUBERAY_OPERATOR, 6000)}") from None
    return raycluster(cluster, rendered)


def running_and_ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod.get("status", {}).get("phase") == "Running" and conds.get("Ready") == "True"


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def unknown_fields(value: Any, schema: dict[str, Any], path: str = ".spec") -> list[str]:
    """Where `value` has a field that the openAPIV3Schema `schema` does not describe."""
    if schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("additionalProperties") is True:
        return []
    if isinstance(value, dict):
        props, extra = schema.get("properties") or {}, schema.get("additionalProperties")
        out = []
        for key, sub in value.items():
            if key in props:
                out += unknown_fields(sub, props[key], f"{path}.{key}")
            elif isinstance(extra, dict):  # a map: any key, values of one schema
                out += unknown_fields(sub, extra, f"{path}[{key}]")
            else:
                out.append(f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in unknown_fields(v, schema.get("items") or {}, f"{path}[{i}]")]
    return []


def missing(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` lacks or differs from `want` (the API server's defaults in `got` are ignored)."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: want a mapping, got {got!r}"]
        return [p for k, v in want.items()
                for p in (missing(v, got[k], f"{path}.{k}") if k in got else [f"{path}.{k}: missing"])]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: want {want!r}, got {got!r}"]
        return [p for i, (w, g) in enumerate(zip(want, got)) for p in missing(w, g, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: want {want!r}, got {got!r}"]


# ------------------------------------------------------------------------------------------------
# the operator


def test_operator_knows_every_field_of_our_raycluster(cluster):
    """The operator release's own CRD (generated from its Go types) has every field we send, so it
    decodes our whole spec; the reference CRD the API server validates with is a later release."""
    crd = yaml.load((cluster.operator_dir.parent / "share" / "crds" / "ray.io_rayclusters.yaml").read_text(),
                    Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    body, ray = prod_entry(PROD)
    body["infrastructure"]["min_workers"] = 1
    spec = render(body, ray)["RayCluster"]["spec"]
    assert spec["authOptions"]["secretName"]  # KubeRay >= 1.6 uses our token Secret instead of generating one
    assert unknown_fields(spec, schema) == [], "fields the operator's own RayCluster type does not have"
    # ...and the check does find a field that release lacks.
    lacking = {**spec, "authOptions": {"mode": "token", "issuer": "x"}}
    assert unknown_fields(lacking, schema) == [".spec.authOptions.issuer"]


def test_operator_runs_against_the_loopback_api_server_only(cluster):
    proc = cluster.procs[KUBERAY_OPERATOR]
    assert proc.poll() is None, cluster.log(KUBERAY_OPERATOR)
    listeners = listening_sockets({proc.pid})
    assert listeners == {("127.0.0.1", cluster.kuberay_probe_port)}, listeners  # no metrics, no webhook server
    log = cluster.log(KUBERAY_OPERATOR, 200_000)
    assert '"starting manager"' in log
    assert "Starting webhook server" not in log and "attempting to acquire leader lease" not in log


def test_operator_creates_the_head_pod_and_service_of_the_prod_raycluster(cluster, heads):
    rendered = heads[PROD]
    sent = rendered["RayCluster"]
    t0 = time.monotonic()
    rc = wait_ready(cluster, rendered)
    print(f"{PROD}: RayCluster ready {time.monotonic() - t0:.1f} s after creation")
    name, uid = rc["metadata"]["name"], rc["metadata"]["uid"]
    # The operator accepted the spec as stored (no defaulting webhook rewrote it).
    assert rc["spec"]["authOptions"] == sent["spec"]["authOptions"]

    # One head pod, owned by the RayCluster, made of our head template.
    [pod] = ray_pods(cluster, rendered, "head")
    owner = pod["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == ("RayCluster", name, uid, True)
    template = sent["spec"]["headGroupSpec"]["template"]
    labels = pod["metadata"]["labels"]
    assert template["metadata"]["labels"].items() <= labels.items()  # ours, kept as given
    assert (labels["ray.io/cluster"], labels["ray.io/node-type"], labels["ray.io/group"]) == (name, "head", "headgroup")
    version = (cluster.operator_dir.parent / "version").read_text().strip()
    assert pod["metadata"]["annotations"]["ray.io/kuberay-version"] == version  # made by the operator we built
    spec = pod["spec"]
    for key in ("securityContext", "enableServiceLinks", "automountServiceAccountToken",
                "terminationGracePeriodSeconds"):
        assert spec[key] == template["spec"][key], key
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in spec["volumes"]
    ours = template["spec"]["containers"][0]
    head = spec["containers"][0]
    assert head["name"] == "ray-head" and head["image"] == ours["image"] == "rayproject/ray:2.60.0-py311"
    for key in ("resources", "securityContext", "readinessProbe", "livenessProbe", "imagePullPolicy"):
        assert missing(ours[key], head[key]) == [], key
    assert all(m in head["volumeMounts"] for m in ours["volumeMounts"]), head["volumeMounts"]
    assert [(p["name"], p["containerPort"]) for p in head["ports"]] == \
        [(p["name"], p["containerPort"]) for p in ours["ports"]]
    # ...with the operator's `ray start` from our rayStartParams, and token auth from our Secret.
    command = " ".join(head["command"] + head.get("args", []))
    for flag in ("ray start --head", "--dashboard-host=0.0.0.0", "--metrics-export-port=8080",
                 "--dashboard-agent-listen-port=52365", "--num-cpus=0", "--no-monitor"):
        assert flag in command, (flag, command)
    secret_ref = {"secretKeyRef": {"name": sent["spec"]["authOptions"]["secretName"], "key": "auth_token"}}
    env = env_of(head)
    assert env["RAY_USAGE_STATS_ENABLED"] == "0"
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN"] == secret_ref
    # In-tree autoscaling: the autoscaler sidecar, with our options, and its own service account.
    [autoscaler] = [c for c in spec["containers"] if c["name"] == "autoscaler"]
    assert autoscaler["image"] == ours["image"]
    assert autoscaler["resources"] == sent["spec"]["autoscalerOptions"]["resources"]
    assert missing(sent["spec"]["autoscalerOptions"]["securityContext"], autoscaler["securityContext"]) == []
    assert env_of(autoscaler)["RAY_AUTH_TOKEN"] == secret_ref
    assert spec["serviceAccountName"] == name
    for kind, path in (("ServiceAccount", "/api/v1"), ("Role", "/apis/rbac.authorization.k8s.io/v1"),
                       ("RoleBinding", "/apis/rbac.authorization.k8s.io/v1")):
        plural = kind.lower() + "s"
        obj = cluster.get(f"{path}/namespaces/{K8S_NS}/{plural}/{name}")
        assert obj is not None and obj["metadata"]["ownerReferences"][0]["uid"] == uid, kind
    # Pod Security admission (enforce baseline) admitted it, the scheduler placed it on the CPU node
    # and KWOK marked it Running and Ready.
    assert spec["nodeName"] == "kwok-cpu-0"
    assert running_and_ready(pod), pod["status"]
    # The operator used our Secret and made none of its own.
    secrets = cluster.call("GET", f"/api/v1/namespaces/{K8S_NS}/secrets?labelSelector=ray.io/cluster={name}")
    assert secrets["items"] == []
    secret = cluster.get(f"/api/v1/namespaces/{K8S_NS}/secrets/{secret_ref['secretKeyRef']['name']}")
    assert base64.b64decode(secret["data"]["auth_token"]).decode() == TOKEN
    # No worker: min_workers is 0.
    assert ray_pods(cluster, rendered, "worker") == []

    # The head Service: our name and labels, ClusterIP, the head's declared ports, selecting that pod.
    headsvc = sent["spec"]["headGroupSpec"]["headService"]["metadata"]
    svc = cluster.call("GET", f"/api/v1/namespaces/{K8S_NS}/services/{headsvc['name']}")
    assert headsvc["labels"].items() <= svc["metadata"]["labels"].items()
    assert svc["metadata"]["ownerReferences"][0]["uid"] == uid
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"].startswith("10.96.")
    assert {(p["name"], p["port"]) for p in svc["spec"]["ports"]} == \
        {(p["name"], p["containerPort"]) for p in ours["ports"]}
    assert svc["spec"]["selector"].items() <= labels.items()
    # Our NetworkPolicy selects the pod the operator made.
    policy = rendered["NetworkPolicy"]["spec"]["podSelector"]["matchLabels"]
    assert policy.items() <= labels.items()

    # Status: ready, with the head's addresses, the service's ports and the worker bounds we set.
    status = rc["status"]
    assert status["head"] == {"podIP": pod["status"]["podIP"], "podName": pod["metadata"]["name"],
                              "serviceIP": svc["spec"]["clusterIP"], "serviceName": headsvc["name"]}
    assert status["endpoints"] == {p["name"]: str(p["containerPort"]) for p in ours["ports"]}
    counts = [status.get(k, 0) for k in ("desiredWorkerReplicas", "minWorkerReplicas", "maxWorkerReplicas")]
    assert counts == [0, 0, 4], status  # zeros are omitted from the status
    conditions = {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions", [])}
    assert conditions["HeadPodReady"][0] == "True" and conditions["RayClusterProvisioned"][0] == "True", conditions


def test_operator_creates_a_gpu_worker_on_the_gpu_node(cluster, heads):
    rendered = heads[WARM]
    sent = rendered["RayCluster"]
    rc = wait_ready(cluster, rendered)
    [worker] = ray_pods(cluster, rendered, "worker")
    group = sent["spec"]["workerGroupSpecs"][0]
    template = group["template"]
    assert template["metadata"]["labels"].items() <= worker["metadata"]["labels"].items()
    assert worker["metadata"]["labels"]["ray.io/group"] == group["groupName"] == "gpu-workers"
    spec, ours = worker["spec"], template["spec"]["containers"][0]
    assert spec["nodeSelector"] == template["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "T4"}
    assert template["spec"]["tolerations"][0] in spec["tolerations"]
    assert spec["nodeName"] == "kwok-gpu-t4-0" and running_and_ready(worker), (spec.get("nodeName"), worker["status"])
    container = spec["containers"][0]
    assert container["image"] == ours["image"] == "rayproject/ray:2.60.0-py311-gpu"
    assert container["resources"] == ours["resources"] and container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    for key in ("securityContext", "readinessProbe", "livenessProbe"):
        assert missing(ours[key], container[key]) == [], key
    command = " ".join(container["command"] + container.get("args", []))
    assert "ray start" in command and "--num-gpus=1" in command and "--address=" in command, command
    secret_ref = {"secretKeyRef": {"name": sent["spec"]["authOptions"]["secretName"], "key": "auth_token"}}
    assert env_of(container)["RAY_AUTH_TOKEN"] == secret_ref
    # The operator's wait-gcs-ready init container: the worker's image and security context, and the token.
    [init] = spec["initContainers"]
    assert init["name"] == "wait-gcs-ready" and init["image"] == ours["image"]
    assert missing(ours["securityContext"], init["securityContext"]) == []
    assert env_of(init)["RAY_AUTH_TOKEN"] == secret_ref
    status = rc["status"]
    counts = [status.get(k, 0) for k in ("desiredWorkerReplicas", "readyWorkerReplicas", "maxWorkerReplicas")]
    assert counts == [1, 1, 2], status
    assert status["desiredGPU"] == "1"


def test_operator_pods_would_also_be_admitted_under_restricted(cluster, heads):
    """Our KubeRay namespaces enforce Pod Security `baseline`; the pods this operator release makes of
    our spec (head + autoscaler, worker + init container) would pass `restricted` as well."""
    wait_ready(cluster, heads[WARM])
    pods = ray_pods(cluster, heads[PROD], "head") + ray_pods(cluster, heads[WARM], "worker")
    assert len(pods) == 2
    create(cluster, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
        "name": "restricted-probe", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}})
    for pod in pods:
        spec = copy.deepcopy(pod["spec"])
        # Not part of what Pod Security checks: the node, and the service account (absent from the probe
        # namespace) with the token volume admission added for it.
        for key in ("nodeName", "serviceAccountName", "serviceAccount"):
            spec.pop(key, None)
        spec["volumes"] = [v for v in spec["volumes"] if not v["name"].startswith("kube-api-access-")]
        for c in spec.get("initContainers", []) + spec["containers"]:
            c["volumeMounts"] = [m for m in c["volumeMounts"] if not m["name"].startswith("kube-api-access-")]
        status, body = cluster.request("POST", "/api/v1/namespaces/restricted-probe/pods?dryRun=All", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod["metadata"]["name"]}, "spec": spec})
        assert status == 201, body
    # The probe does refuse what restricted forbids.
    spec["containers"][0]["securityContext"]["allowPrivilegeEscalation"] = True
    status, body = cluster.request("POST", "/api/v1/namespaces/restricted-probe/pods?dryRun=All", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "escalating"}, "spec": spec})
    assert status == 403 and "violates PodSecurity" in str(body), body


def test_max_workers_update_keeps_the_head_pod(cluster, heads):
    """Our max_workers change is an in-place RayCluster update; the operator does not restart the head."""
    rendered = heads[PROD]
    name = rendered["RayCluster"]["metadata"]["name"]
    [before] = ray_pods(cluster, rendered, "head")
    spec = copy.deepcopy(rendered["RayCluster"]["spec"])
    spec["workerGroupSpecs"][0]["maxReplicas"] = 6
    cluster.merge_patch(f"/apis/ray.io/v1/namespaces/{K8S_NS}/rayclusters/{name}",
                        {"spec": {"workerGroupSpecs": spec["workerGroupSpecs"]}})
    cluster.wait_for(lambda: (raycluster(cluster, rendered).get("status") or {}).get("maxWorkerReplicas") == 6,
                     60, "the operator to see maxReplicas 6")
    [after] = ray_pods(cluster, rendered, "head")
    assert after["metadata"]["uid"] == before["metadata"]["uid"] and running_and_ready(after)
    assert raycluster(cluster, rendered)["status"]["state"] == "ready"


def test_deleting_the_raycluster_removes_its_pods_and_service(cluster, heads):
    rendered = heads[WARM]
    name = rendered["RayCluster"]["metadata"]["name"]
    svc = rendered["RayCluster"]["spec"]["headGroupSpec"]["headService"]["metadata"]["name"]
    cluster.delete(f"/apis/ray.io/v1/namespaces/{K8S_NS}/rayclusters/{name}")
    cluster.wait_for(lambda: not ray_pods(cluster, rendered, "head") and not ray_pods(cluster, rendered, "worker")
                     and cluster.get(f"/api/v1/namespaces/{K8S_NS}/services/{svc}") is None,
                     120, f"the pods and Service of {name} to be gone")
    # The other head is untouched.
    assert [running_and_ready(p) for p in ray_pods(cluster, heads[PROD], "head")] == [True]
    # The operator logged no error but optimistic-concurrency conflicts on status updates (retried).
    errors = [line for line in cluster.log(KUBERAY_OPERATOR, 1_000_000).splitlines()
              if '"level":"error"' in line and "the object has been modified" not in line]
    assert not errors, "\n".join(errors[:5])


