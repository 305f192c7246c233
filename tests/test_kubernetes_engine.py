"""The Kubernetes heads against a real API server, deployed by the real engine (the `kubernetes` tier).

A control plane built from Go modules (`tools/k8s/install`: etcd, kube-apiserver,
kube-controller-manager, kube-scheduler, KWOK) runs on loopback (`k8s_control_plane.py`); the
Pulumi CLI (`tools/pulumi/install`) runs a prod-like stack on a copy of the project with the
pulumi-kubernetes provider plugin built from its Go module at the release the Python package pins,
installed into the project's own PULUMI_HOME. Everything asserted about objects is read back from
the API server over REST.

The tests of this module run in order on one stack: up, read back, then changes, refresh, destroy.
CI sets MIXPEEK_REQUIRE_KUBERNETES=1, so this tier fails there rather than skipping.
"""

from __future__ import annotations

import base64
import json
import secrets
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from k8s_control_plane import ControlPlane, k8s_bin_dir, listening_sockets
from pulumicli import PulumiProject, cli_bin_dir, ops_by_name

pytestmark = pytest.mark.kubernetes

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
TOKEN = "rt-" + secrets.token_hex(16)  # the Ray auth token; must appear nowhere in plain text
SECRET_SIG = "4dabf18193072939515e22adb298388d"  # how Pulumi marks a secret value in state
DEPLOY_NS = "search_dedicated"  # deployment-mode head in a Kubernetes namespace of its own
KUBERAY_NS = "video_moderation"  # KubeRay head (GPU workers) in the stack-owned mixpeek-prod
SIDE_NS = "image_search"  # a second KubeRay head sharing mixpeek-prod
SHARED_K8S_NS = "mixpeek-prod"
PLURALS = {"Namespace": "namespaces", "Secret": "secrets", "Service": "services", "Deployment": "deployments",
           "RayCluster": "rayclusters", "NetworkPolicy": "networkpolicies"}
K8S_PREFIX = "kubernetes:"


