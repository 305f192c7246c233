"""Bring back a collection from the final snapshot taken before its delete (or replace)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import CollectionConflict, InvalidSpec, QdrantError
from .store.cache import open_store
from .target import QdrantTarget

if TYPE_CHECKING:
    from .store.base import CollectionState


def restore_snapshot(
    archive: str, target: QdrantTarget | None = None, *, collection_name: str | None = None
) -> CollectionState:
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
    target = target or QdrantTarget()
    if target.api_key is not None and not isinstance(target.api_key, str):
        raise InvalidSpec("target.api_key", "give the key as a plain string to restore_snapshot")
    base = os.path.basename(archive)
    name = collection_name or base.rsplit("-", 1)[0]
    store = open_store(target.spec(), target.api_key)
    with store.lock(name):
        if store.read_collection(name) is not None:
            raise CollectionConflict(
                f"cannot restore {archive} as Qdrant collection {name!r} at {store.location}: "
                "a collection of that name exists; pass another collection_name or delete it"
            )
        store.restore(archive, name)
    state = store.read_collection(name)
    if state is None:
        raise QdrantError(f"restoring {archive} at {store.location} did not create collection {name!r}")
    return state


__all__ = ["restore_snapshot"]
