"""Dynamic resources for a namespace's Qdrant collection and its payload indexes.

`Collection` and `PayloadIndex` are Pulumi dynamic resources; `CollectionProvider` and
`PayloadIndexProvider` implement their lifecycle (check, diff, create, read, update, delete)
against the store interface of `mixpeek_infra.qdrant.store`.

Pulumi pickles the provider into every resource's `__provider` by reference to this module, so
these import paths (module and class names) are public: renaming them breaks existing stacks.
The providers hold no attributes at all: clients and open shards are built inside the methods and
cached per process per target, and the API key never touches `self`.

Where the API key comes from: the resource's secret `api_key` input (from `QdrantTarget.api_key`
or a request's `infrastructure.qdrant_api_key`), else an ambient key, sent only to the URL
configured with it: the provider configuration `mixpeek:qdrantApiKey` for the URL
`mixpeek:qdrantUrl`, or the environment variables `QDRANT_API_KEY` for `QDRANT_URL`. So a URL named
in a request gets no key it did not bring. No key is ever sent over plain `http://` to a host that
is not loopback (refused at check). When given as an input the key is also kept in the outputs, so
refresh and destroy can reach the server; there it is always a secret (the provider returns it
wrapped as a secret, and the resources also list it in `additional_secret_outputs`).

A collection records its owning namespace (see `mixpeek_infra.qdrant.store`); create adopts an
existing collection only when it is unrecorded or recorded as the same namespace, and `check`
refuses a fixed name that is taken at preview. With `final_snapshot` set, delete (and replace)
first writes a restorable snapshot into that directory and refuses when it cannot.
"""

from __future__ import annotations

import os
import re
import secrets
from datetime import datetime, timezone
from typing import Any, Mapping

import pulumi
from pulumi.dynamic import (CheckFailure, CheckResult, ConfigureRequest, CreateResult, DiffResult, ReadResult,
                            ResourceProvider, UpdateResult)
from pulumi.runtime import rpc

from .. import hostwatch
from ..redact import redact_url
from .store import (CollectionConflict, CollectionNotFound, InvalidSpec, QdrantError, Store, normalize_field_schema,
                    normalize_settings, normalize_vectors, open_store, owner_message)
from .target import (InvalidTarget, QdrantTarget, directory_problem, is_plain_http_off_loopback, normalize_spec,
                     same_server)

CONFIG_API_KEY = "mixpeek:qdrantApiKey"
CONFIG_URL = "mixpeek:qdrantUrl"
ENV_API_KEY = "QDRANT_API_KEY"
ENV_URL = "QDRANT_URL"
NAMESPACE_ID = re.compile(r"ns_[0-9a-f]{10}")  # always fullmatch
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_\-]{1,255}")
# Qdrant's payload key paths: keys of letters, digits, '_' or '-', each optionally with [] or [N], joined by '.'
FIELD_NAME = re.compile(r"[\w\-]+(\[[0-9]*\])*(\.[\w\-]+(\[[0-9]*\])*)*")

# Process-wide provider configuration (set by `configure`); deliberately not on the provider object.
_PROVIDER_CONFIG: dict[str, str | None] = {"api_key": None, "url": None}


class DeletionProtected(QdrantError):
    """Deleting or replacing a collection that holds points while deletion_protection is on."""


class FinalSnapshotFailed(QdrantError):
    """The final snapshot before a delete could not be taken, so nothing was deleted."""


# ---------------------------------------------------------------------------------------------
# Helpers shared by both providers


def _is_unknown(value: Any) -> bool:
    return isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def _has_unknown(value: Any) -> bool:
    if _is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(_has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_unknown(v) for v in value)
    return False


