"""Reading the CLI's input files: JSON or YAML documents, strictly (no duplicate keys, no alias
bombs, bounded size), with every failure an `InputError` whose message is shown as is."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .schema import clip

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_VALUES = 200_000  # values in one file after expanding YAML aliases


def _short(value: Any, limit: int = 60) -> str:
    return clip(repr(value), limit)


class InputError(Exception):
    """A file (or one of its entries) that cannot be used; the message is shown to the user as is."""


# ---------------------------------------------------------------------------------------------
# Reading files


def _read_text(path: str) -> str:
    if path == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1) if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    else:
        try:
            with open(path, "rb") as handle:
                data = handle.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise InputError("cannot read: no such file") from None
        except IsADirectoryError:
            raise InputError("cannot read: is a directory") from None
        except PermissionError:
            raise InputError("cannot read: permission denied") from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_FILE_BYTES:
        raise InputError(f"file too large (more than {MAX_FILE_BYTES // (1024 * 1024)} MiB)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    return text[1:] if text.startswith("\ufeff") else text


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise InputError(f"invalid JSON: duplicate key {_short(key)}")
        out[key] = value
    return out


def _load_json(text: str) -> list[Any]:
    try:
        return [json.loads(text, object_pairs_hook=_json_pairs)]
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except RecursionError:
        raise InputError("invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise InputError(f"invalid JSON: {exc}") from None


def _yaml_loader():
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    class StrictLoader(base):
        """A safe loader that refuses duplicate keys (a typo must not silently override a value)."""

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=deep)
                    try:
                        duplicate = key in seen
                    except TypeError:
                        raise yaml.constructor.ConstructorError(
                            None, None, "found an unhashable key", key_node.start_mark
                        ) from None
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {_short(key)}", key_node.start_mark
                        )
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml, StrictLoader


def _char_at(text: str, line: int, column: int) -> str:
    """The character at a 0-based (line, column) of `text`; '' past its end."""
    lines = text.split("\n")
    return lines[line][column : column + 1] if 0 <= line < len(lines) else ""


def _load_yaml(text: str) -> list[Any]:
    yaml, loader = _yaml_loader()
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        if mark is not None and ("tab" in what or _char_at(text, mark.line, mark.column) == "\t"):
            raise InputError(
                f"invalid YAML: a tab character{where}; YAML indents with spaces, never tabs: replace "
                "the tab with spaces"
            ) from None
        raise InputError(f"invalid YAML: {what}{where}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"invalid YAML: {exc}") from None
    except RecursionError:
        raise InputError("invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. an integer with too many digits
        raise InputError(f"invalid YAML: {exc}") from None


def _check_size(documents: list[Any]) -> None:
    """Refuse documents that expand to too many values (YAML alias bombs, self-referencing aliases)."""
    budget = MAX_VALUES
    stack: list[Any] = list(documents)
    while stack:
        value = stack.pop()
        budget -= 1
        if budget < 0:
            raise InputError(f"too large: more than {MAX_VALUES} values (after expanding YAML aliases)")
        if isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            stack.extend(value)


def load_documents(path: str) -> list[Any]:
    """The documents of a JSON or YAML file (JSON for `.json`, YAML for `.yaml`/`.yml`, else either)."""
    text = _read_text(path)
    if not text.strip():
        raise InputError("empty file")
    suffix = Path(path).suffix.lower() if path != "-" else ""
    if suffix == ".json":
        documents = _load_json(text)
    elif suffix in (".yaml", ".yml"):
        documents = _load_yaml(text)
    else:
        try:
            documents = _load_json(text)
        except InputError:
            documents = _load_yaml(text)
    _check_size(documents)
    return documents
