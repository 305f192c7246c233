"""The stack program: Pulumi stack config -> one `Namespace` per Create Namespace body.

Config (project namespace `mixpeek-infra`):
  namespaces: list of request bodies, or of {request: body, key: str (stable resource name; default
              the namespace_name), qdrant: {...}, ray: {...}, deletion_protection: bool,
              namespace_id: str, cluster_id: str, collection_settings: {...}, vectors_on_disk: bool}
  qdrant:     default target: {path: .mixpeek/qdrant} or {url: ..., timeout: ..., prefer_grpc: ...}, plus
              final_snapshot: DIR (snapshot each collection there before it is deleted or replaced);
              a namespace's own `qdrant` block replaces this one, final_snapshot included
  qdrantApiKey (secret): the API key of a `qdrant.url` target
  ray:        default Ray head for dedicated tiers ({mode: local|kubernetes, ...}) and, under
              `shared_url`, the shared cluster of shared-tier namespaces; without one, the stack
              runs one shared head (`shared-ray`) of the default mode for them
  rayAuthToken (secret): Ray token auth for Kubernetes heads
  extractors: user extractor versions [{name, version, vectors: [{output, size, inference_service, ...}]}]

Every body is validated before any resource is registered; a bad one stops the run naming
`namespaces[i].field.path`.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from typing import Any, Mapping, NamedTuple

import pulumi

from .cli import override_problems
from .extractors import DEFAULT_CATALOGUE, Catalogue, extractor_from_config
from .plan import NamespacePlan, collection_conflicts, plan_namespace
from .redact import redact_url
from .schema import InvalidRequest

_QDRANT_KEYS = {"url", "path", "timeout", "prefer_grpc", "final_snapshot"}


class StackConfigError(pulumi.RunError):
    """Stack config that cannot be deployed; the message lists every problem with its config path.

    Credentials inside URLs (`user:password@`) are redacted from the message.
    """

    def __init__(self, message: str):
        super().__init__(redact_url(message))


@dataclass
class NamespaceEntry:
    """One namespace of the stack: its request, its plan and its per-namespace overrides."""

    request: Mapping[str, Any]
    plan: NamespacePlan
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """The namespace's Pulumi resource name: `key` when given, else its namespace_name."""
        return self.overrides.get("key") or self.plan.namespace_name


def load_entries(items: Any, catalogue: Catalogue, qdrant: Mapping[str, Any] | None = None) -> list[NamespaceEntry]:
    """Validate every configured namespace (`qdrant`: the stack's default Qdrant settings, to tell which
    namespaces share a target); raise `StackConfigError` listing all problems."""
    if not isinstance(items, list) or not items:
        raise StackConfigError("config namespaces: expected a non-empty list of Create Namespace bodies")
    problems: list[tuple[str, str]] = []
    entries: list[NamespaceEntry] = []
    names: dict[str, int] = {}
    request_paths: dict[int, str] = {}  # stack index -> config path of its request body
    for i, item in enumerate(items):
        where = f"namespaces[{i}]"
        if isinstance(item, Mapping) and "request" in item:
            body, overrides = item["request"], {k: v for k, v in item.items() if k != "request"}
            bad = override_problems(overrides)
            if bad:
                problems += [(f"{where}.{path}", msg) for path, msg in bad]
                continue
            where += ".request"
        else:
            body, overrides = item, {}
        try:
            plan = plan_namespace(body, catalogue=catalogue, vectors_on_disk=bool(overrides.get("vectors_on_disk")))
        except InvalidRequest as exc:
            problems += [(f"{where}.{path}" if path != "(body)" else where, msg) for path, msg in exc.problems]
            continue
        for field_name, value in (("namespace_name", plan.namespace_name), ("key", overrides.get("key"))):
            if value is None:
                continue
            if names.get(value, i) != i:  # an entry's key may equal its own namespace_name
                path = f"{where}.namespace_name" if field_name == "namespace_name" else f"namespaces[{i}].key"
                problems.append((path, f"{value!r} is already used by namespaces[{names[value]}]"))
            names.setdefault(value, i)
        entries.append(NamespaceEntry(body, plan, overrides))
        request_paths[i] = where
    # (request_paths has one key per entry, in the same order: the entry's index in the stack)
    for i, field_name, message in collection_conflicts(
            [(i, e.plan, e.overrides) for i, e in zip(request_paths, entries)], qdrant):
        problems.append((f"namespaces[{i}].{field_name}" if field_name == "namespace_id"
                         else f"{request_paths[i]}.{field_name}", message))
    if problems:
        raise StackConfigError("invalid stack config:\n" + "\n".join(f"  {p}: {m}" for p, m in problems))
    return entries


