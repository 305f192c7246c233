"""The stores the Qdrant providers speak to: the interface and its two implementations.

- `base`: the `Store` interface and `CollectionState` (the canonical data forms crossing it);
- `edge`: `EdgeStore`, embedded Qdrant Edge shards (`qdrant-edge-py`);
- `server`: `ServerStore`, a Qdrant server or cluster through qdrant-client;
- `cache`: `open_store` / `install_store` / `forget_stores`, one store per target per process;
- `retry`: bounded retries of transient failures.

The names below load on first use, so importing this package imports no module of it (nor
qdrant-client or qdrant_edge). The errors and normalisers it also names live in
`mixpeek_infra.qdrant.errors` and `mixpeek_infra.qdrant.normalize`; they are named here for the code
that imported them from this package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..._lazy import lazy_getattr

if TYPE_CHECKING:
    from ..errors import (
        CollectionConflict,
        CollectionNotFound,
        EdgeCorrupt,
        EdgeLocked,
        InvalidSpec,
        QdrantError,
        TargetUnavailable,
        owner_message,
    )
    from ..normalize import (
        COMPRESSIONS,
        DATATYPES,
        DISTANCES,
        FIELD_TYPES,
        HNSW_DEFAULTS,
        SETTINGS_KEYS,
        TOKENIZERS,
        as_bool,
        as_choice,
        as_float,
        as_int,
        default_field_schema,
        normalize_field_schema,
        normalize_quantization,
        normalize_settings,
        normalize_vector,
        normalize_vectors,
    )
    from ..snapshot import restore_snapshot
    from .base import OWNER_KEY, CollectionState, Store, thread_lock
    from .cache import forget_stores, install_store, open_store
    from .edge import EdgeStore
    from .server import ServerStore

_ERRORS = "mixpeek_infra.qdrant.errors"
_NORMALIZE = "mixpeek_infra.qdrant.normalize"
_BASE = "mixpeek_infra.qdrant.store.base"
_CACHE = "mixpeek_infra.qdrant.store.cache"

_LAZY = {
    **dict.fromkeys(
        (
            "CollectionConflict",
            "CollectionNotFound",
            "EdgeCorrupt",
            "EdgeLocked",
            "InvalidSpec",
            "QdrantError",
            "TargetUnavailable",
            "owner_message",
        ),
        _ERRORS,
    ),
    **dict.fromkeys(
        (
            "COMPRESSIONS",
            "DATATYPES",
            "DISTANCES",
            "FIELD_TYPES",
            "HNSW_DEFAULTS",
            "SETTINGS_KEYS",
            "TOKENIZERS",
            "as_bool",
            "as_choice",
            "as_float",
            "as_int",
            "default_field_schema",
            "normalize_field_schema",
            "normalize_quantization",
            "normalize_settings",
            "normalize_vector",
            "normalize_vectors",
        ),
        _NORMALIZE,
    ),
    **dict.fromkeys(("OWNER_KEY", "CollectionState", "Store", "thread_lock"), _BASE),
    **dict.fromkeys(("forget_stores", "install_store", "open_store"), _CACHE),
    "restore_snapshot": "mixpeek_infra.qdrant.snapshot",
    "EdgeStore": "mixpeek_infra.qdrant.store.edge",
    "ServerStore": "mixpeek_infra.qdrant.store.server",
}

__all__ = sorted(_LAZY)

__getattr__ = lazy_getattr("mixpeek_infra.qdrant.store", _LAZY, globals())
