"""A namespace's settings beside its request, declared once.

`NamespaceSettings` is the one declaration of the settings every surface shares: the Python API's
`NamespaceArgs` inherits its fields, the stack config's entries (`StackEntrySettings`) add the
stack's own, `mixpeek-infra schema --stack-config` is generated from them, and the component
provider's input types (YAML, TypeScript, Go) are derived from them (`package_fields`).
A field's docstring is its description everywhere.

Checking a value (`setting_problems`) is pydantic's, in strict mode, with this package's messages:
a field whose value needs a rule of its own carries it as a `BeforeValidator` raising `ValueError`.

Pure: imports pydantic, never Pulumi.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)

from .problems import Problem
from .vocabulary import NAMESPACE_ID, NAMESPACE_ID_RULE

CONFIG = ConfigDict(extra="forbid", strict=True)
RESOURCE_NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
RESOURCE_NAME_RULE = "1-63 letters, digits, '_', '.' or '-', starting with a letter or digit"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _namespace_id(value: Any) -> Any:
    if not (isinstance(value, str) and NAMESPACE_ID.fullmatch(value)):
        raise ValueError(f"{_short(value)} is not {NAMESPACE_ID_RULE}")
    return value


def _non_empty(value: Any) -> Any:
    if not (isinstance(value, str) and value):
        raise ValueError(f"expected a non-empty string, got {_short(value)}")
    return value


def _resource_name(value: Any) -> Any:
    import re

    if not (isinstance(value, str) and re.fullmatch(RESOURCE_NAME_PATTERN, value)):
        raise ValueError(f"{_short(value)} is not a resource name: {RESOURCE_NAME_RULE}")
    return value


def _earlier_names(value: Any) -> Any:
    import re

    names = [value] if isinstance(value, str) else value
    if not (
        isinstance(names, list)
        and names
        and all(isinstance(n, str) and re.fullmatch(RESOURCE_NAME_PATTERN, n) for n in names)
    ):
        raise ValueError(
            f"{_short(value)} is not an earlier key or namespace_name (or a list of them): {RESOURCE_NAME_RULE}"
        )
    return tuple(names)


_REF = "x-definition"  # a schema defined beside the settings' (pydantic resolves a "$ref" itself)
_NAME_SCHEMA = {"type": "string", "pattern": f"^{RESOURCE_NAME_PATTERN}$"}
_COLLECTION_SETTINGS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "hnsw_config": {"type": "object"},
        "quantization_config": {"type": "object"},
        "on_disk_payload": {"type": "boolean"},
        "shard_number": {"type": "integer", "minimum": 1, "maximum": 64},
        "replication_factor": {"type": "integer", "minimum": 1, "maximum": 64},
    },
}


@dataclass(kw_only=True)
class NamespaceSettings:
    """The settings of a namespace beside its Create Namespace request (Python API, stack config, package)."""

    __pydantic_config__ = CONFIG

    deletion_protection: bool = True
    """Refuse to delete or replace a collection that holds points (default true)."""
    namespace_id: Annotated[
        str | None,
        BeforeValidator(_namespace_id),
        WithJsonSchema({"type": "string", "pattern": f"^{NAMESPACE_ID.pattern}$"}),
    ] = None
    """Adopt a fixed `ns_` + 10 hex id instead of generating one."""
    cluster_id: Annotated[
        str | None, BeforeValidator(_non_empty), WithJsonSchema({"type": "string", "minLength": 1})
    ] = None
    """Echoed in the namespace model."""
    collection_settings: Annotated[Mapping[str, Any] | None, WithJsonSchema(_COLLECTION_SETTINGS_SCHEMA)] = None
    """Qdrant settings: hnsw_config, quantization_config, on_disk_payload, shard_number, replication_factor."""
    vectors_on_disk: bool = False
    """Store the named vectors on disk."""
    retain_previous: bool = True
    """Keep the collection a migration (a vector's shape or the shard number changed) moved away from, as
    `<collection>-g<N>`, for rollback (default true); false deletes it after the switch."""


@dataclass(kw_only=True)
class _StackOnly:
    """The settings only a stack config entry has."""

    key: Annotated[str | None, BeforeValidator(_resource_name), WithJsonSchema(_NAME_SCHEMA)] = None
    """The namespace's Pulumi resource name (default: its namespace_name)."""
    renamed_from: Annotated[
        tuple[str, ...],
        BeforeValidator(_earlier_names),
        WithJsonSchema({"anyOf": [_NAME_SCHEMA, {"type": "array", "minItems": 1, "items": _NAME_SCHEMA}]}),
    ] = ()
    """Earlier keys (or namespace_names): Pulumi aliases, so a rename replaces nothing."""
    protect: bool = False
    """Pulumi's protect on the namespace and every child."""
    qdrant: Annotated[Any, WithJsonSchema({_REF: "QdrantSettings"})] = None
    """Its own Qdrant target (replaces the stack's `qdrant`)."""
    ray: Annotated[Any, WithJsonSchema({_REF: "RayHead"})] = None
    """Its own Ray head (replaces the stack's `ray`)."""


@dataclass(kw_only=True)
class StackEntrySettings(NamespaceSettings, _StackOnly):
    """A stack config entry's settings beside its body (`request`, `file` or `files`): its own, then the shared ones."""

    __pydantic_config__ = CONFIG


def setting_names(cls: type = NamespaceSettings) -> tuple[str, ...]:
    """The settings' names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def shared_settings(settings: NamespaceSettings) -> dict[str, Any]:
    """The values of the shared settings (what `NamespaceArgs` takes as keywords)."""
    return {name: getattr(settings, name) for name in setting_names()}


@cache
def _adapter(cls: type, name: str) -> TypeAdapter[Any]:
    return TypeAdapter(typing.get_type_hints(cls, include_extras=True)[name])


_EXPECTED = {
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "int_type": "expected an integer",
    "float_type": "expected a number",
    "dict_type": "expected a mapping",
    "list_type": "expected a list",
}


def setting_problems(cls: type, values: Mapping[str, Any], where: str) -> tuple[dict[str, Any], list[Problem]]:
    """The settings of `cls` given in `values`, checked strictly (`true`, never `"yes"`), and the problems with
    them at `where.<name>`; keys that are not settings of `cls` are left to the caller."""
    out: dict[str, Any] = {}
    problems: list[Problem] = []
    hints = typing.get_type_hints(cls)
    switches = [n for n in setting_names(cls) if hints[n] is bool]  # reported first, as they always were
    for name in switches + [n for n in setting_names(cls) if n not in switches]:
        if name not in values:
            continue
        try:
            out[name] = _adapter(cls, name).validate_python(values[name], strict=True)
        except ValidationError as exc:
            for error in exc.errors():
                path = ".".join([where, name, *(str(part) for part in error["loc"])])
                problems.append(Problem(path, _message(error)))
    return out, problems


def _message(error: Any) -> str:
    """A pydantic error in this package's words: a rule's own message, else what was expected and what came."""
    if error["type"] == "value_error":
        return str(error["ctx"]["error"])
    expected = _EXPECTED.get(error["type"], error["msg"])
    return f"{expected}, got {_short(error['input'])}"


def settings_json_schema(cls: type) -> dict[str, dict[str, Any]]:
    """The JSON Schema of each setting of `cls` (as a stack file writes it: no nulls, no titles)."""
    schema = TypeAdapter(cls).json_schema()
    docs = setting_docs(cls)
    out = {}
    for name, prop in schema["properties"].items():
        prop = {k: v for k, v in prop.items() if k != "title"}
        if _REF in prop:
            prop = {"$ref": f"#/$defs/{prop.pop(_REF)}", **prop}
        branches = prop.get("anyOf")
        if isinstance(branches, list) and {"type": "null"} in branches:  # None stands for "not given"
            rest = [b for b in branches if b != {"type": "null"}]
            prop = {
                **{k: v for k, v in prop.items() if k not in ("anyOf", "default")},
                **(rest[0] if len(rest) == 1 else {"anyOf": rest}),
            }
        if prop.get("default") in (None, [], ""):  # "not given": no default a user could write
            prop.pop("default", None)
        if name in docs:
            prop["description"] = docs[name]
        out[name] = prop
    return out


@cache
def setting_docs(cls: type) -> dict[str, str]:
    """Each setting's docstring (the string right below it), its own class's or an inherited one."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if not dataclasses.is_dataclass(base):
            continue
        body = ast.parse(textwrap.dedent(inspect.getsource(base))).body[0]
        assert isinstance(body, ast.ClassDef)
        for node, following in zip(body.body, body.body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(following, ast.Expr)
                and isinstance(following.value, ast.Constant)
                and isinstance(following.value.value, str)
            ):
                docs[node.target.id] = inspect.cleandoc(following.value.value)
    return docs
