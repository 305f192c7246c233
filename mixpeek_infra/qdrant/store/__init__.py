"""The store interface the Qdrant providers speak to, its canonical data forms, and the store cache.

Two stores implement it: `EdgeStore` (embedded Qdrant Edge, `qdrant-edge-py`) and `ServerStore`
(a Qdrant server through qdrant-client). Everything crossing the interface is plain data in one
canonical form, the same form the resources take as inputs and report as outputs:

- vectors: `{name: {"size": int, "distance": "cosine"|"dot"|"euclid"|"manhattan",
  "datatype": "float32"|"float16"|"uint8", "on_disk": bool}}`
- settings (every key optional): `hnsw_config` `{m, ef_construct, full_scan_threshold[, on_disk,
  payload_m]}`, `quantization_config` (`{"scalar": {type, quantile?, always_ram?}}`,
  `{"product": {compression, always_ram?}}` or `{"binary": {always_ram?}}`), `on_disk_payload`,
  `shard_number`, `replication_factor`
- payload index schema: `{"type": ..., <type's params>}` with every parameter filled in.

Each collection records the namespace that owns it (Edge: a marker file in the shard directory;
server: the collection's metadata `mixpeek_namespace_id`); `check_claim` refuses a collection or
directory that is not provably that namespace's. `lock(name)` serialises create-or-adopt and
delete of one collection (Edge: across processes too). `snapshot` writes a restorable copy into a
directory and `restore_snapshot` brings it back.

`open_store(spec, api_key)` builds (and caches per process) the store for a target spec. Neither
qdrant-client nor qdrant_edge is imported until a store of that kind is opened.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

if TYPE_CHECKING:
    from ..target import QdrantTarget

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
DATATYPES = ("float32", "float16", "uint8")
FIELD_TYPES = ("keyword", "integer", "float", "bool", "geo", "datetime", "text", "uuid")
TOKENIZERS = ("word", "whitespace", "prefix", "multilingual")
COMPRESSIONS = ("x4", "x8", "x16", "x32", "x64")
HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000}
SETTINGS_KEYS = ("hnsw_config", "quantization_config", "on_disk_payload", "shard_number", "replication_factor")
OWNER_KEY = "mixpeek_namespace_id"  # the owning namespace, in a server collection's metadata

T = TypeVar("T")


# ---------------------------------------------------------------------------------------------
# Errors


class QdrantError(Exception):
    """Base of the errors the Qdrant stores and providers raise."""


class InvalidSpec(QdrantError, ValueError):
    """An input value is invalid; `path` names the field (e.g. `vectors.img.size`)."""

    def __init__(self, path: str, message: str):
        self.path = path
        self.reason = message
        super().__init__(f"{path}: {message}")


class TargetUnavailable(QdrantError):
    """The Qdrant server could not be reached (or kept failing) within the target's timeout."""


class EdgeLocked(QdrantError):
    """An embedded Qdrant Edge shard is held open by another process."""


class EdgeCorrupt(QdrantError):
    """An embedded Qdrant Edge shard directory cannot be loaded."""


class CollectionNotFound(QdrantError):
    """The collection does not exist at the target."""


class CollectionConflict(QdrantError):
    """A collection of that name exists with a different configuration or owner, or the name is taken."""


def owner_message(name: str, location: str, owner: str, namespace_id: str | None) -> str:
    """The refusal for adopting collection `name`, recorded as namespace `owner`'s, as `namespace_id`."""
    who = f"namespace {namespace_id}" if namespace_id else "a new namespace (its id is generated at creation)"
    return (f"Qdrant collection {name!r} at {location} belongs to namespace {owner} (created by another namespace, "
            f"stack or process); refusing to adopt it for {who}. Choose another collection name "
            f"(infrastructure.qdrant_collection / collection_name); or, if it is this namespace's (e.g. its state "
            f"was lost), set namespace_id: {owner} to adopt it.")


# ---------------------------------------------------------------------------------------------
# Canonical forms and their validation