def _plain(value: Any) -> Any:
    """The value with every Pulumi RPC secret wrapper removed (providers may receive either form)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _ambient_key(spec: Any) -> str | None:
    """The key from provider config or the environment, only for the server URL configured with it."""
    if not isinstance(spec, Mapping) or spec.get("kind") != "server" or _is_unknown(spec.get("url")):
        return None
    for key, url in ((_PROVIDER_CONFIG["api_key"], _PROVIDER_CONFIG["url"]),
                     (os.environ.get(ENV_API_KEY), os.environ.get(ENV_URL))):
        if key and url and same_server(url, str(spec.get("url"))):
            return key
    return None


def _key_from(props: Mapping[str, Any]) -> str | None:
    key = _plain(props.get("api_key"))
    if isinstance(key, str) and key and not _is_unknown(key):
        return key
    return _ambient_key(_plain(props.get("target")))


def _store_for(props: Mapping[str, Any]) -> Store:
    spec = normalize_spec(_plain(props.get("target")))
    return open_store(spec, _key_from(props) if spec["kind"] == "server" else None)


def _secret_key_output(props: Mapping[str, Any]) -> dict[str, Any]:
    key = _plain(props.get("api_key"))
    if isinstance(key, str) and key:
        return {"api_key": rpc.wrap_rpc_secret(key)}
    return {}


def _keep_key_secret(inputs: dict[str, Any]) -> dict[str, Any]:
    """Checked inputs hand the key back marked secret (the engine strips the marker on the way in)."""
    key = inputs.get("api_key")
    if isinstance(key, str):
        inputs = {**inputs, "api_key": rpc.wrap_rpc_secret(key)}
    return inputs


def _configure(req: ConfigureRequest) -> None:
    hostwatch.watch()  # configure opens every run of a provider host
    for name, setting in (("api_key", CONFIG_API_KEY), ("url", CONFIG_URL)):
        value = req.config.get(setting)
        value = rpc.unwrap_rpc_secret(value) if value is not None else None
        _PROVIDER_CONFIG[name] = str(value) if value else None


def _failures(exc: Exception) -> list[CheckFailure]:
    if isinstance(exc, InvalidSpec):
        return [CheckFailure(exc.path, exc.reason)]
    text = str(exc)
    path, _, reason = text.partition(": ")
    return [CheckFailure(path, reason or text)]


def _spec_location_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    if not old:
        return True
    if old.get("kind") != new.get("kind"):
        return True
    if new.get("kind") == "server":
        return str(old.get("url", "")).rstrip("/") != str(new.get("url", "")).rstrip("/")
    return os.path.normpath(str(old.get("path", ""))) != os.path.normpath(str(new.get("path", "")))


def _safe_spec(value: Any) -> dict[str, Any] | None:
    try:
        return normalize_spec(_plain(value))
    except InvalidTarget:
        return None


def _check_key(key: Any, out: dict[str, Any]) -> None:
    target = out.get("target")
    if key is not None:
        if not _is_unknown(key) and not isinstance(key, str):
            raise InvalidSpec("api_key", "must be a string")
        if isinstance(target, Mapping) and target.get("kind") == "embedded":
            raise InvalidSpec("api_key", "only a server target (url) takes an API key; an embedded path has none")
        out["api_key"] = key
    if (key or _ambient_key(target)) and isinstance(target, Mapping) and target.get("kind") == "server" \
            and is_plain_http_off_loopback(target["url"]):
        raise InvalidSpec("target.url", f"{redact_url(target['url'])} is plain http to a host that is not loopback, "
                                        "and an API key would travel with every request unencrypted; use an https:// "
                                        "URL (infrastructure.qdrant_url / QdrantTarget.url)")


def _plain_props_with_target(props: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plain inputs without `__provider`, and the outputs begun with the normalised target."""
    props = {k: _plain(v) for k, v in props.items() if k != "__provider"}
    target = props.get("target")
    if _is_unknown(target):
        return props, {"target": target}
    try:
        spec = normalize_spec(target if target is not None else QdrantTarget().spec())
    except InvalidTarget as exc:
        path, _, reason = str(exc).partition(": ")
        raise InvalidSpec(path, reason) from None
    problem = directory_problem(spec["path"]) if spec["kind"] == "embedded" else None
    if problem:
        raise InvalidSpec("target.path", problem)
    return props, {"target": spec}


# ---------------------------------------------------------------------------------------------
# Collection


