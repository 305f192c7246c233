"""Qdrant for Mixpeek namespaces: targets, the store interface and the dynamic resources.

- `QdrantTarget`: a Qdrant server (`url`, `api_key`) or embedded Qdrant Edge (`path`, the default).
- `Collection`, `PayloadIndex`: Pulumi dynamic resources (module `mixpeek_infra.qdrant.resources`).
- `open_store`, `EdgeStore`, `ServerStore`: the stores the providers speak to.
- `restore_snapshot`: bring back a collection from the final snapshot taken before its delete.

Modules: `target` (where a collection lives), `errors`, `normalize` (canonical vectors, settings and
index schemas), `inputs` (the resources' input checks), `values` (Pulumi's wire values), `keys`
(which API key goes where), `changes` (diff helpers), `providers` (the providers' lifecycles),
`resources` (the resources and the stable import path of their providers), `snapshot` (restore),
`store/` (the stores).

Every name below loads on first use: importing this package imports none of its modules, nor
pulumi, qdrant-client or qdrant_edge.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr

if TYPE_CHECKING:
    from .errors import (
        CollectionConflict,
        DeletionProtected,
        FinalSnapshotFailed,
        InvalidSpec,
        InvalidTarget,
        QdrantError,
    )
    from .resources import Collection, CollectionProvider, PayloadIndex, PayloadIndexProvider
    from .snapshot import restore_snapshot
    from .store.base import Store
    from .store.cache import open_store
    from .store.edge import EdgeStore
    from .store.server import ServerStore
    from .target import DEFAULT_EMBEDDED_PATH, QdrantTarget

_LAZY = {
    "DEFAULT_EMBEDDED_PATH": "mixpeek_infra.qdrant.target",
    "QdrantTarget": "mixpeek_infra.qdrant.target",
    "InvalidTarget": "mixpeek_infra.qdrant.errors",
    "Collection": "mixpeek_infra.qdrant.resources",
    "CollectionProvider": "mixpeek_infra.qdrant.resources",
    "PayloadIndex": "mixpeek_infra.qdrant.resources",
    "PayloadIndexProvider": "mixpeek_infra.qdrant.resources",
    "CollectionConflict": "mixpeek_infra.qdrant.errors",
    "DeletionProtected": "mixpeek_infra.qdrant.errors",
    "FinalSnapshotFailed": "mixpeek_infra.qdrant.errors",
    "InvalidSpec": "mixpeek_infra.qdrant.errors",
    "QdrantError": "mixpeek_infra.qdrant.errors",
    "restore_snapshot": "mixpeek_infra.qdrant.snapshot",
    "Store": "mixpeek_infra.qdrant.store.base",
    "open_store": "mixpeek_infra.qdrant.store.cache",
    "EdgeStore": "mixpeek_infra.qdrant.store.edge",
    "ServerStore": "mixpeek_infra.qdrant.store.server",
}

__all__ = list(_LAZY)

__getattr__ = lazy_getattr("mixpeek_infra.qdrant", _LAZY, globals())
