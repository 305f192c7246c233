"""`ServerStore`: collections on a Qdrant server or cluster, through qdrant-client.

Transient failures (connection errors, timeouts, HTTP 429/500/502/503/504, gRPC UNAVAILABLE,
DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED) are retried with bounded exponential backoff within the
target's timeout; then the error names the server URL (never the key).

`ServerStore(QdrantClient(path=...))` drives qdrant-client's local mode. That mode accepts every
call but ignores payload indexes and most collection settings and reports neither back, so it only
exercises this store's calls in tests (`reads_payload_indexes` and `reads_settings` are False). It
keeps collection metadata (the owner record) but cannot take snapshots.

An API key is never sent over plain `http://` to a host that is not loopback: `connect` refuses it.

Names. A collection is created as the physical collection `<name>-g1` plus the alias `<name>`, which
is the name every call (and every user query) uses: the server resolves an alias for reads, writes,
indexes and snapshots. A migration builds `<name>-g<N>` and re-points the alias in one atomic
`update_aliases` call. A collection created before aliases (physical `<name>`) keeps working as is;
its first migration deletes it and creates the alias in its place (keeping a copy as a generation
first), the one switch during which queries of `<name>` can fail for a moment.

Requests. Every call is one HTTP request (or gRPC call). Reads of a collection's payload indexes are
served from this store's cache of collection reads (`CACHE_SECONDS`): one collection-info read then
serves every payload index of a namespace in a run. A payload index write updates the cached entry
with the schema it wrote (the server has applied it when `wait=True` returns), every other write
drops the entry, and `read_collection` (what `check_claim`, create-or-adopt, delete and refresh of a
collection use) always asks the server and refreshes the entry. So an ownership decision is never
made from the cache.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from qdrant_client import QdrantClient
from qdrant_client import models as qm
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from ...paths import state_path
from ...redact import redact_text, redact_url
from ...vocabulary import QDRANT_TIMEOUT
from ..errors import CollectionConflict, CollectionNotFound, QdrantError, TargetUnavailable, owner_message
from ..normalize import normalize_quantization
from ..target import is_plain_http_off_loopback
from .base import OWNER_KEY, CollectionState, Store
from .retry import retry

T = TypeVar("T")
_TRANSIENT_HTTP = {408, 429, 500, 502, 503, 504}
_VERSION = re.compile(r"v?(\d+)\.(\d+)")  # a prefix: "1.18.0-dev" is 1.18
ADD_VECTOR_MIN_VERSION = (1, 18)
KEY_HINT = (
    "check the API key (the target's api_key / infrastructure.qdrant_api_key; a key from stack config "
    "mixpeek-infra:qdrantApiKey or env QDRANT_API_KEY is sent only to the URL of mixpeek-infra:qdrant "
    "(its url) or QDRANT_URL)"
)
#: how long a cached collection read may serve payload index reads (writes update or drop it sooner)
CACHE_SECONDS = 60.0
STAGING_KEY = "mixpeek_staging"  # in a generation's metadata while a migration builds it


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, ResponseHandlingException):
        return True
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code in _TRANSIENT_HTTP
    try:
        import grpc

        if isinstance(exc, grpc.RpcError):
            return exc.code() in (
                grpc.StatusCode.UNAVAILABLE,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
    except ImportError:  # pragma: no cover - grpcio ships with qdrant-client
        pass
    return isinstance(exc, (ConnectionError, TimeoutError))


def _is_not_found(exc: BaseException) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code == 404
    if isinstance(exc, ValueError):  # local mode
        return "not found" in str(exc).lower()
    try:
        import grpc

        return isinstance(exc, grpc.RpcError) and exc.code() == grpc.StatusCode.NOT_FOUND
    except ImportError:  # pragma: no cover
        return False


def _is_already_exists(exc: BaseException) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpcio ships with qdrant-client
        return False
    return isinstance(exc, grpc.RpcError) and (
        exc.code() == grpc.StatusCode.ALREADY_EXISTS or "already exists" in str(exc.details() or "")
    )


def grpc_port_of(url: str) -> int:
    """The gRPC port `prefer_grpc` uses for the server at `url`: the port after the URL's (Qdrant's own pairing,
    6333/6334), 6334 when the URL names none. (qdrant-client alone would always use 6334, whatever the URL's port:
    a server on other ports would be missed, or another server on the same host reached.)"""
    try:
        port = urlsplit(url).port
    except ValueError:  # a malformed port: the target's check reports it
        port = None
    return 6334 if port is None or port >= 65535 else port + 1


def _cause(exc: BaseException) -> str:
    source = getattr(exc, "source", None)
    text = f"{type(source).__name__}: {source}" if source is not None else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0][:300]


class ServerStore(Store):
    """Collections on a Qdrant server through a `QdrantClient` (or its local mode, for tests)."""

    kind = "server"

    def __init__(
        self,
        client: QdrantClient,
        *,
        location: str | None = None,
        timeout: float = QDRANT_TIMEOUT,
        api_key: str | None = None,
        url: str | None = None,
    ):
        self.client = client
        self.timeout = float(timeout)
        self.url = url  # the REST endpoint, for snapshot transfers
        self.local_mode = (
            bool(getattr(client, "_is_local_mode", False))
            or type(getattr(client, "_client", None)).__name__ == "QdrantLocal"
        )
        self.location = (
            redact_url(location) if location else ("qdrant-client local mode" if self.local_mode else "Qdrant server")
        )
        self.reads_payload_indexes = not self.local_mode
        self.reads_settings = not self.local_mode
        self._secret = api_key  # only to scrub it from error messages; never logged
        self._version: tuple[int, int] | None = None
        # collection name -> (monotonic time read, state); see the module docstring
        self._reads: dict[str, tuple[float, CollectionState]] = {}
        self._epochs: dict[str, int] = {}  # per collection, bumped by every write's start and end
        self._reads_lock = threading.Lock()
        self._attempts = threading.local()  # `one_attempt` per thread: the provider host runs calls in threads

    @contextmanager
    def one_attempt(self) -> Iterator[None]:
        before = getattr(self._attempts, "one", False)
        self._attempts.one = True
        try:
            yield
        finally:
            self._attempts.one = before

    @classmethod
    def connect(
        cls, url: str, *, api_key: str | None = None, timeout: float = QDRANT_TIMEOUT, prefer_grpc: bool = False
    ) -> ServerStore:
        """A store for the server at `url`; no request is made until the first call.

        Refuses an `api_key` for a plain `http://` URL whose host is not loopback."""
        if api_key and is_plain_http_off_loopback(url):
            raise QdrantError(
                f"refusing to send the Qdrant API key to {redact_url(url)} over plain http (the host is "
                "not loopback); use an https:// URL"
            )
        client = QdrantClient(
            url=url,
            api_key=api_key,
            timeout=max(1, math.ceil(timeout)),
            prefer_grpc=prefer_grpc,
            grpc_port=grpc_port_of(url),
            check_compatibility=False,
        )
        return cls(client, location=url, timeout=timeout, api_key=api_key, url=url)

    # -- calls ------------------------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        return redact_text(text, self._secret)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        def describe(exc: BaseException, attempts: int, elapsed: float) -> Exception:
            return TargetUnavailable(
                self._scrub(
                    f"Qdrant at {self.location} did not answer {what} after {attempts} attempt(s) in {elapsed:.1f}s "
                    f"(timeout {self.timeout:g}s): {_cause(exc)}"
                )
            )

        attempts = 1 if getattr(self._attempts, "one", False) else 6
        try:
            return retry(
                fn, is_transient=_is_transient, deadline_s=self.timeout, describe=describe, max_attempts=attempts
            )
        except (TargetUnavailable, CollectionNotFound, CollectionConflict):
            raise
        except UnexpectedResponse as exc:
            detail = exc.content[:300].decode("utf-8", "replace") if exc.content else exc.reason_phrase
            if exc.status_code in (401, 403):
                raise QdrantError(
                    f"Qdrant at {self.location} refused {what} (HTTP {exc.status_code}): {KEY_HINT}"
                ) from None
            raise QdrantError(
                self._scrub(f"Qdrant at {self.location} failed {what}: HTTP {exc.status_code} {detail}")
            ) from None
        except Exception as exc:  # noqa: BLE001 - gRPC errors get the same treatment as HTTP ones
            import grpc

            if not isinstance(exc, grpc.RpcError):
                raise
            code = exc.code()
            if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                raise QdrantError(f"Qdrant at {self.location} refused {what} ({code.name}): {KEY_HINT}") from None
            raise QdrantError(
                self._scrub(f"Qdrant at {self.location} failed {what}: gRPC {code.name} {exc.details()}")
            ) from None

    def server_version(self) -> tuple[int, int]:
        """(major, minor) of the server (cached)."""
        if self._version is None:
            info = self._call("version info", self.client.info)
            match = _VERSION.match(str(getattr(info, "version", "")))
            self._version = (int(match.group(1)), int(match.group(2))) if match else (0, 0)
        return self._version

    def supports_add_vector(self) -> bool:
        return self.server_version() >= ADD_VECTOR_MIN_VERSION

    def _info(self, name: str) -> Any | None:
        def get() -> Any:
            try:
                return self.client.get_collection(name)
            except Exception as exc:  # noqa: BLE001
                if _is_not_found(exc):
                    return None
                raise

        return self._call(f"get collection {name!r}", get)

    # -- the cache of collection reads ------------------------------------------------------------

    def _remember(self, name: str, state: CollectionState | None, epoch: int) -> None:
        """Cache a read begun at `epoch`, unless a write to `name` began or ended since."""
        with self._reads_lock:
            if self._epochs.get(name, 0) != epoch:
                return
            if state is None:
                self._reads.pop(name, None)
            else:
                self._reads[name] = (time.monotonic(), state)

    def _forget(self, name: str, *, keep: bool = False) -> None:
        """Drop the cached entry (with `keep`, only stop reads in flight from caching what they got)."""
        with self._reads_lock:
            if not keep:
                self._reads.pop(name, None)
            self._epochs[name] = self._epochs.get(name, 0) + 1

    def _write(self, name: str, what: str, fn: Callable[[], T]) -> T:
        """`_call` for a write that changes collection `name` in a way no cached read shows: drops its entry."""
        self._forget(name)
        try:
            return self._call(what, fn)
        finally:
            self._forget(name)

    def _recent(self, name: str) -> CollectionState | None:
        """The collection as last read or written by this store, within `CACHE_SECONDS`; else read now."""
        with self._reads_lock:
            entry = self._reads.get(name)
        if entry is not None and time.monotonic() - entry[0] <= CACHE_SECONDS:
            return entry[1]
        return self.read_collection(name)

    def _indexed(self, name: str, field_name: str, schema: Mapping[str, Any] | None) -> None:
        """Record in the cached entry (if any) that `field_name`'s index is now `schema` (None: dropped)."""
        with self._reads_lock:
            entry = self._reads.get(name)
            if entry is None:
                return
            indexes = {k: v for k, v in entry[1].payload_schema.items() if k != field_name}
            if schema is not None:
                indexes[field_name] = dict(schema)
            self._reads[name] = (entry[0], dataclasses.replace(entry[1], payload_schema=dict(sorted(indexes.items()))))

    # -- collections ------------------------------------------------------------------------------

    def read_collection(self, name: str) -> CollectionState | None:
        """The collection as the server reports it now (always a request; refreshes the cached entry)."""
        with self._reads_lock:
            epoch = self._epochs.get(name, 0)
        state = self._read_collection(name)
        self._remember(name, state, epoch)
        return state

    def _read_collection(self, name: str) -> CollectionState | None:
        info = self._info(name)
        if info is None:
            return None
        params = info.config.params
        vectors_raw = params.vectors
        if not isinstance(vectors_raw, Mapping):
            vectors_raw = {"": vectors_raw} if vectors_raw is not None else {}
        vectors = {}
        for vname, vp in vectors_raw.items():
            vectors[vname] = {
                "size": int(vp.size),
                "distance": str(getattr(vp.distance, "value", vp.distance)).lower(),
                "datatype": str(getattr(vp.datatype, "value", vp.datatype) or "float32").lower(),
                "on_disk": vp.on_disk is True,
            }
            multi = getattr(vp, "multivector_config", None)
            if multi is not None:
                comparator = getattr(multi.comparator, "value", multi.comparator)
                vectors[vname]["multivector"] = {"comparator": str(comparator).lower()}
        settings: dict[str, Any] = {}
        hnsw = info.config.hnsw_config
        if hnsw is not None:
            settings["hnsw_config"] = {
                "m": int(hnsw.m),
                "ef_construct": int(hnsw.ef_construct),
                "full_scan_threshold": int(hnsw.full_scan_threshold),
            }
            if hnsw.on_disk is not None:
                settings["hnsw_config"]["on_disk"] = bool(hnsw.on_disk)
            if hnsw.payload_m is not None:
                settings["hnsw_config"]["payload_m"] = int(hnsw.payload_m)
        quant = info.config.quantization_config
        if quant is not None:
            dumped = quant.model_dump(mode="json", exclude_none=True)
            kind = next(iter(dumped))
            keep = {
                "scalar": ("type", "quantile", "always_ram"),
                "product": ("compression", "always_ram"),
                "binary": ("always_ram",),
            }.get(kind, ())
            kept = {k: v for k, v in dumped[kind].items() if k in keep}
            if isinstance(kept.get("quantile"), float):
                # gRPC carries it as a float32 (0.99 arrives as 0.9900000095367432): back to the decimal that was set,
                # or every refresh would see drift
                kept["quantile"] = float(f"{kept['quantile']:.7g}")
            settings["quantization_config"] = normalize_quantization({kind: kept}, "quantization_config")
        settings["on_disk_payload"] = params.on_disk_payload is not False
        settings["shard_number"] = int(params.shard_number or 1)
        settings["replication_factor"] = int(params.replication_factor or 1)
        schema = {}
        for fname, pinfo in (info.payload_schema or {}).items():
            schema[fname] = _schema_from_info(pinfo)
        metadata = getattr(info.config, "metadata", None) or {}
        owner = metadata.get(OWNER_KEY)
        return CollectionState(
            name=name,
            vectors=dict(sorted(vectors.items())),
            settings=settings,
            points_count=int(info.points_count or 0),
            payload_schema=dict(sorted(schema.items())),
            namespace_id=owner if isinstance(owner, str) else None,
            staging=metadata.get(STAGING_KEY) is True,
        )

    def check_claim(self, name: str, namespace_id: str | None) -> None:
        state = self.read_collection(name)
        if state is not None and state.namespace_id and state.namespace_id != namespace_id:
            raise CollectionConflict(owner_message(name, self.location, state.namespace_id, namespace_id))

    def record_namespace(self, name: str, namespace_id: str) -> None:
        self._write(
            name,
            f"record the namespace of {name!r}",
            lambda: self.client.update_collection(name, metadata={OWNER_KEY: namespace_id}),
        )

    def create_collection(
        self,
        name: str,
        vectors: Mapping[str, Mapping[str, Any]],
        settings: Mapping[str, Any],
        namespace_id: str | None = None,
    ) -> None:
        """The physical collection `<name>-g1` and the alias `<name>` to it.

        Creating an alias that exists re-points it without a word, so an existing alias is refused first. Two
        processes creating one name race on `<name>-g1`, which only one can create: the other finds it and adopts
        it (the same namespace's: an interrupted create too) or is refused by its owner."""
        if self._alias_target(name) is not None:
            raise CollectionConflict(f"collection {name!r} already exists at {self.location}")
        physical = f"{name}-g1"
        metadata = {OWNER_KEY: namespace_id} if namespace_id else None
        created = False
        try:
            self._create(physical, vectors, settings, metadata, label=name)
            created = True
        except CollectionConflict:
            there = self.read_collection(physical)
            if there is None or not namespace_id or there.namespace_id != namespace_id:
                if there is not None and there.namespace_id:
                    raise CollectionConflict(
                        owner_message(physical, self.location, there.namespace_id, namespace_id)
                    ) from None
                raise
        try:
            self._alias(name, physical, replace=False)
        except CollectionConflict:
            if created:  # made just now, empty: leave nothing behind
                self._write(
                    physical, f"delete collection {physical!r}", lambda: self.client.delete_collection(physical)
                )
            raise

    def _create(
        self,
        name: str,
        vectors: Mapping[str, Mapping[str, Any]],
        settings: Mapping[str, Any],
        metadata: Mapping[str, Any] | None,
        *,
        label: str | None = None,
    ) -> None:
        """Create the physical collection `name` (`label`: the name messages give); `CollectionConflict` when the
        name is taken."""
        kwargs: dict[str, Any] = {
            "vectors_config": {
                vname: qm.VectorParams(
                    size=p["size"],
                    distance=_distance(p["distance"]),
                    datatype=qm.Datatype(p.get("datatype", "float32")),
                    on_disk=bool(p.get("on_disk", False)),
                    multivector_config=_multivector(p),
                )
                for vname, p in vectors.items()
            },
        }
        if settings.get("hnsw_config"):
            kwargs["hnsw_config"] = qm.HnswConfigDiff(**settings["hnsw_config"])
        if settings.get("quantization_config"):
            kwargs["quantization_config"] = _quantization(settings["quantization_config"])
        for key in ("on_disk_payload", "shard_number", "replication_factor"):
            if settings.get(key) is not None:
                kwargs[key] = settings[key]
        if metadata:
            kwargs["metadata"] = dict(metadata)

        def create() -> Any:
            with self._taken_as_conflict(name):
                return self.client.create_collection(name, **kwargs)

        self._write(name, f"create collection {label or name!r}", create)

    @contextmanager
    def _taken_as_conflict(self, name: str) -> Iterator[None]:
        """A create refused because `name` is taken (REST, gRPC or local mode) raises `CollectionConflict`."""
        taken = CollectionConflict(f"collection {name!r} already exists at {self.location}")
        try:
            yield
        except UnexpectedResponse as exc:
            if exc.status_code in (400, 409) and b"already exists" in (exc.content or b""):
                raise taken from None
            raise
        except ValueError as exc:  # local mode
            if "already exists" in str(exc):
                raise taken from None
            raise
        except Exception as exc:  # noqa: BLE001 - gRPC
            if _is_already_exists(exc):
                raise taken from None
            raise

    # -- aliases and generations --------------------------------------------------------------------

    def _alias_target(self, name: str) -> str | None:
        """The collection the alias `name` points to; None when `name` is no alias."""
        aliases = self._call("list aliases", self.client.get_aliases).aliases
        return next((a.collection_name for a in aliases if a.alias_name == name), None)

    def _alias(self, name: str, collection: str, *, replace: bool) -> None:
        """Point the alias `name` at `collection` in one request (with `replace`, moving it from where it points);
        `CollectionConflict` when `name` is taken by a collection or (without `replace`) an alias."""
        ops: list[Any] = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=name))] if replace else []
        ops.append(qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=collection, alias_name=name)))
        if self.local_mode and not replace and (name in self._collection_names() or self._alias_target(name)):
            raise CollectionConflict(
                f"collection {name!r} already exists at {self.location}"
            )  # local mode does not check

        def update() -> Any:
            with self._taken_as_conflict(name):
                return self.client.update_collection_aliases(change_aliases_operations=ops)

        self._write(name, f"point alias {name!r} at {collection!r}", update)

    def _collection_names(self) -> list[str]:
        return [c.name for c in self._call("list collections", self.client.get_collections).collections]

    def generations(self, name: str, namespace_id: str) -> dict[str, CollectionState]:
        pattern = re.compile(re.escape(name) + r"-g(\d+)")
        current = self._alias_target(name)
        found: list[tuple[int, str, CollectionState]] = []
        for other in self._collection_names():
            match = pattern.fullmatch(other)
            if match and other != current:
                state = self.read_collection(other)
                if state is not None and state.namespace_id == namespace_id:
                    found.append((int(match.group(1)), other, state))
        return {other: state for _, other, state in sorted(found)}

    def next_generation(self, name: str) -> str:
        pattern = re.compile(re.escape(name) + r"-g(\d+)")
        aliases = [a.alias_name for a in self._call("list aliases", self.client.get_aliases).aliases]
        numbers = [int(m.group(1)) for n in [*self._collection_names(), *aliases] if (m := pattern.fullmatch(n))]
        return f"{name}-g{max(numbers, default=0) + 1}"

    def create_generation(
        self, name: str, vectors: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any], namespace_id: str
    ) -> None:
        self._create(name, vectors, settings, {OWNER_KEY: namespace_id, STAGING_KEY: True})

    def finish_generation(self, name: str) -> None:
        self._write(
            name,
            f"record {name!r} as complete",
            lambda: self.client.update_collection(name, metadata={STAGING_KEY: False}),
        )

    def copy_points(self, source: str, dest: str, vector_names: list[str], batch: int = 256) -> int:
        """Scroll `source` and upsert each page into `dest` (waiting for each)."""
        with_vectors: Any = list(vector_names) or False

        def page(offset: Any) -> Callable[[], Any]:
            return lambda: self.client.scroll(
                source, limit=batch, offset=offset, with_payload=True, with_vectors=with_vectors
            )

        def write(points: list[qm.PointStruct]) -> Callable[[], Any]:
            return lambda: self.client.upsert(dest, points, wait=True)

        offset: Any = None
        copied = 0
        while True:
            records, offset = self._call(f"scroll {source!r}", page(offset))
            if records:
                points = [qm.PointStruct(id=r.id, vector=r.vector or {}, payload=r.payload) for r in records]
                self._write(dest, f"upsert into {dest!r}", write(points))
                copied += len(records)
            if offset is None:
                return copied

    def previous_name(self, name: str) -> tuple[str, bool]:
        current = self._alias_target(name)
        return (current, True) if current is not None else (self.next_generation(name), False)

    def switch(self, name: str, generation: str, *, keep_previous: bool) -> str | None:
        """One `update_aliases` call (delete the alias, create it anew) moves `name` to `generation`. A collection made
        before aliases is copied to a generation (with `keep_previous`), deleted, and its name made the alias."""
        previous = self._alias_target(name)
        if previous is not None:
            self._alias(name, generation, replace=True)
        else:
            legacy = self.read_collection(name)
            if legacy is not None:
                previous = None
                if keep_previous:
                    previous = self.next_generation(name)
                    self.create_generation(previous, legacy.vectors, legacy.settings, legacy.namespace_id or "")
                    self.copy_points(name, previous, sorted(legacy.vectors))
                    for field_name, schema in legacy.payload_schema.items():
                        self.create_payload_index(previous, field_name, schema)
                    self.finish_generation(previous)
                self._write(name, f"delete collection {name!r}", lambda: self.client.delete_collection(name))
            self._alias(name, generation, replace=False)
            return previous
        if not keep_previous:
            self.delete_collection(previous)
            return None
        return previous

    def add_vector(self, name: str, vector_name: str, params: Mapping[str, Any]) -> None:
        if not self.supports_add_vector():
            major, minor = self.server_version()
            raise QdrantError(
                f"Qdrant at {self.location} is version {major}.{minor}; adding a named vector to a live "
                "collection needs 1.18 or later"
            )
        config = qm.DenseVectorNameConfig(
            dense=qm.DenseVectorConfig(
                size=params["size"],
                distance=_distance(params["distance"]),
                datatype=qm.Datatype(params.get("datatype", "float32")),
                multivector_config=_multivector(params),
            )
        )
        self._write(
            name,
            f"add vector {vector_name!r} to {name!r}",
            lambda: self.client.create_vector_name(name, vector_name, config),
        )
        if params.get("on_disk"):
            self.update_collection(name, vectors_on_disk={vector_name: True}, settings={})

    def delete_vector(self, name: str, vector_name: str) -> bool:
        """qdrant-client's `delete_vector_name` (Qdrant 1.18; local mode has it too)."""
        if not self.supports_delete_vector():
            major, minor = self.server_version()
            raise QdrantError(
                f"Qdrant at {self.location} is version {major}.{minor}; deleting a named vector from a "
                "live collection needs 1.18 or later"
            )
        state = self.read_collection(name)
        if state is None:
            raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}")
        if vector_name not in state.vectors:
            return False
        self._write(
            name,
            f"delete vector {vector_name!r} of {name!r}",
            lambda: self.client.delete_vector_name(name, vector_name, wait=True),
        )
        return True

    def update_collection(self, name: str, *, vectors_on_disk: Mapping[str, bool], settings: Mapping[str, Any]) -> None:
        kwargs: dict[str, Any] = {}
        if vectors_on_disk:
            kwargs["vectors_config"] = {v: qm.VectorParamsDiff(on_disk=bool(on)) for v, on in vectors_on_disk.items()}
        if settings.get("hnsw_config"):
            kwargs["hnsw_config"] = qm.HnswConfigDiff(**settings["hnsw_config"])
        if settings.get("quantization_config"):
            kwargs["quantization_config"] = _quantization(settings["quantization_config"])
        params = {k: settings[k] for k in ("replication_factor", "on_disk_payload") if settings.get(k) is not None}
        if params:
            kwargs["collection_params"] = qm.CollectionParamsDiff(**params)
        if kwargs:
            self._write(name, f"update collection {name!r}", lambda: self.client.update_collection(name, **kwargs))

    def delete_collection(self, name: str) -> bool:
        """Delete the alias `name` and the collection it points to, or the collection `name`."""
        physical = self._alias_target(name)
        if physical is None:
            return bool(self._write(name, f"delete collection {name!r}", lambda: self.client.delete_collection(name)))
        ops = [qm.DeleteAliasOperation(delete_alias=qm.DeleteAlias(alias_name=name))]
        self._write(
            name, f"delete alias {name!r}", lambda: self.client.update_collection_aliases(change_aliases_operations=ops)
        )
        self._write(physical, f"delete collection {physical!r}", lambda: self.client.delete_collection(physical))
        return True

    def _rest_url(self, *parts: str) -> str:
        """A REST URL on this server, for the snapshot transfers qdrant-client has no call for."""
        if self.local_mode or not self.url:
            raise QdrantError(
                f"{self.location} has no snapshots (qdrant-client local mode has none; a server "
                "store needs its URL: ServerStore.connect)"
            )
        return "/".join([self.url.rstrip("/"), *(quote(p, safe="") for p in parts)])

    def snapshot(self, name: str, directory: str) -> str:
        """Qdrant's collection snapshot, downloaded to `DIRECTORY/<name>-<UTC time>.snapshot`."""
        import httpx

        self._rest_url()  # refuses local mode before anything is done
        described = self._call(f"snapshot {name!r}", lambda: self.client.create_snapshot(name, wait=True))
        if described is None:  # only a request that does not wait comes back without a description
            raise QdrantError(f"Qdrant at {self.location} described no snapshot of {name!r}")
        out_dir = state_path(directory)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        archive = os.path.join(out_dir, f"{name}-{stamp}.snapshot")
        partial = archive + ".partial"
        headers = {"api-key": self._secret} if self._secret else {}
        url = self._rest_url("collections", name, "snapshots", described.name)
        try:
            os.makedirs(out_dir, exist_ok=True)
            with httpx.stream("GET", url, headers=headers, timeout=httpx.Timeout(self.timeout, read=300.0)) as resp:
                if resp.status_code != 200:
                    raise QdrantError(f"HTTP {resp.status_code}")
                with open(partial, "wb") as fh:
                    for chunk in resp.iter_bytes():
                        fh.write(chunk)
            if described.size and os.path.getsize(partial) != described.size:
                raise QdrantError(f"downloaded {os.path.getsize(partial)} bytes of {described.size}")
            os.replace(partial, archive)
        except (OSError, httpx.HTTPError, QdrantError) as exc:
            if os.path.exists(partial):
                os.remove(partial)
            raise QdrantError(
                self._scrub(f"cannot download the snapshot of {name!r} from {self.location} into {directory}: {exc}")
            ) from None
        try:  # the server's copy is no longer needed
            self.client.delete_snapshot(name, described.name, wait=True)
        except Exception:  # noqa: BLE001 - best effort
            pass
        return archive

    def restore(self, archive: str, name: str) -> None:
        import httpx

        url = self._rest_url("collections", name, "snapshots", "upload")
        headers = {"api-key": self._secret} if self._secret else {}
        try:
            with open(archive, "rb") as fh:
                resp = httpx.post(
                    url,
                    params={"priority": "snapshot", "wait": "true"},
                    headers=headers,
                    files={"snapshot": (os.path.basename(archive), fh)},
                    timeout=httpx.Timeout(self.timeout, write=300.0, read=300.0),
                )
        except (OSError, httpx.HTTPError) as exc:
            raise QdrantError(self._scrub(f"cannot upload {archive} to {self.location}: {exc}")) from None
        finally:
            self._forget(name)
        if resp.status_code // 100 != 2:
            raise QdrantError(
                self._scrub(
                    f"Qdrant at {self.location} refused the snapshot {archive}: HTTP "
                    f"{resp.status_code} {resp.text[:300]}"
                )
            )
        # The server keeps the uploaded file among the collection's snapshots; the archive is the copy that counts.
        try:
            self.client.delete_snapshot(name, os.path.basename(archive), wait=True)
        except Exception:  # noqa: BLE001 - best effort
            pass

    def count_points(self, name: str, conditions: list[Mapping[str, Any]] | None = None) -> int:
        def count() -> int:
            try:
                return int(self.client.count(name, count_filter=_filter(conditions), exact=True).count)
            except Exception as exc:  # noqa: BLE001
                if _is_not_found(exc):
                    raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}") from None
                raise

        return self._call(f"count points of {name!r}", count)

    # -- payload indexes --------------------------------------------------------------------------

    def create_payload_index(self, collection: str, field_name: str, schema: Mapping[str, Any]) -> None:
        """Create the index and wait until it is applied; the cached read of the collection then shows it."""
        self._forget(collection, keep=True)
        try:
            self._call(
                f"create payload index {field_name!r} on {collection!r}",
                lambda: self.client.create_payload_index(collection, field_name, _field_schema(schema), wait=True),
            )
        except BaseException:
            self._forget(collection)  # whether it was applied is unknown: the next read asks the server
            raise
        self._indexed(collection, field_name, schema if self.reads_payload_indexes else None)

    def read_owner(self, name: str, *, recent: bool = False) -> str | None:
        """The owner record; with `recent`, from the cached read (see the module docstring)."""
        state = self._recent(name) if recent else self.read_collection(name)
        return state.namespace_id if state is not None else None

    def read_payload_indexes(self, collection: str) -> dict[str, dict[str, Any]] | None:
        """Every index of the collection, from the cached read (see the module docstring) or a new one."""
        state = self._recent(collection)
        return None if state is None else dict(state.payload_schema)

    def delete_payload_index(self, collection: str, field_name: str) -> bool:
        state = self.read_collection(collection)  # a delete decides on the server's answer, not the cache
        if state is None or (self.reads_payload_indexes and field_name not in state.payload_schema):
            return False
        self._forget(collection, keep=True)
        try:
            self._call(
                f"delete payload index {field_name!r} on {collection!r}",
                lambda: self.client.delete_payload_index(collection, field_name, wait=True),
            )
        except BaseException:
            self._forget(collection)
            raise
        self._indexed(collection, field_name, None)
        return True

    # -- data helpers -----------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[Mapping[str, Any]]) -> None:
        structs = [
            qm.PointStruct(
                id=p["id"], vector={k: _plain_vector(v) for k, v in p["vector"].items()}, payload=p.get("payload")
            )
            for p in points
        ]
        self._write(
            collection, f"upsert into {collection!r}", lambda: self.client.upsert(collection, structs, wait=True)
        )

    def query(
        self,
        collection: str,
        vector_name: str,
        vector: list[float] | list[list[float]],
        conditions: list[Mapping[str, Any]] | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        result = self._call(
            f"query {collection!r}",
            lambda: self.client.query_points(
                collection,
                query=_plain_vector(vector),
                using=vector_name,
                query_filter=_filter(conditions),
                limit=limit,
                with_payload=True,
            ),
        )
        return [{"id": p.id, "score": p.score, "payload": p.payload} for p in result.points]

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - best effort
            pass


def _distance(name: str) -> Any:
    return {
        "cosine": qm.Distance.COSINE,
        "dot": qm.Distance.DOT,
        "euclid": qm.Distance.EUCLID,
        "manhattan": qm.Distance.MANHATTAN,
    }[name]


def _multivector(params: Mapping[str, Any]) -> Any:
    """`qm.MultiVectorConfig` of a multi-vector's canonical params; None for a plain dense vector."""
    multi = params.get("multivector")
    if not multi:
        return None
    return qm.MultiVectorConfig(comparator={"max_sim": qm.MultiVectorComparator.MAX_SIM}[multi["comparator"]])


def _plain_vector(value: Any) -> list[Any]:
    """A dense vector as a list of floats, a multi-vector as a list of such lists."""
    return [list(v) if isinstance(v, (list, tuple)) else v for v in value]


def _quantization(value: Mapping[str, Any]) -> Any:
    kind = next(iter(value))
    models: dict[str, Any] = {
        "scalar": qm.ScalarQuantization,
        "product": qm.ProductQuantization,
        "binary": qm.BinaryQuantization,
    }
    model = models[kind]
    return model.model_validate(dict(value))


def _field_schema(schema: Mapping[str, Any]) -> Any:
    kind = schema["type"]
    model: Any = {
        "text": qm.TextIndexParams,
        "keyword": qm.KeywordIndexParams,
        "integer": qm.IntegerIndexParams,
        "uuid": qm.UuidIndexParams,
    }.get(kind)
    if model is not None:
        return model.model_validate(dict(schema))
    return qm.PayloadSchemaType(kind)


def _schema_from_info(info: Any) -> dict[str, Any]:
    kind = str(getattr(info.data_type, "value", info.data_type)).lower()
    params = info.params.model_dump(mode="json", exclude_none=True) if info.params is not None else {}
    out: dict[str, Any] = {"type": kind}
    if kind == "text":
        out["tokenizer"] = str(params.get("tokenizer", "word"))
        for key in ("min_token_len", "max_token_len"):
            if params.get(key) is not None:
                out[key] = int(params[key])
        out["lowercase"] = params.get("lowercase", True) is not False
    elif kind in ("keyword", "uuid"):
        out["is_tenant"] = params.get("is_tenant") is True
    elif kind == "integer":
        out["lookup"] = params.get("lookup", True) is not False
        out["range"] = params.get("range", True) is not False
    return out


def _filter(conditions: list[Mapping[str, Any]] | None) -> Any:
    if not conditions:
        return None
    must = []
    for cond in conditions:
        match = qm.MatchText(text=cond["text"]) if "text" in cond else qm.MatchValue(value=cond["value"])
        must.append(qm.FieldCondition(key=cond["key"], match=match))
    return qm.Filter(must=must)
