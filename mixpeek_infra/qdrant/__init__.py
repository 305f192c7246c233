"""Qdrant for Mixpeek namespaces: targets, the store interface and the dynamic resources.

- `QdrantTarget`: a Qdrant server (`url`, `api_key`) or embedded Qdrant Edge (`path`, the default).
- `Collection`, `PayloadIndex`: Pulumi dynamic resources (module `mixpeek_infra.qdrant.resources`).
- `open_store`, `EdgeStore`, `ServerStore`: the stores the providers speak to.
- `restore_snapshot`: bring back a collection from the final snapshot taken before its delete.

Neither qdrant-client nor qdrant_edge is imported until a store of that kind is used.
"""

from __future__ import annotations


from .._lazy import lazy_getattr

from .target import DEFAULT_EMBEDDED_PATH, InvalidTarget, QdrantTarget

_LAZY = {
    "Collection": "mixpeek_infra.qdrant.resources",
    "CollectionProvider": "mixpeek_infra.qdrant.resources",
    "PayloadIndex": "mixpeek_infra.qdrant.resources",
    "PayloadIndexProvider": "mixpeek_infra.qdrant.resources",
    "DeletionProtected": "mixpeek_infra.qdrant.resources",
    "FinalSnapshotFailed": "mixpeek_infra.qdrant.resources",
    "restore_snapshot": "mixpeek_infra.qdrant.store",
    "Store": "mixpeek_infra.qdrant.store",
    "open_store": "mixpeek_infra.qdrant.store",
    "QdrantError": "mixpeek_infra.qdrant.store",
    "EdgeStore": "mixpeek_infra.qdrant.store.edge",
    "ServerStore": "mixpeek_infra.qdrant.store.server",
}

__all__ = ["DEFAULT_EMBEDDED_PATH", "InvalidTarget", "QdrantTarget", *_LAZY]


__getattr__ = lazy_getattr('mixpeek_infra.qdrant', _LAZY, globals())
