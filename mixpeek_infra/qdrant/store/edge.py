"""`EdgeStore`: collections as embedded Qdrant Edge shards (`qdrant-edge-py`), one directory each.

Facts this store relies on (qdrant-edge-py 0.9, checked against the library):

- A shard directory holds `edge_config.json` (the vector config and shard settings: hnsw,
  quantization, on_disk_payload), a `wal/` and `segments/`. The library has no call that returns
  the config, so it is read back from `edge_config.json`; the payload index schema (type and every
  parameter) comes from `EdgeShard.info().payload_schema`.
- `EdgeShard.load(path)` opens an existing shard; `load(path, config)` checks the config against
  the stored segments (vector size, distance, datatype and the set of names must match) and
  rewrites `edge_config.json` with it; that is how hnsw, quantization, on_disk_payload and
  per-vector on_disk are changed in place. Settings given as None keep their stored value.
- `UpdateOperation.create_dense_vector` adds a named vector to a live shard and
  `UpdateOperation.delete_vector_name` drops one (config and data; the points stay); re-creating a field
  index with other params (or another type) replaces it in place.
- An open shard holds an exclusive lock on its WAL (a `flock` on its `wal/` directory): a second `load`
  of the same directory, from this process or another, fails with `Can't init WAL: Kind(WouldBlock)`
  until the holder closes.
  So each process keeps at most one open handle per shard (a pool), serialises operations on it,
  and closes it after a short idle time (`MIXPEEK_EDGE_IDLE_CLOSE` seconds, default 1) so other
  processes can open the shard between runs. A shard locked elsewhere is waited for up to the
  target's timeout, then reported as `EdgeLocked`.
- `load` on a directory that is not a shard creates empty `segments/` and fails, so existence is
  decided by `edge_config.json` before loading.

What this store adds to a shard directory, and why:

- `mixpeek_collection.json`, written into the new directory before `EdgeShard.create`: it records
  that this code made the directory and which namespace owns the collection. A directory without
  it is never removed or taken over (only an existing Edge shard, with `edge_config.json`, is
  adopted, and then the marker is added); a directory with it but no `edge_config.json`, holding
  nothing but Edge's own empty entries, is an interrupted create and is removed by the next one.
- a migration's generation `ROOT/<name>-g<N>` is a shard like any other whose marker says `staging`
  until it is complete; `switch` then exchanges the two directories in one `renameat2(RENAME_EXCHANGE)`,
  so a reader opening `ROOT/<name>` finds the old shard or the new one, never neither or a half.
- `ROOT/.<name>.lock`, beside the shard: an exclusive `flock` held around create-or-adopt,
  snapshot and delete, so two processes never build one shard at once (the loser waits, then
  adopts it or is refused by its owner record).
"""

from __future__ import annotations

import atexit
import fcntl
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import qdrant_edge as qe

from ...paths import state_path
from ...vocabulary import QDRANT_TIMEOUT
from ..errors import (
    CollectionConflict,
    CollectionNotFound,
    EdgeCorrupt,
    EdgeLocked,
    InvalidSpec,
    QdrantError,
    owner_message,
)
from ..normalize import COLLECTION_NAME, normalize_quantization
from .base import CollectionState, Store, thread_lock

CONFIG_FILE = "edge_config.json"
MARKER_FILE = "mixpeek_collection.json"
SNAPSHOT_MANIFEST = "mixpeek_snapshot.json"  # in a snapshot: each trimmed file's full size
_ATOMIC_WRITE = ".atomicwrite"  # the prefix of the temp directory Edge writes edge_config.json through
_WAL_SEGMENT = re.compile(r"(tmp-)?(open|closed)-[0-9]+")  # tmp-: a segment being preallocated
_WAL_HEADER = 8  # bytes a WAL segment starts with; an empty segment holds only zeros after them
_SMALL = 1 << 20  # bytes: the most a WAL's first-index or Edge's temp config file holds
_FLOCKED: set[str] = set()  # shard paths whose lock file this process holds (guarded by their thread lock)

_DISTANCE = {
    "cosine": qe.Distance.Cosine,
    "dot": qe.Distance.Dot,
    "euclid": qe.Distance.Euclid,
    "manhattan": qe.Distance.Manhattan,
}
_DATATYPE = {
    "float32": qe.VectorStorageDatatype.Float32,
    "float16": qe.VectorStorageDatatype.Float16,
    "uint8": qe.VectorStorageDatatype.Uint8,
}
_TOKENIZER = {
    "word": qe.TokenizerType.Word,
    "whitespace": qe.TokenizerType.Whitespace,
    "prefix": qe.TokenizerType.Prefix,
    "multilingual": qe.TokenizerType.Multilingual,
}
_COMPARATOR = {"max_sim": qe.MultiVectorComparator.MaxSim}
_COMPRESSION = {
    "x4": qe.CompressionRatio.X4,
    "x8": qe.CompressionRatio.X8,
    "x16": qe.CompressionRatio.X16,
    "x32": qe.CompressionRatio.X32,
    "x64": qe.CompressionRatio.X64,
}


def _enum_name(value: Any) -> str:
    """`TokenizerType.Word` -> `word` (the PyO3 enums have no `.name`)."""
    return repr(value).rsplit(".", 1)[-1].lower()


def _idle_close_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("MIXPEEK_EDGE_IDLE_CLOSE", "1.0")))
    except ValueError:
        return 1.0