def qdrant_target(settings: Mapping[str, Any] | None, api_key: pulumi.Input[str] | None):
    """A QdrantTarget from config (relative embedded paths resolve against the project root)."""
    from .qdrant.target import QdrantTarget

    settings = dict(settings or {})
    unknown = set(settings) - _QDRANT_KEYS
    if unknown:
        raise StackConfigError(f"config qdrant: unknown keys {sorted(unknown)}; valid keys: {sorted(_QDRANT_KEYS)}")
    if settings.get("url"):
        timeout = float(settings.get("timeout", 10.0))
        return QdrantTarget(url=settings["url"], api_key=api_key, timeout=timeout,
                            prefer_grpc=bool(settings.get("prefer_grpc", False)))
    return QdrantTarget(path=settings.get("path") or ".mixpeek/qdrant")


def run() -> dict[str, Any]:
    """The stack program's body (the root __main__.py calls this); returns the namespaces by name."""
    from .namespace import Namespace, NamespaceArgs
    from .ray.spec import RayHead

    # Each namespace keeps ~400 Outputs alive until the program ends; with the default third GC
    # threshold, full collections rescan them ever more often and cost per namespace grows with N.
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1000)
    config = pulumi.Config()
    catalogue = DEFAULT_CATALOGUE.copy()
    for i, item in enumerate(config.get_object("extractors") or []):
        try:
            catalogue.register(extractor_from_config(item))
        except (ValueError, TypeError, AttributeError) as exc:
            raise StackConfigError(f"config extractors[{i}]: {exc}") from None
    entries = load_entries(config.require_object("namespaces"), catalogue, qdrant=config.get_object("qdrant"))

    api_key = config.get_secret("qdrantApiKey")
    ray_token = config.get_secret("rayAuthToken")
    default_target = qdrant_target(config.get_object("qdrant"), api_key)
    ray_settings = dict(config.get_object("ray") or {"mode": "local"})
    shared_url = ray_settings.pop("shared_url", None)

    def ray_spec(settings: Mapping[str, Any], where: str) -> RayHead:
        try:
            return RayHead.from_config(settings, auth_token=ray_token)
        except ValueError as exc:
            raise StackConfigError(f"config {where}: {exc}") from None

    needs_shared = [e for e in entries if e.plan.infrastructure.compute_tier == "shared"
                    and not e.plan.infrastructure.ray_head_node_url and "ray" not in e.overrides]
    needs_default = any(e.plan.infrastructure.compute_tier != "shared" and not e.plan.infrastructure.ray_head_node_url and "ray" not in e.overrides for e in entries)
    # The default head spec is built (and checked) only when a namespace or the shared head uses it.
    default_ray = ray_spec(ray_settings, "ray") if needs_default or (needs_shared and not shared_url) else None
    shared_external = ray_spec({"mode": "external", "url": shared_url}, "ray.shared_url") \
        if needs_shared and shared_url else None
    shared_spec = default_ray if needs_shared and not shared_url else None  # the stack runs the shared head

    def own_ray(i: int, entry: NamespaceEntry) -> RayHead | None:
        """The entry's own head; None when it uses the shared head or its request's ray_head_node_url."""
        if "ray" in entry.overrides:
            return ray_spec(entry.overrides["ray"], f"namespaces[{i}].ray")
        infra = entry.plan.infrastructure
        return None if infra.ray_head_node_url or infra.compute_tier == "shared" else default_ray

    rays = [own_ray(i, entry) for i, entry in enumerate(entries)]
    heads = [_KubernetesHead(i, e.key, f"{e.key}-ray", ray, e.plan.namespace_name,
                             f"namespaces[{i}].ray" if "ray" in e.overrides else "ray")
             for i, (e, ray) in enumerate(zip(entries, rays)) if ray is not None and ray.mode == "kubernetes"]
    if shared_spec is not None and shared_spec.mode == "kubernetes":
        heads.insert(0, _KubernetesHead(None, None, "shared-ray", shared_spec, "shared-ray", "ray"))
    problems = _kubernetes_name_problems(heads)
    if problems:
        raise StackConfigError("invalid stack config:\n" + "\n".join(f"  {p}: {m}" for p, m in problems))

    # Nothing was registered up to here: every problem above stops the run before any resource exists.
    owned = _stack_kubernetes_namespaces(heads)
    if owned:
        from .ray.kubernetes import in_owned_namespace

        def tenant(ray: RayHead | None) -> RayHead | None:
            owner = owned.get(ray.k8s.namespace) if ray is not None and ray.mode == "kubernetes" else None
            return ray if owner is None else in_owned_namespace(ray, owner)

        rays, shared_spec = [tenant(ray) for ray in rays], tenant(shared_spec)
    shared_head = None
    if needs_shared:
        shared_head = shared_external or RayHead.external(_shared_cluster(shared_spec))

    namespaces: dict[str, Any] = {}
    for entry, ray in zip(entries, rays):
        o = entry.overrides
        if ray is None and entry.plan.infrastructure.compute_tier == "shared":
            ray = shared_head
        target = qdrant_target(o["qdrant"], api_key) if "qdrant" in o else default_target
        qdrant_settings = o["qdrant"] if "qdrant" in o else config.get_object("qdrant")
        final_snapshot = dict(qdrant_settings or {}).get("final_snapshot")
        if entry.plan.infrastructure.qdrant_url:
            target = None  # the request's own infrastructure.qdrant_url wins
        ns = Namespace(entry.key, NamespaceArgs(
            request=entry.request, qdrant=target, ray=ray, catalogue=catalogue,
            deletion_protection=bool(o.get("deletion_protection", True)),
            namespace_id=o.get("namespace_id"), cluster_id=o.get("cluster_id"),
            collection_settings=o.get("collection_settings"), vectors_on_disk=bool(o.get("vectors_on_disk", False)),
            final_snapshot=final_snapshot))
        pulumi.export(entry.plan.namespace_name, {
            "namespace_id": ns.namespace_id,
            "vector_inference_map": ns.vector_inference_map,
            "infrastructure": ns.infrastructure,
            "namespace": ns.namespace,
        })
        namespaces[entry.plan.namespace_name] = ns
    return namespaces


