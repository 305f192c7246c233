"""mixpeek-infra: Mixpeek namespaces as Pulumi infrastructure (Qdrant collections, payload indexes, Ray heads).

Every name is loaded on first use: `import mixpeek_infra` imports neither Ray, qdrant-client,
Qdrant Edge nor pulumi-kubernetes, and the dynamic provider host, which imports only the
provider modules, never pays for the schema layer.
"""

from __future__ import annotations

from ._lazy import lazy_getattr

__version__ = "0.1.0"

_LAZY = {
    "Catalogue": "mixpeek_infra.extractors",
    "ExtractorVersion": "mixpeek_infra.extractors",
    "ParamSpec": "mixpeek_infra.extractors",
    "VectorSpec": "mixpeek_infra.extractors",
    "register_extractor": "mixpeek_infra.extractors",
    "IndexPlan": "mixpeek_infra.plan",
    "NamespacePlan": "mixpeek_infra.plan",
    "VectorPlan": "mixpeek_infra.plan",
    "plan_namespace": "mixpeek_infra.plan",
    "CreateNamespaceRequest": "mixpeek_infra.schema",
    "InvalidRequest": "mixpeek_infra.schema",
    "NamespaceModel": "mixpeek_infra.schema",
    "parse_request": "mixpeek_infra.schema",
    "Namespace": "mixpeek_infra.namespace",
    "NamespaceArgs": "mixpeek_infra.namespace",
    "QdrantTarget": "mixpeek_infra.qdrant.target",
    "RayHead": "mixpeek_infra.ray.spec",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr("mixpeek_infra", _LAZY, globals())


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