# ---------------------------------------------------------------------------------------------
# One open handle per shard per process


class _Entry:
    __slots__ = ("lock", "shard", "busy", "last_used")

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.shard: Any = None
        self.busy = 0
        self.last_used = 0.0


class _ShardPool:
    """Open Edge shards of this process, keyed by absolute path, closed when idle."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        self._reaper: threading.Thread | None = None

    def _entry(self, path: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                entry = self._entries[path] = _Entry()
            return entry

    @contextmanager
    def use(self, path: str, opener: Callable[[], Any]) -> Iterator[Any]:
        """The open shard at `path` (opened with `opener` if needed), held exclusively meanwhile."""
        entry = self._entry(path)
        with entry.lock:
            if entry.shard is None:
                entry.shard = opener()
                self._start_reaper()
            entry.busy += 1
            try:
                yield entry.shard
            finally:
                entry.busy -= 1
                entry.last_used = time.monotonic()

    def reopen(self, path: str, opener: Callable[[], Any]) -> None:
        """Close the shard if open and open it again with `opener` (e.g. to load a new config)."""
        entry = self._entry(path)
        with entry.lock:
            self._close(entry)
            entry.shard = opener()
            entry.last_used = time.monotonic()
            self._start_reaper()

    @contextmanager
    def closed(self, path: str) -> Iterator[None]:
        """Hold the shard closed (e.g. while its directory is removed)."""
        entry = self._entry(path)
        with entry.lock:
            self._close(entry)
            yield

    @staticmethod
    def _close(entry: _Entry) -> None:
        shard, entry.shard = entry.shard, None
        if shard is not None:
            try:
                shard.flush()
            finally:
                shard.close()

    def close_all(self) -> None:
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            with entry.lock:
                try:
                    self._close(entry)
                except Exception:  # noqa: BLE001 - best effort at exit
                    pass

    def _start_reaper(self) -> None:
        with self._lock:
            if self._reaper is None or not self._reaper.is_alive():
                self._reaper = threading.Thread(target=self._reap, name="mixpeek-edge-idle-close", daemon=True)
                self._reaper.start()

    def _reap(self) -> None:
        while True:
            idle = _idle_close_seconds()
            time.sleep(min(0.25, max(idle / 2, 0.02)))
            with self._lock:
                entries = list(self._entries.values())
            still_open = False
            for entry in entries:
                if entry.shard is None:
                    continue
                if (
                    entry.busy == 0
                    and time.monotonic() - entry.last_used >= idle
                    and entry.lock.acquire(blocking=False)
                ):
                    try:
                        if entry.shard is not None and entry.busy == 0:
                            self._close(entry)
                    except Exception:  # noqa: BLE001 - a failed close leaves the handle dropped
                        entry.shard = None
                    finally:
                        entry.lock.release()
                still_open = still_open or entry.shard is not None
            if not still_open:
                with self._lock:
                    if not any(e.shard is not None for e in self._entries.values()):
                        self._reaper = None
                        return


_POOL = _ShardPool()
atexit.register(_POOL.close_all)


def close_all_shards() -> None:
    """Close every Edge shard this process holds open (releasing their locks)."""
    _POOL.close_all()


# ---------------------------------------------------------------------------------------------
# Conversions


def _multivector(params: Mapping[str, Any]) -> Any:
    """`qe.MultiVectorConfig` of a multi-vector's canonical params; None for a plain dense vector."""
    multi = params.get("multivector")
    return qe.MultiVectorConfig(comparator=_COMPARATOR[multi["comparator"]]) if multi else None


def _vector_params(params: Mapping[str, Any]) -> Any:
    return qe.EdgeVectorParams(
        size=int(params["size"]),
        distance=_DISTANCE[params["distance"]],
        on_disk=bool(params.get("on_disk", False)),
        multivector_config=_multivector(params),
        datatype=_DATATYPE[params.get("datatype", "float32")],
    )


def _quantization(value: Mapping[str, Any]) -> Any:
    kind, params = next(iter(value.items()))
    if kind == "scalar":
        return qe.ScalarQuantizationConfig(
            type=qe.ScalarType.Int8, quantile=params.get("quantile"), always_ram=params.get("always_ram")
        )
    if kind == "product":
        return qe.ProductQuantizationConfig(
            compression=_COMPRESSION[params["compression"]], always_ram=params.get("always_ram")
        )
    return qe.BinaryQuantizationConfig(always_ram=params.get("always_ram"))


def _edge_config(vectors: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any]) -> Any:
    for key in ("shard_number", "replication_factor"):
        if settings.get(key, 1) != 1:
            raise InvalidSpec(
                f"settings.{key}",
                "an embedded Qdrant Edge collection is a single local shard; "
                "only 1 is possible (use a server target for more)",
            )
    kwargs: dict[str, Any] = {"vectors": {name: _vector_params(p) for name, p in vectors.items()}}
    hnsw = settings.get("hnsw_config")
    if hnsw:
        kwargs["hnsw_config"] = qe.HnswIndexConfig(
            m=hnsw["m"],
            ef_construct=hnsw["ef_construct"],
            full_scan_threshold=hnsw["full_scan_threshold"],
            on_disk=hnsw.get("on_disk"),
            payload_m=hnsw.get("payload_m"),
        )
    if settings.get("quantization_config"):
        kwargs["quantization_config"] = _quantization(settings["quantization_config"])
    if settings.get("on_disk_payload") is not None:
        kwargs["on_disk_payload"] = settings["on_disk_payload"]
    return qe.EdgeConfig(**kwargs)


