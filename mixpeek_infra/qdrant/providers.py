"""The lifecycles of a namespace's Qdrant collection and its payload indexes (Pulumi dynamic providers).

`CollectionProvider` and `PayloadIndexProvider` implement check, diff, create, read, update and delete
against the store interface (`mixpeek_infra.qdrant.store`). They hold no attributes at all: clients
and open shards are built inside the methods and cached per process per target, and the API key
never touches `self` (see `mixpeek_infra.qdrant.keys` for where it comes from and goes).

Pulumi pickles a provider into every resource's `__provider` by reference to its class. The stable
reference is `mixpeek_infra.qdrant.resources.CollectionProvider` / `.PayloadIndexProvider`: both
classes name that module as theirs (`__module__`), and that module re-exports them, so state written
by any version loads, and what is written now is byte for byte what earlier versions wrote.

A collection records its owning namespace (see `mixpeek_infra.qdrant.store.base`); create adopts an
existing collection only when it is unrecorded or recorded as the same namespace, and `check`
refuses a fixed name that is taken at preview. With `final_snapshot` set, delete (and replace)
first writes a restorable snapshot into that directory and refuses when it cannot. A vector's new shape
or a new shard number is an update that migrates the collection blue/green (`migration.migrate`).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)

from .. import hostwatch
from ..problems import InvalidInput
from ..state_names import QDRANT_PROVIDERS_MODULE
from ..vocabulary import NAMESPACE_ID
from .changes import VECTOR_SHAPE, deletion_message, drop_message, location_changed, managed_settings, vector_change
from .errors import (
    CollectionConflict,
    CollectionNotFound,
    DeletionProtected,
    EdgeCorrupt,
    EdgeLocked,
    FinalSnapshotFailed,
    InvalidSpec,
    QdrantError,
    TargetUnavailable,
    foreign_message,
    owner_message,
)
from .inputs import normalize_collection_inputs, normalize_index_inputs, safe_spec
from .keys import configure as configure_keys
from .keys import keep_key_secret, secret_key_output, store_for
from .migration import describe, migrate, needs_migration, plan_migration
from .normalize import normalize_field_schema, normalize_settings, normalize_vectors
from .target import QdrantTarget, normalize_spec, snapshot_dir_problem
from .values import has_unknown, is_unknown, now, plain, plain_props

if TYPE_CHECKING:
    from .store.base import CollectionState, Store

#: the module Pulumi's state names the providers by (see the module docstring); never change it
STABLE_MODULE = QDRANT_PROVIDERS_MODULE


def _failures(exc: InvalidInput) -> list[CheckFailure]:
    return [CheckFailure(p.path, p.message) for p in exc.problems]


def refuse_foreign(store: Store, name: str, namespace_id: Any, doing: str, *, recent: bool = False) -> None:
    """The ownership check of every change, index write and delete: raise `CollectionConflict`, naming the owner,
    when collection `name` is recorded as another namespace's than `namespace_id` (the one this resource belongs
    to). An unrecorded collection, or a resource that records no namespace (state of an older version), passes.
    `recent`: a read of this run may serve (`Store.read_owner`)."""
    if not isinstance(namespace_id, str) or not namespace_id or is_unknown(namespace_id):
        return
    owner = store.read_owner(name, recent=recent)
    if owner and owner != namespace_id:
        raise CollectionConflict(foreign_message(name, store.location, owner, namespace_id, doing))


def _is_foreign(owner: str | None, namespace_id: Any) -> bool:
    """Whether a collection recorded as `owner`'s is another namespace's than `namespace_id` (see `refuse_foreign`)."""
    return bool(
        owner
        and isinstance(namespace_id, str)
        and namespace_id
        and not is_unknown(namespace_id)
        and owner != namespace_id
    )


def _settings_view(state: CollectionState, desired: Mapping[str, Any], store: Store) -> dict[str, Any]:
    return managed_settings(state.settings, desired, store.reads_settings)


class _QdrantProvider(ResourceProvider):
    """What both Qdrant providers share: configuration and `check` around their input normaliser."""

    serialize_as_secret_always = False  # the provider captures no secrets; keep `__provider` plain and small

    @staticmethod
    def normalize(props: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def configure(self, req: ConfigureRequest) -> None:
        """Read the stack config's `mixpeek-infra:qdrantApiKey` and the URL it is for (kept off `self`)."""
        hostwatch.watch()  # configure opens every run of a provider host
        configure_keys(req.config)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate and normalise (defaults filled, numbers as ints); failures name the field."""
        try:
            inputs = self.normalize(news)
            self.check_target(olds, inputs)
        except InvalidInput as exc:
            return CheckResult(news, _failures(exc))
        return CheckResult(keep_key_secret(inputs), [])

    def check_target(self, olds: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        """What `check` asks the target itself (nothing by default); raises `InvalidSpec`."""


class CollectionProvider(_QdrantProvider):
    """Lifecycle of a Qdrant collection (server or embedded Edge) holding a namespace's named vectors."""

    normalize = staticmethod(normalize_collection_inputs)

    def check_target(self, olds: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        """A fixed collection name that will be created must be free or this namespace's (see `check_claim`)."""
        name = inputs.get("collection_name") or inputs.get("namespace_id")
        if not name or has_unknown([name, inputs.get("namespace_id"), inputs["target"]]):
            return
        olds = {k: plain(v) for k, v in (olds or {}).items()}
        if (
            olds
            and (olds.get("collection_name") or olds.get("namespace_id")) in (None, name)
            and not location_changed(safe_spec(olds.get("target")), inputs["target"])
        ):
            return  # an existing resource keeping its name (or whose generated name check cannot know)
        try:
            store = store_for(inputs)
            with store.one_attempt():
                store.check_claim(name, inputs.get("namespace_id"))
        except (CollectionConflict, EdgeCorrupt) as exc:
            raise InvalidSpec(
                "collection_name" if inputs.get("collection_name") else "namespace_id", str(exc)
            ) from None
        except QdrantError:
            pass  # the target cannot be read now; create reports it

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Exact changes and replacements; refuses (at preview) a replacement that would lose points."""
        olds = {k: plain(v) for k, v in olds.items()}
        news = normalize_collection_inputs(news)
        replaces: list[str] = []
        changes: list[str] = []
        reasons: list[str] = []

        old_spec = safe_spec(olds.get("target"))
        new_spec = news["target"]
        if is_unknown(new_spec) or location_changed(old_spec, new_spec):
            replaces.append("target")
            reasons.append("target location changed")
        elif old_spec != new_spec:
            changes.append("target")

        if plain(olds.get("api_key")) != news.get("api_key"):
            changes.append("api_key")

        if "namespace_id" in news:
            if is_unknown(news["namespace_id"]) or news["namespace_id"] != olds.get("namespace_id"):
                replaces.append("namespace_id")
                reasons.append("namespace_id changed")
        new_name = news.get("collection_name") or news.get("namespace_id") or olds.get("namespace_id")
        if is_unknown(new_name) or new_name != olds.get("collection_name"):
            replaces.append("collection_name")
            reasons.append("collection name changed")

        vectors = news["vectors"]
        old_vectors = olds.get("vectors") or {}
        try:
            old_vectors = normalize_vectors(old_vectors)
        except InvalidSpec:
            pass
        dropped: list[str] = []
        settings = news["settings"]
        old_settings = olds.get("settings") or {}
        if not has_unknown(settings):
            try:
                old_settings = normalize_settings(old_settings)
            except InvalidSpec:
                pass
        # A vector's shape or the shard number changing on a collection that stays where it is: blue/green.
        migrating = (
            not replaces
            and old_spec is not None
            and not has_unknown([vectors, settings])
            and needs_migration(old_vectors, vectors, old_settings, settings)
        )
        if migrating:
            changes.append("vectors")
        elif has_unknown(vectors):
            replaces.append("vectors")
            reasons.append("vectors unknown until apply")
        else:
            vec_replace, added, removed, in_place = vector_change(old_vectors, vectors)
            if vec_replace:
                replaces.append("vectors")
                reasons += [f"vector {name!r} removed" for name in removed] + vec_replace
            elif added or removed:
                # Adding or dropping a named vector is in place where the target supports it (Edge; server >= 1.18).
                store = store_for(olds) if not replaces and old_spec is not None else None
                can_add = store is not None and (not added or store.supports_add_vector())
                can_drop = store is not None and (not removed or store.supports_delete_vector())
                if can_add and can_drop:
                    changes.append("vectors")
                    dropped = removed
                else:
                    replaces.append("vectors")
                    if added and not can_add:
                        reasons.append(
                            f"vector(s) {', '.join(map(repr, added))} added and the target cannot add a "
                            "named vector to a live collection (Qdrant server older than 1.18)"
                        )
                    if removed and store is not None and not can_drop:
                        reasons.append(
                            f"vector(s) {', '.join(map(repr, removed))} removed and the target cannot "
                            "delete a named vector from a live collection (Qdrant server older than 1.18)"
                        )
                    elif removed:
                        reasons += [f"vector {name!r} removed" for name in removed]
            elif in_place:
                changes.append("vectors")

        if has_unknown(settings):
            changes.append("settings")
        elif not migrating:
            if settings.get("shard_number") is not None and settings.get("shard_number") != old_settings.get(
                "shard_number"
            ):
                replaces.append("settings")
                reasons.append(f"shard_number {old_settings.get('shard_number')} -> {settings['shard_number']}")
            elif settings != old_settings:
                changes.append("settings")

        protection = news.get("deletion_protection", True)
        if protection != olds.get("deletion_protection", True):
            changes.append("deletion_protection")
        if news.get("final_snapshot") != olds.get("final_snapshot"):
            changes.append("final_snapshot")
        if news.get("retain_previous", True) != olds.get("retain_previous", True):
            changes.append("retain_previous")

        if replaces or changes:
            self._refuse_if_foreign(olds, "update" if not replaces else "replace")
        if replaces:
            self._refuse_if_protected(olds, reasons)
        elif migrating:
            self._say_migrating(olds, old_vectors, vectors, old_settings, settings, news.get("retain_previous", True))
        elif dropped:
            self._say_dropped(olds, dropped, sorted(n for n in vectors if n in old_vectors))
        fixed_name = bool(news.get("namespace_id") or news.get("collection_name"))
        changed = sorted(set(replaces) | set(changes))
        return DiffResult(
            changes=bool(changed),
            replaces=sorted(set(replaces)),
            delete_before_replace=fixed_name if replaces else None,
        )

    @staticmethod
    def _refuse_if_foreign(olds: Mapping[str, Any], doing: str) -> None:
        """At preview: refuse a change to a collection that is now another namespace's (`refuse_foreign`)."""
        name = olds.get("collection_name")
        if safe_spec(olds.get("target")) is None or not isinstance(name, str):
            return
        try:
            refuse_foreign(store_for(olds), name, olds.get("namespace_id"), doing)
        except CollectionConflict:
            raise
        except QdrantError:
            pass  # the target cannot be read now; the update reports it

    @staticmethod
    def _say_dropped(olds: Mapping[str, Any], dropped: list[str], kept: list[str]) -> None:
        """At preview: one line naming the vectors an in-place update drops and the points that keep the rest.

        Deletion protection does not refuse it: no point is deleted, and removing the extractor is the user's
        explicit intent; the line (a warning in `pulumi preview`) is what protection asks for here."""
        name = olds.get("collection_name")
        if not isinstance(name, str):
            return
        store = store_for(olds)
        try:
            points: int | None = store.count_points(name)
        except QdrantError:
            points = None  # the target cannot be read now; the update reports it
        pulumi.log.warn(drop_message(name, store.location, dropped, kept, points))

    @staticmethod
    def _say_migrating(
        olds: Mapping[str, Any],
        old_vectors: Mapping[str, Any],
        vectors: Mapping[str, Any],
        old_settings: Mapping[str, Any],
        settings: Mapping[str, Any],
        retain: bool,
    ) -> None:
        """At preview: the one line of what the migration will do (`migration.describe`)."""
        name = olds.get("collection_name")
        if not isinstance(name, str):
            return
        store = store_for(olds)
        points: int | None = None
        previous = "previous collection deleted after the switch"
        try:
            with store.one_attempt():
                points = store.count_points(name)
                if retain:
                    kept_as, atomic = store.previous_name(name)
                    previous = f"previous collection kept as {kept_as!r}"
                    if not atomic:
                        previous += (
                            f" (made before aliases: {name!r} becomes an alias, and queries of it can fail for a "
                            "moment during the switch)"
                        )
        except QdrantError:
            if retain:
                previous = "previous collection kept"
        plan = plan_migration(old_vectors, vectors, old_settings, settings)
        pulumi.log.warn(f"Qdrant collection {name!r} at {store.location}: {describe(plan, points, previous)}")

    @staticmethod
    def _refuse_if_protected(olds: Mapping[str, Any], reasons: list[str]) -> None:
        if olds.get("deletion_protection", True) is False or safe_spec(olds.get("target")) is None:
            return
        name = olds.get("collection_name")
        if not isinstance(name, str):
            return
        store = store_for(olds)
        try:
            points = store.count_points(name)
        except CollectionNotFound:
            return
        if points > 0:
            raise DeletionProtected(deletion_message(name, store.location, points, "replace", reasons))

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the collection, or adopt an existing one of this namespace (or unrecorded) with the same vectors;
        generates namespace_id once."""
        inputs = normalize_collection_inputs(props)
        namespace_id = inputs.get("namespace_id") or f"ns_{secrets.token_hex(5)}"
        name = inputs.get("collection_name") or namespace_id
        store = store_for(inputs)
        with store.lock(name):  # one create-or-adopt at a time (Edge: across processes)
            created = False
            try:
                # Create first: a store refuses a taken name (`CollectionConflict`) and leaves what is there
                # untouched. Only when the create is refused is the collection read, and what is there decides:
                # a collection is adopted or refused by its owner record (`_adopt`); nothing, the create's error.
                # (So a key that may use but not create collections still adopts an existing one.)
                store.create_collection(name, inputs["vectors"], inputs["settings"], namespace_id)
                created = True
            except (InvalidSpec, TargetUnavailable, EdgeLocked):
                raise  # nothing to learn from a read now (a timed-out create that did land: the rerun adopts it)
            except QdrantError as refused:
                existing = self._existing(store, name, refused)
                self._adopt(store, name, namespace_id, existing, inputs)
                pulumi.log.info(
                    f"adopted the existing Qdrant collection {name!r} at {store.location} with "
                    f"{existing.points_count} point(s) as namespace {namespace_id}; nothing was created "
                    "and its points were kept"
                )
            try:
                state = self._converge(store, name, inputs)
            except Exception:
                if created:  # transactional: leave nothing behind that a rerun would not adopt
                    try:
                        if store.count_points(name) == 0:
                            store.delete_collection(name)
                    except Exception:  # noqa: BLE001
                        pass
                raise
        stamp = now()
        return CreateResult(name, self._outputs(inputs, namespace_id, name, state, store, stamp, stamp))

    @staticmethod
    def _existing(store: Store, name: str, refused: QdrantError) -> CollectionState:
        """The collection whose create was `refused`; raises `refused` when there is none (e.g. the name is
        taken by a directory that is not a collection), and the read's own error when it cannot be read
        (e.g. a corrupt shard)."""
        existing = store.read_collection(name)
        if existing is None:
            raise refused
        return existing

    @staticmethod
    def _adopt(store: Store, name: str, namespace_id: str, existing: Any, inputs: Mapping[str, Any]) -> None:
        """Take over an existing collection: only this namespace's or an unrecorded one, with the same vectors."""
        if existing.namespace_id and existing.namespace_id != namespace_id:
            raise CollectionConflict(owner_message(name, store.location, existing.namespace_id, namespace_id))
        shape = {k: {a: v[a] for a in VECTOR_SHAPE if a in v} for k, v in existing.vectors.items()}
        wanted = {k: {a: v[a] for a in VECTOR_SHAPE if a in v} for k, v in inputs["vectors"].items()}
        if shape != wanted:
            raise CollectionConflict(
                f"Qdrant collection {name!r} already exists at {store.location} with different vectors "
                f"{shape} (wanted {wanted}). To manage it as is, import it "
                f"(ResourceOptions(import_={name!r}) with inputs matching its config); otherwise choose another "
                "namespace_id / collection_name, or delete the existing collection."
            )
        if existing.namespace_id is None:
            store.record_namespace(name, namespace_id)

    @staticmethod
    def _converge(store: Store, name: str, inputs: Mapping[str, Any], *, drop: AbstractSet[str] = frozenset()) -> Any:
        """Bring an existing collection to `inputs` in place (add vectors, on_disk, settings; delete the named
        vectors of `drop` that `inputs` no longer has); returns its state."""
        state = store.read_collection(name)
        if state is None:
            raise CollectionNotFound(
                f"Qdrant collection {name!r} does not exist at {store.location}; it was deleted "
                "outside Pulumi. Run `pulumi refresh`, then `pulumi up` to create it again."
            )
        on_disk: dict[str, bool] = {}
        added = False
        dropped = [vname for vname in state.vectors if vname in drop and vname not in inputs["vectors"]]
        for vname in dropped:
            store.delete_vector(name, vname)
        if dropped:
            pulumi.log.info(
                f"dropped the named vector(s) {', '.join(map(repr, dropped))} of Qdrant collection "
                f"{name!r} at {store.location}; its {state.points_count} point(s) kept their payloads "
                "and other vectors"
            )
        for vname, params in inputs["vectors"].items():
            real = state.vectors.get(vname)
            if real is None:
                store.add_vector(name, vname, params)
                added = True
                continue
            for attr in VECTOR_SHAPE:
                if real.get(attr) != params.get(attr):
                    raise CollectionConflict(
                        f"Qdrant collection {name!r} at {store.location}: vector {vname!r} has {attr} "
                        f"{real.get(attr)!r} but {params.get(attr)!r} is wanted; that cannot change in place (the "
                        "collection must be replaced)"
                    )
            if real["on_disk"] != params["on_disk"]:
                on_disk[vname] = params["on_disk"]
        desired = inputs["settings"]
        changed = {}
        if store.reads_settings:
            real_settings = managed_settings(state.settings, desired)
            changed = {k: v for k, v in desired.items() if real_settings.get(k) != v}
            if "shard_number" in changed:
                raise CollectionConflict(
                    f"Qdrant collection {name!r} at {store.location}: shard_number cannot change "
                    "in place (the collection must be replaced)"
                )
        if on_disk or changed:
            store.update_collection(name, vectors_on_disk=on_disk, settings=changed)
        if on_disk or changed or added or dropped:
            state = store.read_collection(name)
        return state

    @staticmethod
    def _outputs(
        inputs: Mapping[str, Any],
        namespace_id: str | None,
        name: str,
        state: Any,
        store: Store,
        created_at: str,
        updated_at: str,
        *,
        previous: Any = None,
    ) -> dict[str, Any]:
        return {
            "target": inputs["target"],
            "vectors": dict(state.vectors),
            "settings": _settings_view(state, inputs["settings"], store),
            "namespace_id": namespace_id,
            "collection_name": name,
            "deletion_protection": inputs["deletion_protection"],
            "final_snapshot": inputs.get("final_snapshot"),
            "retain_previous": inputs.get("retain_previous", True),
            "previous_collections": list(previous or []),
            "points_count": int(state.points_count),
            "created_at": created_at,
            "updated_at": updated_at,
            **secret_key_output(inputs),
        }

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh (props = last outputs) or import (props = the program's inputs): the real state, or gone."""
        importing = "created_at" not in props
        inputs = normalize_collection_inputs(props)
        store = store_for(inputs)
        state = store.read_collection(id_)
        if state is None or (not importing and _is_foreign(state.namespace_id, plain(props.get("namespace_id")))):
            return ReadResult("", {})  # gone, or the name is now another namespace's collection: not this one
        namespace_id = plain(props.get("namespace_id"))
        if not isinstance(namespace_id, str) or not NAMESPACE_ID.fullmatch(namespace_id):
            namespace_id = state.namespace_id or (id_ if NAMESPACE_ID.fullmatch(id_) else f"ns_{secrets.token_hex(5)}")
        stamp = now()
        outs = self._outputs(
            inputs,
            namespace_id,
            id_,
            state,
            store,
            props.get("created_at") or stamp,
            props.get("updated_at") or stamp,
            # Generations are looked for only where the state knows of some (one read of a collection per refresh).
            previous=list(store.generations(id_, namespace_id)) if props.get("previous_collections") else [],
        )
        if importing:
            return ReadResult(id_, outs, inputs=keep_key_secret(inputs))
        return ReadResult(id_, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Apply in-place changes (added and removed vectors, on_disk, settings, protection, key), after the owner
        check; returns every output."""
        olds = {k: plain(v) for k, v in olds.items()}
        inputs = normalize_collection_inputs(news)
        name = olds.get("collection_name") or _id
        store = store_for(inputs)
        namespace_id = olds.get("namespace_id") or inputs.get("namespace_id")
        refuse_foreign(store, name, namespace_id, "update")
        real = store.read_collection(name)
        previous = olds.get("previous_collections")
        old_vectors, old_settings = olds.get("vectors") or {}, olds.get("settings") or {}
        with contextlib.suppress(InvalidSpec):
            old_vectors, old_settings = normalize_vectors(old_vectors), normalize_settings(old_settings)
        moved = needs_migration(old_vectors, inputs["vectors"], old_settings, inputs["settings"])
        if isinstance(namespace_id, str) and (
            # (a store that does not read settings back, qdrant-client's local mode, is taken to hold the state's;
            # a vector added outside Pulumi is no vector "replaced": the preview, which works from the state, did
            # not plan a migration for it)
            needs_migration(
                {k: v for k, v in real.vectors.items() if k in old_vectors or k in inputs["vectors"]},
                inputs["vectors"],
                real.settings if store.reads_settings else old_settings,
                inputs["settings"],
            )
            if real is not None
            else bool(store.generations(name, namespace_id))  # a switch killed between its two steps (server)
        ):
            done = migrate(
                store,
                name,
                namespace_id,
                inputs["vectors"],
                inputs["settings"],
                retain_previous=inputs["retain_previous"] is not False,
            )
            pulumi.log.info(
                f"migrated Qdrant collection {name!r} at {store.location}: {done.copied} point(s) copied into "
                f"{done.generation or 'the collection'}, now served as {name!r}"
                + (f"; the previous collection is kept as {done.previous!r}" if done.previous else "")
            )
            moved = True
        if moved and isinstance(namespace_id, str):  # (also when a killed run did the switch)
            previous = list(store.generations(name, namespace_id))
        # Only vectors the state knows are dropped (what the preview named); one added outside Pulumi is left alone.
        state = self._converge(store, name, inputs, drop=set(olds.get("vectors") or {}))
        return UpdateResult(
            self._outputs(
                inputs, namespace_id, name, state, store, olds.get("created_at") or now(), now(), previous=previous
            )
        )

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Delete the collection: a no-op when it is gone or now another namespace's; refused while it holds points
        and is protected; with `final_snapshot`, a snapshot is written first and its failure refuses the delete."""
        props = {k: plain(v) for k, v in props.items()}
        store = store_for(props)
        name = props.get("collection_name") or id_
        mine = props.get("namespace_id")
        with store.lock(name):
            state = store.read_collection(name)
            if state is None:
                return
            try:
                refuse_foreign(store, name, mine, "delete")
            except CollectionConflict as exc:
                pulumi.log.warn(f"{exc} It was left in place.")
                return
            points = store.count_points(name)
            kept = store.generations(name, mine) if isinstance(mine, str) and mine else {}
            if props.get("deletion_protection", True) is not False:
                if points > 0:
                    raise DeletionProtected(deletion_message(name, store.location, points, "delete"))
                for other, generation in kept.items():
                    if generation.points_count > 0:
                        raise DeletionProtected(
                            deletion_message(other, store.location, generation.points_count, "delete")
                        )
            directory = props.get("final_snapshot")
            if directory:
                try:
                    problem = snapshot_dir_problem(directory, safe_spec(props.get("target")), name)
                    if problem:
                        raise QdrantError(problem)
                    archive = store.snapshot(name, directory)
                except QdrantError as exc:
                    raise FinalSnapshotFailed(
                        f"refusing to delete Qdrant collection {name!r} at {store.location}: its final snapshot into "
                        f"final_snapshot {directory!r} failed ({exc}); nothing was deleted. Make final_snapshot a "
                        "writable directory, or set it to null and run `pulumi up` once to delete without a "
                        "snapshot."
                    ) from None
                pulumi.log.info(
                    f"final snapshot of Qdrant collection {name!r} (namespace {mine}, {points} point(s)) "
                    f"written to {archive}; restore it with "
                    f"mixpeek_infra.qdrant.restore_snapshot({archive!r}, target)"
                )
            store.delete_collection(name)
            for other in kept:
                store.delete_collection(other)
                pulumi.log.info(f"deleted {other!r}, a previous collection of {name!r} kept by a migration")


class PayloadIndexProvider(_QdrantProvider):
    """Lifecycle of one payload index (field + full schema) of a Qdrant collection."""

    normalize = staticmethod(normalize_index_inputs)

    def check_target(self, olds: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        """A new index of a collection now recorded as another namespace's is refused at preview."""
        if olds or has_unknown([inputs.get("collection_name"), inputs.get("namespace_id"), inputs["target"]]):
            return  # an existing index is checked in diff (only when it changes)
        try:
            store = store_for(inputs)
            with store.one_attempt():
                refuse_foreign(
                    store,
                    inputs["collection_name"],
                    inputs.get("namespace_id"),
                    f"create payload index {inputs['field_name']!r} in",
                    recent=True,
                )
        except CollectionConflict as exc:
            raise InvalidSpec("collection_name", str(exc)) from None
        except QdrantError:
            pass  # the target cannot be read now; create reports it

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """collection, field or target location change: replace; type/params change: update (re-create in place)."""
        olds = {k: plain(v) for k, v in olds.items()}
        news = normalize_index_inputs(news)
        replaces: list[str] = []
        changes: list[str] = []
        for key in ("collection_name", "field_name"):
            if is_unknown(news[key]) or news[key] != olds.get(key):
                replaces.append(key)
        old_spec = safe_spec(olds.get("target"))
        if is_unknown(news["target"]) or location_changed(old_spec, news["target"]):
            replaces.append("target")
        elif old_spec != news["target"]:
            changes.append("target")
        for key in ("field_type", "field_schema"):
            if has_unknown(news[key]) or news[key] != olds.get(key):
                changes.append(key)
        if plain(olds.get("api_key")) != news.get("api_key"):
            changes.append("api_key")
        # The owning namespace is recorded (an update) once known; unknown at preview (the collection is being
        # updated) it is no change of its own.
        ns = news.get("namespace_id")
        if isinstance(ns, str) and not is_unknown(ns) and ns != olds.get("namespace_id"):
            changes.append("namespace_id")
        changed = sorted(set(replaces) | set(changes))
        if changed:
            self._refuse_if_foreign(olds, news)
        return DiffResult(
            changes=bool(changed), replaces=sorted(set(replaces)), delete_before_replace=False if replaces else None
        )

    @staticmethod
    def _outputs(
        inputs: Mapping[str, Any], schema: Mapping[str, Any], namespace_id: str | None = None
    ) -> dict[str, Any]:
        namespace_id = namespace_id or inputs.get("namespace_id")
        return {
            "target": inputs["target"],
            "collection_name": inputs["collection_name"],
            "field_name": inputs["field_name"],
            "field_type": schema["type"],
            "field_schema": dict(schema),
            **({"namespace_id": namespace_id} if isinstance(namespace_id, str) else {}),
            **secret_key_output(inputs),
        }

    @staticmethod
    def _refuse_if_foreign(olds: Mapping[str, Any], news: Mapping[str, Any]) -> None:
        """At preview: refuse a change to an index of a collection that is now another namespace's."""
        if safe_spec(olds.get("target")) is None or not isinstance(olds.get("collection_name"), str):
            return
        try:
            refuse_foreign(
                store_for(olds),
                olds["collection_name"],
                olds.get("namespace_id") or plain(news.get("namespace_id")),
                f"change payload index {olds.get('field_name')!r} of",
            )
        except CollectionConflict:
            raise
        except QdrantError:
            pass  # the target cannot be read now; the update reports it

    def _apply(self, inputs: Mapping[str, Any], namespace_id: Any = None) -> dict[str, Any]:
        store = store_for(inputs)
        collection, field = inputs["collection_name"], inputs["field_name"]
        namespace_id = namespace_id or inputs.get("namespace_id")
        refuse_foreign(store, collection, namespace_id, f"write payload index {field!r} of", recent=True)
        indexes = store.read_payload_indexes(collection)
        if indexes is None:
            raise CollectionNotFound(
                f"cannot index {field!r}: Qdrant collection {collection!r} does not exist at "
                f"{store.location} (create the Collection first, or run `pulumi refresh` if it "
                "was deleted outside Pulumi)"
            )
        wanted = inputs["field_schema"]
        schema = indexes.get(field)
        if schema != wanted:
            store.create_payload_index(collection, field, wanted)
            schema = store.read_payload_index(collection, field) if store.reads_payload_indexes else dict(wanted)
        if schema is None:
            raise QdrantError(f"payload index {field!r} on {collection!r} at {store.location} was not created")
        # Without a declared namespace, the collection's owner now is recorded, so later writes and the delete are
        # checked against it.
        return self._outputs(
            inputs, schema, namespace_id if isinstance(namespace_id, str) else store.read_owner(collection, recent=True)
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the index (adopting an identical one); outputs its schema as the store reads it back."""
        inputs = normalize_index_inputs(props)
        outs = self._apply(inputs)
        return CreateResult(f"{inputs['collection_name']}/{inputs['field_name']}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The index as Qdrant reports it; gone when it or its collection was deleted."""
        props = plain_props(props)
        collection, _, field = id_.partition("/")
        collection = str(props.get("collection_name") or collection)
        field = str(props.get("field_name") or field)
        inputs: dict[str, Any] = {
            "target": normalize_spec(props.get("target") or QdrantTarget().spec()),
            "collection_name": collection,
            "field_name": field,
        }
        if props.get("api_key") is not None:
            inputs["api_key"] = props["api_key"]
        if isinstance(props.get("namespace_id"), str):
            inputs["namespace_id"] = props["namespace_id"]
        store = store_for(inputs)
        if _is_foreign(store.read_owner(collection, recent=True), inputs.get("namespace_id")):
            return ReadResult("", {})  # the name is now another namespace's collection: this index is gone
        if store.reads_payload_indexes:
            schema = store.read_payload_index(collection, field)
        elif store.read_collection(collection) is not None:
            # qdrant-client local mode keeps no index schema: report the recorded one.
            schema = normalize_field_schema(props.get("field_type"), props.get("field_schema"))
        else:
            schema = None
        if schema is None:
            return ReadResult("", {})
        return ReadResult(id_, self._outputs(inputs, schema))

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Re-create the index with the new type/params in place (data kept); returns every output."""
        inputs = normalize_index_inputs(news)
        return UpdateResult(self._apply(inputs, inputs.get("namespace_id") or plain(olds.get("namespace_id"))))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Drop the index; a no-op when it or its collection is gone, or the collection is now another namespace's."""
        props = {k: plain(v) for k, v in props.items()}
        collection, _, field = id_.partition("/")
        store = store_for(props)
        collection = props.get("collection_name") or collection
        try:
            refuse_foreign(store, collection, props.get("namespace_id"), f"drop payload index {field!r} of")
        except CollectionConflict as exc:
            pulumi.log.warn(f"{exc} It was left in place.")
            return
        store.delete_payload_index(collection, props.get("field_name") or field)


# Pickled by reference as `mixpeek_infra.qdrant.resources.<name>` (see the module docstring).
CollectionProvider.__module__ = STABLE_MODULE
PayloadIndexProvider.__module__ = STABLE_MODULE

__all__ = ["CollectionProvider", "PayloadIndexProvider", "STABLE_MODULE"]
