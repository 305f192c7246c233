"""The stack program: Pulumi stack config -> one `Namespace` per Create Namespace body.

Config (project namespace `mixpeek-infra`):
  namespaces: list of request bodies, or of {request: body, key: str (stable resource name; default
              the namespace_name), qdrant: {...}, ray: {...}, deletion_protection: bool,
              namespace_id: str, cluster_id: str, collection_settings: {...}, vectors_on_disk: bool}
  qdrant:     default target: {path: .mixpeek/qdrant} or {url: ..., timeout: ..., prefer_grpc: ...}
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
from typing import Any, Mapping

import pulumi

from .cli import override_problems
from .extractors import DEFAULT_CATALOGUE, Catalogue, extractor_from_config
from .plan import NamespacePlan, plan_namespace
from .schema import InvalidRequest

_QDRANT_KEYS = {"url", "path", "timeout", "prefer_grpc"}


class StackConfigError(pulumi.RunError):
    """Stack config that cannot be deployed; the message lists every problem with its config path."""


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


def load_entries(items: Any, catalogue: Catalogue) -> list[NamespaceEntry]:
    """Validate every configured namespace; raise `StackConfigError` listing all problems."""
    if not isinstance(items, list) or not items:
        raise StackConfigError("config namespaces: expected a non-empty list of Create Namespace bodies")
    problems: list[tuple[str, str]] = []
    entries: list[NamespaceEntry] = []
    names: dict[str, int] = {}
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
            if value in names:
                problems.append((f"{where}.{field_name}", f"{value!r} is already used by namespaces[{names[value]}]"))
            names.setdefault(value, i)
        entries.append(NamespaceEntry(body, plan, overrides))
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
    """The stack program's body (stacks/__main__.py calls this); returns the namespaces by name."""
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
    entries = load_entries(config.require_object("namespaces"), catalogue)

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

    needs_shared = [e for e in entries if e.plan.infrastructure["compute_tier"] == "shared"
                    and not e.plan.infrastructure["ray_head_node_url"] and "ray" not in e.overrides]
    needs_default = any(e.plan.infrastructure["compute_tier"] != "shared" and not e.plan.infrastructure[
        "ray_head_node_url"] and "ray" not in e.overrides for e in entries)
    # The default head spec is built (and checked) only when a namespace or the shared head uses it.
    default_ray = ray_spec(ray_settings, "ray") if needs_default or (needs_shared and not shared_url) else None
    shared_head = None
    if needs_shared:
        shared_head = RayHead.external(shared_url or _shared_cluster(default_ray))

    namespaces: dict[str, Any] = {}
    for entry in entries:
        o = entry.overrides
        if "ray" in o:
            ray = ray_spec(o["ray"], f"namespaces.{entry.plan.namespace_name}.ray")
        elif entry.plan.infrastructure["compute_tier"] == "shared":
            ray = shared_head
        else:
            ray = default_ray
        target = qdrant_target(o["qdrant"], api_key) if "qdrant" in o else default_target
        if entry.plan.infrastructure["qdrant_url"]:
            target = None  # the request's own infrastructure.qdrant_url wins
        ns = Namespace(entry.key, NamespaceArgs(
            request=entry.request, qdrant=target, ray=ray, catalogue=catalogue,
            deletion_protection=bool(o.get("deletion_protection", True)),
            namespace_id=o.get("namespace_id"), cluster_id=o.get("cluster_id"),
            collection_settings=o.get("collection_settings"), vectors_on_disk=bool(o.get("vectors_on_disk", False))))
        pulumi.export(entry.plan.namespace_name, {
            "namespace_id": ns.namespace_id,
            "vector_inference_map": ns.vector_inference_map,
            "infrastructure": ns.infrastructure,
            "namespace": ns.namespace,
        })
        namespaces[entry.plan.namespace_name] = ns
    return namespaces


def _shared_cluster(spec) -> pulumi.Output[str]:
    """Run one Ray head for the stack's shared-tier namespaces; returns its URL."""
    from .ray.spec import deploy_shared_ray_head

    return deploy_shared_ray_head("shared-ray", spec).ray_head_node_url
