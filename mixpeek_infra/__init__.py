"""mixpeek-infra: Mixpeek namespaces as Pulumi infrastructure (Qdrant collections, payload indexes, Ray heads).

The pure core (`schema`, `extractors`, `plan`) imports nothing heavy. `Namespace`, `NamespaceArgs`,
`QdrantTarget` and the Ray head specs are loaded on first use, so `import mixpeek_infra` stays cheap
and imports neither Ray, qdrant-client, Qdrant Edge nor pulumi-kubernetes.
"""

from __future__ import annotations

from typing import Any

from .extractors import Catalogue, ExtractorVersion, ParamSpec, VectorSpec, register_extractor
from .plan import IndexPlan, NamespacePlan, VectorPlan, plan_namespace
from .schema import CreateNamespaceRequest, InvalidRequest, NamespaceModel, parse_request

__version__ = "0.1.0"

_LAZY = {
    "Namespace": "mixpeek_infra.namespace",
    "NamespaceArgs": "mixpeek_infra.namespace",
    "QdrantTarget": "mixpeek_infra.qdrant.target",
    "RayHead": "mixpeek_infra.ray.spec",
}

__all__ = ["Catalogue", "CreateNamespaceRequest", "ExtractorVersion", "IndexPlan", "InvalidRequest",
           "NamespaceModel", "NamespacePlan", "ParamSpec", "VectorPlan", "VectorSpec", "parse_request",
           "plan_namespace", "register_extractor", *_LAZY]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mixpeek_infra' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