def normalize_collection_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise a Collection's inputs (unknown values pass through); raises `InvalidSpec`."""
    props, out = _plain_props_with_target(props)
    vectors = props.get("vectors")
    if vectors is None:
        raise InvalidSpec("vectors", "required: the collection's named vectors {name: {size, distance, datatype, "
                                     "on_disk}}")
    out["vectors"] = vectors if _has_unknown(vectors) else normalize_vectors(vectors)
    settings = props.get("settings")
    out["settings"] = settings if _has_unknown(settings) else normalize_settings(settings)
    embedded = isinstance(out["target"], Mapping) and out["target"].get("kind") == "embedded"
    if embedded and isinstance(out["settings"], Mapping):
        for key in ("shard_number", "replication_factor"):
            if out["settings"].get(key, 1) != 1:
                raise InvalidSpec(f"settings.{key}", "an embedded Qdrant Edge collection is a single local shard; "
                                                     "only 1 is possible (use a server target for more)")
    for key, pattern, rule in (("namespace_id", NAMESPACE_ID, "'ns_' followed by 10 lowercase hex characters"),
                               ("collection_name", COLLECTION_NAME, "1-255 letters, digits, '_' or '-'")):
        value = props.get(key)
        if value is None or _is_unknown(value):
            if value is not None:
                out[key] = value
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidSpec(key, f"{value!r} is not {rule}")
        out[key] = value
    snapshot_dir = props.get("final_snapshot")
    if snapshot_dir is not None and not _is_unknown(snapshot_dir):
        problem = directory_problem(snapshot_dir)
        if problem:
            raise InvalidSpec("final_snapshot", problem)
    out["final_snapshot"] = snapshot_dir
    protection = props.get("deletion_protection", True)
    if not _is_unknown(protection) and not isinstance(protection, bool):
        raise InvalidSpec("deletion_protection", f"{protection!r} is not true or false")
    out["deletion_protection"] = protection
    _check_key(props.get("api_key"), out)
    return out


