"""Request -> NamespacePlan: the single source of truth of what a namespace needs.

Pure and deterministic: the same request gives the same plan. The component, the providers'
inputs and the CLI all render this plan. Imports nothing from Pulumi, Qdrant or Ray.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from urllib.parse import urlsplit

from .extractors import DEFAULT_CATALOGUE, Catalogue
from .problems import Problem
from .schema import (
    API_METRIC,
    SYSTEM_INDEXES,
    CreateNamespaceRequest,
    InvalidRequest,
    NamespaceInfrastructure,
    parse_request,
)
from .vocabulary import DEFAULT_QDRANT_PATH, NAMESPACE_ID, NAMESPACE_ID_RULE


@dataclass(frozen=True)
class VectorPlan:
    """One named vector of the namespace's collection."""

    name: str
    size: int
    distance: str
    datatype: str
    on_disk: bool
    inference_service: str | None  # None: a bring-your-own vector (vector_configs), no inference service
    feature_extractor_id: str | None  # None: a bring-your-own vector
    multivector: bool = False  # a list of vectors per point, compared with MaxSim (late interaction)


@dataclass(frozen=True)
class IndexPlan:
    """One payload index with its full field schema."""

    field_name: str
    type: str
    field_schema: dict[str, Any]
    is_protected: bool


@dataclass(frozen=True)
class InfrastructurePlan:
    """The namespace's effective infrastructure settings (never the Qdrant API key); defaults come from
    the request schema (`schema.NamespaceInfrastructure`)."""

    compute_tier: str
    autoscaling_enabled: bool
    min_workers: int
    max_workers: int
    max_concurrent_jobs: int
    max_custom_models: int
    max_custom_plugins: int
    gpu_type: str | None
    gpus_per_worker: int
    qdrant_collection: str | None
    qdrant_url: str | None
    ray_cluster_id: str | None
    ray_head_node_url: str | None
    ray_dashboard_url: str | None
    s3_plugin_bucket: str | None
    s3_plugin_prefix: str | None

    @property
    def uses_shared_head(self) -> bool:
        """Shared tier without its own `ray_head_node_url`: served by a shared Ray head."""
        return self.compute_tier == "shared" and not self.ray_head_node_url

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class NamespacePlan:
    """Everything a namespace needs, derived from its request."""

    namespace_name: str
    description: str | None
    auto_create_indexes: bool
    feature_extractors: tuple[dict[str, Any], ...]
    vectors: tuple[VectorPlan, ...]
    payload_indexes: tuple[IndexPlan, ...]
    vector_inference_map: dict[str, str | None]
    infrastructure: InfrastructurePlan
    mode: str = "managed"
    vector_configs: tuple[dict[str, Any], ...] = ()  # the bring-your-own vectors as the API writes them
    namespace_id: str | None = None  # the body's namespace_id (adopt a known id)
    labels: dict[str, Any] = field(default_factory=dict)  # namespace_type, scope, adaptive_indexing, when given
    warnings: tuple[tuple[str, str], ...] = ()  # (field path, message): set fields that change nothing

    def vector_config(self) -> dict[str, dict[str, Any]]:
        """The collection's named vectors as plain data: {name: {size, distance, datatype, on_disk}}, plus
        `multivector: {comparator: max_sim}` on multi-vector outputs only (so single-vector configs are unchanged)."""
        config: dict[str, dict[str, Any]] = {}
        for v in self.vectors:
            config[v.name] = {"size": v.size, "distance": v.distance, "datatype": v.datatype, "on_disk": v.on_disk}
            if v.multivector:
                config[v.name]["multivector"] = {"comparator": "max_sim"}
        return config

    def to_dict(self) -> dict[str, Any]:
        """The plan as JSON-ready data (the CLI's `plan --json` object)."""
        return {
            "namespace_name": self.namespace_name,
            "description": self.description,
            "auto_create_indexes": self.auto_create_indexes,
            "feature_extractors": [dict(fe) for fe in self.feature_extractors],
            "vectors": [
                {
                    **{
                        k: v for k, v in asdict(vec).items() if k in ("name", "size", "distance", "datatype", "on_disk")
                    },
                    **({"multivector": True} if vec.multivector else {}),
                }
                for vec in self.vectors
            ],
            "payload_indexes": [asdict(ix) for ix in self.payload_indexes],
            "vector_inference_map": dict(self.vector_inference_map),
            "infrastructure": self.infrastructure.to_dict(),
            "mode": self.mode,
            "vector_configs": [dict(vc) for vc in self.vector_configs],
            "namespace_id": self.namespace_id,
            **dict(self.labels),
            "warnings": [{"field": p, "message": m} for p, m in self.warnings],
        }


