"""The resources' inputs, checked and normalised as the providers receive them.

`normalize_collection_inputs` and `normalize_index_inputs` turn a `Collection`'s or `PayloadIndex`'s
inputs (numbers as floats, secrets wrapped, values unknown at preview) into canonical form; values
still unknown pass through. Every refusal is an `InvalidSpec` whose `problems` name the field as the
resource names it (`vectors.img.size`, `target.url`, `collection_name`). The resources run them in
the program too, so what is already known fails there, naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..redact import redact_url
from ..vocabulary import NAMESPACE_ID, NAMESPACE_ID_RULE
from .errors import InvalidSpec, InvalidTarget
from .keys import ambient_key
from .normalize import (
    COLLECTION_NAME,
    COLLECTION_NAME_RULE,
    FIELD_NAME,
    normalize_field_schema,
    normalize_settings,
    normalize_vectors,
)
from .target import QdrantTarget, directory_problem, is_plain_http_off_loopback, normalize_spec, snapshot_dir_problem
from .values import has_unknown, is_unknown, plain, plain_props


def safe_spec(value: Any) -> dict[str, Any] | None:
    """The normalised target spec, or None when it is not a valid one (e.g. old state)."""
    try:
        return normalize_spec(plain(value))
    except InvalidTarget:
        return None


def _check_key(key: Any, out: dict[str, Any]) -> None:
    target = out.get("target")
    if key is not None:
        if not is_unknown(key) and not isinstance(key, str):
            raise InvalidSpec("api_key", "must be a string")
        if isinstance(target, Mapping) and target.get("kind") == "embedded":
            raise InvalidSpec("api_key", "only a server target (url) takes an API key; an embedded path has none")
        out["api_key"] = key
    if (
        (key or ambient_key(target))
        and isinstance(target, Mapping)
        and target.get("kind") == "server"
        and is_plain_http_off_loopback(target["url"])
    ):
        raise InvalidSpec(
            "target.url",
            f"{redact_url(target['url'])} is plain http to a host that is not loopback, "
            "and an API key would travel with every request unencrypted; use an https:// "
            "URL (infrastructure.qdrant_url / QdrantTarget.url)",
        )


def _with_target(props: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Plain inputs without `__provider`, and the outputs begun with the normalised target."""
    props = plain_props(props)
    target = props.get("target")
    if is_unknown(target):
        return props, {"target": target}
    try:
        spec = normalize_spec(target if target is not None else QdrantTarget().spec())
    except InvalidTarget as exc:
        raise InvalidSpec(exc.problems) from None
    problem = directory_problem(spec["path"]) if spec["kind"] == "embedded" else None
    if problem:
        raise InvalidSpec("target.path", problem)
    return props, {"target": spec}


def normalize_collection_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise a Collection's inputs (unknown values pass through); raises `InvalidSpec`."""
    props, out = _with_target(props)
    vectors = props.get("vectors")
    if vectors is None:
        raise InvalidSpec(
            "vectors", "required: the collection's named vectors {name: {size, distance, datatype, on_disk}}"
        )
    out["vectors"] = vectors if has_unknown(vectors) else normalize_vectors(vectors)
    settings = props.get("settings")
    out["settings"] = settings if has_unknown(settings) else normalize_settings(settings)
    embedded = isinstance(out["target"], Mapping) and out["target"].get("kind") == "embedded"
    if embedded and isinstance(out["settings"], Mapping):
        for key in ("shard_number", "replication_factor"):
            if out["settings"].get(key, 1) != 1:
                raise InvalidSpec(
                    f"settings.{key}",
                    "an embedded Qdrant Edge collection is a single local shard; "
                    "only 1 is possible (use a server target for more)",
                )
    for key, pattern, rule in (
        ("namespace_id", NAMESPACE_ID, NAMESPACE_ID_RULE),
        ("collection_name", COLLECTION_NAME, COLLECTION_NAME_RULE),
    ):
        value = props.get(key)
        if value is None or is_unknown(value):
            if value is not None:
                out[key] = value
            continue
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise InvalidSpec(key, f"{value!r} is not {rule}")
        out[key] = value
    snapshot_dir = props.get("final_snapshot")
    if snapshot_dir is not None and not is_unknown(snapshot_dir):
        name = out.get("collection_name") or out.get("namespace_id")
        problem = directory_problem(snapshot_dir) or snapshot_dir_problem(
            snapshot_dir, out["target"], name if isinstance(name, str) else None
        )
        if problem:
            raise InvalidSpec("final_snapshot", problem)
    out["final_snapshot"] = snapshot_dir
    protection = props.get("deletion_protection", True)
    if not is_unknown(protection) and not isinstance(protection, bool):
        raise InvalidSpec("deletion_protection", f"{protection!r} is not true or false")
    out["deletion_protection"] = protection
    retain = props.get("retain_previous", True)
    if not is_unknown(retain) and not isinstance(retain, bool):
        raise InvalidSpec("retain_previous", f"{retain!r} is not true or false")
    out["retain_previous"] = retain
    _check_key(props.get("api_key"), out)
    return out


def normalize_index_inputs(props: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise a PayloadIndex's inputs (unknown values pass through); raises `InvalidSpec`."""
    props, out = _with_target(props)
    name = props.get("collection_name")
    if name is None:
        raise InvalidSpec("collection_name", "required")
    if not is_unknown(name) and (not isinstance(name, str) or not COLLECTION_NAME.fullmatch(name)):
        raise InvalidSpec("collection_name", f"{name!r} is not {COLLECTION_NAME_RULE}")
    out["collection_name"] = name
    field = props.get("field_name")
    if not isinstance(field, str) or len(field) > 255 or not FIELD_NAME.fullmatch(field):
        raise InvalidSpec(
            "field_name",
            f"{field!r} must be a payload path of 1-255 characters: keys of letters, "
            "digits, '_' or '-' joined by '.', each optionally followed by [] or [N]",
        )
    out["field_name"] = field
    namespace_id = props.get("namespace_id")  # the owning namespace (the collection's), checked before every write
    if namespace_id is not None:
        if not is_unknown(namespace_id) and (
            not isinstance(namespace_id, str) or not NAMESPACE_ID.fullmatch(namespace_id)
        ):
            raise InvalidSpec("namespace_id", f"{namespace_id!r} is not {NAMESPACE_ID_RULE}")
        out["namespace_id"] = namespace_id
    field_type, schema = props.get("field_type"), props.get("field_schema")
    if is_unknown(field_type) or has_unknown(schema):
        out["field_type"], out["field_schema"] = field_type, schema
    else:
        if field_type is None and isinstance(schema, Mapping):
            field_type = schema.get("type")
        out["field_schema"] = normalize_field_schema(field_type, schema)
        out["field_type"] = out["field_schema"]["type"]
    _check_key(props.get("api_key"), out)
    return out


__all__ = ["normalize_collection_inputs", "normalize_index_inputs", "safe_spec"]