class _KubernetesHead(NamedTuple):
    """A Ray head of the stack on Kubernetes and where its config is."""

    index: int | None  # its namespaces[index]; None for the stack's shared head
    key: str | None  # its Namespace component's resource name; None for the shared head
    name: str  # the head's resource name, which names its Kubernetes objects
    spec: Any  # its RayHead
    namespace_name: str
    ray_path: str  # the config path of its Ray settings

    @property
    def label(self) -> str:
        return "the shared Ray head" if self.index is None else f"namespaces[{self.index}]"


def _kubernetes_name_problems(heads: list[_KubernetesHead]) -> list[tuple[str, str]]:
    """Kubernetes heads that would render one object name, or share a head's own (default) namespace."""
    from .ray.kubernetes import head_names

    problems: list[tuple[str, str]] = []
    objects: dict[tuple[str, str], _KubernetesHead] = {}
    users: dict[str, _KubernetesHead] = {}
    for head in heads:
        namespace, base = head_names(head.name, head.spec.k8s, head.namespace_name)
        first = objects.setdefault((namespace, base), head)
        if first is not head:
            problems.append((f"namespaces[{head.index}].key" if head.index is not None else head.ray_path,
                             f"its Ray head's Kubernetes objects ({base}-*) in namespace {namespace!r} would be "
                             f"{first.label}'s; set a `key` that names it differently"))
        first = users.setdefault(namespace, head)
        if first is not head and not (first.spec.k8s.namespace and head.spec.k8s.namespace):
            problems.append((f"{head.ray_path}.kubernetes.namespace",
                             f"Kubernetes namespace {namespace!r} is also {first.label}'s, and a head's default "
                             "namespace is its own (created and deleted with it): set another namespace, or the "
                             "same explicit ray.kubernetes.namespace for both so the stack owns it"))
    return problems


def _stack_kubernetes_namespaces(heads: list[_KubernetesHead]) -> dict[str, pulumi.Resource]:
    """One stack-level Kubernetes Namespace per explicit namespace a head asks to create.

    The stack owns it, so removing one of its heads never deletes it. Aliases carry over the
    `Namespace` object a single head created before (`<head>-namespace`), so adopting it is no replace.
    """
    from .namespace import NAMESPACE_TYPE
    from .ray.kubernetes import deploy_kubernetes_namespace

    groups: dict[str, list[_KubernetesHead]] = {}
    for head in heads:
        if head.spec.k8s.namespace:
            groups.setdefault(head.spec.k8s.namespace, []).append(head)
    owned: dict[str, pulumi.Resource] = {}
    for namespace, group in groups.items():
        creators = [h for h in group if h.spec.k8s.create_namespace]
        if creators:
            aliases = [pulumi.Alias(name=f"{h.name}-namespace", parent=pulumi.ROOT_STACK_RESOURCE if h.key is None
                                    else pulumi.resource.create_urn(h.key, NAMESPACE_TYPE)) for h in creators]
            owned[namespace] = deploy_kubernetes_namespace(namespace, {h.spec.k8s.mode for h in group},
                                                           aliases=aliases)
    return owned


def _shared_cluster(spec) -> pulumi.Output[str]:
    """Run one Ray head for the stack's shared-tier namespaces; returns its URL."""
    from .ray.spec import deploy_shared_ray_head

    return deploy_shared_ray_head("shared-ray", spec).ray_head_node_url