def plan_namespace(
    request: CreateNamespaceRequest | Mapping[str, Any],
    *,
    catalogue: Catalogue | None = None,
    vectors_on_disk: bool = False,
) -> NamespacePlan:
    """Validate `request` and derive its plan; raises `InvalidRequest` naming each bad field."""
    return plan_request(
        parse_request(request, catalogue=catalogue), catalogue=catalogue, vectors_on_disk=vectors_on_disk
    )


def plan_request(
    req: CreateNamespaceRequest, *, catalogue: Catalogue | None = None, vectors_on_disk: bool = False
) -> NamespacePlan:
    """The plan of a request `parse_request` already validated against `catalogue` (no second validation)."""
    catalogue = catalogue or DEFAULT_CATALOGUE
    extractors: list[dict[str, Any]] = []
    vectors: list[VectorPlan] = []
    for fe in req.feature_extractors or []:
        entry = catalogue.entries[(fe.feature_extractor_name, fe.version)]
        params = entry.resolve_params(fe.params)
        sizes = entry.vector_sizes(params)
        extractors.append(
            {
                "feature_extractor_name": fe.feature_extractor_name,
                "version": fe.version,
                "feature_extractor_id": entry.feature_extractor_id,
                "params": params,
            }
        )
        for spec in entry.vectors:
            vectors.append(
                VectorPlan(
                    name=f"{entry.feature_extractor_id}_{spec.output}",
                    size=sizes[spec.output],
                    distance=spec.distance,
                    datatype=spec.datatype,
                    on_disk=vectors_on_disk,
                    inference_service=spec.inference_service,
                    feature_extractor_id=entry.feature_extractor_id,
                    multivector=spec.multivector,
                )
            )
    vector_configs = []
    for vc in req.vector_configs or []:
        if vc.distance is None:  # parse_request refuses an unknown metric
            raise ValueError(f"vector_configs {vc.name!r}: unknown metric {vc.metric!r}")
        vectors.append(
            VectorPlan(
                name=vc.name,
                size=vc.dimension,
                distance=vc.distance,
                datatype="float32",
                on_disk=vectors_on_disk,
                inference_service=None,
                feature_extractor_id=None,
            )
        )
        vector_configs.append({"name": vc.name, "dimension": vc.dimension, "metric": API_METRIC[vc.distance]})
    indexes = [IndexPlan(name, kind, {"type": kind, **schema}, True) for name, kind, schema in SYSTEM_INDEXES]
    indexes += [IndexPlan(ix.field_name, ix.type, ix.resolved_schema(), False) for ix in req.payload_indexes or []]
    if not vectors:
        names = ", ".join(f"{fe['feature_extractor_name']} {fe['version']}" for fe in extractors)
        raise InvalidRequest(
            [
                (
                    "feature_extractors",
                    f"the extractors ({names}) create no vectors, and a collection needs at least one "
                    "named vector: declare the extractor's vectors, add one that has some, or give "
                    "vector_configs",
                )
            ]
        )
    infra, warnings = plan_infrastructure(req.infrastructure or NamespaceInfrastructure())
    labels = {
        k: getattr(req, k) for k in ("namespace_type", "scope", "adaptive_indexing") if getattr(req, k) is not None
    }
    return NamespacePlan(
        namespace_name=req.namespace_name,
        description=req.description,
        auto_create_indexes=bool(req.auto_create_indexes),
        feature_extractors=tuple(extractors),
        vectors=tuple(vectors),
        payload_indexes=tuple(indexes),
        vector_inference_map={v.name: v.inference_service for v in vectors},
        infrastructure=infra,
        mode=req.resolved_mode(),
        vector_configs=tuple(vector_configs),
        namespace_id=req.namespace_id,
        labels=labels,
        warnings=tuple(warnings),
    )


def plan_infrastructure(given: NamespaceInfrastructure) -> tuple[InfrastructurePlan, list[tuple[str, str]]]:
    """The effective infrastructure of a validated infrastructure block, and warnings for set fields that
    change nothing."""
    tier = given.resolved_tier()
    warnings: list[tuple[str, str]] = []
    gpu = tier == "dedicated_gpu"
    if not gpu and given.gpu_type:
        warnings.append(
            (
                "infrastructure.gpu_type",
                f"ignored: the explicit compute_tier {tier!r} wins and runs no GPU "
                "workers; drop compute_tier (or set 'dedicated_gpu') to get GPU workers",
            )
        )
    infra = InfrastructurePlan(
        **{
            **given.model_dump(include={f.name for f in fields(InfrastructurePlan)}),
            "compute_tier": tier,
            "gpu_type": given.gpu_type if gpu else None,
            "gpus_per_worker": given.gpus_per_worker if gpu else 0,
        }
    )
    return infra, warnings