def prod_like_stack() -> dict[str, Any]:
    """stacks/Pulumi.prod.yaml with embedded Qdrant, deletion protection off (so the tier can destroy),
    and a deployment-mode dedicated namespace beside the KubeRay one."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    c = config["config"]
    c["mixpeek-infra:qdrant"] = {"path": ".mixpeek/qdrant"}
    namespaces = []
    for entry in c["mixpeek-infra:namespaces"]:
        entry = {"request": entry} if "request" not in entry else dict(entry)
        entry.pop("collection_settings", None)  # replication is a Qdrant-server setting
        entry["deletion_protection"] = False
        namespaces.append(entry)
    namespaces.append({
        "request": {"namespace_name": DEPLOY_NS, "description": "Dedicated CPU search",
                    "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
                    "infrastructure": {"compute_tier": "dedicated_cpu", "min_workers": 0, "max_workers": 2}},
        "ray": {"mode": "kubernetes", "kubernetes": {"mode": "deployment",
                                                     "head_resources": {"cpu": "1", "memory": "2Gi"}}},
        "deletion_protection": False,
    })
    c["mixpeek-infra:namespaces"] = namespaces
    return config


def side_namespace() -> dict[str, Any]:
    return {"request": {"namespace_name": SIDE_NS, "description": "Images, dedicated CPU",
                        "feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v1"}],
                        "infrastructure": {"compute_tier": "dedicated_cpu", "min_workers": 1, "max_workers": 3}},
            "deletion_protection": False}


# ------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    bin_dir = k8s_bin_dir()
    cp = ControlPlane(bin_dir, tmp_path_factory.mktemp("k8s"))
    try:
        cp.start()
    except BaseException:
        cp.stop()
        raise
    print(f"control plane up: {cp.timings}")
    yield cp
    cp.stop()


@pytest.fixture(scope="module")
def stack(cluster, tmp_path_factory):
    """The prod-like project, after `pulumi up` (verbose engine logs kept in `stack.up_logs`)."""
    bin_dir = cli_bin_dir()
    plugin_version = (cluster.bin_dir.parent / "provider-version").read_text().strip()
    pinned = json.loads(resources.files("pulumi_kubernetes").joinpath("pulumi-plugin.json").read_text())["version"]
    assert pinned == plugin_version, (
        f"the Python pulumi-kubernetes package asks for plugin v{pinned} but tools/k8s builds v{plugin_version}: "
        "pin pulumi-kubernetes in constraints.txt to the version tools/k8s/provider/version names")
    proj = PulumiProject(tmp_path_factory.mktemp("kproj"), bin_dir, {STACK: prod_like_stack()})
    proj.env["KUBECONFIG"] = str(cluster.kubeconfig)
    proj.run("plugin", "install", "resource", "kubernetes", f"v{plugin_version}",
             "--file", str(cluster.bin_dir / "pulumi-resource-kubernetes"))
    proj.init(STACK)
    proj.run("config", "set", "--secret", "rayAuthToken", TOKEN, "-s", STACK)
    t0 = time.monotonic()
    up = proj.run("up", "--yes", "--skip-preview", "-s", STACK, "--logflow", "-v=9", "--logtostderr", timeout=900)
    proj.up_seconds = time.monotonic() - t0
    proj.up_logs = up.stdout + up.stderr
    yield proj
    proj.run("cancel", "--yes", check=False, timeout=60)
    proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", STACK, check=False, timeout=900)


# ------------------------------------------------------------------------------------------------
# helpers


def k8s_resources(proj: PulumiProject) -> list[dict[str, Any]]:
    return [r for r in proj.resources(STACK)
            if r["type"].startswith(K8S_PREFIX) and not r["type"].startswith("pulumi:providers:")]


def by_name(proj: PulumiProject) -> dict[str, dict[str, Any]]:
    return {r["urn"].split("::")[-1]: r for r in k8s_resources(proj)}


def api_path(kind: str, api_version: str, name: str, namespace: str | None = None) -> str:
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{PLURALS[kind]}/{name}"


def live(cluster: ControlPlane, resource: dict[str, Any]) -> dict[str, Any] | None:
    out = resource["outputs"]
    meta = out["metadata"]
    return cluster.get(api_path(out["kind"], out["apiVersion"], meta["name"], meta.get("namespace")))


def missing_fields(want: Any, got: Any, path: str = "") -> list[str]:
    """Where `got` (the live object) lacks or differs from `want` (what the program sent); secret
    values in state are encrypted, so they are skipped here and checked on their own."""
    if isinstance(want, dict) and SECRET_SIG in want:
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return [f"{path}: sent a mapping, API server has {got!r}"]
        return [p for k, v in want.items()
                for p in (missing_fields(v, got[k], f"{path}.{k}") if k in got
                          else [f"{path}.{k}: sent {v!r}, missing on the API server"])]
    if isinstance(want, list):
        if not isinstance(got, list) or len(got) != len(want):
            return [f"{path}: sent {want!r}, API server has {got!r}"]
        return [p for i, (w, g) in enumerate(zip(want, got)) for p in missing_fields(w, g, f"{path}[{i}]")]
    return [] if want == got else [f"{path}: sent {want!r}, API server has {got!r}"]


def sent(resource: dict[str, Any]) -> dict[str, Any]:
    """The object the program registered (state inputs), as the provider sends it."""
    return {k: v for k, v in resource["inputs"].items() if not k.startswith("__")}


def pods(cluster: ControlPlane, namespace: str, selector: str) -> list[dict[str, Any]]:
    return cluster.call("GET", f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}")["items"]


def running_and_ready(pod: dict[str, Any]) -> bool:
    conds = {c["type"]: c["status"] for c in pod.get("status", {}).get("conditions", [])}
    return pod.get("status", {}).get("phase") == "Running" and conds.get("Ready") == "True"


def set_namespaces(proj: PulumiProject, change) -> None:
    config = proj.read_stack(STACK)
    config["config"]["mixpeek-infra:namespaces"] = change(config["config"]["mixpeek-infra:namespaces"])
    proj.write_stack(STACK, config)


def entry(namespaces: list[dict[str, Any]], name: str) -> dict[str, Any]:
    return next(e for e in namespaces if e["request"]["namespace_name"] == name)


def up(proj: PulumiProject) -> subprocess.CompletedProcess[str]:
    return proj.run("up", "--yes", "--skip-preview", "-s", STACK, timeout=900)


def k8s_namespace_of(proj: PulumiProject, namespace_name: str) -> str:
    url = proj.outputs(STACK)[namespace_name]["infrastructure"]["ray_head_node_url"]
    return url.split("//")[1].split(".")[1]  # ray://<service>.<k8s namespace>.svc.cluster.local:10001


def wait_gone(cluster: ControlPlane, path: str, timeout: float = 120) -> None:
    cluster.wait_for(lambda: cluster.get(path) is None, timeout, f"{path} to be gone")


# ------------------------------------------------------------------------------------------------
# the control plane itself


def test_control_plane_is_loopback_only_token_authenticated_and_validates_rayclusters(cluster):
    # Every listener of the control plane is on 127.0.0.1.
    listeners = listening_sockets({p.pid for p in cluster.procs.values()})
    assert listeners, "found no listening socket of the control plane"
    assert all(host == "127.0.0.1" for host, _ in listeners), listeners
    assert ("127.0.0.1", cluster.port) in listeners
    # No anonymous access, no guessing the token.
    assert cluster.request("GET", "/api/v1/namespaces", token=None)[0] == 401
    assert cluster.request("GET", "/api/v1/namespaces", token="not-the-token")[0] == 401
    assert cluster.request("GET", "/api/v1/namespaces")[0] == 200
    # The components that make objects behave as in a cluster are up and did their work.
    assert all(cluster.alive().values()), cluster.alive()
    nodes = cluster.call("GET", "/api/v1/nodes")["items"]
    assert {n["metadata"]["name"] for n in nodes} == {"kwok-cpu-0", "kwok-gpu-t4-0"}
    version = cluster.call("GET", "/version")
    assert version["gitVersion"].startswith("v1.")

    # The KubeRay CRD's structural schema is enforced: a wrong type and an unknown field are refused.
    rc = {"apiVersion": "ray.io/v1", "kind": "RayCluster", "metadata": {"name": "bad", "namespace": "default"},
          "spec": {"headGroupSpec": {"rayStartParams": {}, "template": {"spec": {"containers": [
              {"name": "ray-head", "image": "rayproject/ray:2.60.0"}]}}},
              "workerGroupSpecs": [{"groupName": "w", "maxReplicas": "many", "rayStartParams": {},
                                    "template": {"spec": {"containers": [{"name": "w", "image": "x"}]}}}]}}
    status, body = cluster.request("POST", "/apis/ray.io/v1/namespaces/default/rayclusters?dryRun=All", rc)
    assert status == 422 and "maxReplicas" in json.dumps(body), body
    rc["spec"]["workerGroupSpecs"][0]["maxReplicas"] = 2
    rc["spec"]["notAField"] = True
    status, body = cluster.request(
        "POST", "/apis/ray.io/v1/namespaces/default/rayclusters?dryRun=All&fieldValidation=Strict", rc)
    assert status == 400 and 'unknown field \\"spec.notAField\\"' in json.dumps(body), body  # strict decoding


# ------------------------------------------------------------------------------------------------
# pulumi up of the prod-like stack


def test_up_creates_every_object_with_the_spec_we_rendered(cluster, stack):
    print(f"pulumi up of the prod-like stack took {stack.up_seconds:.0f} s")
    resources_ = k8s_resources(stack)
    kinds = sorted((r["outputs"]["kind"], r["outputs"]["metadata"].get("namespace", "")) for r in resources_)
    dep_ns, kr_ns = k8s_namespace_of(stack, DEPLOY_NS), k8s_namespace_of(stack, KUBERAY_NS)
    assert kr_ns == SHARED_K8S_NS
    assert kinds == sorted([
        ("Namespace", ""), ("Namespace", ""),
        ("Secret", dep_ns), ("Deployment", dep_ns), ("Service", dep_ns), ("NetworkPolicy", dep_ns),
        ("Secret", kr_ns), ("RayCluster", kr_ns), ("NetworkPolicy", kr_ns)]), kinds
    problems = []
    for r in resources_:
        obj = live(cluster, r)
        assert obj is not None, f"{r['urn']} is in the state but not on the API server"
        problems += [f"{r['urn'].split('::')[-1]}{p}" for p in missing_fields(sent(r), obj)]
        assert obj["metadata"]["uid"] == r["outputs"]["metadata"]["uid"]
        # pulumi-kubernetes waited for readiness for real: no skipAwait anywhere.
        assert "pulumi.com/skipAwait" not in (obj["metadata"].get("annotations") or {})
    assert not problems, "the API server dropped or changed fields we sent:\n" + "\n".join(problems)

    # The token Secret holds the token (and only the Secret does).
    names = by_name(stack)
    for ns_name in (DEPLOY_NS, KUBERAY_NS):
        secret = live(cluster, names[f"{ns_name}-ray-auth"])
        assert base64.b64decode(secret["data"]["auth_token"]).decode() == TOKEN
        assert secret["type"] == "Opaque"

    # Deployment mode: the Deployment is available because a real ReplicaSet made a real Pod that the
    # scheduler placed on a KWOK node, after PodSecurity "restricted" and ServiceAccount admission.
    dep = live(cluster, names[f"{DEPLOY_NS}-ray-head"])
    assert dep["status"].get("availableReplicas") == 1, dep["status"]
    rs = cluster.call("GET", f"/apis/apps/v1/namespaces/{dep_ns}/replicasets")["items"]
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["name"] == dep["metadata"]["name"]
    [pod] = pods(cluster, dep_ns, "app.kubernetes.io/component=head")
    assert running_and_ready(pod) and pod["spec"]["nodeName"] == "kwok-cpu-0", pod["status"]
    assert pod["spec"]["serviceAccountName"] == "default"

    # KubeRay mode: the RayCluster was stored as we rendered it (validated by the CRD's schema).
    rc = live(cluster, names[f"{KUBERAY_NS}-ray-cluster"])
    assert rc["spec"]["authOptions"] == {"mode": "token", "secretName": names[f"{KUBERAY_NS}-ray-auth"][
        "outputs"]["metadata"]["name"]}
    [group] = rc["spec"]["workerGroupSpecs"]
    assert (group["groupName"], group["minReplicas"], group["maxReplicas"]) == ("gpu-workers", 0, 4)
    worker = group["template"]["spec"]
    assert worker["nodeSelector"] == {"nvidia.com/gpu.product": "T4"}
    assert worker["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_security_settings_and_network_policies_are_as_documented(cluster, stack):
    names = by_name(stack)
    dep_ns = k8s_namespace_of(stack, DEPLOY_NS)
    # Pod Security admission labels: restricted for a deployment-only namespace, baseline (warn and
    # audit restricted) where KubeRay heads live.
    for ns, enforce in ((dep_ns, "restricted"), (SHARED_K8S_NS, "baseline")):
        labels = cluster.call("GET", f"/api/v1/namespaces/{ns}")["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == enforce
        assert labels["pod-security.kubernetes.io/warn"] == labels["pod-security.kubernetes.io/audit"] == "restricted"

    # ...and enforcement is real: a pod without our security settings is refused in the deployment
    # namespace (our head pod was admitted: see test_up_creates_every_object_with_the_spec_we_rendered).
    bad = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "unrestricted"},
           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
    status, body = cluster.request("POST", f"/api/v1/namespaces/{dep_ns}/pods?dryRun=All", bad)
    assert status == 403 and "violates PodSecurity" in json.dumps(body), body

    dep = live(cluster, names[f"{DEPLOY_NS}-ray-head"])
    rc = live(cluster, names[f"{KUBERAY_NS}-ray-cluster"])
    pod_specs = [dep["spec"]["template"]["spec"], rc["spec"]["headGroupSpec"]["template"]["spec"],
                 rc["spec"]["workerGroupSpecs"][0]["template"]["spec"]]
    # No service-account token, except on the KubeRay head when the in-tree autoscaler needs one.
    automount = [False, rc["spec"]["enableInTreeAutoscaling"], False]
    for spec, token in zip(pod_specs, automount):
        assert spec["automountServiceAccountToken"] is token and spec["enableServiceLinks"] is False
        assert spec["securityContext"] == {"runAsNonRoot": True, "runAsUser": 1000, "runAsGroup": 100, "fsGroup": 100,
                                           "seccompProfile": {"type": "RuntimeDefault"}}
        for c in spec["containers"]:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}
            assert c["securityContext"]["runAsNonRoot"] is True
            assert set(c["resources"]["requests"]) >= {"cpu", "memory"}
            assert set(c["resources"]["limits"]) >= {"cpu", "memory"}
    # The token reaches the deployment head only as a read-only file from the Secret.
    head = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in head["containers"][0]["env"]}
    assert env["RAY_AUTH_MODE"] == "token" and env["RAY_AUTH_TOKEN_PATH"] == "/etc/ray/auth/auth_token"
    assert all("valueFrom" not in e for e in head["containers"][0]["env"])
    [vol] = [v for v in head["volumes"] if v["name"] == "ray-auth"]
    assert vol["secret"]["defaultMode"] == 0o440
    # The Service is internal.
    svc = live(cluster, names[f"{DEPLOY_NS}-ray-service"])
    assert svc["spec"]["type"] == "ClusterIP" and svc["spec"]["clusterIP"].startswith("10.96.")

    # NetworkPolicies: ingress only; the client-facing Ray ports from pods of the same namespace, any
    # port between the head's own Ray pods; nothing from outside the namespace.
    for ns_name in (DEPLOY_NS, KUBERAY_NS):
        np = live(cluster, names[f"{ns_name}-ray-network-policy"])
        spec = np["spec"]
        selector = spec["podSelector"]["matchLabels"]
        assert spec["policyTypes"] == ["Ingress"] and "egress" not in spec
        assert spec["ingress"][0] == {"from": [{"podSelector": {}}],
                                      "ports": [{"protocol": "TCP", "port": p} for p in (6379, 8265, 10001)]}
        assert spec["ingress"][1] == {"from": [{"podSelector": {"matchLabels": selector}}]}
        assert len(spec["ingress"]) == 2  # no ipBlock: client_cidrs is empty
        assert not any("namespaceSelector" in f for rule in spec["ingress"] for f in rule["from"])
    # It selects the head pod that really runs.
    [pod] = pods(cluster, dep_ns, ",".join(f"{k}={v}" for k, v in
                                           live(cluster, names[f"{DEPLOY_NS}-ray-network-policy"])
                                           ["spec"]["podSelector"]["matchLabels"].items()))
    assert pod["metadata"]["labels"]["app.kubernetes.io/component"] == "head"


def test_ray_token_is_only_encrypted_in_state_config_and_engine_logs(stack):
    assert "Registering resource" in stack.up_logs or "RegisterResource" in stack.up_logs, "no verbose log captured"
    exported = stack.run("stack", "export", "-s", STACK).stdout
    preview = stack.run("preview", "--diff", "-s", STACK, "--logflow", "-v=9", "--logtostderr", timeout=600)
    for text, where in ((exported, "stack export"), (stack.up_logs, "up engine logs"),
                        (preview.stdout + preview.stderr, "preview logs"),
                        (stack.stack_file(STACK).read_text(), "stack file")):
        assert TOKEN not in text, f"the Ray token is in plain text in the {where}"
    secrets_ = [r for r in json.loads(exported)["deployment"]["resources"] if r["type"] == "kubernetes:core/v1:Secret"]
    assert len(secrets_) == 2
    for r in secrets_:
        # pulumi-kubernetes folds stringData into data (base64) when it checks a Secret's inputs.
        for part in ("inputs", "outputs"):
            held = {k: r[part][k] for k in ("stringData", "data") if k in r[part]}
            assert held and all(isinstance(v, dict) and SECRET_SIG in v for v in held.values()), (part, held)
    assert "secure:" in stack.stack_file(STACK).read_text()


# ------------------------------------------------------------------------------------------------
# changes


def test_pr_workflow_validate_then_preview_diff_shows_an_in_place_raycluster_update(stack):
    set_namespaces(stack, lambda ns: _set_max_workers(ns, KUBERAY_NS, 6))
    # The PR workflow's two commands, as .github/workflows/preview.yml runs them.
    validate = subprocess.run([sys.executable, "-m", "mixpeek_infra", "validate", f"stacks/Pulumi.{STACK}.yaml"],
                              cwd=stack.root, capture_output=True, text=True, timeout=120)
    assert validate.returncode == 0, validate.stderr
    assert KUBERAY_NS in validate.stdout and DEPLOY_NS in validate.stdout
    text = stack.run("preview", "--diff", "-s", STACK)
    assert "kubernetes:ray.io/v1:RayCluster" in text.stdout and "maxReplicas" in text.stdout, text.stdout
    ops = ops_by_name(stack.preview_steps(STACK))
    assert ops[f"{KUBERAY_NS}-ray-cluster"] == "update", ops
    changed = {n: op for n, op in ops.items() if op != "same"}
    assert all(op == "update" for op in changed.values()), changed
    k8s_changed = {n for n in changed if n in by_name(stack)}
    assert k8s_changed == {f"{KUBERAY_NS}-ray-cluster"}, changed


def _set_max_workers(namespaces, name, value):
    entry(namespaces, name)["request"]["infrastructure"]["max_workers"] = value
    return namespaces


def test_changing_max_workers_updates_the_raycluster_in_place(cluster, stack):
    before = live(cluster, by_name(stack)[f"{KUBERAY_NS}-ray-cluster"])
    wanted = before["spec"]["workerGroupSpecs"][0]["maxReplicas"] + 1  # a change whatever ran before
    set_namespaces(stack, lambda ns: _set_max_workers(ns, KUBERAY_NS, wanted))
    up(stack)
    after = live(cluster, by_name(stack)[f"{KUBERAY_NS}-ray-cluster"])
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # same object: no replace
    assert after["metadata"]["generation"] == before["metadata"]["generation"] + 1
    assert after["spec"]["workerGroupSpecs"][0]["maxReplicas"] == wanted
    assert ops_by_name(stack.preview_steps(STACK)).get(f"{KUBERAY_NS}-ray-cluster", "same") == "same"


def test_refresh_reports_objects_deleted_or_edited_out_of_band_and_up_restores_them(cluster, stack):
    names = by_name(stack)
    np, svc = names[f"{KUBERAY_NS}-ray-network-policy"], names[f"{DEPLOY_NS}-ray-service"]
    np_path = api_path("NetworkPolicy", "networking.k8s.io/v1", np["outputs"]["metadata"]["name"], SHARED_K8S_NS)
    svc_meta = svc["outputs"]["metadata"]
    svc_path = api_path("Service", "v1", svc_meta["name"], svc_meta["namespace"])
    cluster.delete(np_path)
    cluster.merge_patch(svc_path, {"metadata": {"labels": {"app.kubernetes.io/managed-by": "someone-else"}},
                                   "spec": {"ports": [{"name": "client", "port": 10001, "targetPort": 10001,
                                                       "protocol": "TCP"}]}})

    refresh = stack.run("refresh", "--yes", "--skip-preview", "-s", STACK)
    lines = refresh.stdout.splitlines()
    assert any(f"{KUBERAY_NS}-ray-network-policy" in ln and "deleted" in ln for ln in lines), refresh.stdout
    assert any(f"{DEPLOY_NS}-ray-service" in ln and "updated" in ln for ln in lines), refresh.stdout
    after = by_name(stack)
    assert f"{KUBERAY_NS}-ray-network-policy" not in after  # the state now knows it is gone
    refreshed = after[f"{DEPLOY_NS}-ray-service"]["outputs"]
    assert refreshed["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "someone-else"
    assert [p["port"] for p in refreshed["spec"]["ports"]] == [10001]

    # A field pulumi-kubernetes applies, changed by another field manager, is a Server-Side Apply
    # conflict: the next preview fails and names the field and the manager (nothing is overwritten).
    blocked = stack.run("preview", "--diff", "-s", STACK, check=False)
    text = blocked.stdout + blocked.stderr
    assert blocked.returncode != 0 and "Server-Side Apply field conflict" in text, text
    assert ".metadata.labels.app.kubernetes.io/managed-by" in text and "Python-urllib" in text, text

    # Once the other manager gives the value back, up recreates the policy and restores the ports.
    cluster.merge_patch(svc_path, {"metadata": {"labels": {"app.kubernetes.io/managed-by": "pulumi"}}})
    ops = ops_by_name(stack.preview_steps(STACK))
    assert ops[f"{KUBERAY_NS}-ray-network-policy"] == "create", ops
    assert ops[f"{DEPLOY_NS}-ray-service"] == "update", ops
    up(stack)
    assert cluster.get(np_path) is not None
    restored = cluster.get(svc_path)
    assert restored["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "pulumi"
    assert [p["port"] for p in restored["spec"]["ports"]] == [6379, 8265, 10001, 8080]


def test_two_heads_share_one_kubernetes_namespace_and_removing_one_leaves_the_other(cluster, stack):
    set_namespaces(stack, lambda ns: ns + [side_namespace()])
    up(stack)
    names = by_name(stack)
    ours = {k: live(cluster, v) for k, v in names.items() if k.startswith(f"{KUBERAY_NS}-")}
    side = {k: live(cluster, v) for k, v in names.items() if k.startswith(f"{SIDE_NS}-")}
    assert sorted(o["kind"] for o in side.values()) == ["NetworkPolicy", "RayCluster", "Secret"]
    assert {o["metadata"]["namespace"] for o in [*ours.values(), *side.values()]} == {SHARED_K8S_NS}
    clusters = cluster.call("GET", f"/apis/ray.io/v1/namespaces/{SHARED_K8S_NS}/rayclusters")["items"]
    assert len(clusters) == 2
    # Each policy selects only its own head's pods.
    selectors = [o["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/instance"]
                 for o in [*ours.values(), *side.values()] if o["kind"] == "NetworkPolicy"]
    assert len(set(selectors)) == 2

    set_namespaces(stack, lambda ns: [e for e in ns if e["request"]["namespace_name"] != SIDE_NS])
    up(stack)
    for name, obj in side.items():
        assert live(cluster, names[name]) is None, f"{name} is still on the API server"
    for name, obj in ours.items():
        again = live(cluster, names[name])
        assert again is not None and again["metadata"]["uid"] == obj["metadata"]["uid"], name
    ns = cluster.call("GET", f"/api/v1/namespaces/{SHARED_K8S_NS}")
    assert ns["status"]["phase"] == "Active"


def test_switching_mode_replaces_the_head(cluster, stack):
    dep_ns = k8s_namespace_of(stack, DEPLOY_NS)
    old = by_name(stack)

    def to_kuberay(namespaces):
        entry(namespaces, DEPLOY_NS)["ray"]["kubernetes"]["mode"] = "kuberay"
        return namespaces

    set_namespaces(stack, to_kuberay)
    ops = ops_by_name(stack.preview_steps(STACK))
    assert ops[f"{DEPLOY_NS}-ray-head"] == "delete" and ops[f"{DEPLOY_NS}-ray-service"] == "delete", ops
    assert ops[f"{DEPLOY_NS}-ray-cluster"] == "create", ops
    up(stack)
    assert live(cluster, old[f"{DEPLOY_NS}-ray-head"]) is None
    assert live(cluster, old[f"{DEPLOY_NS}-ray-service"]) is None
    new = by_name(stack)
    rc = live(cluster, new[f"{DEPLOY_NS}-ray-cluster"])
    assert rc is not None and rc["metadata"]["namespace"] == dep_ns
    # Its namespace now admits KubeRay's own containers.
    labels = cluster.call("GET", f"/api/v1/namespaces/{dep_ns}")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    # The Deployment's pods are gone too (the garbage collector removed its ReplicaSet and Pods).
    cluster.wait_for(lambda: not pods(cluster, dep_ns, "app.kubernetes.io/component=head"), 120,
                     "the old head's pods to be deleted")
    assert not cluster.call("GET", f"/apis/apps/v1/namespaces/{dep_ns}/replicasets")["items"]


def test_removing_a_namespace_deletes_its_kubernetes_objects_and_namespace(cluster, stack):
    dep_ns = k8s_namespace_of(stack, DEPLOY_NS)
    objs = {k: v for k, v in by_name(stack).items() if k.startswith(f"{DEPLOY_NS}-")}
    assert f"{DEPLOY_NS}-ray-namespace" in objs
    set_namespaces(stack, lambda ns: [e for e in ns if e["request"]["namespace_name"] != DEPLOY_NS])
    up(stack)
    # pulumi-kubernetes waited for the Namespace to be gone: the namespace controller finished it.
    assert cluster.get(f"/api/v1/namespaces/{dep_ns}") is None
    for name, r in objs.items():
        assert live(cluster, r) is None, name
    assert cluster.get(f"/api/v1/namespaces/{SHARED_K8S_NS}") is not None


def test_destroy_leaves_nothing_behind(cluster, stack):
    t0 = time.monotonic()
    stack.run("destroy", "--yes", "--skip-preview", "-s", STACK, timeout=900)
    print(f"pulumi destroy took {time.monotonic() - t0:.0f} s")
    assert cluster.get(f"/api/v1/namespaces/{SHARED_K8S_NS}") is None
    names = {n["metadata"]["name"] for n in cluster.call("GET", "/api/v1/namespaces")["items"]}
    assert names == {"default", "kube-system", "kube-public", "kube-node-lease"}, names
    assert cluster.call("GET", "/apis/ray.io/v1/rayclusters")["items"] == []
    for kind, path in (("NetworkPolicy", "/apis/networking.k8s.io/v1/networkpolicies"),
                       ("Deployment", "/apis/apps/v1/deployments")):
        left = [o["metadata"] for o in cluster.call("GET", path)["items"]]
        assert left == [], f"{kind}s left: {left}"
    assert k8s_resources(stack) == []
