"""Blue/green migration of a collection whose vectors (or shard number) cannot change in place, or whose
extractor moves to a version with other vectors (kept whole for a rollback rather than dropped in place).

`plan_migration` says what a change needs (pure); `migrate` carries it out through the store's
generation calls (see `mixpeek_infra.qdrant.store.base`):

1. a new generation `<name>-g<N>` with the wanted config, recorded as `staging`;
2. every point copied with its payload and each named vector whose shape is unchanged (a vector whose
   shape changed is left empty, to be embedded again; one no longer wanted is not copied);
3. every payload index re-created with its params, and the generation recorded as complete;
4. `switch`: the collection's name serves the new generation at once (a server's alias, Edge's
   directory exchange); the previous one stays as a generation (`retain_previous`) or is deleted.

Killed at any step, the next run finishes: a generation still `staging` is deleted and built again
(readers never saw it), and a collection already switched is recognised by its config. A complete
generation that already has the wanted config (the one kept by the migration being undone) is
switched back to without copying: that is a rollback.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .changes import VECTOR_SHAPE
from .errors import CollectionNotFound

if TYPE_CHECKING:
    from .store.base import CollectionState, Store


def _shape(vectors: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {a: v.get(a) for a in VECTOR_SHAPE} for k, v in vectors.items()}


@dataclass(frozen=True)
class MigrationPlan:
    """What moving a collection to new vectors (and shard number) does to its named vectors."""

    kept: tuple[str, ...]  # copied as they are
    reembed: tuple[str, ...]  # same name, another shape: left empty in the new collection
    added: tuple[str, ...]
    dropped: tuple[str, ...]
    reasons: tuple[str, ...]


def needs_migration(
    old_vectors: Mapping[str, Mapping[str, Any]],
    new_vectors: Mapping[str, Mapping[str, Any]],
    old_settings: Mapping[str, Any],
    new_settings: Mapping[str, Any],
) -> bool:
    """Whether a named vector keeps its name but changes shape, vectors are replaced by others (an extractor's new
    version: some dropped and some added at once), or the shard number changes: whatever `plan_migration` gives a
    reason for. Only adding or only dropping vectors is done in place."""
    return bool(plan_migration(old_vectors, new_vectors, old_settings, new_settings).reasons)


def plan_migration(
    old_vectors: Mapping[str, Mapping[str, Any]],
    new_vectors: Mapping[str, Mapping[str, Any]],
    old_settings: Mapping[str, Any],
    new_settings: Mapping[str, Any],
) -> MigrationPlan:
    """What moving to `new_vectors`/`new_settings` does to each named vector, and why it needs a migration (no
    reasons: it does not)."""
    old, new = _shape(old_vectors), _shape(new_vectors)
    reasons = [
        f"vector {name!r} {attr} {old[name][attr]!r} -> {new[name][attr]!r}"
        for name in sorted(new)
        if name in old
        for attr in VECTOR_SHAPE
        if old[name][attr] != new[name][attr]
    ]
    dropped, added = sorted(set(old) - set(new)), sorted(set(new) - set(old))
    if dropped and added:
        reasons.append(f"vector(s) {', '.join(map(repr, dropped))} -> {', '.join(map(repr, added))}")
    wanted = new_settings.get("shard_number")
    if wanted is not None and wanted != old_settings.get("shard_number", 1):
        reasons.append(f"shard_number {old_settings.get('shard_number', 1)} -> {wanted}")
    return MigrationPlan(
        kept=tuple(sorted(n for n in new if n in old and old[n] == new[n])),
        reembed=tuple(sorted(n for n in new if n in old and old[n] != new[n])),
        added=tuple(added),
        dropped=tuple(dropped),
        reasons=tuple(reasons),
    )


def describe(plan: MigrationPlan, points: int | None, previous: str) -> str:
    """The preview's one line for a migration."""
    copied = "every point copied" if points is None else f"{points} point(s) copied"
    parts = [
        f"migrate: {copied}",
        f"vectors kept: {', '.join(plan.kept) or 'none'}",
        f"vectors to re-embed: {', '.join(plan.reembed + plan.added) or 'none'}",
    ]
    if plan.dropped:
        parts.append(f"vectors dropped: {', '.join(plan.dropped)}")
    parts.append(previous)
    return ", ".join(parts) + f" ({'; '.join(plan.reasons)})"


@dataclass(frozen=True)
class Migration:
    """What `migrate` did."""

    copied: int
    previous: str | None  # the generation now holding the collection's previous config (None: deleted)
    generation: str | None  # the generation switched in (None: already switched by an earlier run)
    rolled_back: bool = False


def _matches(state: CollectionState, vectors: Mapping[str, Mapping[str, Any]], settings: Mapping[str, Any]) -> bool:
    return not needs_migration(state.vectors, vectors, state.settings, settings) and set(state.vectors) == set(vectors)


def migrate(
    store: Store,
    name: str,
    namespace_id: str,
    vectors: Mapping[str, Mapping[str, Any]],
    settings: Mapping[str, Any],
    *,
    retain_previous: bool,
) -> Migration:
    """Move collection `name` to `vectors`/`settings` by copy and switch (see the module docstring)."""
    wanted = settings if store.reads_settings else {}  # settings a store does not read back cannot be compared
    with store.lock(name):
        generations = store.generations(name, namespace_id)
        for other, state in list(generations.items()):
            if state.staging:  # a killed run's unfinished copy: nobody ever read it
                store.delete_collection(other)
                del generations[other]
        current = store.read_collection(name)
        if current is not None and _matches(current, vectors, wanted):
            previous = next(reversed(generations), None)
            return Migration(copied=0, previous=previous, generation=None)
        back = next((g for g, state in reversed(generations.items()) if _matches(state, vectors, wanted)), None)
        if current is None:
            if back is None:
                raise CollectionNotFound(f"collection {name!r} does not exist at {store.location}")
            store.switch(name, back, keep_previous=True)  # a switch killed between its two steps (server)
            return Migration(copied=0, previous=None, generation=back)
        if back is not None:
            previous = store.switch(name, back, keep_previous=True)
            return Migration(copied=0, previous=previous, generation=back, rolled_back=True)
        plan = plan_migration(current.vectors, vectors, current.settings, settings)
        generation = store.next_generation(name)
        store.create_generation(generation, vectors, settings, namespace_id)
        copied = store.copy_points(name, generation, list(plan.kept))
        for field_name, schema in (store.read_payload_indexes(name) or {}).items():
            store.create_payload_index(generation, field_name, schema)
        store.finish_generation(generation)
        previous = store.switch(name, generation, keep_previous=retain_previous)
        return Migration(copied=copied, previous=previous, generation=generation)


__all__ = ["Migration", "MigrationPlan", "describe", "migrate", "needs_migration", "plan_migration"]
