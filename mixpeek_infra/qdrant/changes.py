"""What differs between two states of a collection, as the providers' diff and converge need it.

Pure functions of canonical forms (see `mixpeek_infra.qdrant.store.base`), plus the refusal text of
a delete or replace that deletion protection stops.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

#: what fixes a named vector's storage: a change of any of these needs a new collection (`multivector`
#: is absent, so None, for a plain dense vector)
VECTOR_SHAPE = ("size", "distance", "datatype", "multivector")


def location_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether two target specs name different places (kind, server URL or embedded path)."""
    if not old:
        return True
    if old.get("kind") != new.get("kind"):
        return True
    if new.get("kind") == "server":
        return str(old.get("url", "")).rstrip("/") != str(new.get("url", "")).rstrip("/")
    return os.path.normpath(str(old.get("path", ""))) != os.path.normpath(str(new.get("path", "")))


def vector_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str], list[str]]:
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
        for attr in VECTOR_SHAPE:
            if old[name].get(attr) != new[name].get(attr):
                replace.append(f"vector {name!r} {attr} {old[name].get(attr)!r} -> {new[name].get(attr)!r}")
        if bool(old[name].get("on_disk")) != bool(new[name].get("on_disk")):
            in_place.append(f"vector {name!r} on_disk")
    return replace, added, in_place


def managed_settings(real: Mapping[str, Any] | None, desired: Mapping[str, Any], reads_settings: bool = True
                     ) -> dict[str, Any]:
    """The real settings reduced to what the inputs manage (keys and sub-keys given); drift in those shows.

    `reads_settings` False (a store that reports no settings back) gives the desired settings."""
    if real is None or not reads_settings:
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


def deletion_message(name: str, location: str, points: int, action: str, reasons: list[str] | None = None) -> str:
    """The refusal to `action` (delete, replace) a protected collection that holds `points` points."""
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (f"refusing to {action} Qdrant collection {name!r} at {location}{why}: it holds {points} point(s) and "
            "deletion_protection is on, so its vectors would be lost. To proceed: set deletion_protection=False "
            "(NamespaceArgs(deletion_protection=False)) and run `pulumi up` once (that changes nothing in Qdrant), "
            "then run this again; to keep a restorable copy, also set final_snapshot to a directory "
            "(NamespaceArgs(final_snapshot=...) or stack config qdrant.final_snapshot) in that same first run. Or "
            "revert the change to keep the collection.")


__all__ = ["VECTOR_SHAPE", "deletion_message", "location_changed", "managed_settings", "vector_change"]
