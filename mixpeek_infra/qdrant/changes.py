"""What differs between two states of a collection, as the providers' diff and converge need it.

Pure functions of canonical forms (see `mixpeek_infra.qdrant.store.base`), plus the refusal text of
a delete or replace that deletion protection stops.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

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


def vector_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[list[str], list[str], list[str], list[str]]:
    """(replace reasons, added vector names, removed vector names, in-place changes) between two canonical vector
    configs. A removed vector (an extractor taken out) is dropped in place where the target can; a changed one's
    shape (`VECTOR_SHAPE`) needs a new collection: a migration (`mixpeek_infra.qdrant.migration`) where the target
    stays, else a replace."""
    replace: list[str] = []
    added: list[str] = []
    removed = [name for name in sorted(old) if name not in new]
    in_place: list[str] = []
    for name in sorted(new):
        if name not in old:
            added.append(name)
            continue
        for attr in VECTOR_SHAPE:
            if old[name].get(attr) != new[name].get(attr):
                replace.append(f"vector {name!r} {attr} {old[name].get(attr)!r} -> {new[name].get(attr)!r}")
        if bool(old[name].get("on_disk")) != bool(new[name].get("on_disk")):
            in_place.append(f"vector {name!r} on_disk")
    return replace, added, removed, in_place


def managed_settings(
    real: Mapping[str, Any] | None, desired: Mapping[str, Any], reads_settings: bool = True
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


def drop_message(name: str, location: str, dropped: list[str], kept: list[str], points: int | None) -> str:
    """The preview's line for vectors dropped in place (an extractor removed): which go, what every point keeps
    (`points` None: the count could not be read)."""
    keeps = f"their other named vectors ({', '.join(map(repr, kept))})" if kept else "no named vector"
    count = "its points" if points is None else f"{points} point(s)"
    return (
        f"Qdrant collection {name!r} at {location}: pulumi up drops the named vector(s) "
        f"{', '.join(map(repr, dropped))} in place (no longer in the namespace's extractors): their data goes from "
        f"every point; {count} keep their payloads and {keeps}. The collection, its namespace_id and "
        "its payload indexes stay (deletion protection does not refuse this: no point is deleted). To keep "
        "those vectors, revert the change."
    )


def deletion_message(name: str, location: str, points: int, action: str, reasons: list[str] | None = None) -> str:
    """The refusal to `action` (delete, replace) a protected collection that holds `points` points."""
    why = f" ({'; '.join(reasons)})" if reasons else ""
    return (
        f"refusing to {action} Qdrant collection {name!r} at {location}{why}: it holds {points} point(s) and "
        "deletion_protection is on, so its vectors would be lost. To proceed: set deletion_protection=False "
        "(NamespaceArgs(deletion_protection=False)) and run `pulumi up` once (that changes nothing in Qdrant), "
        "then run this again; to keep a restorable copy, also set final_snapshot to a directory "
        "(NamespaceArgs(final_snapshot=...) or stack config qdrant.final_snapshot) in that same first run. Or "
        "revert the change to keep the collection."
    )


__all__ = ["VECTOR_SHAPE", "deletion_message", "drop_message", "location_changed", "managed_settings", "vector_change"]