def _index_params(schema: Mapping[str, Any]) -> Any:
    kind = schema["type"]
    if kind == "text":
        return qe.TextIndexParams(
            tokenizer=_TOKENIZER[schema["tokenizer"]],
            min_token_len=schema["min_token_len"],
            max_token_len=schema["max_token_len"],
            lowercase=schema["lowercase"],
        )
    if kind == "keyword":
        return qe.KeywordIndexParams(is_tenant=schema["is_tenant"])
    if kind == "integer":
        return qe.IntegerIndexParams(lookup=schema["lookup"], range=schema["range"])
    if kind == "uuid":
        return qe.UuidIndexParams(is_tenant=schema["is_tenant"])
    return {
        "float": qe.FloatIndexParams,
        "bool": qe.BoolIndexParams,
        "geo": qe.GeoIndexParams,
        "datetime": qe.DatetimeIndexParams,
    }[kind]()


def _schema_from_info(info: Any) -> dict[str, Any]:
    """Canonical schema of a `PayloadIndexInfo`; unset flags take Qdrant's defaults."""
    kind = _enum_name(info.data_type)
    params = info.params
    out: dict[str, Any] = {"type": kind}
    if kind == "text":
        out["tokenizer"] = _enum_name(params.tokenizer) if params is not None else "word"
        for key in ("min_token_len", "max_token_len"):
            value = getattr(params, key, None) if params is not None else None
            if value is not None:
                out[key] = int(value)
        lowercase = getattr(params, "lowercase", None) if params is not None else None
        out["lowercase"] = True if lowercase is None else bool(lowercase)
    elif kind in ("keyword", "uuid"):
        out["is_tenant"] = bool(getattr(params, "is_tenant", None)) if params is not None else False
    elif kind == "integer":
        for key in ("lookup", "range"):
            value = getattr(params, key, None) if params is not None else None
            out[key] = True if value is None else bool(value)
    return out


def _vectors_from_config(config: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, params in (config.get("vectors") or {}).items():
        out[name] = {
            "size": int(params["size"]),
            "distance": str(params["distance"]).lower(),
            "datatype": str(params.get("datatype") or "float32").lower(),
            "on_disk": params.get("on_disk") is True,
        }
        multi = params.get("multivector_config")
        if multi:  # Edge writes {"comparator": "max_sim"}
            out[name]["multivector"] = {"comparator": str(multi.get("comparator", "max_sim")).lower()}
    return dict(sorted(out.items()))


def _settings_from_config(config: Mapping[str, Any]) -> dict[str, Any]:
    settings: dict[str, Any] = {"shard_number": 1, "replication_factor": 1}
    hnsw = config.get("hnsw_config")
    settings["hnsw_config"] = {
        "m": int(hnsw["m"]) if hnsw else 16,
        "ef_construct": int(hnsw["ef_construct"]) if hnsw else 100,
        "full_scan_threshold": int(hnsw["full_scan_threshold"]) if hnsw else 10000,
    }
    if hnsw:
        for key in ("on_disk", "payload_m"):
            if hnsw.get(key) is not None:
                settings["hnsw_config"][key] = hnsw[key]
    quant = config.get("quantization_config")
    if quant:
        kind, params = next(iter(quant.items()))
        keep = {
            "scalar": ("type", "quantile", "always_ram"),
            "product": ("compression", "always_ram"),
            "binary": ("always_ram",),
        }.get(kind, ())
        settings["quantization_config"] = normalize_quantization(
            {kind: {k: v for k, v in (params or {}).items() if k in keep and v is not None}}, "quantization_config"
        )
    on_disk_payload = config.get("on_disk_payload")
    settings["on_disk_payload"] = True if on_disk_payload is None else bool(on_disk_payload)
    return settings


def _plain_vector(value: Any) -> list[Any]:
    """A dense vector as a list of floats, a multi-vector as a list of such lists."""
    return [list(v) if isinstance(v, (list, tuple)) else v for v in value]


def _only_what_edge_writes_before_storing(path: str) -> bool:
    """Whether shard directory `path` (without edge_config.json) holds nothing but our marker and what
    `EdgeShard.create` writes before anything is stored: WAL segments holding no entry, an empty segments/, and the
    temp directory Edge writes its config through. No links, no other entries."""
    for entry in os.scandir(path):
        if entry.is_symlink():
            return False
        if entry.name == MARKER_FILE and entry.is_file(follow_symlinks=False):
            continue
        if entry.name == "segments" and entry.is_dir(follow_symlinks=False):
            if os.listdir(entry.path):
                return False
        elif entry.name == "wal" and entry.is_dir(follow_symlinks=False):
            if not all(_empty_wal_file(e) for e in os.scandir(entry.path)):
                return False
        elif entry.name.startswith(_ATOMIC_WRITE) and entry.is_dir(follow_symlinks=False):
            if not all(
                e.is_file(follow_symlinks=False) and e.stat(follow_symlinks=False).st_size <= _SMALL
                for e in os.scandir(entry.path)
            ):
                return False
        else:
            return False
    return True


def _empty_wal_file(entry: os.DirEntry) -> bool:
    """A WAL file with no entry in it: `first-index`, or a segment that is zeros after its header."""
    if entry.is_symlink() or not entry.is_file(follow_symlinks=False):
        return False
    if entry.name == "first-index":
        return entry.stat(follow_symlinks=False).st_size <= _SMALL
    if not _WAL_SEGMENT.fullmatch(entry.name):
        return False
    with open(entry.path, "rb") as fh:
        fh.seek(_WAL_HEADER)
        while chunk := fh.read(1 << 20):
            if chunk.count(0) != len(chunk):
                return False
    return True


def _data_length(fh: Any) -> int:
    """Bytes of open file `fh` up to its last non-zero byte: the rest is preallocation (zeros), which a restore
    gives back by extending the file. Holes are skipped where the system reports them."""
    fd = fh.fileno()
    size = os.fstat(fd).st_size
    end = pos = 0
    while pos < size:
        seek_data = getattr(os, "SEEK_DATA", None)
        if seek_data is None:
            stop = size
        else:
            try:
                pos = os.lseek(fd, pos, seek_data)
            except OSError:  # ENXIO: only a hole is left
                break
            stop = os.lseek(fd, pos, os.SEEK_HOLE)
        fh.seek(pos)
        while pos < stop:
            chunk = fh.read(min(1 << 20, stop - pos))
            if not chunk:
                return end
            kept = len(chunk.rstrip(b"\0"))
            if kept:
                end = pos + kept
            pos += len(chunk)
    return end


def _add_trimmed(tar: tarfile.TarFile, path: str, name: str) -> None:
    """Add shard directory `path` as `name/`, each file up to its last non-zero byte, plus the sizes manifest."""
    full_sizes: dict[str, int] = {}
    for base, dirs, files in os.walk(path):
        dirs.sort()
        rel_base = os.path.relpath(base, path)
        tar.add(base, arcname=name if rel_base == "." else f"{name}/{rel_base}", recursive=False)
        for fname in sorted(files):
            full = os.path.join(base, fname)
            rel = os.path.normpath(os.path.join(rel_base, fname))
            info = tar.gettarinfo(full, arcname=f"{name}/{rel}")
            if not info.isfile():
                raise OSError(f"{full} is not a regular file")
            with open(full, "rb") as fh:
                kept = _data_length(fh)
                if kept < info.size:
                    full_sizes[rel] = info.size
                    info.size = kept
                fh.seek(0)
                tar.addfile(info, fh)
    manifest = json.dumps({"full_sizes": full_sizes}, sort_keys=True).encode()
    info = tarfile.TarInfo(f"{name}/{SNAPSHOT_MANIFEST}")
    info.size, info.mtime, info.mode = len(manifest), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(manifest))