def as_int(value: Any, path: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer from an int or an integral float (Pulumi sends every number as a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSpec(path, f"{value!r} is not an integer")
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise InvalidSpec(path, f"{value!r} is not an integer")
        value = int(value)
    if minimum is not None and value < minimum:
        raise InvalidSpec(path, f"{value} is below the minimum {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidSpec(path, f"{value} is above the maximum {maximum}")
    return value


def as_bool(value: Any, path: str) -> bool:
    """A boolean (no truthy coercion)."""
    if not isinstance(value, bool):
        raise InvalidSpec(path, f"{value!r} is not true or false")
    return value


def as_float(value: Any, path: str, *, low: float | None = None, high: float | None = None) -> float:
    """A finite number within [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidSpec(path, f"{value!r} is not a number")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidSpec(path, f"{value} is outside [{low}, {high}]")
    return float(value)


def as_choice(value: Any, choices: tuple[str, ...], path: str) -> str:
    """One of `choices` (case-insensitive); the error lists the valid choices."""
    if isinstance(value, str) and value.lower() in choices:
        return value.lower()
    raise InvalidSpec(path, f"{value!r} is not one of {', '.join(choices)}")


def _mapping(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpec(path, f"expected an object, got {value!r}")
    return value


def _no_extra(value: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
    for key in value:
        if key not in allowed:
            raise InvalidSpec(f"{path}.{key}", f"unknown field; valid fields: {', '.join(allowed)}")


def normalize_vector(name: str, params: Any, path: str) -> dict[str, Any]:
    """One named vector in canonical form: size, distance, datatype (default float32), on_disk (default false)."""
    params = _mapping(params, path)
    _no_extra(params, ("size", "distance", "datatype", "on_disk"), path)
    if "size" not in params:
        raise InvalidSpec(f"{path}.size", "required")
    if "distance" not in params:
        raise InvalidSpec(f"{path}.distance", f"required; one of {', '.join(DISTANCES)}")
    return {
        "size": as_int(params["size"], f"{path}.size", minimum=1, maximum=65536),
        "distance": as_choice(params["distance"], DISTANCES, f"{path}.distance"),
        "datatype": as_choice(params.get("datatype", "float32"), DATATYPES, f"{path}.datatype"),
        "on_disk": as_bool(params.get("on_disk", False), f"{path}.on_disk"),
    }


def normalize_vectors(value: Any, path: str = "vectors") -> dict[str, dict[str, Any]]:
    """The named vectors of a collection in canonical form; at least one, names non-empty."""
    value = _mapping(value, path)
    if not value:
        raise InvalidSpec(path, "at least one named vector is required")
    out = {}
    for name in sorted(value):
        if not isinstance(name, str) or not name or len(name) > 255:
            raise InvalidSpec(path, f"vector name {name!r} must be 1-255 characters")
        out[name] = normalize_vector(name, value[name], f"{path}.{name}")
    return out


def normalize_settings(value: Any, path: str = "settings") -> dict[str, Any]:
    """Collection settings in canonical form; only the keys given are kept (the rest stay unmanaged)."""
    if value is None:
        return {}
    value = _mapping(value, path)
    _no_extra(value, SETTINGS_KEYS, path)
    out: dict[str, Any] = {}
    if value.get("hnsw_config") is not None:
        p = f"{path}.hnsw_config"
        hnsw = _mapping(value["hnsw_config"], p)
        _no_extra(hnsw, ("m", "ef_construct", "full_scan_threshold", "on_disk", "payload_m"), p)
        out["hnsw_config"] = {
            "m": as_int(hnsw.get("m", HNSW_DEFAULTS["m"]), f"{p}.m", minimum=0, maximum=1024),
            "ef_construct": as_int(hnsw.get("ef_construct", HNSW_DEFAULTS["ef_construct"]), f"{p}.ef_construct",
                                   minimum=4, maximum=100000),
            "full_scan_threshold": as_int(hnsw.get("full_scan_threshold", HNSW_DEFAULTS["full_scan_threshold"]),
                                          f"{p}.full_scan_threshold", minimum=0),
        }
        if hnsw.get("on_disk") is not None:
            out["hnsw_config"]["on_disk"] = as_bool(hnsw["on_disk"], f"{p}.on_disk")
        if hnsw.get("payload_m") is not None:
            out["hnsw_config"]["payload_m"] = as_int(hnsw["payload_m"], f"{p}.payload_m", minimum=0, maximum=1024)
    if value.get("quantization_config") is not None:
        out["quantization_config"] = normalize_quantization(value["quantization_config"], f"{path}.quantization_config")
    if value.get("on_disk_payload") is not None:
        out["on_disk_payload"] = as_bool(value["on_disk_payload"], f"{path}.on_disk_payload")
    for key in ("shard_number", "replication_factor"):
        if value.get(key) is not None:
            out[key] = as_int(value[key], f"{path}.{key}", minimum=1, maximum=64)
    return out


def normalize_quantization(value: Any, path: str) -> dict[str, Any]:
    """`{"scalar": {...}}`, `{"product": {...}}` or `{"binary": {...}}`, Qdrant's own REST shape."""
    value = _mapping(value, path)
    if len(value) != 1 or next(iter(value)) not in ("scalar", "product", "binary"):
        raise InvalidSpec(path, "expected exactly one of scalar, product, binary")
    kind = next(iter(value))
    p = f"{path}.{kind}"
    params = _mapping(value[kind], p)
    out: dict[str, Any] = {}
    if kind == "scalar":
        _no_extra(params, ("type", "quantile", "always_ram"), p)
        out["type"] = as_choice(params.get("type", "int8"), ("int8",), f"{p}.type")
        if params.get("quantile") is not None:
            out["quantile"] = as_float(params["quantile"], f"{p}.quantile", low=0.5, high=1.0)
    elif kind == "product":
        _no_extra(params, ("compression", "always_ram"), p)
        if "compression" not in params:
            raise InvalidSpec(f"{p}.compression", f"required; one of {', '.join(COMPRESSIONS)}")
        out["compression"] = as_choice(params["compression"], COMPRESSIONS, f"{p}.compression")
    else:
        _no_extra(params, ("always_ram",), p)
    if params.get("always_ram") is not None:
        out["always_ram"] = as_bool(params["always_ram"], f"{p}.always_ram")
    return {kind: out}


def default_field_schema(field_type: str) -> dict[str, Any]:
    """The full schema of an index type with the documented defaults."""
    return {
        "text": {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 15, "lowercase": True},
        "keyword": {"type": "keyword", "is_tenant": False},
        "integer": {"type": "integer", "lookup": True, "range": True},
        "uuid": {"type": "uuid", "is_tenant": False},
    }.get(field_type, {"type": field_type})


def normalize_field_schema(field_type: Any, schema: Any, path: str = "field_schema",
                           type_path: str = "field_type") -> dict[str, Any]:
    """A payload index schema with every parameter filled in; `schema.type` must equal `field_type`."""
    kind = as_choice(field_type, FIELD_TYPES, type_path)
    schema = {} if schema is None else dict(_mapping(schema, path))
    inner = schema.get("type", kind)
    if inner != kind:
        raise InvalidSpec(f"{path}.type", f"{inner!r} must equal {type_path} {kind!r}")
    out = default_field_schema(kind)
    allowed = tuple(out)
    _no_extra(schema, allowed, path)
    for key in allowed:
        if key == "type" or key not in schema:
            continue
        value, p = schema[key], f"{path}.{key}"
        if key == "tokenizer":
            out[key] = as_choice(value, TOKENIZERS, p)
        elif key in ("min_token_len", "max_token_len"):
            out[key] = as_int(value, p, minimum=1, maximum=1024)
        else:
            out[key] = as_bool(value, p)
    if kind == "text" and out["min_token_len"] > out["max_token_len"]:
        raise InvalidSpec(f"{path}.min_token_len",
                          f"min_token_len {out['min_token_len']} exceeds max_token_len {out['max_token_len']}")
    if kind == "integer" and not (out["lookup"] or out["range"]):
        raise InvalidSpec(path, "an integer index needs lookup or range (both are false)")
    return out


# ---------------------------------------------------------------------------------------------
# Store interface


@dataclass
class CollectionState:
    """What a store reads back about a collection."""

    name: str
    vectors: dict[str, dict[str, Any]]
    settings: dict[str, Any]
    points_count: int
    payload_schema: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: the namespace recorded as the collection's owner; None when none is recorded
    namespace_id: str | None = None


_THREAD_LOCKS: dict[tuple, threading.RLock] = {}
_THREAD_LOCKS_LOCK = threading.Lock()


def thread_lock(key: tuple) -> threading.RLock:
    """The process-wide re-entrant lock for `key`."""
    with _THREAD_LOCKS_LOCK:
        return _THREAD_LOCKS.setdefault(key, threading.RLock())


class Store(ABC):
    """A place collections live. The providers speak only to this interface.

    Conditions for `count_points` and `query` are a small list of plain dicts:
    `{"key": path, "text": "words"}` (full-text match) or `{"key": path, "value": v}` (exact match).
    """

    #: a URL or path for messages (never a key)
    location: str = ""
    #: False where payload indexes are accepted but not reported back (qdrant-client local mode)
    reads_payload_indexes: bool = True
    kind: str = ""

    @abstractmethod
    def supports_add_vector(self) -> bool:
        """Whether a named vector can be added to a live collection (Edge; server >= 1.18)."""

    @abstractmethod
    def read_collection(self, name: str) -> CollectionState | None:
        """The collection's real config, settings and point count; None when it does not exist."""

    @abstractmethod
    def create_collection(self, name: str, vectors: Mapping[str, Mapping[str, Any]],
                          settings: Mapping[str, Any], namespace_id: str | None = None) -> None:
        """Create the collection, recording `namespace_id` as its owner; `CollectionConflict` when the name is taken."""

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold collection `name` for a create-or-adopt or a delete (re-entrant; this process's threads)."""
        with thread_lock((type(self).__name__, self.location, name)):
            yield

    @abstractmethod
    def check_claim(self, name: str, namespace_id: str | None) -> None:
        """Raise `CollectionConflict` when `name` exists but is not provably `namespace_id`'s to create or adopt
        (another namespace's, or something this code did not create); reads only."""

    @abstractmethod
    def record_namespace(self, name: str, namespace_id: str) -> None:
        """Record `namespace_id` as the owner of the existing collection `name`."""

    @abstractmethod
    def snapshot(self, name: str, directory: str) -> str:
        """Write a restorable snapshot of collection `name` into `directory`; returns the file's path."""

    @abstractmethod
    def restore(self, archive: str, name: str) -> None:
        """Create collection `name` from a snapshot file written by `snapshot`; refuses an existing name."""

    @abstractmethod
    def add_vector(self, name: str, vector_name: str, params: Mapping[str, Any]) -> None:
        """Add one named vector to an existing collection."""

    @abstractmethod
    def update_collection(self, name: str, *, vectors_on_disk: Mapping[str, bool],
                          settings: Mapping[str, Any]) -> None:
        """Apply in-place changes: per-vector on_disk and the updatable settings."""

    @abstractmethod
    def delete_collection(self, name: str) -> bool:
        """Delete the collection and its data; False when it did not exist."""

    @abstractmethod
    def count_points(self, name: str, conditions: list[Mapping[str, Any]] | None = None) -> int:
        """Exact number of points (matching `conditions`); raises `CollectionNotFound`."""

    @abstractmethod
    def create_payload_index(self, collection: str, field_name: str, schema: Mapping[str, Any]) -> None:
        """Create (or re-create with new params) the field's payload index."""

    @abstractmethod
    def read_payload_indexes(self, collection: str) -> dict[str, dict[str, Any]] | None:
        """Every payload index as canonical schema; None when the collection does not exist."""

    def read_payload_index(self, collection: str, field_name: str) -> dict[str, Any] | None:
        """One payload index's canonical schema; None when it (or its collection) does not exist."""
        indexes = self.read_payload_indexes(collection)
        return None if indexes is None else indexes.get(field_name)

    @abstractmethod
    def delete_payload_index(self, collection: str, field_name: str) -> bool:
        """Drop the field's payload index; False when there was none (or no collection)."""

    @abstractmethod
    def upsert(self, collection: str, points: list[Mapping[str, Any]]) -> None:
        """Upsert `{"id", "vector": {name: [..]}, "payload"}` points (a helper for tests and benchmarks)."""

    @abstractmethod
    def query(self, collection: str, vector_name: str, vector: list[float],
              conditions: list[Mapping[str, Any]] | None = None, limit: int = 10) -> list[dict[str, Any]]:
        """Nearest points as `{"id", "score", "payload"}` (a helper for tests and benchmarks)."""

    def close(self) -> None:
        """Release clients or open shards."""


# ---------------------------------------------------------------------------------------------
# Retries


def retry(fn: Callable[[], T], *, is_transient: Callable[[BaseException], bool], deadline_s: float,
          describe: Callable[[BaseException, int, float], Exception], max_attempts: int = 6,
          first_delay: float = 0.2, max_delay: float = 2.0, sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fn`, retrying transient failures with bounded exponential backoff.

    Gives up after `max_attempts` or once `deadline_s` seconds have passed, raising
    `describe(last_error, attempts, elapsed)`; non-transient errors propagate at once.
    """
    start = time.monotonic()
    delay = first_delay
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - classified below
            if not is_transient(exc):
                raise
            elapsed = time.monotonic() - start
            remaining = deadline_s - elapsed
            if attempt >= max_attempts or remaining <= 0:
                raise describe(exc, attempt, elapsed) from None
            sleep(min(delay, max_delay, max(remaining, 0.0)))
            delay *= 2


# ---------------------------------------------------------------------------------------------
# The per-process store cache


_STORES: dict[tuple, Store] = {}
_STORES_LOCK = threading.Lock()


def _cache_key(spec: Mapping[str, Any], api_key: str | None) -> tuple:
    from ..target import normalize_spec

    spec = normalize_spec(spec)
    if spec["kind"] == "embedded":
        from ...paths import state_path

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
    """Close and drop every cached store of this process."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for store in stores:
        try:
            store.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


def restore_snapshot(archive: str, target: QdrantTarget | None = None, *,
                     collection_name: str | None = None) -> CollectionState:
    """Restore a final snapshot (written before a delete or replace) as a collection of `target`.

    archive: the snapshot file (`<collection>-<UTC time>.tar` from an embedded target,
        `<collection>-<UTC time>.snapshot` from a server).
    target: a `QdrantTarget` of the same kind (default embedded at `.mixpeek/qdrant`); a server
        target's `api_key` must be a plain string here.
    collection_name: the name to restore as; default the name the snapshot was taken of.

    Points, vectors, payload indexes and the recorded owning namespace come back; a `Namespace` adopts
    the collection when declared with that `namespace_id` (in `.namespace_id` of the returned state).
    Refuses to overwrite an existing collection.
    """
    from ..target import QdrantTarget

    target = target or QdrantTarget()
    if target.api_key is not None and not isinstance(target.api_key, str):
        raise InvalidSpec("target.api_key", "give the key as a plain string to restore_snapshot")
    base = os.path.basename(archive)
    name = collection_name or base.rsplit("-", 1)[0]
    store = open_store(target.spec(), target.api_key)
    with store.lock(name):
        if store.read_collection(name) is not None:
            raise CollectionConflict(f"cannot restore {archive} as Qdrant collection {name!r} at {store.location}: "
                                     "a collection of that name exists; pass another collection_name or delete it")
        store.restore(archive, name)
    state = store.read_collection(name)
    if state is None:
        raise QdrantError(f"restoring {archive} at {store.location} did not create collection {name!r}")
    return state


__all__ = ["CollectionConflict", "CollectionNotFound", "CollectionState", "EdgeCorrupt", "EdgeLocked", "InvalidSpec",
           "QdrantError", "Store", "TargetUnavailable", "default_field_schema", "forget_stores", "install_store",
           "normalize_field_schema", "normalize_quantization", "normalize_settings", "normalize_vectors",
           "open_store", "restore_snapshot", "retry"]