def _vector_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(replace reasons, added vector names, in-place changes) between two canonical vector configs."""
    replace: list[str] = []
    added: list[str] = []
    in_place: list[str] = []
    for name in sorted(old):
        if name not in new:
            replace.append(f"vector {name!r} removed")
    for name in sorted(new):
        if name not in old:
            added.append(name)
            continue
        for attr in ("size", "distance", "datatype"):
            if old[name].get(attr) != new[name].get(attr):
                replace.append(f"vector {name!r} {attr} {old[name].get(attr)!r} -> {new[name].get(attr)!r}")
        if bool(old[name].get("on_disk")) != bool(new[name].get("on_disk")):
            in_place.append(f"vector {name!r} on_disk")
    return replace, added, in_place


def _managed_settings(real: Mapping[str, Any] | None, desired: Mapping[str, Any], store: Store) -> dict[str, Any]:
    """The real settings reduced to what the inputs manage (keys and sub-keys given); drift in those shows."""
    if real is None or not getattr(store, "reads_settings", True):
        return dict(desired)
    out: dict[str, Any] = {}
    for key, value in desired.items():
        if key not in real:
            continue
        actual = real[key]
        if key == "hnsw_config":
            out[key] = {k: actual[k] for k in value if k in actual}
        elif key == "quantization_config":
            kind = next(iter(value))
            if kind in actual:
                out[key] = {kind: {k: actual[kind][k] for k in value[kind] if k in actual[kind]}}
            else:
                out[key] = dict(actual)
        else:
            out[key] = actual
    return out


def _deletion_message(name: str, location: str, points: int, action: str, reasons: list[str] | None = None) -> str:
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (f"refusing to {action} Qdrant collection {name!r} at {location}{why}: it holds {points} point(s) and "
            "deletion_protection is on, so its vectors would be lost. To proceed: set deletion_protection=False "
            "(NamespaceArgs(deletion_protection=False)) and run `pulumi up` once (that changes nothing in Qdrant), "
            "then run this again; to keep a restorable copy, also set final_snapshot to a directory "
            "(NamespaceArgs(final_snapshot=...) or stack config qdrant.final_snapshot) in that same first run. Or "
            "revert the change to keep the collection.")


class _QdrantProvider(ResourceProvider):
    """What both Qdrant providers share: configuration and `check` around their input normaliser."""

    serialize_as_secret_always = False  # the provider captures no secrets; keep `__provider` plain and small

    @staticmethod
    def normalize(props: Mapping[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def configure(self, req: ConfigureRequest) -> None:
        """Read `mixpeek:qdrantApiKey` and the URL it is for, `mixpeek:qdrantUrl` (kept off `self`)."""
        _configure(req)

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate and normalise (defaults filled, numbers as ints); failures name the field."""
        try:
            inputs = self.normalize(news)
            self.check_target(olds, inputs)
        except InvalidSpec as exc:
            return CheckResult(news, _failures(exc))
        return CheckResult(_keep_key_secret(inputs), [])

    def check_target(self, olds: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        """What `check` asks the target itself (nothing by default); raises `InvalidSpec`."""


class CollectionProvider(_QdrantProvider):
    """Lifecycle of a Qdrant collection (server or embedded Edge) holding a namespace's named vectors."""

    normalize = staticmethod(normalize_collection_inputs)

    def check_target(self, olds: dict[str, Any], inputs: Mapping[str, Any]) -> None:
        """A fixed collection name that will be created must be free or this namespace's (see `check_claim`)."""
        name = inputs.get("collection_name") or inputs.get("namespace_id")
        if not name or _has_unknown([name, inputs.get("namespace_id"), inputs["target"]]):
            return
        olds = {k: _plain(v) for k, v in (olds or {}).items()}
        if olds and (olds.get("collection_name") or olds.get("namespace_id")) in (None, name) \
                and not _spec_location_changed(_safe_spec(olds.get("target")), inputs["target"]):
            return  # an existing resource keeping its name (or whose generated name check cannot know)
        try:
            _store_for(inputs).check_claim(name, inputs.get("namespace_id"))
        except CollectionConflict as exc:
            raise InvalidSpec("collection_name" if inputs.get("collection_name") else "namespace_id",
                              str(exc)) from None
        except QdrantError:
            pass  # the target cannot be read now; create reports it

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Exact changes and replacements; refuses (at preview) a replacement that would lose points."""
        olds = {k: _plain(v) for k, v in olds.items()}
        news = normalize_collection_inputs(news)
        replaces: list[str] = []
        changes: list[str] = []
        reasons: list[str] = []

        old_spec = _safe_spec(olds.get("target"))
        new_spec = news["target"]
        if _is_unknown(new_spec) or _spec_location_changed(old_spec, new_spec):
            replaces.append("target")
            reasons.append("target location changed")
        elif old_spec != new_spec:
            changes.append("target")

        if _plain(olds.get("api_key")) != news.get("api_key"):
            changes.append("api_key")

        if "namespace_id" in news:
            if _is_unknown(news["namespace_id"]) or news["namespace_id"] != olds.get("namespace_id"):
                replaces.append("namespace_id")
                reasons.append("namespace_id changed")
        new_name = news.get("collection_name") or news.get("namespace_id") or olds.get("namespace_id")
        if _is_unknown(new_name) or new_name != olds.get("collection_name"):
            replaces.append("collection_name")
            reasons.append("collection name changed")

        vectors = news["vectors"]
        old_vectors = olds.get("vectors") or {}
        try:
            old_vectors = normalize_vectors(old_vectors)
        except InvalidSpec:
            pass
        if _has_unknown(vectors):
            replaces.append("vectors")
            reasons.append("vectors unknown until apply")
        else:
            vec_replace, added, in_place = _vector_change(old_vectors, vectors)
            if vec_replace:
                replaces.append("vectors")
                reasons += vec_replace
            elif added:
                # Adding a named vector is in place where the target supports it.
                if not replaces and old_spec is not None and _store_for(olds).supports_add_vector():
                    changes.append("vectors")
                else:
                    replaces.append("vectors")
                    reasons.append(f"vector(s) {', '.join(map(repr, added))} added and the target cannot add a "
                                   "named vector to a live collection (Qdrant server older than 1.18)")
            elif in_place:
                changes.append("vectors")

        settings = news["settings"]
        old_settings = olds.get("settings") or {}
        if _has_unknown(settings):
            changes.append("settings")
        else:
            try:
                old_settings = normalize_settings(old_settings)
            except InvalidSpec:
                pass
            if settings.get("shard_number") is not None and \
                    settings.get("shard_number") != old_settings.get("shard_number"):
                replaces.append("settings")
                reasons.append(f"shard_number {old_settings.get('shard_number')} -> {settings['shard_number']}")
            elif settings != old_settings:
                changes.append("settings")

        protection = news.get("deletion_protection", True)
        if protection != olds.get("deletion_protection", True):
            changes.append("deletion_protection")
        if news.get("final_snapshot") != olds.get("final_snapshot"):
            changes.append("final_snapshot")

        if replaces:
            self._refuse_if_protected(olds, reasons)
        fixed_name = bool(news.get("namespace_id") or news.get("collection_name"))
        changed = sorted(set(replaces) | set(changes))
        return DiffResult(changes=bool(changed), replaces=sorted(set(replaces)),
                          delete_before_replace=fixed_name if replaces else None)

    @staticmethod
    def _refuse_if_protected(olds: Mapping[str, Any], reasons: list[str]) -> None:
        if olds.get("deletion_protection", True) is False or _safe_spec(olds.get("target")) is None:
            return
        name = olds.get("collection_name")
        if not isinstance(name, str):
            return
        store = _store_for(olds)
        try:
            points = store.count_points(name)
        except CollectionNotFound:
            return
        if points > 0:
            raise DeletionProtected(_deletion_message(name, store.location, points, "replace", reasons))

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the collection, or adopt an existing one of this namespace (or unrecorded) with the same vectors;
        generates namespace_id once."""
        inputs = normalize_collection_inputs(props)
        namespace_id = inputs.get("namespace_id") or f"ns_{secrets.token_hex(5)}"
        name = inputs.get("collection_name") or namespace_id
        store = _store_for(inputs)
        with store.lock(name):  # one create-or-adopt at a time (Edge: across processes)
            existing = store.read_collection(name)
            created = False
            if existing is None:
                try:
                    store.create_collection(name, inputs["vectors"], inputs["settings"], namespace_id)
                    created = True
                except CollectionConflict:
                    existing = store.read_collection(name)  # created meanwhile by another process (server)
                    if existing is None:
                        raise
            if existing is not None:
                self._adopt(store, name, namespace_id, existing, inputs)
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
        now = _now()
        return CreateResult(name, self._outputs(inputs, namespace_id, name, state, store, now, now))

    @staticmethod
    def _adopt(store: Store, name: str, namespace_id: str, existing: Any, inputs: Mapping[str, Any]) -> None:
        """Take over an existing collection: only this namespace's or an unrecorded one, with the same vectors."""
        if existing.namespace_id and existing.namespace_id != namespace_id:
            raise CollectionConflict(owner_message(name, store.location, existing.namespace_id, namespace_id))
        shape = {k: {a: v[a] for a in ("size", "distance", "datatype")} for k, v in existing.vectors.items()}
        wanted = {k: {a: v[a] for a in ("size", "distance", "datatype")} for k, v in inputs["vectors"].items()}
        if shape != wanted:
            raise CollectionConflict(
                f"Qdrant collection {name!r} already exists at {store.location} with different vectors "
                f"{shape} (wanted {wanted}). To manage it as is, import it "
                f"(ResourceOptions(import_={name!r}) with inputs matching its config); otherwise choose another "
                "namespace_id / collection_name, or delete the existing collection.")
        if existing.namespace_id is None:
            store.record_namespace(name, namespace_id)

    @staticmethod
    def _converge(store: Store, name: str, inputs: Mapping[str, Any]) -> Any:
        """Bring an existing collection to `inputs` in place (add vectors, on_disk, settings); returns its state."""
        state = store.read_collection(name)
        if state is None:
            raise CollectionNotFound(f"Qdrant collection {name!r} does not exist at {store.location}; it was deleted "
                                     "outside Pulumi. Run `pulumi refresh`, then `pulumi up` to create it again.")
        on_disk: dict[str, bool] = {}
        added = False
        for vname, params in inputs["vectors"].items():
            real = state.vectors.get(vname)
            if real is None:
                store.add_vector(name, vname, params)
                added = True
                continue
            for attr in ("size", "distance", "datatype"):
                if real[attr] != params[attr]:
                    raise CollectionConflict(
                        f"Qdrant collection {name!r} at {store.location}: vector {vname!r} has {attr} {real[attr]!r} "
                        f"but {params[attr]!r} is wanted; that cannot change in place (the collection must be replaced)")
            if real["on_disk"] != params["on_disk"]:
                on_disk[vname] = params["on_disk"]
        desired = inputs["settings"]
        changed = {}
        if getattr(store, "reads_settings", True):
            real_settings = _managed_settings(state.settings, desired, store)
            changed = {k: v for k, v in desired.items() if real_settings.get(k) != v}
            if "shard_number" in changed:
                raise CollectionConflict(f"Qdrant collection {name!r} at {store.location}: shard_number cannot change "
                                         "in place (the collection must be replaced)")
        if on_disk or changed:
            store.update_collection(name, vectors_on_disk=on_disk, settings=changed)
        if on_disk or changed or added:
            state = store.read_collection(name)
        return state

    @staticmethod
    def _outputs(inputs: Mapping[str, Any], namespace_id: str, name: str, state: Any, store: Store,
                 created_at: str, updated_at: str) -> dict[str, Any]:
        return {
            "target": inputs["target"],
            "vectors": dict(state.vectors),
            "settings": _managed_settings(state.settings, inputs["settings"], store),
            "namespace_id": namespace_id,
            "collection_name": name,
            "deletion_protection": inputs["deletion_protection"],
            "final_snapshot": inputs.get("final_snapshot"),
            "points_count": int(state.points_count),
            "created_at": created_at,
            "updated_at": updated_at,
            **_secret_key_output(inputs),
        }

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """Refresh (props = last outputs) or import (props = the program's inputs): the real state, or gone."""
        importing = "created_at" not in props
        inputs = normalize_collection_inputs(props)
        store = _store_for(inputs)
        state = store.read_collection(id_)
        if state is None:
            return ReadResult("", {})
        namespace_id = _plain(props.get("namespace_id"))
        if not isinstance(namespace_id, str) or not NAMESPACE_ID.fullmatch(namespace_id):
            namespace_id = state.namespace_id or (id_ if NAMESPACE_ID.fullmatch(id_) else f"ns_{secrets.token_hex(5)}")
        now = _now()
        outs = self._outputs(inputs, namespace_id, id_, state, store, props.get("created_at") or now,
                             props.get("updated_at") or now)
        if importing:
            return ReadResult(id_, outs, inputs=_keep_key_secret(inputs))
        return ReadResult(id_, outs)

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Apply in-place changes (added vectors, on_disk, settings, protection, key); returns every output."""
        olds = {k: _plain(v) for k, v in olds.items()}
        inputs = normalize_collection_inputs(news)
        name = olds.get("collection_name") or _id
        store = _store_for(inputs)
        state = self._converge(store, name, inputs)
        return UpdateResult(self._outputs(inputs, olds.get("namespace_id") or inputs.get("namespace_id"), name, state,
                                          store, olds.get("created_at") or _now(), _now()))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Delete the collection: a no-op when it is gone or now another namespace's; refused while it holds points
        and is protected; with `final_snapshot`, a snapshot is written first and its failure refuses the delete."""
        props = {k: _plain(v) for k, v in props.items()}
        store = _store_for(props)
        name = props.get("collection_name") or id_
        mine = props.get("namespace_id")
        with store.lock(name):
            state = store.read_collection(name)
            if state is None:
                return
            if state.namespace_id and mine and state.namespace_id != mine:
                pulumi.log.warn(f"Qdrant collection {name!r} at {store.location} now belongs to namespace "
                                f"{state.namespace_id}, not {mine}; it was left in place")
                return
            points = store.count_points(name)
            if points > 0 and props.get("deletion_protection", True) is not False:
                raise DeletionProtected(_deletion_message(name, store.location, points, "delete"))
            directory = props.get("final_snapshot")
            if directory:
                try:
                    archive = store.snapshot(name, directory)
                except QdrantError as exc:
                    raise FinalSnapshotFailed(
                        f"refusing to delete Qdrant collection {name!r} at {store.location}: its final snapshot into "
                        f"final_snapshot {directory!r} failed ({exc}); nothing was deleted. Make final_snapshot a "
                        "writable directory, or set it to null and run `pulumi up` once to delete without a "
                        "snapshot.") from None
                pulumi.log.info(f"final snapshot of Qdrant collection {name!r} (namespace {mine}, {points} point(s)) "
                                f"written to {archive}; restore it with "
                                f"mixpeek_infra.qdrant.restore_snapshot({archive!r}, target)")
            store.delete_collection(name)


class Collection(pulumi.dynamic.Resource, module="mixpeek", name="QdrantCollection"):
    """A namespace's Qdrant collection: one named vector per vector index of its feature extractors.

    vectors: `{name: {"size", "distance", "datatype", "on_disk"}}` as `NamespacePlan.vector_config()` gives.
    target: where it lives (`QdrantTarget`); default embedded Qdrant Edge at `.mixpeek/qdrant`.
    namespace_id: a fixed id (`ns_` + 10 hex); by default one is generated once, at creation.
    collection_name: a fixed collection name; by default the namespace id.
    settings: hnsw_config, quantization_config, on_disk_payload, shard_number, replication_factor.
    deletion_protection: refuse to delete or replace the collection while it holds points.
    final_snapshot: a directory; before the collection is deleted or replaced a restorable snapshot is
        written there (`restore_snapshot`), and the delete is refused when that fails.

    Outputs: namespace_id, collection_name, vectors (as read back), settings (managed keys, as read
    back), points_count, created_at, updated_at, target, deletion_protection, final_snapshot.
    """

    namespace_id: pulumi.Output[str]
    collection_name: pulumi.Output[str]
    vectors: pulumi.Output[dict]
    settings: pulumi.Output[dict]
    points_count: pulumi.Output[int]
    created_at: pulumi.Output[str]
    updated_at: pulumi.Output[str]
    target: pulumi.Output[dict]
    deletion_protection: pulumi.Output[bool]
    final_snapshot: pulumi.Output[str | None]

    def __init__(self, resource_name: str, *, vectors: Mapping[str, Mapping[str, Any]],
                 target: QdrantTarget | None = None, namespace_id: pulumi.Input[str] | None = None,
                 collection_name: str | None = None, settings: Mapping[str, Any] | None = None,
                 deletion_protection: bool = True, final_snapshot: str | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        target = target or QdrantTarget()
        props: dict[str, Any] = {
            "target": target.spec(),
            "vectors": {k: dict(v) for k, v in vectors.items()},
            "settings": dict(settings or {}),
            "namespace_id": namespace_id,
            "collection_name": collection_name,
            "deletion_protection": deletion_protection,
            "final_snapshot": final_snapshot,
            "api_key": pulumi.Output.secret(target.api_key) if target.api_key is not None else None,
            "points_count": None,
            "created_at": None,
            "updated_at": None,
        }
        # Fail in the program, naming the field, for everything already known.
        normalize_collection_inputs({k: v for k, v in props.items()
                                     if v is not None and not isinstance(v, pulumi.Output)
                                     and k not in ("points_count", "created_at", "updated_at")})
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["api_key"]))
        super().__init__(CollectionProvider(), resource_name, props, opts)


