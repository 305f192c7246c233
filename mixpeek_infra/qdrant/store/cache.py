"""The per-process store cache: one store per target (and API key), built on first use.

`open_store(spec, api_key)` returns the `EdgeStore` or `ServerStore` for a target spec (the plain
data of `QdrantTarget.spec()`); the same spec and key give the same store for the life of the process,
so its client, its open shards and its cached collection reads are shared by every resource of a run.
Neither qdrant-client nor qdrant_edge is imported until a store of that kind is opened.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...paths import state_path
from ..target import normalize_spec

if TYPE_CHECKING:
    from .base import Store

_STORES: dict[tuple, Store] = {}
_STORES_LOCK = threading.Lock()


def _cache_key(spec: Mapping[str, Any], api_key: str | None) -> tuple:
    spec = normalize_spec(spec)
    if spec["kind"] == "embedded":
        return ("embedded", state_path(spec["path"]), spec["timeout"])
    digest = hashlib.sha256(api_key.encode()).hexdigest() if api_key else None
    return ("server", spec["url"], spec["timeout"], spec["prefer_grpc"], digest)


def open_store(spec: Mapping[str, Any], api_key: str | None = None) -> Store:
    """The store for a target spec, built once per process per target (and key)."""
    key = _cache_key(spec, api_key)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            if key[0] == "embedded":
                from .edge import EdgeStore

                store = EdgeStore(key[1], timeout=key[2], display_path=spec["path"])
            else:
                from .server import ServerStore

                store = ServerStore.connect(spec["url"], api_key=api_key, timeout=key[2], prefer_grpc=key[3])
            _STORES[key] = store
        return store


def install_store(spec: Mapping[str, Any], store: Store, api_key: str | None = None) -> None:
    """Make `open_store(spec, api_key)` return `store` in this process (e.g. a `ServerStore` over
    qdrant-client's local mode in tests)."""
    with _STORES_LOCK:
        _STORES[_cache_key(spec, api_key)] = store


def forget_stores() -> None:
    """Close and drop every cached store of this process (and with them their cached reads)."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


__all__ = ["forget_stores", "install_store", "open_store"]
