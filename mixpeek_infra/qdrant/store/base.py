"""The store interface the Qdrant providers speak to, and the data forms crossing it.

Two stores implement it: `EdgeStore` (embedded Qdrant Edge, `qdrant-edge-py`) and `ServerStore`
(a Qdrant server through qdrant-client). Everything crossing the interface is plain data in one
canonical form, the same form the resources take as inputs and report as outputs:

- vectors: `{name: {"size": int, "distance": "cosine"|"dot"|"euclid"|"manhattan",
  "datatype": "float32"|"float16"|"uint8", "on_disk": bool}}`, plus `"multivector": {"comparator":
  "max_sim"}` on a multi-vector (late interaction: a list of `size`-dimensional vectors per point); a
  plain dense vector has no `multivector` key
- settings (every key optional): `hnsw_config` `{m, ef_construct, full_scan_threshold[, on_disk,
  payload_m]}`, `quantization_config` (`{"scalar": {type, quantile?, always_ram?}}`,
  `{"product": {compression, always_ram?}}` or `{"binary": {always_ram?}}`), `on_disk_payload`,
  `shard_number`, `replication_factor`
- payload index schema: `{"type": ..., <type's params>}` with every parameter filled in.

(`mixpeek_infra.qdrant.normalize` turns user input into these forms.)

Each collection records the namespace that owns it (Edge: a marker file in the shard directory;
server: the collection's metadata `mixpeek_namespace_id`); `check_claim` refuses a collection or
directory that is not provably that namespace's, and `read_owner` is what every change, index write
and delete checks first. `lock(name)` serialises create-or-adopt and
delete of one collection (Edge: across processes too). `snapshot` writes a restorable copy into a
directory and `mixpeek_infra.qdrant.restore_snapshot` brings it back.

Generations (`mixpeek_infra.qdrant.migration`): a change of vector shape or shard number moves a
collection to a new physical collection, `<name>-g<N>`, built beside it (`create_generation`,
`copy_points`, `finish_generation`) and then switched in atomically under the collection's name
(`switch`: a server re-points the alias `<name>`; Edge exchanges the two shard directories). The
collection it replaces stays as a generation of its own, recorded as the same namespace's, until it
is deleted.

`mixpeek_infra.qdrant.store.cache.open_store(spec, api_key)` builds (and caches per process) the store
for a target spec. This module imports neither qdrant-client nor qdrant_edge.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

OWNER_KEY = "mixpeek_namespace_id"  # the owning namespace, in a server collection's metadata


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
    #: a generation being built by a migration (not yet complete: never switched in, removed by the next one)
    staging: bool = False


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
    #: whether collection settings (hnsw, quantization, ...) read back as set (qdrant-client local mode: no)
    reads_settings: bool = True
    kind: str = ""

    @abstractmethod
    def supports_add_vector(self) -> bool:
        """Whether a named vector can be added to a live collection (Edge; server >= 1.18)."""

    @abstractmethod
    def read_collection(self, name: str) -> CollectionState | None:
        """The collection's real config, settings and point count; None when it does not exist."""

    @abstractmethod
    def create_collection(
        self,
        name: str,
        vectors: Mapping[str, Mapping[str, Any]],
        settings: Mapping[str, Any],
        namespace_id: str | None = None,
    ) -> None:
        """Create the collection, recording `namespace_id` as its owner.

        Raises `CollectionConflict` when the name is taken, leaving what is there untouched: the providers
        create first and read (to adopt, or refuse, an existing collection) only on that conflict."""

    @contextmanager
    def one_attempt(self) -> Iterator[None]:
        """Reads in this thread make a single attempt while inside (the checks `pulumi preview` runs: a target
        that does not answer is read again, patiently, by the create or update that needs it)."""
        yield

    @contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold collection `name` for a create-or-adopt or a delete (re-entrant; this process's threads)."""
        with thread_lock((type(self).__name__, self.location, name)):
            yield

    @abstractmethod
    def check_claim(self, name: str, namespace_id: str | None) -> None:
        """Raise `CollectionConflict` when `name` exists but is not provably `namespace_id`'s to create or adopt
        (another namespace's, or something this code did not create); reads only."""

    def read_owner(self, name: str, *, recent: bool = False) -> str | None:
        """The namespace recorded as the owner of collection `name`; None when none is recorded or there is no
        such collection. Every mutating path of the providers checks it first (`providers.refuse_foreign`).
        It reads the target, unless `recent` and a store that caches reads has read `name` moments ago in this
        run (a payload index write right after its collection's create or read)."""
        state = self.read_collection(name)
        return state.namespace_id if state is not None else None

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

    def supports_delete_vector(self) -> bool:
        """Whether a named vector can be deleted from a live collection (Edge; server >= 1.18, like adding one)."""
        return self.supports_add_vector()

    @abstractmethod
    def delete_vector(self, name: str, vector_name: str) -> bool:
        """Drop one named vector from an existing collection: its config and its data in every point (the points,
        their payloads and other vectors stay); False when the collection has no such vector."""

    @abstractmethod
    def update_collection(self, name: str, *, vectors_on_disk: Mapping[str, bool], settings: Mapping[str, Any]) -> None:
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
        """Upsert `{"id", "vector": {name: [..]}, "payload"}` points (a multi-vector's value is a list of
        vectors; a helper for tests and benchmarks)."""

    @abstractmethod
    def query(
        self,
        collection: str,
        vector_name: str,
        vector: list[float],
        conditions: list[Mapping[str, Any]] | None = None,
        limit: int = 10,
    ) -> list[dict[str, Any]]:
        """Nearest points as `{"id", "score", "payload"}`; a multi-vector is queried with a list of vectors
        (MaxSim) (a helper for tests and benchmarks)."""

    # -- generations (see the module docstring) ---------------------------------------------------

    @abstractmethod
    def generations(self, name: str, namespace_id: str) -> dict[str, CollectionState]:
        """The collections `<name>-g<N>` recorded as `namespace_id`'s and not what `name` serves now, by name,
        oldest first."""

    @abstractmethod
    def next_generation(self, name: str) -> str:
        """A free name `<name>-g<N>`, N above every generation name in use (whoever's)."""

    @abstractmethod
    def create_generation(
        self, name: str, vectors: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any], namespace_id: str
    ) -> None:
        """Create the empty collection `name` (a generation), recorded as `namespace_id`'s and as `staging`."""

    @abstractmethod
    def finish_generation(self, name: str) -> None:
        """Record generation `name` as complete (copied and indexed)."""

    @abstractmethod
    def copy_points(self, source: str, dest: str, vector_names: list[str], batch: int = 256) -> int:
        """Copy every point of `source` into `dest` with its payload and the named vectors `vector_names`; returns
        the number copied."""

    @abstractmethod
    def previous_name(self, name: str) -> tuple[str, bool]:
        """(where a `switch` of `name` now would leave the collection it serves, whether readers of `name` see the
        switch as one step)."""

    @abstractmethod
    def switch(self, name: str, generation: str, *, keep_previous: bool) -> str | None:
        """Make `name` serve the complete generation `generation`, atomically for readers of `name`; the collection
        it served before stays as a generation (returned), or is deleted when not `keep_previous` (None)."""

    def close(self) -> None:  # noqa: B027 - a store that holds nothing open has nothing to release
        """Release clients or open shards."""


__all__ = ["OWNER_KEY", "CollectionState", "Store", "thread_lock"]