# ---------------------------------------------------------------------------------------------
# PayloadIndex


def normalize_index_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise a PayloadIndex's inputs (unknown values pass through); raises `InvalidSpec`."""
    props, out = _plain_props_with_target(props)
    name = props.get("collection_name")
    if name is None:
        raise InvalidSpec("collection_name", "required")
    if not _is_unknown(name) and (not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name)):
        raise InvalidSpec("collection_name", f"{name!r} is not 1-255 letters, digits, '_' or '-'")
    out["collection_name"] = name
    field = props.get("field_name")
    if not isinstance(field, str) or len(field) > 255 or not FIELD_NAME.fullmatch(field):
        raise InvalidSpec("field_name", f"{field!r} must be a payload path of 1-255 characters: keys of letters, "
                                        "digits, '_' or '-' joined by '.', each optionally followed by [] or [N]")
    out["field_name"] = field
    field_type, schema = props.get("field_type"), props.get("field_schema")
    if _is_unknown(field_type) or _has_unknown(schema):
        out["field_type"], out["field_schema"] = field_type, schema
    else:
        if field_type is None and isinstance(schema, Mapping):
            field_type = schema.get("type")
        out["field_schema"] = normalize_field_schema(field_type, schema)
        out["field_type"] = out["field_schema"]["type"]
    _check_key(props.get("api_key"), out)
    return out