def _extend_to_manifest(shard: str, files: set[str], archive: str) -> None:
    """Give each trimmed file of a restored shard its full size again (zeros), as the manifest records; then
    remove the manifest. Only files of the archive are extended, and never shortened."""
    manifest_path = os.path.join(shard, SNAPSHOT_MANIFEST)
    if not os.path.isfile(manifest_path):
        return  # a plain tar of an earlier version: every file is whole
    try:
        with open(manifest_path, encoding="utf-8") as fh:
            sizes = json.load(fh)["full_sizes"]
        if not isinstance(sizes, dict):
            raise ValueError("full_sizes is not an object")
        for rel, size in sizes.items():
            target = os.path.join(shard, rel)
            if (
                rel not in files
                or not isinstance(size, int)
                or not 0 <= size <= 1 << 40
                or os.path.getsize(target) > size
            ):
                raise ValueError(f"bad entry {rel!r}: {size!r}")
            os.truncate(target, size)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise QdrantError(f"{archive}: its {SNAPSHOT_MANIFEST} cannot be applied ({exc})") from None
    os.remove(manifest_path)


def _filter(conditions: list[Mapping[str, Any]] | None) -> Any:
    if not conditions:
        return None
    must: list[Any] = []
    for cond in conditions:
        if "text" in cond:
            must.append(qe.FieldCondition(key=cond["key"], match=qe.MatchText(cond["text"])))
        else:
            must.append(qe.FieldCondition(key=cond["key"], match=qe.MatchValue(cond["value"])))
    return qe.Filter(must=must)


# ---------------------------------------------------------------------------------------------


