"""Which Ray head a namespace gets: `RayHead`, a frozen value object with three modes.

- `RayHead.external(url)`: an existing cluster (the shared tier). No resource; the URL passes through.
- `RayHead.local(state_dir=...)`: a head process on this machine (`LocalRayHead`, a dynamic resource).
- `RayHead.kubernetes(mode="deployment" | "kuberay", ...)`: pulumi-kubernetes resources.

Every constructor validates its arguments and raises `InvalidRayHead` (a `ValueError` and an
`InvalidRequest`) naming the field (`ray.url`, `ray.kubernetes.service_type`, ...) and the valid
choices. `infrastructure_problems` checks a spec against an infrastructure plan; `deploy.py` turns
specs into resources. Pure: imports neither `ray`, `pulumi_kubernetes` nor the deployers.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast, get_args

import pulumi
from pydantic import WithJsonSchema
from pydantic.json_schema import SkipJsonSchema

from ..problems import Problem, did_you_mean
from ..redact import redact_url
from ..schema import InvalidRequest
from ..vocabulary import DEFAULT_RAY_STATE_DIR, RAY_READY_TIMEOUT, RAY_STOP_TIMEOUT
from .local_settings import normalize_local_head

if TYPE_CHECKING:
    from ..plan import InfrastructurePlan, NamespacePlan

RayMode = Literal["external", "local", "kubernetes"]
KubernetesMode = Literal["deployment", "kuberay"]
ServiceType = Literal["ClusterIP", "NodePort", "LoadBalancer"]
PullPolicy = Literal["IfNotPresent", "Always", "Never"]

MODES: tuple[str, ...] = get_args(RayMode)
KUBERNETES_MODES: tuple[str, ...] = get_args(KubernetesMode)
SERVICE_TYPES: tuple[str, ...] = get_args(ServiceType)
PULL_POLICIES: tuple[str, ...] = get_args(PullPolicy)
RESOURCE_NAMES: tuple[str, ...] = ("cpu", "memory", "ephemeral-storage")

DEFAULT_STATE_DIR = DEFAULT_RAY_STATE_DIR  # the name callers used before vocabulary.py
DEFAULT_HEAD_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "2", "memory": "4Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
DEFAULT_WORKER_RESOURCES: dict[str, dict[str, str]] = {
    "requests": {"cpu": "2", "memory": "4Gi"},
    "limits": {"cpu": "2", "memory": "4Gi"},
}
DEFAULT_GPU_NODE_LABEL = "nvidia.com/gpu.product"

_RAY_URL = re.compile(r"^ray://(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?):(?P<port>[0-9]{1,5})$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_QUANTITY = re.compile(r"^(?P<num>[0-9]+(\.[0-9]+)?)(?P<unit>m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_UNITS = {
    None: 1.0,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "P": 1e15,
    "E": 1e18,
    "Ki": 2.0**10,
    "Mi": 2.0**20,
    "Gi": 2.0**30,
    "Ti": 2.0**40,
    "Pi": 2.0**50,
    "Ei": 2.0**60,
}

Problems = list[Problem]
LOCAL_FIELDS = ("state_dir", "num_cpus", "ready_timeout", "stop_timeout")  # RayHead's local head settings
MODE_KEYS: dict[str, tuple[str, ...]] = {
    "external": ("mode", "url"),
    "local": ("mode", *LOCAL_FIELDS),
    "kubernetes": ("mode", "kubernetes"),
}  # a head's keys in stack config

# JSON Schemas of the Kubernetes settings that a type alone does not say (`stack_config_json_schema` reads them).
_IMAGE_SCHEMA = {"type": "string", "pattern": "^\\S+$"}
_QUANTITY_SCHEMA = {
    "anyOf": [
        {"type": "string", "pattern": "^[0-9]+(\\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$"},
        {"type": "number", "exclusiveMinimum": 0},
    ]
}
_AMOUNTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cpu", "memory"],
    "properties": {r: _QUANTITY_SCHEMA for r in RESOURCE_NAMES},
}
_RESOURCES_SCHEMA = {
    "anyOf": [
        _AMOUNTS_SCHEMA,
        {
            "type": "object",
            "additionalProperties": False,
            "required": ["requests", "limits"],
            "properties": {"requests": _AMOUNTS_SCHEMA, "limits": _AMOUNTS_SCHEMA},
        },
    ]
}


class InvalidRayHead(InvalidRequest):
    """Ray head settings failed validation; `problems` lists `Problem(path, message)`."""

    heading = "invalid Ray head settings"


# ---------------------------------------------------------------------------------------------
# Small pure helpers (shared with the Kubernetes renderer and the tests)


def parse_quantity(value: str) -> float:
    """A Kubernetes quantity ("500m", "4Gi", "2") as a number; ValueError when malformed."""
    match = _QUANTITY.fullmatch(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. '500m', '2', '4Gi')")
    return float(match["num"]) * _UNITS[match["unit"]]


def ray_url_problem(url: str, path: str = "ray.url") -> Problem | None:
    """The problem with a Ray client URL, or None when it is `ray://host:port`. Never quotes credentials."""
    if not isinstance(url, str):
        return Problem(path, f"expected a string 'ray://host:port', got {type(url).__name__}")
    shown = redact_url(url)
    if shown != url:
        return Problem(
            path,
            f"{shown!r}: Ray URLs carry no credentials; give ray://host:port and authenticate "
            "with Ray token auth (RAY_AUTH_MODE=token, the token in RAY_AUTH_TOKEN on every client)",
        )
    match = _RAY_URL.fullmatch(url)
    if not match:
        return Problem(path, f"{url!r} is not a ray://host:port URL (e.g. ray://ray-head.example.internal:10001)")
    if not 1 <= int(match["port"]) <= 65535:
        return Problem(path, f"port {match['port']} of {url!r} is outside 1-65535")
    return None


def installed_ray_version() -> str | None:
    """The version of the `ray` distribution installed here, read from package metadata (never imports ray)."""
    from importlib import metadata

    try:
        return metadata.version("ray")
    except metadata.PackageNotFoundError:
        return None


def default_ray_image(gpu: bool = False, ray_version: str | None = None) -> str:
    """`rayproject/ray:<ray version>-py<major><minor>[-gpu]`, pinned to this client's Ray and Python.

    Ray Client refuses to connect when the client's Ray version or Python minor differs from the
    cluster's, so the image follows the environment that runs Pulumi (and, by default, the clients).
    """
    version = ray_version or installed_ray_version()
    if version is None:
        raise InvalidRayHead(
            [
                Problem(
                    "ray.kubernetes.image",
                    "Ray is not installed here, so the image cannot be pinned to the client's Ray "
                    "version; install 'mixpeek-infra[local]' or pass "
                    "image='rayproject/ray:<version>-py<NN>'",
                )
            ]
        )
    tag = f"{version}-py{sys.version_info.major}{sys.version_info.minor}"
    return f"rayproject/ray:{tag}{'-gpu' if gpu else ''}"


def _choice_problem(value: Any, choices: tuple[str, ...], path: str) -> Problem | None:
    if value not in choices:
        return Problem(
            path, f"{value!r} is not one of the valid choices{did_you_mean(value, choices)}: {', '.join(choices)}"
        )
    return None


def _normalize_resources(value: Any, path: str, problems: Problems) -> dict[str, dict[str, str]]:
    """{"cpu", "memory"} (requests = limits) or {"requests": {...}, "limits": {...}} -> the full form."""
    if not isinstance(value, Mapping):
        problems.append(
            Problem(path, f"expected a mapping like {{'cpu': '2', 'memory': '4Gi'}}, got {type(value).__name__}")
        )
        return {}
    if set(value) & {"requests", "limits"}:
        extra = sorted(set(value) - {"requests", "limits"})
        if extra:
            problems.append(Problem(f"{path}.{extra[0]}", "unknown field; valid fields: requests, limits"))
        parts = {"requests": value.get("requests"), "limits": value.get("limits")}
    else:
        parts = {"requests": value, "limits": value}
    out: dict[str, dict[str, str]] = {}
    for part, entries in parts.items():
        where = f"{path}.{part}" if set(value) & {"requests", "limits"} else path
        if not isinstance(entries, Mapping):
            problems.append(Problem(where, "required: a mapping with cpu and memory"))
            continue
        out[part] = {}
        for key, quantity in entries.items():
            if key not in RESOURCE_NAMES:
                hint = " (GPUs come from infrastructure.gpus_per_worker)" if "gpu" in str(key) else ""
                problems.append(
                    Problem(f"{where}.{key}", f"unknown resource{hint}; valid choices: {', '.join(RESOURCE_NAMES)}")
                )
                continue
            if isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)):
                problems.append(
                    Problem(f"{where}.{key}", f"expected a quantity string like '2' or '4Gi', got {quantity!r}")
                )
                continue
            if isinstance(quantity, float) and quantity.is_integer():
                quantity = int(quantity)
            text = str(quantity)
            try:
                if parse_quantity(text) <= 0:
                    raise ValueError(f"{text!r} must be greater than zero")
            except ValueError as exc:
                problems.append(Problem(f"{where}.{key}", str(exc)))
                continue
            out[part][key] = text
        for key in ("cpu", "memory"):
            if key not in entries:
                problems.append(
                    Problem(f"{where}.{key}", "required: every Ray container gets cpu and memory requests and limits")
                )
    requests, limits = out.get("requests", {}), out.get("limits", {})
    for key in set(requests) & set(limits):
        if parse_quantity(requests[key]) > parse_quantity(limits[key]):
            problems.append(Problem(f"{path}.requests.{key}", f"request {requests[key]} exceeds limit {limits[key]}"))
    return out


# ---------------------------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class KubernetesRayHead:
    """Settings of a Ray head on Kubernetes (see `RayHead.kubernetes`). Declared once: its fields are the keys of
    `ray.kubernetes` in stack config (`KUBERNETES_KEYS`), and their JSON Schema is generated from these types."""

    mode: KubernetesMode = "deployment"
    namespace: Annotated[str | None, WithJsonSchema({"type": "string", "pattern": _DNS_LABEL.pattern})] = None
    create_namespace: bool = True
    image: Annotated[str, WithJsonSchema(_IMAGE_SCHEMA)] = ""
    gpu_image: Annotated[str, WithJsonSchema(_IMAGE_SCHEMA)] = ""
    service_type: ServiceType = "ClusterIP"
    auth_token: SkipJsonSchema[Any] = None  # pulumi.Input[str]; always a Pulumi secret (in stack config: refused)
    head_resources: Annotated[Mapping[str, Mapping[str, str]], WithJsonSchema(_RESOURCES_SCHEMA)] = field(
        default_factory=lambda: dict(DEFAULT_HEAD_RESOURCES)
    )
    worker_resources: Annotated[Mapping[str, Mapping[str, str]], WithJsonSchema(_RESOURCES_SCHEMA)] = field(
        default_factory=lambda: dict(DEFAULT_WORKER_RESOURCES)
    )
    image_pull_policy: PullPolicy = "IfNotPresent"
    gpu_node_label: Annotated[str, WithJsonSchema({"type": "string", "minLength": 1})] = DEFAULT_GPU_NODE_LABEL
    client_cidrs: Annotated[tuple[str, ...], WithJsonSchema({"type": "array", "items": {"type": "string"}})] = ()
    provider: SkipJsonSchema[Any] = None  # pulumi.ProviderResource (code only)

    def __repr__(self) -> str:  # never show the token, even a plain string one
        token = "None" if self.auth_token is None else "'***'"
        return (
            f"KubernetesRayHead(mode={self.mode!r}, namespace={self.namespace!r}, image={self.image!r}, "
            f"service_type={self.service_type!r}, auth_token={token})"
        )


KUBERNETES_KEYS = tuple(f.name for f in dataclasses.fields(KubernetesRayHead) if f.name != "provider")


@dataclass(frozen=True)
class RayHead:
    """The Ray head a namespace uses. Build it with `external`, `local`, `kubernetes` or `from_config`.

    mode: "external" (an existing cluster's URL; no resource), "local" (a `ray start --head` process
        on this machine) or "kubernetes" (`k8s` holds its settings).
    url: the external cluster's `ray://host:port` (a plain string is validated at construction;
        a `pulumi.Output` when it resolves).
    state_dir, num_cpus, ready_timeout, stop_timeout: local head settings (see `RayHead.local`).
    k8s: the `KubernetesRayHead` settings of a Kubernetes head.
    """

    mode: RayMode
    url: Any = None  # pulumi.Input[str]
    state_dir: str = DEFAULT_RAY_STATE_DIR
    num_cpus: int | None = None
    ready_timeout: float = RAY_READY_TIMEOUT
    stop_timeout: float = RAY_STOP_TIMEOUT
    k8s: KubernetesRayHead | None = None

    def __post_init__(self) -> None:
        problems: Problems = []
        if (p := _choice_problem(self.mode, MODES, "ray.mode")) is not None:
            raise InvalidRayHead([p])
        if self.mode == "external":
            if self.url is None:
                problems.append(
                    Problem("ray.url", "required for mode 'external': the shared cluster's ray://host:port")
                )
            elif not isinstance(self.url, pulumi.Output) and (p := ray_url_problem(self.url)) is not None:
                problems.append(p)
        if self.mode == "local":
            settings, local_problems = normalize_local_head({k: getattr(self, k) for k in LOCAL_FIELDS})
            problems += local_problems
            for key in LOCAL_FIELDS:  # 2.0 CPUs -> 2, a 30 s timeout -> 30.0
                object.__setattr__(self, key, settings[key])
        if self.mode == "kubernetes" and self.k8s is None:
            problems.append(Problem("ray.kubernetes", "required for mode 'kubernetes'; use RayHead.kubernetes(...)"))
        if problems:
            raise InvalidRayHead(problems)

    # -- constructors -----------------------------------------------------------------------

    @classmethod
    def external(cls, url: pulumi.Input[str]) -> RayHead:
        """An existing Ray cluster reached at `url` (`ray://host:port`); creates no resource."""
        return cls(mode="external", url=url)

    @classmethod
    def local(
        cls,
        state_dir: str = DEFAULT_RAY_STATE_DIR,
        *,
        num_cpus: int | None = None,
        ready_timeout: float = RAY_READY_TIMEOUT,
        stop_timeout: float = RAY_STOP_TIMEOUT,
    ) -> RayHead:
        """A head process on this machine (`ray start --head --block`), with its files under `state_dir`.

        num_cpus: CPUs the head offers to tasks (default: Ray detects them).
        ready_timeout: seconds to wait until a Ray client can connect.
        stop_timeout: seconds delete waits for Ray's graceful shutdown before killing the session.
        """
        return cls(
            mode="local", state_dir=state_dir, num_cpus=num_cpus, ready_timeout=ready_timeout, stop_timeout=stop_timeout
        )

    @classmethod
    def kubernetes(
        cls,
        mode: KubernetesMode = "deployment",
        *,
        namespace: str | None = None,
        create_namespace: bool = True,
        image: str | None = None,
        gpu_image: str | None = None,
        service_type: str = "ClusterIP",
        auth_token: pulumi.Input[str] | None = None,
        head_resources: Mapping[str, Any] | None = None,
        worker_resources: Mapping[str, Any] | None = None,
        image_pull_policy: str = "IfNotPresent",
        gpu_node_label: str = DEFAULT_GPU_NODE_LABEL,
        client_cidrs: tuple[str, ...] | list[str] = (),
        provider: pulumi.ProviderResource | None = None,
    ) -> RayHead:
        """A Ray head on Kubernetes through pulumi-kubernetes.

        mode: "deployment" (a head-only Deployment and a Service) or "kuberay" (a `ray.io/v1`
            RayCluster with a head group and a worker group; needs the KubeRay operator).
        namespace: the Kubernetes namespace; default `mixpeek-<namespace name>`.
        create_namespace: create that namespace (default) or deploy into an existing one.
        image: the Ray image; default `rayproject/ray:<installed ray>-py<NN>` (Ray Client refuses a
            version or Python mismatch). gpu_image: the image of GPU pods; default the `-gpu` variant.
        service_type: ClusterIP (default), NodePort or LoadBalancer.
        auth_token: enables Ray token auth (`RAY_AUTH_MODE=token`); the token is kept as a Pulumi
            secret and stored in a Kubernetes Secret. Clients need the same token (`RAY_AUTH_TOKEN`).
        head_resources, worker_resources: `{"cpu": "2", "memory": "4Gi"}` (requests = limits) or
            `{"requests": {...}, "limits": {...}}`.
        gpu_node_label: node label matched against `infrastructure.gpu_type` on the GPU tier.
        client_cidrs: source CIDRs also admitted to the client port 10001 (for a NodePort or
            LoadBalancer service); by default only pods of the same Kubernetes namespace may connect.
        provider: the pulumi-kubernetes provider (default: the ambient one).
        """
        problems: Problems = []
        for p in (
            _choice_problem(mode, KUBERNETES_MODES, "ray.kubernetes.mode"),
            _choice_problem(service_type, SERVICE_TYPES, "ray.kubernetes.service_type"),
            _choice_problem(image_pull_policy, PULL_POLICIES, "ray.kubernetes.image_pull_policy"),
        ):
            if p is not None:
                problems.append(p)
        if namespace is not None and (not isinstance(namespace, str) or not _DNS_LABEL.fullmatch(namespace)):
            problems.append(
                Problem(
                    "ray.kubernetes.namespace",
                    f"{namespace!r} is not a Kubernetes namespace name (lowercase letters, digits and '-', at most 63)",
                )
            )
        if not isinstance(create_namespace, bool):
            problems.append(
                Problem("ray.kubernetes.create_namespace", f"expected true or false, got {create_namespace!r}")
            )
        for name, value in (("image", image), ("gpu_image", gpu_image)):
            if value is not None and (
                not isinstance(value, str) or not value.strip() or any(c.isspace() for c in value)
            ):
                problems.append(Problem(f"ray.kubernetes.{name}", f"{value!r} is not an image reference"))
        if not isinstance(gpu_node_label, str) or not _LABEL_KEY.fullmatch(gpu_node_label):
            problems.append(
                Problem("ray.kubernetes.gpu_node_label", f"{gpu_node_label!r} is not a Kubernetes label key")
            )
        if isinstance(auth_token, str) and not auth_token:
            problems.append(Problem("ray.kubernetes.auth_token", "empty; omit it to disable token auth"))
        elif (
            auth_token is not None
            and not isinstance(auth_token, (str, pulumi.Output))
            and not inspect.isawaitable(auth_token)
        ):
            problems.append(
                Problem(
                    "ray.kubernetes.auth_token",
                    f"expected a string (or a Pulumi secret), got {type(auth_token).__name__}",
                )
            )
        cidrs: tuple[str, ...] = ()
        if isinstance(client_cidrs, (list, tuple)):
            cidrs = tuple(client_cidrs)
            for i, cidr in enumerate(cidrs):
                if not _is_cidr(cidr):
                    problems.append(
                        Problem(f"ray.kubernetes.client_cidrs[{i}]", f"{cidr!r} is not a CIDR like 10.0.0.0/8")
                    )
        elif client_cidrs is not None:
            problems.append(
                Problem(
                    "ray.kubernetes.client_cidrs", f"expected a list of CIDRs like ['10.0.0.0/8'], got {client_cidrs!r}"
                )
            )
        head = _normalize_resources(
            DEFAULT_HEAD_RESOURCES if head_resources is None else head_resources,
            "ray.kubernetes.head_resources",
            problems,
        )
        worker = _normalize_resources(
            DEFAULT_WORKER_RESOURCES if worker_resources is None else worker_resources,
            "ray.kubernetes.worker_resources",
            problems,
        )
        if provider is not None and not isinstance(provider, pulumi.ProviderResource):
            problems.append(
                Problem(
                    "ray.kubernetes.provider", f"expected a pulumi_kubernetes.Provider, got {type(provider).__name__}"
                )
            )
        if problems:
            raise InvalidRayHead(problems)
        resolved_image = image or default_ray_image()
        resolved_gpu_image = gpu_image or (default_ray_image(gpu=True) if image is None else image)
        settings = KubernetesRayHead(
            mode=mode,
            namespace=namespace,
            create_namespace=create_namespace,
            image=resolved_image,
            gpu_image=resolved_gpu_image,
            service_type=cast(ServiceType, service_type),  # one of SERVICE_TYPES: checked above
            auth_token=auth_token,
            head_resources=head,
            worker_resources=worker,
            image_pull_policy=cast(PullPolicy, image_pull_policy),  # checked above
            gpu_node_label=gpu_node_label,
            client_cidrs=cidrs,
            provider=provider,
        )
        return cls(mode="kubernetes", k8s=settings)

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any],
        *,
        auth_token: pulumi.Input[str] | None = None,
        provider: pulumi.ProviderResource | None = None,
        source: str | None = None,
    ) -> RayHead:
        """A spec from stack config, e.g. `{"mode": "local", "state_dir": ".mixpeek/ray"}`,
        `{"mode": "external", "url": "ray://..."}` or `{"mode": "kubernetes", "kubernetes": {"mode": "kuberay", ...}}`.

        Unknown keys and bad values raise `InvalidRayHead` naming the field (`ray.<key>`) and the
        valid choices. `auth_token` (e.g. `pulumi.Config().get_secret("rayAuthToken")`) turns on
        token auth for a Kubernetes head unless its config names one itself; other modes ignore it.
        `provider` is passed to Kubernetes resources (it cannot come from config).
        """
        if not isinstance(config, Mapping):
            raise InvalidRayHead(
                [Problem("ray", f"expected a mapping with a 'mode' key, got {type(config).__name__}")], source
            )
        mode = config.get("mode")
        if mode is None:
            raise InvalidRayHead([Problem("ray.mode", f"required; valid choices: {', '.join(MODES)}")], source)
        if (p := _choice_problem(mode, MODES, "ray.mode")) is not None:
            raise InvalidRayHead([p], source)
        allowed = MODE_KEYS[mode]
        unknown = [k for k in config if k not in allowed]
        if unknown:
            raise InvalidRayHead(
                [
                    Problem(
                        f"ray.{k}",
                        f"unknown field for mode {mode!r}{did_you_mean(k, allowed)}; "
                        f"valid fields: {', '.join(allowed)}",
                    )
                    for k in unknown
                ],
                source,
            )
        try:
            if mode == "external":
                return cls.external(config.get("url"))  # type: ignore[arg-type]  # __post_init__ reports a missing url
            if mode == "local":
                return cls.local(**{k: config[k] for k in allowed[1:] if k in config})
            k8s = {} if config.get("kubernetes") is None else config["kubernetes"]
            if not isinstance(k8s, Mapping):
                raise InvalidRayHead([Problem("ray.kubernetes", f"expected a mapping, got {type(k8s).__name__}")])
            k8s_allowed = KUBERNETES_KEYS
            unknown = [k for k in k8s if k not in k8s_allowed]
            if unknown:
                raise InvalidRayHead(
                    [
                        Problem(
                            f"ray.kubernetes.{k}",
                            f"unknown field{did_you_mean(k, k8s_allowed)}; valid fields: {', '.join(k8s_allowed)}",
                        )
                        for k in unknown
                    ]
                )
            return cls.kubernetes(provider=provider, **k8s).with_auth_token(auth_token)
        except InvalidRayHead as exc:
            if source is None:
                raise
            raise InvalidRayHead(exc.problems, source) from None

    def with_auth_token(self, token: pulumi.Input[str] | None) -> RayHead:
        """This head with the stack's Ray token: a Kubernetes head without a token of its own takes it (token auth
        on); other heads, and a head with its own token, stay as they are."""
        if token is None or self.k8s is None or self.k8s.auth_token is not None:
            return self
        return dataclasses.replace(self, k8s=dataclasses.replace(self.k8s, auth_token=token))

    # -- checks against the plan ---------------------------------------------------------------

    def plan_problems(self, plan: NamespacePlan) -> Problems:
        """What is inconsistent between this head and a namespace's plan (see `infrastructure_problems`)."""
        return self.infrastructure_problems(plan.infrastructure, plan.namespace_name)

    def infrastructure_problems(self, infra: InfrastructurePlan, namespace_name: str) -> Problems:
        """What is inconsistent between this head and the infrastructure plan of the head `namespace_name`."""
        problems: Problems = []
        min_workers, max_workers = infra.min_workers, infra.max_workers
        if isinstance(min_workers, int) and isinstance(max_workers, int) and max_workers < min_workers:
            problems.append(
                Problem("infrastructure.max_workers", f"max_workers {max_workers} is below min_workers {min_workers}")
            )
        if infra.compute_tier == "dedicated_gpu":
            gpu_type = infra.gpu_type
            if not gpu_type:
                problems.append(
                    Problem("infrastructure.gpu_type", "required for compute_tier 'dedicated_gpu' (e.g. A100, T4)")
                )
            elif self.mode == "kubernetes" and not _LABEL_VALUE.fullmatch(str(gpu_type)):
                label = self.k8s.gpu_node_label if self.k8s else ""
                problems.append(
                    Problem(
                        "infrastructure.gpu_type",
                        f"{gpu_type!r} cannot be matched against the node label {label}: use "
                        "letters, digits, '-', '_' and '.' (at most 63)",
                    )
                )
            gpus = infra.gpus_per_worker
            if not isinstance(gpus, int) or gpus < 1:
                problems.append(
                    Problem(
                        "infrastructure.gpus_per_worker",
                        f"must be at least 1 for compute_tier 'dedicated_gpu', got {gpus!r}",
                    )
                )
        if self.mode == "kubernetes" and not _LABEL_VALUE.fullmatch(namespace_name):
            problems.append(Problem("namespace_name", f"{namespace_name!r} is not usable as a Kubernetes label value"))
        return problems

    def __repr__(self) -> str:
        if self.mode == "external":
            url = "<output>" if isinstance(self.url, pulumi.Output) else repr(redact_url(self.url))
            return f"RayHead.external({url})"
        if self.mode == "local":
            return f"RayHead.local(state_dir={self.state_dir!r})"
        return f"RayHead.kubernetes({self.k8s!r})"


def _is_cidr(value: Any) -> bool:
    import ipaddress

    if not isinstance(value, str) or "/" not in value:
        return False
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------------------------
# What a deployed head gives its namespace


@dataclass
class RayHeadOutputs:
    """What `deploy_ray_head` gives the namespace: the head's URLs and the resources it registered."""

    ray_head_node_url: pulumi.Output[str]
    ray_dashboard_url: pulumi.Output[Any]
    resources: list[pulumi.Resource] = field(default_factory=list)
    kubernetes_namespace: pulumi.Output[str] | None = None