class PayloadIndexProvider(_QdrantProvider):
    """Lifecycle of one payload index (field + full schema) of a Qdrant collection."""

    normalize = staticmethod(normalize_index_inputs)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """collection, field or target location change: replace; type/params change: update (re-create in place)."""
        olds = {k: _plain(v) for k, v in olds.items()}
        news = normalize_index_inputs(news)
        replaces: list[str] = []
        changes: list[str] = []
        for key in ("collection_name", "field_name"):
            if _is_unknown(news[key]) or news[key] != olds.get(key):
                replaces.append(key)
        old_spec = _safe_spec(olds.get("target"))
        if _is_unknown(news["target"]) or _spec_location_changed(old_spec, news["target"]):
            replaces.append("target")
        elif old_spec != news["target"]:
            changes.append("target")
        for key in ("field_type", "field_schema"):
            if _has_unknown(news[key]) or news[key] != olds.get(key):
                changes.append(key)
        if _plain(olds.get("api_key")) != news.get("api_key"):
            changes.append("api_key")
        changed = sorted(set(replaces) | set(changes))
        return DiffResult(changes=bool(changed), replaces=sorted(set(replaces)),
                          delete_before_replace=False if replaces else None)

    @staticmethod
    def _outputs(inputs: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "target": inputs["target"],
            "collection_name": inputs["collection_name"],
            "field_name": inputs["field_name"],
            "field_type": schema["type"],
            "field_schema": dict(schema),
            **_secret_key_output(inputs),
        }

    def _apply(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        store = _store_for(inputs)
        collection, field = inputs["collection_name"], inputs["field_name"]
        indexes = store.read_payload_indexes(collection)
        if indexes is None:
            raise CollectionNotFound(f"cannot index {field!r}: Qdrant collection {collection!r} does not exist at "
                                     f"{store.location} (create the Collection first, or run `pulumi refresh` if it "
                                     "was deleted outside Pulumi)")
        wanted = inputs["field_schema"]
        schema = indexes.get(field)
        if schema != wanted:
            store.create_payload_index(collection, field, wanted)
            schema = store.read_payload_index(collection, field) if store.reads_payload_indexes else dict(wanted)
        if schema is None:
            raise QdrantError(f"payload index {field!r} on {collection!r} at {store.location} was not created")
        return self._outputs(inputs, schema)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the index (adopting an identical one); outputs the schema Qdrant reports."""
        inputs = normalize_index_inputs(props)
        outs = self._apply(inputs)
        return CreateResult(f"{inputs['collection_name']}/{inputs['field_name']}", outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The index as Qdrant reports it; gone when it or its collection was deleted."""
        props = {k: _plain(v) for k, v in props.items() if k != "__provider"}
        collection, _, field = id_.partition("/")
        inputs = {"target": normalize_spec(props.get("target") or QdrantTarget().spec()),
                  "collection_name": props.get("collection_name") or collection,
                  "field_name": props.get("field_name") or field}
        if props.get("api_key") is not None:
            inputs["api_key"] = props["api_key"]
        store = _store_for(inputs)
        if store.reads_payload_indexes:
            schema = store.read_payload_index(inputs["collection_name"], inputs["field_name"])
        elif store.read_collection(inputs["collection_name"]) is not None:
            # qdrant-client local mode keeps no index schema: report the recorded one.
            schema = normalize_field_schema(props.get("field_type"), props.get("field_schema"))
        else:
            schema = None
        if schema is None:
            return ReadResult("", {})
        return ReadResult(id_, self._outputs(inputs, schema))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Re-create the index with the new type/params in place (data kept); returns every output."""
        return UpdateResult(self._apply(normalize_index_inputs(news)))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Drop the index; a no-op when it or its collection is gone."""
        props = {k: _plain(v) for k, v in props.items()}
        collection, _, field = id_.partition("/")
        store = _store_for(props)
        store.delete_payload_index(props.get("collection_name") or collection, props.get("field_name") or field)


class PayloadIndex(pulumi.dynamic.Resource, module="mixpeek", name="QdrantPayloadIndex"):
    """One payload index of a namespace's collection, with its full field schema.

    field_schema as the plan gives it, e.g. `{"type": "text", "tokenizer": "word", "min_token_len": 2,
    "max_token_len": 15, "lowercase": True}` or `{"type": "keyword", "is_tenant": True}`.
    Outputs: collection_name, field_name, field_type and field_schema as Qdrant reports them.
    """

    collection_name: pulumi.Output[str]
    field_name: pulumi.Output[str]
    field_type: pulumi.Output[str]
    field_schema: pulumi.Output[dict]
    target: pulumi.Output[dict]

    def __init__(self, resource_name: str, *, collection_name: pulumi.Input[str], field_name: str, field_type: str,
                 field_schema: Mapping[str, Any] | None, target: QdrantTarget | None = None,
                 opts: pulumi.ResourceOptions | None = None):
        target = target or QdrantTarget()
        props: dict[str, Any] = {
            "target": target.spec(),
            "collection_name": collection_name,
            "field_name": field_name,
            "field_type": field_type,
            "field_schema": dict(field_schema) if field_schema is not None else None,
            "api_key": pulumi.Output.secret(target.api_key) if target.api_key is not None else None,
        }
        check = {k: v for k, v in props.items() if v is not None and not isinstance(v, pulumi.Output)}
        check.setdefault("collection_name", rpc.UNKNOWN)
        normalize_index_inputs(check)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["api_key"]))
        super().__init__(PayloadIndexProvider(), resource_name, props, opts)