def namespace_id_problem(plan: NamespacePlan, namespace_id: str | None) -> Problem | None:
    """A given `namespace_id` (stack entry or NamespaceArgs) that is malformed or disagrees with the body's own."""
    if namespace_id is None:
        return None
    if not isinstance(namespace_id, str) or not NAMESPACE_ID.fullmatch(namespace_id):
        return Problem("namespace_id", f"{namespace_id!r} is not {NAMESPACE_ID_RULE}")
    if plan.namespace_id is not None and namespace_id != plan.namespace_id:
        return Problem(
            "namespace_id",
            f"the body's namespace_id {plan.namespace_id!r} disagrees with the given "
            f"namespace_id {namespace_id!r}; give one",
        )
    return None


def ray_head_problem(infra: InfrastructurePlan, mode: str | None) -> Problem | None:
    """A Ray head of `mode` given for a namespace whose request rules it out (None: no head given)."""
    if mode is None or mode == "external":
        return None
    if infra.ray_head_node_url:
        return Problem(
            "infrastructure.ray_head_node_url",
            f"the request names an existing Ray cluster, but a {mode!r} head is given too; use one",
        )
    if infra.compute_tier == "shared":
        return Problem(
            "infrastructure.compute_tier",
            f"'shared' uses a shared Ray cluster and creates no head of its own, but a {mode!r} head is "
            "given: give an external head (its URL), or none for the shared head, or choose "
            "'dedicated_cpu' or 'dedicated_gpu' for a head of its own",
        )
    return None


def collection_conflicts(
    namespaces: Iterable[tuple[int, NamespacePlan, Mapping[str, Any]]], default_qdrant: Mapping[str, Any] | None = None
) -> list[tuple[int, str, str]]:
    """Namespaces of one stack that resolve to a collection an earlier one already uses on the same Qdrant target.

    `namespaces` holds (stack index, plan, stack-entry overrides). A collection is named by
    `infrastructure.qdrant_collection`, else by a fixed `namespace_id` (the stack entry's override, else
    the body's own; a generated id cannot clash); its target is the request's `infrastructure.qdrant_url`, else the entry's `qdrant`, else
    `default_qdrant`. Returns (index, field, message); `field` is `infrastructure.qdrant_collection`
    (a request field) or `namespace_id` (a stack-entry field).
    """
    used: dict[tuple[str, str], int] = {}
    conflicts: list[tuple[int, str, str]] = []
    for index, plan, overrides in namespaces:
        explicit = plan.infrastructure.qdrant_collection
        name = explicit or overrides.get("namespace_id") or plan.namespace_id
        if not isinstance(name, str):
            continue
        key = (_target_key(plan, overrides, default_qdrant), name)
        if key in used:
            if explicit:
                conflicts.append(
                    (
                        index,
                        "infrastructure.qdrant_collection",
                        f"{name!r} is already used by namespaces[{used[key]}] (same Qdrant target); two "
                        "namespaces must never share a collection: name another collection, or leave "
                        "qdrant_collection out to name it after this namespace's own id",
                    )
                )
            else:
                conflicts.append(
                    (
                        index,
                        "namespace_id",
                        f"its collection {name!r} (named after namespace_id) is already used by "
                        f"namespaces[{used[key]}] (same Qdrant target); two namespaces must never share a "
                        "collection: give this namespace its own namespace_id, or leave it out",
                    )
                )
        else:
            used[key] = index
    return conflicts


def _target_key(plan: NamespacePlan, overrides: Mapping[str, Any], default_qdrant: Mapping[str, Any] | None) -> str:
    """Which Qdrant a namespace's collection lives on: `host:port/prefix` of a server, or an embedded directory."""
    settings = overrides["qdrant"] if "qdrant" in overrides else default_qdrant
    settings = settings if isinstance(settings, Mapping) else {}
    url = plan.infrastructure.qdrant_url or settings.get("url")
    if isinstance(url, str) and url:
        try:
            parts = urlsplit(url.strip())
            return f"url {parts.hostname}:{parts.port or 6333}{parts.path.rstrip('/')}"  # qdrant-client's default port
        except ValueError:
            return f"url {url}"
    path = settings.get("path")
    return f"path {posixpath.normpath(path if isinstance(path, str) and path else DEFAULT_QDRANT_PATH)}"
