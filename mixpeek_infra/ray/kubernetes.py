"""A namespace's Ray head on Kubernetes, through pulumi-kubernetes.

`render_kubernetes_head` is pure: it turns the settings and the infrastructure plan into manifests
(plain dicts, camelCase as the Kubernetes API spells them; only the namespace id label and the token
may be Pulumi Outputs). `deploy_kubernetes_head` registers them as resources parented to the namespace
component. pulumi_kubernetes is imported only inside `deploy_kubernetes_head`.

mode "deployment": a head-only Deployment (one replica, Recreate, memory-backed /dev/shm, probes,
requests and limits, non-root, termination grace above Ray's 30 s drain) and a Service.
mode "kuberay": a `ray.io/v1` RayCluster with a head group and one worker group (needs the KubeRay
operator; token auth through `authOptions.secretName` needs KubeRay >= 1.6).
Both: the Kubernetes Namespace (unless an existing one is used), labels carrying the namespace id,
a NetworkPolicy admitting the Ray ports only from pods of the same Kubernetes namespace, and an
optional Secret holding the Ray auth token.

Names are unique by construction (`object_name`): a name that already is a valid DNS label is kept
as is; any other is slugged and gets a stable hash of the original, so `catalog_v2`, `catalog.v2`
and `Catalog_V2` never share an object. A Kubernetes namespace several heads share is created once,
by its owner (`deploy_kubernetes_namespace`), and the heads only use it (`in_owned_namespace`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi

from ..state_names import kubernetes_name
from .spec import KubernetesRayHead, RayHead, RayHeadOutputs, default_ray_image, installed_ray_version, parse_quantity

if TYPE_CHECKING:
    from ..plan import InfrastructurePlan

GCS_PORT = 6379
DASHBOARD_PORT = 8265
CLIENT_PORT = 10001
METRICS_PORT = 8080
AGENT_PORT = 52365
#: Ports clients in the same Kubernetes namespace may reach.
CLIENT_FACING_PORTS = (("gcs-server", GCS_PORT), ("dashboard", DASHBOARD_PORT), ("client", CLIENT_PORT))
#: Every port a Ray container declares (KubeRay's head Service only exposes declared ports).
CONTAINER_PORTS = CLIENT_FACING_PORTS + (("metrics", METRICS_PORT), ("dashboard-agent", AGENT_PORT))
RAY_UID, RAY_GID = 1000, 100  # the `ray` user of the rayproject/ray images
TERMINATION_GRACE_SECONDS = 60  # Ray drains for up to 30 s on SIGTERM
AUTH_DIR = "/etc/ray/auth"
AUTH_KEY = "auth_token"  # the key KubeRay's authOptions.secretName expects
AUTOSCALER_RESOURCES = {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "500m", "memory": "512Mi"}}
BASE_NAME_LIMIT = 40  # room for the suffixes (`-head`, `-auth`, `-ray`) and KubeRay's pod names
_DNS_1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")  # Service names must also start with a letter


@dataclass
class RenderedHead:
    """The manifests of one Kubernetes Ray head, in creation order, plus its addresses."""

    namespace: str
    service_name: str
    ray_head_node_url: str
    ray_dashboard_url: str
    namespace_manifest: dict[str, Any] | None
    secret_manifest: dict[str, Any] | None
    workload_manifests: list[dict[str, Any]] = field(default_factory=list)  # Deployment + Service, or RayCluster
    network_policy: dict[str, Any] = field(default_factory=dict)

    def manifests(self) -> list[dict[str, Any]]:
        """Every manifest, in the order they are created."""
        out = [m for m in (self.namespace_manifest, self.secret_manifest) if m is not None]
        return out + self.workload_manifests + [self.network_policy]


def object_name(text: str, limit: int = 63, *, letter_first: bool = False) -> str:
    """`text` as a Kubernetes object name (a DNS label of at most `limit` characters).

    Unchanged when it already is one (so existing objects keep their names); otherwise slugged,
    cut, and suffixed with a stable hash of `text`, so two different texts never share a name.
    `letter_first`: the name must also start with a letter (DNS-1035, as Service names do).
    """
    valid = _DNS_1035_LABEL if letter_first else _DNS_1123_LABEL
    if len(text) <= limit and valid.fullmatch(text):
        return text
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if letter_first and not slug[0].isalpha():
        slug = f"r-{slug}"
    return f"{slug[: limit - 7].rstrip('-')}-{hashlib.sha256(text.encode()).hexdigest()[:6]}"


def head_names(name: str, settings: KubernetesRayHead, namespace_name: str) -> tuple[str, str]:
    """(Kubernetes namespace, object name prefix) of the head `name` of namespace `namespace_name`.

    The namespace is `settings.namespace` when given, else the head's own `mixpeek-<namespace name>`.
    """
    namespace = settings.namespace or object_name(f"mixpeek-{namespace_name}")
    return namespace, object_name(name, BASE_NAME_LIMIT, letter_first=True)


def namespace_metadata(namespace: str, modes: Iterable[str], labels: Mapping[str, Any]) -> dict[str, Any]:
    """Metadata of a Kubernetes Namespace holding Ray heads of `modes`, with Pod Security admission labels.

    Everything in deployment mode meets "restricted"; KubeRay injects containers of its own
    (autoscaler, init), so a namespace with a KubeRay head enforces "baseline" and warns on "restricted".
    """
    enforce = "restricted" if set(modes) <= {"deployment"} else "baseline"
    return {
        "name": namespace,
        "labels": {
            **labels,
            "pod-security.kubernetes.io/enforce": enforce,
            "pod-security.kubernetes.io/warn": "restricted",
            "pod-security.kubernetes.io/audit": "restricted",
        },
    }


@dataclass(frozen=True, repr=False)  # keep the parent's repr, which never shows the token
class TenantRayHead(KubernetesRayHead):
    """Settings of a Kubernetes head living in a namespace `owner` (a `Namespace` resource) creates and
    deletes; the head never does either, and each of its objects depends on `owner`."""

    owner: Any = None


def in_owned_namespace(spec: RayHead, owner: pulumi.Resource) -> RayHead:
    """`spec` (a Kubernetes head) deployed into the namespace of `owner` instead of creating it."""
    settings = {f.name: getattr(spec.k8s, f.name) for f in dataclasses.fields(KubernetesRayHead)}
    return dataclasses.replace(spec, k8s=TenantRayHead(**{**settings, "create_namespace": False}, owner=owner))


def deploy_kubernetes_namespace(
    namespace: str,
    modes: Iterable[str],
    *,
    aliases: Iterable[pulumi.Alias] = (),
    provider: pulumi.ProviderResource | None = None,
) -> pulumi.Resource:
    """Register one Kubernetes Namespace that several heads share, as `kubernetes-namespace-<name>`.

    Its owner (e.g. the stack program) registers it once; pass it to `in_owned_namespace` for each
    head, so removing one head never removes the namespace.
    """
    import pulumi_kubernetes as k8s

    metadata = namespace_metadata(
        namespace, modes, {"app.kubernetes.io/part-of": "mixpeek", "app.kubernetes.io/managed-by": "pulumi"}
    )
    return k8s.core.v1.Namespace(
        f"kubernetes-namespace-{namespace}",
        metadata=metadata,
        opts=pulumi.ResourceOptions(provider=provider, aliases=list(aliases)),
    )


def _security_context() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": False,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def _pod_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RAY_UID,
        "runAsGroup": RAY_GID,
        "fsGroup": RAY_GID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _http_probe(path: str, port: int, *, delay: int, period: int, timeout: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": timeout,
        "failureThreshold": failures,
        "successThreshold": 1,
    }


def _resources(spec: Any, gpus: int) -> dict[str, dict[str, str]]:
    out = {part: dict(spec.get(part, {})) for part in ("requests", "limits")}
    if gpus:
        out["requests"]["nvidia.com/gpu"] = str(gpus)
        out["limits"]["nvidia.com/gpu"] = str(gpus)
    return out


def _whole_cpus(spec: Any) -> int:
    limits = spec.get("limits", {})
    cpu = limits.get("cpu") or spec.get("requests", {}).get("cpu") or "1"
    return max(1, math.floor(parse_quantity(cpu)))


def _gpu_scheduling(settings: KubernetesRayHead, gpu_type: str) -> dict[str, Any]:
    return {
        "nodeSelector": {settings.gpu_node_label: gpu_type},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def _ray_env(token: bool, *, mount_token: bool) -> list[dict[str, Any]]:
    env = [{"name": "RAY_USAGE_STATS_ENABLED", "value": "0"}]
    if token and mount_token:
        env += [
            {"name": "RAY_AUTH_MODE", "value": "token"},
            {"name": "RAY_AUTH_TOKEN_PATH", "value": f"{AUTH_DIR}/{AUTH_KEY}"},
        ]
    return env


def _container(
    name: str,
    image: str,
    pull: str,
    resources: dict,
    *,
    head: bool,
    token: bool,
    mount_token: bool,
    command: list[str] | None = None,
) -> dict[str, Any]:
    ports = CONTAINER_PORTS if head else (("metrics", METRICS_PORT), ("dashboard-agent", AGENT_PORT))
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if token and mount_token:
        mounts.append({"name": "ray-auth", "mountPath": AUTH_DIR, "readOnly": True})
    container: dict[str, Any] = {
        "name": name,
        "image": image,
        "imagePullPolicy": pull,
        "ports": [{"name": n, "containerPort": p, "protocol": "TCP"} for n, p in ports],
        "env": _ray_env(token, mount_token=mount_token),
        "resources": resources,
        "securityContext": _security_context(),
        "volumeMounts": mounts,
    }
    if head:
        container["readinessProbe"] = _http_probe(
            "/api/gcs_healthz", DASHBOARD_PORT, delay=10, period=5, timeout=2, failures=6
        )
        container["livenessProbe"] = _http_probe(
            "/api/local_raylet_healthz", AGENT_PORT, delay=30, period=10, timeout=5, failures=6
        )
    else:
        container["readinessProbe"] = _http_probe(
            "/api/local_raylet_healthz", AGENT_PORT, delay=10, period=5, timeout=2, failures=6
        )
        container["livenessProbe"] = _http_probe(
            "/api/local_raylet_healthz", AGENT_PORT, delay=30, period=10, timeout=5, failures=6
        )
    if command:
        container["command"] = command
    return container


def _pod_spec(
    container: dict[str, Any], *, token_secret: str | None, automount_token: bool, scheduling: dict[str, Any] | None
) -> dict[str, Any]:
    volumes: list[dict[str, Any]] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    if token_secret:
        volumes.append(
            {
                "name": "ray-auth",
                "secret": {
                    "secretName": token_secret,
                    "defaultMode": 0o440,
                    "items": [{"key": AUTH_KEY, "path": AUTH_KEY}],
                },
            }
        )
    spec: dict[str, Any] = {
        "automountServiceAccountToken": automount_token,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": _pod_security_context(),
        "containers": [container],
        "volumes": volumes,
    }
    if scheduling:
        spec.update(scheduling)
    return spec


def _ray_version_for(image: str) -> str | None:
    match = re.search(r":(\d+\.\d+\.\d+)(?:-|$)", image)
    return match.group(1) if match else installed_ray_version()


def image_mismatch(image: str) -> str | None:
    """A warning when a `rayproject/ray`-style tag names another Ray version or Python minor than this client."""
    import sys

    match = re.search(r":(\d+\.\d+\.\d+)(?:-py(\d)(\d+))?", image)
    if not match:
        return None
    ray_version = installed_ray_version()
    problems = []
    if ray_version and match.group(1) != ray_version:
        problems.append(f"Ray {match.group(1)} (client: {ray_version})")
    if match.group(2) and (int(match.group(2)), int(match.group(3))) != sys.version_info[:2]:
        problems.append(
            f"Python {match.group(2)}.{match.group(3)} (client: {sys.version_info.major}.{sys.version_info.minor})"
        )
    if problems:
        return (
            f"image {image} runs {' and '.join(problems)}; Ray Client refuses to connect across a version or "
            "Python minor mismatch"
        )
    return None


def render_kubernetes_head(
    name: str,
    settings: KubernetesRayHead,
    infra: InfrastructurePlan,
    namespace_name: str,
    namespace_id: pulumi.Input[str],
) -> RenderedHead:
    """The manifests of the Ray head `name` of namespace `namespace_name`, sized by `infra`.

    Pure; `namespace_id` (a label value) may be an Output.
    """
    gpu = infra.compute_tier == "dedicated_gpu"
    gpus = int(infra.gpus_per_worker or 0) if gpu else 0
    scheduling = _gpu_scheduling(settings, str(infra.gpu_type)) if gpu else None
    namespace, base = head_names(name, settings, namespace_name)
    service = f"{base}-head"
    token = settings.auth_token is not None
    secret_name = f"{base}-auth" if token else None
    image = settings.image or default_ray_image()
    gpu_image = settings.gpu_image or default_ray_image(gpu=True)

    selector = {"app.kubernetes.io/instance": base, "app.kubernetes.io/part-of": "mixpeek"}
    labels = {
        "app.kubernetes.io/name": "ray",
        **selector,
        "app.kubernetes.io/managed-by": "pulumi",
        "mixpeek.io/namespace-id": namespace_id,
        "mixpeek.io/namespace-name": namespace_name,
    }
    head_labels = {**labels, "app.kubernetes.io/component": "head"}
    head_selector = {**selector, "app.kubernetes.io/component": "head"}

    namespace_manifest = None
    if settings.create_namespace:
        namespace_manifest = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": namespace_metadata(
                namespace, [settings.mode], {k: v for k, v in labels.items() if k != "app.kubernetes.io/instance"}
            ),
        }
    secret_manifest = None
    if token:
        secret_manifest = {
            "apiVersion": "v1",
            "kind": "Secret",
            "type": "Opaque",
            "metadata": {"name": secret_name, "namespace": namespace, "labels": labels},
            "stringData": {AUTH_KEY: pulumi.Output.secret(settings.auth_token)},
        }

    workloads: list[dict[str, Any]] = []
    if settings.mode == "deployment":
        head_resources = _resources(settings.head_resources, gpus)
        command = [
            "ray",
            "start",
            "--head",
            "--block",
            f"--port={GCS_PORT}",
            "--dashboard-host=0.0.0.0",
            f"--dashboard-port={DASHBOARD_PORT}",
            f"--ray-client-server-port={CLIENT_PORT}",
            f"--metrics-export-port={METRICS_PORT}",
            f"--dashboard-agent-listen-port={AGENT_PORT}",
            f"--num-cpus={_whole_cpus(settings.head_resources)}",
            "--disable-usage-stats",
        ]
        if gpus:
            command.append(f"--num-gpus={gpus}")
        container = _container(
            "ray-head",
            gpu_image if gpu else image,
            settings.image_pull_policy,
            head_resources,
            head=True,
            token=token,
            mount_token=True,
            command=command,
        )
        workloads.append(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": service, "namespace": namespace, "labels": head_labels},
                "spec": {
                    "replicas": 1,
                    "strategy": {"type": "Recreate"},
                    "revisionHistoryLimit": 3,
                    "selector": {"matchLabels": head_selector},
                    "template": {
                        "metadata": {"labels": head_labels},
                        "spec": _pod_spec(
                            container, token_secret=secret_name, automount_token=False, scheduling=scheduling
                        ),
                    },
                },
            }
        )
        workloads.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": service, "namespace": namespace, "labels": head_labels},
                "spec": {
                    "type": settings.service_type,
                    "selector": head_selector,
                    "ports": [
                        {"name": n, "port": p, "targetPort": p, "protocol": "TCP"}
                        for n, p in CLIENT_FACING_PORTS + (("metrics", METRICS_PORT),)
                    ],
                },
            }
        )
    else:
        autoscaling = bool(infra.autoscaling_enabled)
        min_workers, max_workers = int(infra.min_workers or 0), int(infra.max_workers or 0)
        head_params = {
            "dashboard-host": "0.0.0.0",
            "metrics-export-port": str(METRICS_PORT),
            "dashboard-agent-listen-port": str(AGENT_PORT),
        }
        if autoscaling or min_workers > 0:
            head_params["num-cpus"] = "0"  # tasks run on workers; the head only coordinates
        worker_params = {"metrics-export-port": str(METRICS_PORT), "dashboard-agent-listen-port": str(AGENT_PORT)}
        if gpus:
            worker_params["num-gpus"] = str(gpus)
        head = _container(
            "ray-head",
            image,
            settings.image_pull_policy,
            _resources(settings.head_resources, 0),
            head=True,
            token=token,
            mount_token=False,
        )
        worker = _container(
            "ray-worker",
            gpu_image if gpu else image,
            settings.image_pull_policy,
            _resources(settings.worker_resources, gpus),
            head=False,
            token=token,
            mount_token=False,
        )
        worker_labels = {**labels, "app.kubernetes.io/component": "worker"}
        spec: dict[str, Any] = {
            "enableInTreeAutoscaling": autoscaling,
            "headGroupSpec": {
                "serviceType": settings.service_type,
                "headService": {"metadata": {"name": service, "labels": head_labels}},
                "rayStartParams": head_params,
                "template": {
                    "metadata": {"labels": head_labels},
                    # The in-tree autoscaler sidecar talks to the Kubernetes API with the head's token.
                    "spec": _pod_spec(head, token_secret=None, automount_token=autoscaling, scheduling=None),
                },
            },
            "workerGroupSpecs": [
                {
                    "groupName": "gpu-workers" if gpu else "workers",
                    "replicas": min_workers,
                    "minReplicas": min_workers,
                    "maxReplicas": max_workers,
                    "rayStartParams": worker_params,
                    "template": {
                        "metadata": {"labels": worker_labels},
                        "spec": _pod_spec(worker, token_secret=None, automount_token=False, scheduling=scheduling),
                    },
                }
            ],
        }
        version = _ray_version_for(image)
        if version:
            spec["rayVersion"] = version
        if autoscaling:
            spec["autoscalerOptions"] = {
                "upscalingMode": "Default",
                "idleTimeoutSeconds": 60,
                "imagePullPolicy": settings.image_pull_policy,
                "resources": AUTOSCALER_RESOURCES,
                "securityContext": _security_context(),
            }
        if token:
            spec["authOptions"] = {"mode": "token", "secretName": secret_name}
        workloads.append(
            {
                "apiVersion": "ray.io/v1",
                "kind": "RayCluster",
                "metadata": {"name": base, "namespace": namespace, "labels": labels},
                "spec": spec,
            }
        )

    ingress: list[dict[str, Any]] = [
        {
            "from": [{"podSelector": {}}],  # any pod of this Kubernetes namespace
            "ports": [{"protocol": "TCP", "port": p} for _, p in CLIENT_FACING_PORTS],
        },
        {"from": [{"podSelector": {"matchLabels": selector}}]},  # the Ray pods themselves, every port
    ]
    if settings.client_cidrs:
        ingress.append(
            {
                "from": [{"ipBlock": {"cidr": c}} for c in settings.client_cidrs],
                "ports": [{"protocol": "TCP", "port": CLIENT_PORT}],
            }
        )
    network_policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": f"{base}-ray", "namespace": namespace, "labels": labels},
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"], "ingress": ingress},
    }
    host = f"{service}.{namespace}.svc.cluster.local"
    return RenderedHead(
        namespace=namespace,
        service_name=service,
        ray_head_node_url=f"ray://{host}:{CLIENT_PORT}",
        ray_dashboard_url=f"http://{host}:{DASHBOARD_PORT}",
        namespace_manifest=namespace_manifest,
        secret_manifest=secret_manifest,
        workload_manifests=workloads,
        network_policy=network_policy,
    )


def _with_namespace(manifest: dict[str, Any], namespace: pulumi.Input[str]) -> dict[str, Any]:
    return {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}


def deploy_kubernetes_head(
    name: str,
    settings: KubernetesRayHead,
    infra: InfrastructurePlan,
    namespace_name: str,
    namespace_id: pulumi.Input[str],
    parent: pulumi.Resource | None,
) -> RayHeadOutputs:
    """Register the Kubernetes resources of the Ray head, children of `parent`, named `<name>-...`."""
    import pulumi_kubernetes as k8s

    rendered = render_kubernetes_head(name, settings, infra, namespace_name, namespace_id)
    image = settings.image or default_ray_image()
    if (warning := image_mismatch(image)) is not None:
        pulumi.log.warn(warning, resource=parent)
    opts = pulumi.ResourceOptions(parent=parent, provider=settings.provider)
    resources: list[pulumi.Resource] = []
    namespace: pulumi.Input[str] = rendered.namespace
    if isinstance(settings, TenantRayHead):
        namespace = settings.owner.metadata.name  # children wait for the owner's namespace
    if rendered.namespace_manifest is not None:
        ns = k8s.core.v1.Namespace(
            kubernetes_name(name, "namespace"), metadata=rendered.namespace_manifest["metadata"], opts=opts
        )
        resources.append(ns)
        namespace = ns.metadata.name  # children wait for the namespace
    if rendered.secret_manifest is not None:
        m = _with_namespace(rendered.secret_manifest, namespace)
        resources.append(
            k8s.core.v1.Secret(
                kubernetes_name(name, "auth"),
                metadata=m["metadata"],
                type=m["type"],
                string_data=m["stringData"],
                opts=pulumi.ResourceOptions.merge(
                    opts, pulumi.ResourceOptions(additional_secret_outputs=["data", "stringData"])
                ),
            )
        )
    for manifest in rendered.workload_manifests:
        m = _with_namespace(manifest, namespace)
        kind = m["kind"]
        if kind == "Deployment":
            resources.append(
                k8s.apps.v1.Deployment(kubernetes_name(name, "head"), metadata=m["metadata"], spec=m["spec"], opts=opts)
            )
        elif kind == "Service":
            resources.append(
                k8s.core.v1.Service(kubernetes_name(name, "service"), metadata=m["metadata"], spec=m["spec"], opts=opts)
            )
        else:
            resources.append(
                k8s.apiextensions.CustomResource(
                    kubernetes_name(name, "cluster"),
                    api_version=m["apiVersion"],
                    kind=kind,
                    metadata=m["metadata"],
                    spec=m["spec"],
                    opts=opts,
                )
            )
    m = _with_namespace(rendered.network_policy, namespace)
    resources.append(
        k8s.networking.v1.NetworkPolicy(
            kubernetes_name(name, "network-policy"), metadata=m["metadata"], spec=m["spec"], opts=opts
        )
    )
    return RayHeadOutputs(
        ray_head_node_url=pulumi.Output.from_input(rendered.ray_head_node_url),
        ray_dashboard_url=pulumi.Output.from_input(rendered.ray_dashboard_url),
        resources=resources,
        kubernetes_namespace=pulumi.Output.from_input(namespace),
    )
