"""The errors the Qdrant part raises, and the refusal messages more than one module words the same.

Invalid input is an `InvalidInput` (`mixpeek_infra.problems`): its `problems` list every
`Problem(path, message)`, so callers read the field's path from there, never from the text.

- `InvalidSpec`: a resource input or store argument is invalid (`vectors.img.size`, `target.url`).
- `InvalidTarget`: a `QdrantTarget` argument or a target spec is invalid (`QdrantTarget.url`, `target.kind`).
- `QdrantError` and its kinds: what went wrong at a target (unreachable, locked, conflict, ...).

Pure: imports nothing but `mixpeek_infra.problems`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from ..problems import InvalidInput, Problem


class QdrantError(Exception):
    """Base of the errors the Qdrant stores and providers raise."""


class _FieldError(InvalidInput):
    """Invalid input naming its field: `Error(path, message)`, or `Error(problems)` for several.

    Its text is `path: message` per problem, as the providers' and the target's messages always were.
    """

    def __init__(self, path: str | Iterable[tuple[str, str]], message: str | None = None, source: str | None = None):
        super().__init__([(path, message or "")] if isinstance(path, str) else path, source)

    @property
    def path(self) -> str:
        """The first problem's field path (e.g. `vectors.img.size`)."""
        return self.problems[0].path if self.problems else ""

    @property
    def reason(self) -> str:
        """The first problem's message, without its path."""
        return self.problems[0].message if self.problems else ""

    def _text(self) -> str:
        return (f"{self.source}: " if self.source else "") + "; ".join(str(p) for p in self.problems)

    def __reduce__(self):  # the constructor does not take the text: pickle the problems instead
        return type(self), ([tuple(p) for p in self.problems], None, self.source)


class InvalidSpec(_FieldError, QdrantError):
    """An input value is invalid; `problems` name the fields (`.path`/`.reason`: the first one)."""


class InvalidTarget(_FieldError):
    """A `QdrantTarget` argument (`QdrantTarget.url`) or a target spec field (`target.kind`) is invalid."""


class TargetUnavailable(QdrantError):
    """The Qdrant server could not be reached (or kept failing) within the target's timeout."""


class EdgeLocked(QdrantError):
    """An embedded Qdrant Edge shard is held open by another process."""


class EdgeCorrupt(QdrantError):
    """An embedded Qdrant Edge shard directory cannot be loaded."""


class CollectionNotFound(QdrantError):
    """The collection does not exist at the target."""


class CollectionConflict(QdrantError):
    """A collection of that name exists with a different configuration or owner, or the name is taken."""


class Refusal(QdrantError):
    """A refusal whose message says everything: `pulumi up`/`destroy` show it without a Python traceback.

    Pulumi's dynamic provider host reports an error as `traceback.format_exc()`, which prints no frames and
    no `Traceback` line while `sys.tracebacklimit` is 0. Built in that host, a refusal sets it to 0; reading
    its message, which `format_exc` does right after the frames, puts it back, so other errors keep theirs.
    """

    def __init__(self, *args: object):
        super().__init__(*args)
        main = getattr(sys.modules.get("__main__"), "__spec__", None)
        if getattr(main, "name", None) == "pulumi.dynamic.__main__":
            self._tracebacklimit = getattr(sys, "tracebacklimit", None)
            sys.tracebacklimit = 0

    def __str__(self) -> str:
        if "_tracebacklimit" in self.__dict__:
            limit = self.__dict__.pop("_tracebacklimit")
            if limit is None:
                vars(sys).pop("tracebacklimit", None)
            else:
                sys.tracebacklimit = limit
        return super().__str__()


class DeletionProtected(Refusal):
    """Deleting or replacing a collection that holds points while deletion_protection is on."""


class FinalSnapshotFailed(Refusal):
    """The final snapshot before a delete could not be taken, so nothing was deleted."""


def moved_under(problems: Iterable[Problem], prefix: str, strip: str = "") -> list[Problem]:
    """`problems` with `strip` removed from the front of each path and the path put under `prefix`."""
    return [Problem(p.path.removeprefix(strip), p.message).under(prefix) for p in problems]


def owner_message(name: str, location: str, owner: str, namespace_id: str | None) -> str:
    """The refusal for adopting collection `name`, recorded as namespace `owner`'s, as `namespace_id`."""
    who = f"namespace {namespace_id}" if namespace_id else "a new namespace (its id is generated at creation)"
    return (
        f"Qdrant collection {name!r} at {location} belongs to namespace {owner} (created by another namespace, "
        f"stack or process); refusing to adopt it for {who}. Choose another collection name "
        f"(infrastructure.qdrant_collection / collection_name); or, if it is this namespace's (e.g. its state "
        f"was lost), set namespace_id: {owner} to adopt it."
    )


def foreign_message(name: str, location: str, owner: str, namespace_id: str, doing: str) -> str:
    """The refusal to `doing` collection `name` for namespace `namespace_id` when it is recorded as `owner`'s."""
    return (
        f"Qdrant collection {name!r} at {location} belongs to namespace {owner}, not to namespace {namespace_id} "
        f"whose state names it (its collection was deleted outside Pulumi and the name taken by another "
        f"namespace); refusing to {doing} it. Nothing was changed. Run `pulumi refresh` to drop it from this "
        f"stack's state (nothing is deleted), then give namespace {namespace_id} another collection name "
        f"(infrastructure.qdrant_collection / collection_name)."
    )


__all__ = [
    "CollectionConflict",
    "CollectionNotFound",
    "DeletionProtected",
    "EdgeCorrupt",
    "EdgeLocked",
    "FinalSnapshotFailed",
    "InvalidSpec",
    "InvalidTarget",
    "QdrantError",
    "TargetUnavailable",
    "foreign_message",
    "moved_under",
    "owner_message",
]