def _exchange(a: str, b: str) -> None:
    """Swap two directories atomically (Linux `renameat2` with `RENAME_EXCHANGE`)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) != 0:
        errno = ctypes.get_errno()
        raise QdrantError(f"cannot exchange {a} and {b} atomically: {os.strerror(errno)}")


class EdgeStore(Store):
    """Collections as Qdrant Edge shards under one root directory (`ROOT/<collection name>`)."""

    kind = "embedded"

    def __init__(self, root: str, *, timeout: float = QDRANT_TIMEOUT, display_path: str | None = None):
        self.root = state_path(root)
        self.timeout = float(timeout)
        self.location = f"embedded Qdrant Edge at {display_path or root}"

    # -- paths and opening ----------------------------------------------------------------------

    def shard_path(self, name: str) -> str:
        """The shard directory of collection `name`."""
        if not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name):
            raise InvalidSpec(
                "collection_name",
                f"{name!r} is not a valid collection name for an embedded target (1-255 letters, digits, '_' or '-')",
            )
        path = os.path.join(self.root, name)
        if os.path.islink(path):
            raise CollectionConflict(
                f"{path} is a symbolic link; mixpeek-infra never adopts, writes into or removes a collection's shard "
                "directory through a link (its target may be another application's). Remove the link (or move the "
                "real directory there), or choose another collection name (infrastructure.qdrant_collection / "
                "collection_name) or target path."
            )
        return path

    def _exists(self, path: str) -> bool:
        return os.path.isfile(os.path.join(path, CONFIG_FILE))

    def _read_config(self, path: str) -> dict[str, Any]:
        try:
            with open(os.path.join(path, CONFIG_FILE), encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError) as exc:
            raise EdgeCorrupt(
                f"Qdrant Edge shard {path}: cannot read {CONFIG_FILE}: {exc}. Restore the directory "
                "from a snapshot or backup, or remove it to let the next run create it anew."
            ) from None

    def _load(self, path: str, config: Any = None) -> Any:
        deadline = time.monotonic() + self.timeout
        delay = 0.02
        while True:
            try:
                return qe.EdgeShard.load(path, config)
            except Exception as exc:  # noqa: BLE001 - the library raises plain Exception
                message = str(exc)
                if "WouldBlock" in message:
                    if time.monotonic() + delay < deadline:
                        time.sleep(delay)
                        delay = min(delay * 2, 0.25)
                        continue
                    raise EdgeLocked(
                        f"Qdrant Edge shard {path} is locked by another process (waited {self.timeout:g}s). "
                        "Another `pulumi up` or an application holds it open; stop it and run again."
                    ) from None
                if "Read-only file system" in message or "Permission denied" in message:
                    raise QdrantError(
                        f"Qdrant Edge shard {path} is not writable ({message}); make the directory "
                        "writable by the user running Pulumi and run again."
                    ) from None
                if "incompatible" in message:
                    raise CollectionConflict(f"Qdrant Edge shard {path}: {message}") from None
                raise EdgeCorrupt(
                    f"Qdrant Edge shard {path} cannot be loaded: {message}. Restore it from a "
                    "snapshot or backup, or remove the directory if its data is expendable."
                ) from None

    def _use(self, name: str) -> Any:
        path = self.shard_path(name)
        if not self._exists(path):
            raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}")
        return _POOL.use(path, lambda: self._load(path))

    # -- collections ------------------------------------------------------------------------------

    def supports_add_vector(self) -> bool:
        return True

    def read_collection(self, name: str) -> CollectionState | None:
        path = self.shard_path(name)
        if not self._exists(path):
            return None
        with _POOL.use(path, lambda: self._load(path)) as shard:
            info = shard.info()
            config = self._read_config(path)
            return CollectionState(
                name=name,
                vectors=_vectors_from_config(config),
                settings=_settings_from_config(config),
                points_count=int(info.points_count),
                payload_schema={k: _schema_from_info(v) for k, v in info.payload_schema.items()},
                namespace_id=(self._marker(path) or {}).get("namespace_id"),
                staging=(self._marker(path) or {}).get("staging") is True,
            )

    # -- ownership: the marker, the lock ------------------------------------------------------------

    @staticmethod
    def _marker(path: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(path, MARKER_FILE), encoding="utf-8") as fh:
                marker = json.load(fh)
        except (OSError, ValueError):
            return None
        return marker if isinstance(marker, dict) and marker.get("created_by") == "mixpeek-infra" else None

    @staticmethod
    def _write_marker(path: str, namespace_id: str | None, *, staging: bool = False) -> None:
        tmp = os.path.join(path, f".{MARKER_FILE}.{secrets.token_hex(4)}")
        marker: dict[str, Any] = {"created_by": "mixpeek-infra", "namespace_id": namespace_id}
        if staging:
            marker["staging"] = True
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(marker, fh)
        os.replace(tmp, os.path.join(path, MARKER_FILE))

    def read_owner(self, name: str, *, recent: bool = False) -> str | None:
        """The marker's namespace of an existing shard (the shard itself is not opened)."""
        path = self.shard_path(name)
        return (self._marker(path) or {}).get("namespace_id") if self._exists(path) else None

    def _flock(self, fd: int, busy: str) -> None:
        """Take an exclusive `flock` on `fd`, waiting up to the timeout; then `EdgeLocked(busy)`."""
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EdgeLocked(busy) from None
                time.sleep(0.05)

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold collection `name` against this process's threads and other processes (`ROOT/.<name>.lock`)."""
        path = self.shard_path(name)
        with thread_lock(("edge", path)):
            if path in _FLOCKED:  # re-entered by the thread that holds it
                yield
                return
            lock_file = os.path.join(self.root, f".{name}.lock")
            try:
                os.makedirs(self.root, exist_ok=True)
                fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise QdrantError(
                    f"cannot lock collection {name!r} at {self.location} ({lock_file}): "
                    f"{exc.strerror}; make {self.root} writable by the user running Pulumi"
                ) from None
            try:
                self._flock(
                    fd,
                    f"collection {name!r} at {self.location} is being created or deleted by another process (it "
                    f"holds {lock_file}; waited {self.timeout:g}s); let it finish and run again",
                )
                _FLOCKED.add(path)
                try:
                    yield
                finally:
                    _FLOCKED.discard(path)
            finally:
                os.close(fd)  # releases the flock

    def check_claim(self, name: str, namespace_id: str | None) -> None:
        """Refuse unless `name` is free, an existing shard that is unrecorded or `namespace_id`'s, or an interrupted
        create of `namespace_id` (its marker names it, and it holds nothing but what Edge writes before it stores
        anything; create removes and redoes it). A symbolic link is refused by `shard_path`."""
        path = self.shard_path(name)
        if not os.path.lexists(path):
            return
        if not os.path.isdir(path):
            raise CollectionConflict(
                f"cannot create Qdrant collection {name!r} at {self.location}: {path} exists and "
                "is not a directory; choose another collection name (infrastructure."
                "qdrant_collection / collection_name) or another target path, or move it away"
            )
        marker = self._marker(path)
        owner = (marker or {}).get("namespace_id")
        if self._exists(path):
            if owner and owner != namespace_id:
                raise CollectionConflict(owner_message(name, self.location, owner, namespace_id))
            return
        if marker is None:
            raise CollectionConflict(
                f"refusing to create Qdrant collection {name!r} at {self.location}: the directory {path} exists and "
                f"was not created by mixpeek-infra (it has no {MARKER_FILE}), so it is neither removed nor taken "
                "over. Choose another collection name (infrastructure.qdrant_collection / collection_name) or another "
                "target path, or move the directory away."
            )
        if owner != namespace_id:
            if owner:
                raise CollectionConflict(owner_message(name, self.location, owner, namespace_id))
            raise CollectionConflict(
                f"refusing to create Qdrant collection {name!r} at {self.location}: {path} holds an unfinished "
                f"collection that records no namespace, so it is not provably {namespace_id}'s and is left alone. "
                "Move the directory away (or remove it if its contents are expendable), or choose another collection "
                "name."
            )
        if not _only_what_edge_writes_before_storing(path):
            raise EdgeCorrupt(
                f"Qdrant Edge shard {path} holds data but no {CONFIG_FILE}; restore it from a snapshot "
                "or backup, or remove the directory if its data is expendable."
            )

    def record_namespace(self, name: str, namespace_id: str) -> None:
        path = self.shard_path(name)
        if not self._exists(path):
            raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}")
        self._write_marker(path, namespace_id)

    # -- collections --------------------------------------------------------------------------------

    def create_collection(
        self,
        name: str,
        vectors: Mapping[str, Mapping[str, Any]],
        settings: Mapping[str, Any],
        namespace_id: str | None = None,
        *,
        staging: bool = False,
    ) -> None:
        path = self.shard_path(name)
        config = _edge_config(vectors, settings)
        with self.lock(name):
            if self._exists(path):
                raise CollectionConflict(f"collection {name!r} already exists at {self.location}")
            self.check_claim(name, namespace_id)
            self._remove_staging(name)
            if os.path.lexists(path):  # check_claim proved it: this namespace's interrupted create, nothing stored
                shutil.rmtree(path)

            def create() -> Any:
                # The directory appears with the marker already in it (a rename), so a kill at any moment leaves
                # either nothing, a staging directory, or a shard directory that names its namespace.
                building = os.path.join(self.root, f".{name}.creating-{secrets.token_hex(4)}")
                try:
                    os.mkdir(building)
                    self._write_marker(building, namespace_id, staging=staging)
                    os.rename(building, path)
                except OSError as exc:
                    shutil.rmtree(building, ignore_errors=True)
                    raise QdrantError(f"cannot create Qdrant Edge shard {path}: {exc}") from None
                try:
                    return qe.EdgeShard.create(path, config)
                except Exception as exc:  # noqa: BLE001
                    shutil.rmtree(path, ignore_errors=True)  # made just now, by this call
                    raise QdrantError(f"cannot create Qdrant Edge shard {path}: {exc}") from None

            # No flush per operation: the WAL makes each change durable, and the pool flushes on close.
            with _POOL.use(path, create):
                pass

    def _remove_staging(self, name: str) -> None:
        """Remove `ROOT/.<name>.creating-*` left by a killed create: only ones holding nothing but our marker."""
        prefix = f".{name}.creating-"
        try:
            entries = [e for e in os.scandir(self.root) if e.name.startswith(prefix)]
        except OSError:
            return
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            inside = list(os.scandir(entry.path))
            if all(
                e.is_file(follow_symlinks=False)
                and e.stat(follow_symlinks=False).st_size <= _SMALL
                and (e.name == MARKER_FILE or e.name.startswith(f".{MARKER_FILE}."))
                for e in inside
            ):
                shutil.rmtree(entry.path, ignore_errors=True)

    def add_vector(self, name: str, vector_name: str, params: Mapping[str, Any]) -> None:
        with self._use(name) as shard:
            shard.update(
                qe.UpdateOperation.create_dense_vector(
                    vector_name,
                    int(params["size"]),
                    _DISTANCE[params["distance"]],
                    multivector_config=_multivector(params),
                    datatype=_DATATYPE[params.get("datatype", "float32")],
                )
            )
        if params.get("on_disk"):
            self.update_collection(name, vectors_on_disk={vector_name: True}, settings={})

    def delete_vector(self, name: str, vector_name: str) -> bool:
        """`UpdateOperation.delete_vector_name`: Edge removes the vector from `edge_config.json` and its data from
        every segment (checked: gone after the shard is closed and loaded again)."""
        path = self.shard_path(name)
        with self._use(name) as shard:
            if vector_name not in _vectors_from_config(self._read_config(path)):
                return False
            shard.update(qe.UpdateOperation.delete_vector_name(vector_name))
            shard.flush()
        return True

    def update_collection(self, name: str, *, vectors_on_disk: Mapping[str, bool], settings: Mapping[str, Any]) -> None:
        path = self.shard_path(name)
        if not self._exists(path):
            raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}")
        vectors = _vectors_from_config(self._read_config(path))
        for vector_name, on_disk in vectors_on_disk.items():
            if vector_name not in vectors:
                raise CollectionNotFound(f"collection {name!r} has no vector {vector_name!r}")
            vectors[vector_name]["on_disk"] = bool(on_disk)
        config = _edge_config(vectors, settings)
        _POOL.reopen(path, lambda: self._load(path, config))

    def delete_collection(self, name: str) -> bool:
        path = self.shard_path(name)
        if not os.path.isdir(path):
            return False
        with self.lock(name), _POOL.closed(path):
            if not self._exists(path):
                return False  # no shard there (an interrupted create is redone by its own namespace's next create)
            # Take the shard's lock once: never remove a shard another process has open.
            self._load(path).close()
            shutil.rmtree(path)
        return True

    # -- generations ---------------------------------------------------------------------------------

    def _generation_names(self, name: str) -> list[tuple[int, str]]:
        pattern = re.compile(re.escape(name) + r"-g(\d+)")
        try:
            entries = os.listdir(self.root)
        except OSError:
            return []
        return sorted((int(m.group(1)), entry) for entry in entries if (m := pattern.fullmatch(entry)))

    def generations(self, name: str, namespace_id: str) -> dict[str, CollectionState]:
        found = {}
        for _, other in self._generation_names(name):
            path = os.path.join(self.root, other)
            if os.path.islink(path) or (self._marker(path) or {}).get("namespace_id") != namespace_id:
                continue
            state = self.read_collection(other)
            if state is not None:
                found[other] = state
        return found

    def next_generation(self, name: str) -> str:
        return f"{name}-g{max((n for n, _ in self._generation_names(name)), default=0) + 1}"

    def create_generation(
        self, name: str, vectors: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any], namespace_id: str
    ) -> None:
        self.create_collection(name, vectors, settings, namespace_id, staging=True)

    def finish_generation(self, name: str) -> None:
        path = self.shard_path(name)
        with _POOL.use(path, lambda: self._load(path)) as shard:
            shard.flush()
        self._write_marker(path, (self._marker(path) or {}).get("namespace_id"))

    def copy_points(self, source: str, dest: str, vector_names: list[str], batch: int = 256) -> int:
        """Scroll `source` and upsert each page into `dest`."""
        copied = 0
        offset: Any = None
        with self._use(source) as src, self._use(dest) as dst:
            while True:
                request = qe.ScrollRequest(
                    offset=offset, limit=batch, with_payload=True, with_vector=list(vector_names) or False
                )
                records, offset = src.scroll(request)
                if records:
                    dst.update(
                        qe.UpdateOperation.upsert_points(
                            [qe.Point(r.id, dict(r.vector or {}), r.payload) for r in records]
                        )
                    )
                    copied += len(records)
                if offset is None:
                    dst.flush()
                    return copied

    def previous_name(self, name: str) -> tuple[str, bool]:
        return self.next_generation(name), True

    @contextmanager
    def _wal_locked(self, path: str) -> Iterator[None]:
        """Hold the `flock` an open shard holds on its `wal/` directory (waited for up to the timeout)."""
        fd = os.open(os.path.join(path, "wal"), os.O_RDONLY)
        try:
            self._flock(
                fd,
                f"Qdrant Edge shard {path} is held open by another process (waited {self.timeout:g}s); stop it and "
                "run again",
            )
            yield
        finally:
            os.close(fd)

    def switch(self, name: str, generation: str, *, keep_previous: bool) -> str | None:
        """Exchange the two shard directories in one `renameat2(RENAME_EXCHANGE)` while holding both shards' WAL
        locks (so no process has either open, and none can open one meanwhile); `generation` then holds what `name`
        held."""
        path, other = self.shard_path(name), self.shard_path(generation)
        with self.lock(name), self.lock(generation), _POOL.closed(path), _POOL.closed(other):
            for each in (path, other):
                if not self._exists(each):
                    raise CollectionNotFound(f"collection {os.path.basename(each)!r} does not exist at {self.location}")
            with self._wal_locked(path), self._wal_locked(other):
                _exchange(path, other)
        if not keep_previous:
            self.delete_collection(generation)
            return None
        return generation

    def snapshot(self, name: str, directory: str) -> str:
        """A gzip-compressed tar of the flushed, closed shard: `DIRECTORY/<name>-<UTC time>.tar.gz`.

        Each file is stored up to its last non-zero byte; the zeros after it (Edge preallocates its WAL segments and
        mmap files) are not stored, only the file's full size, in `<name>/mixpeek_snapshot.json`, and `restore`
        extends the file to it again. So the archive's size follows the data, not the preallocation."""
        path = self.shard_path(name)
        out_dir = state_path(directory)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        archive = os.path.join(out_dir, f"{name}-{stamp}.tar.gz")
        partial = archive + ".partial"
        with self.lock(name), _POOL.closed(path):
            if not self._exists(path):
                raise CollectionNotFound(f"collection {name!r} does not exist at {self.location}")
            shard = self._load(path)  # fails while another process holds the shard open
            try:
                shard.flush()
            finally:
                shard.close()
            try:
                os.makedirs(out_dir, exist_ok=True)
                with tarfile.open(partial, "w:gz", compresslevel=1) as tar:
                    _add_trimmed(tar, path, name)
                with tarfile.open(partial) as tar:  # read it back whole before trusting it
                    if f"{name}/{CONFIG_FILE}" not in tar.getnames():
                        raise OSError(f"{CONFIG_FILE} missing from the archive")
                    for _ in tar:
                        pass
                os.replace(partial, archive)
            except (OSError, tarfile.TarError, EOFError) as exc:
                if os.path.exists(partial):
                    os.remove(partial)
                raise QdrantError(f"cannot write a snapshot of collection {name!r} into {directory}: {exc}") from None
        return archive

    def restore(self, archive: str, name: str) -> None:
        """Create collection `name` from a snapshot (`.tar.gz` with its sizes manifest, or a plain `.tar`)."""
        path = self.shard_path(name)
        os.makedirs(self.root, exist_ok=True)
        staging = os.path.join(self.root, f".restore-{name}-{secrets.token_hex(4)}")
        try:
            with tarfile.open(archive) as tar:
                members = tar.getmembers()
                tops = {member.name.split("/", 1)[0] for member in members}
                if len(tops) != 1 or any(
                    not (m.isfile() or m.isdir()) or m.name.startswith("/") or ".." in m.name.split("/")
                    for m in members
                ):
                    raise QdrantError(
                        f"{archive} is not a Qdrant Edge shard snapshot (expected one top directory of plain files)"
                    )
                if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.11.4 on: the safe extraction filter
                    tar.extractall(staging, filter="data")
                else:
                    tar.extractall(staging)
            top = tops.pop()
            shard = os.path.join(staging, top)
            if not os.path.isfile(os.path.join(shard, CONFIG_FILE)):
                raise QdrantError(f"{archive} is not a Qdrant Edge shard snapshot (no {CONFIG_FILE})")
            _extend_to_manifest(
                shard, {m.name.split("/", 1)[1] for m in members if m.isfile() and "/" in m.name}, archive
            )
            with self.lock(name):
                if os.path.lexists(path):
                    raise CollectionConflict(f"cannot restore into {path}: it exists")
                os.rename(shard, path)
        except (OSError, tarfile.TarError, EOFError) as exc:
            raise QdrantError(f"cannot restore {archive} as collection {name!r} at {self.location}: {exc}") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def count_points(self, name: str, conditions: list[Mapping[str, Any]] | None = None) -> int:
        with self._use(name) as shard:
            return int(shard.count(qe.CountRequest(filter=_filter(conditions), exact=True)))

    # -- payload indexes --------------------------------------------------------------------------

    def create_payload_index(self, collection: str, field_name: str, schema: Mapping[str, Any]) -> None:
        with self._use(collection) as shard:
            existing = shard.info().payload_schema.get(field_name)
            if existing is not None and _enum_name(existing.data_type) != schema["type"]:
                shard.update(qe.UpdateOperation.delete_field_index(field_name))
            shard.update(qe.UpdateOperation.create_field_index(field_name, _index_params(schema)))

    def read_payload_indexes(self, collection: str) -> dict[str, dict[str, Any]] | None:
        path = self.shard_path(collection)
        if not self._exists(path):
            return None
        with _POOL.use(path, lambda: self._load(path)) as shard:
            return {k: _schema_from_info(v) for k, v in sorted(shard.info().payload_schema.items())}

    def delete_payload_index(self, collection: str, field_name: str) -> bool:
        path = self.shard_path(collection)
        if not self._exists(path):
            return False
        with _POOL.use(path, lambda: self._load(path)) as shard:
            if field_name not in shard.info().payload_schema:
                return False
            shard.update(qe.UpdateOperation.delete_field_index(field_name))
            return True

    # -- data helpers -----------------------------------------------------------------------------

    def upsert(self, collection: str, points: list[Mapping[str, Any]]) -> None:
        with self._use(collection) as shard:
            shard.update(
                qe.UpdateOperation.upsert_points(
                    [
                        qe.Point(p["id"], {k: _plain_vector(v) for k, v in p["vector"].items()}, p.get("payload"))
                        for p in points
                    ]
                )
            )
            shard.flush()

    def query(
        self,
        collection: str,
        vector_name: str,
        vector: list[float] | list[list[float]],
        conditions: list[Mapping[str, Any]] | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        with self._use(collection) as shard:
            hits = shard.query(
                qe.QueryRequest(
                    query=qe.Query.Nearest(_plain_vector(vector), using=vector_name),
                    filter=_filter(conditions),
                    limit=limit,
                    with_payload=True,
                )
            )
            return [{"id": h.id, "score": h.score, "payload": h.payload} for h in hits]

    def close(self) -> None:
        """Close this store's open shards."""
        with _POOL._lock:  # noqa: SLF001 - same module
            paths = [p for p in _POOL._entries if p.startswith(self.root + os.sep)]  # noqa: SLF001
        for path in paths:
            with _POOL.closed(path):
                pass
