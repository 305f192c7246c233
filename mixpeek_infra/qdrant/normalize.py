"""Canonical forms of a collection's vectors and settings and of payload index schemas, and their checks.

The stores and the resources speak one canonical form (see `mixpeek_infra.qdrant.store.base`); these
functions turn what a user or the engine wrote into it, filling defaults and taking integral floats
(Pulumi sends every number as a float) as ints. Each raises `InvalidSpec` naming the field's path.

Pure: imports nothing but the project's vocabulary and the Qdrant errors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from ..vocabulary import DATATYPES, DISTANCES, MULTIVECTOR_COMPARATORS
from .errors import InvalidSpec

FIELD_TYPES = ("keyword", "integer", "float", "bool", "geo", "datetime", "text", "uuid")
TOKENIZERS = ("word", "whitespace", "prefix", "multilingual")
COMPRESSIONS = ("x4", "x8", "x16", "x32", "x64")
HNSW_DEFAULTS = {"m": 16, "ef_construct": 100, "full_scan_threshold": 10000}
SETTINGS_KEYS = ("hnsw_config", "quantization_config", "on_disk_payload", "shard_number", "replication_factor")
COLLECTION_NAME = re.compile(r"[A-Za-z0-9_\-]{1,255}")  # always fullmatch
COLLECTION_NAME_RULE = "1-255 letters, digits, '_' or '-'"
# Qdrant's payload key paths: keys of letters, digits, '_' or '-', each optionally with [] or [N], joined by '.'
FIELD_NAME = re.compile(r"[\w\-]+(\[[0-9]*\])*(\.[\w\-]+(\[[0-9]*\])*)*")  # always fullmatch


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
    """One named vector in canonical form: size, distance, datatype (default float32), on_disk (default false),
    and `multivector: {comparator: max_sim}` only for a multi-vector (absent or null: a plain dense vector)."""
    params = _mapping(params, path)
    _no_extra(params, ("size", "distance", "datatype", "on_disk", "multivector"), path)
    if "size" not in params:
        raise InvalidSpec(f"{path}.size", "required")
    if "distance" not in params:
        raise InvalidSpec(f"{path}.distance", f"required; one of {', '.join(DISTANCES)}")
    out = {
        "size": as_int(params["size"], f"{path}.size", minimum=1, maximum=65536),
        "distance": as_choice(params["distance"], DISTANCES, f"{path}.distance"),
        "datatype": as_choice(params.get("datatype", "float32"), DATATYPES, f"{path}.datatype"),
        "on_disk": as_bool(params.get("on_disk", False), f"{path}.on_disk"),
    }
    if params.get("multivector") is not None:
        out["multivector"] = normalize_multivector(params["multivector"], f"{path}.multivector")
    return out


def normalize_multivector(value: Any, path: str) -> dict[str, str]:
    """A vector's multi-vector config, `{"comparator": "max_sim"}` (Qdrant's `multivector_config`)."""
    choices = ", ".join(MULTIVECTOR_COMPARATORS)
    if not isinstance(value, Mapping):
        raise InvalidSpec(path, f"expected an object {{comparator: {choices}}}, got {value!r}")
    _no_extra(value, ("comparator",), path)
    if "comparator" not in value:
        raise InvalidSpec(f"{path}.comparator", f"required; one of {choices}")
    return {"comparator": as_choice(value["comparator"], MULTIVECTOR_COMPARATORS, f"{path}.comparator")}


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
            "ef_construct": as_int(
                hnsw.get("ef_construct", HNSW_DEFAULTS["ef_construct"]), f"{p}.ef_construct", minimum=4, maximum=100000
            ),
            "full_scan_threshold": as_int(
                hnsw.get("full_scan_threshold", HNSW_DEFAULTS["full_scan_threshold"]),
                f"{p}.full_scan_threshold",
                minimum=0,
            ),
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


def normalize_field_schema(
    field_type: Any, schema: Any, path: str = "field_schema", type_path: str = "field_type"
) -> dict[str, Any]:
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
        raise InvalidSpec(
            f"{path}.min_token_len",
            f"min_token_len {out['min_token_len']} exceeds max_token_len {out['max_token_len']}",
        )
    if kind == "integer" and not (out["lookup"] or out["range"]):
        raise InvalidSpec(path, "an integer index needs lookup or range (both are false)")
    return out


__all__ = [
    "COLLECTION_NAME",
    "COLLECTION_NAME_RULE",
    "COMPRESSIONS",
    "DATATYPES",
    "DISTANCES",
    "FIELD_NAME",
    "FIELD_TYPES",
    "HNSW_DEFAULTS",
    "SETTINGS_KEYS",
    "TOKENIZERS",
    "as_bool",
    "as_choice",
    "as_float",
    "as_int",
    "default_field_schema",
    "normalize_field_schema",
    "normalize_multivector",
    "normalize_quantization",
    "normalize_settings",
    "normalize_vector",
    "normalize_vectors",
]
