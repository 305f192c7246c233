"""The `mixpeek-infra` command line: validate, plan and describe Create Namespace requests.

    mixpeek-infra validate FILE... [--extractors FILE]
    mixpeek-infra plan FILE... [--json] [--extractors FILE]
    mixpeek-infra schema [--stack-config] [--extractors FILE]

A FILE is JSON or YAML (chosen by its extension; `-` reads standard input) and holds one Create
Namespace request body, a list of them, several YAML documents, or a Pulumi stack config file
(`Pulumi.<stack>.yaml`) whose `mixpeek-infra:namespaces` lists the bodies and whose
`mixpeek-infra:extractors` registers user extractors.

Contract (other tools rely on it):
- exit 0 when every namespace is valid; exit 2 on invalid input (bad request, unreadable file,
  bad JSON or YAML, bad `--extractors` entries) and on usage errors; never a traceback for bad input;
- `validate` prints one line per valid namespace on stdout:
  `FILE: namespace[i] NAME: ok (...)`;
- every problem goes to stderr as `FILE: namespace[i]: field.path: message` (the message lists the
  valid choices where the field has a fixed set), or `FILE: message` for a file-level problem;
- `plan --json` prints a JSON list with one `NamespacePlan.to_dict()` object per namespace;
- `schema` prints the JSON Schema (draft 2020-12) of the request body;
- nothing printed quotes a credential: `user:password@` in any URL is shown as `***@`.

In a stack config file, namespaces that would share a Qdrant collection on one target are refused
with the same message and field path as the stack program (`plan.collection_conflicts`).

This module imports neither Pulumi, Qdrant nor Ray, so the command starts fast.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from .extractors import DEFAULT_CATALOGUE, Catalogue, extractor_from_config
from .plan import NamespacePlan, collection_conflicts, plan_namespace
from .schema import (HOSTED_FIELDS, HOSTED_INFRA_FIELDS, HOSTED_ONLY, NAMESPACE_NAME_RULE, PROTECTED_FIELDS,
                     CreateNamespaceRequest, InvalidRequest, _FIELD_NAME, _NAMESPACE_NAME, clip)

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_VALUES = 200_000  # values in one file after expanding YAML aliases
MAX_TEXT = 300  # characters of a path or message echoed to the terminal

# Keys of a stack-config namespace entry in its `{request: body, ...}` form (the stack program,
# mixpeek_infra.program, checks entries with `override_problems` too). `key` is the namespace's
# stable Pulumi resource name (default: its namespace_name), so a rename touches no resource.
STACK_ENTRY_KEYS = frozenset({"request", "key", "qdrant", "ray", "deletion_protection", "namespace_id", "cluster_id",
                              "collection_settings", "vectors_on_disk"})
_RESOURCE_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
STACK_PROJECT = "mixpeek-infra"
_NAMESPACE_ID = re.compile(r"ns_[0-9a-f]{10}")


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

    class StrictLoader(base):  # type: ignore[misc, valid-type]
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
                            None, None, "found an unhashable key", key_node.start_mark) from None
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {_short(key)}", key_node.start_mark)
                    seen.add(key)
            return super().construct_mapping(node, deep=deep)

    return yaml, StrictLoader


def _load_yaml(text: str) -> list[Any]:
    yaml, loader = _yaml_loader()
    try:
        return list(yaml.load_all(text, Loader=loader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
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


# ---------------------------------------------------------------------------------------------
# From documents to namespace bodies


def _stack_config(doc: Any) -> Mapping[str, Any] | None:
    """The `config` block of a Pulumi stack config file, if `doc` is one."""
    if isinstance(doc, Mapping) and "namespace_name" not in doc and isinstance(doc.get("config"), Mapping):
        return doc["config"]
    return None


def _config_value(config: Mapping[str, Any], name: str) -> tuple[str | None, Any]:
    keys = [k for k in config if isinstance(k, str) and k.endswith(f":{name}")]
    if not keys:
        return None, None
    key = f"{STACK_PROJECT}:{name}" if f"{STACK_PROJECT}:{name}" in keys else sorted(keys)[0]
    return key, config[key]


def _extractor_entries(doc: Any) -> list[Any]:
    """The extractor entries of an `--extractors` document: a list, {extractors: [...]}, or stack config."""
    config = _stack_config(doc)
    if config is not None:
        doc = _config_value(config, "extractors")[1] or []
    elif isinstance(doc, Mapping) and "extractors" in doc:
        doc = doc["extractors"]
    elif isinstance(doc, Mapping):
        doc = [doc]
    if not isinstance(doc, list):
        raise InputError("extractors: expected a list of {name, version, vectors: [...]} entries")
    return doc


def register_entries(catalogue: Catalogue, entries: list[Any], where: str = "extractors") -> list[str]:
    """Register extractor config entries into `catalogue`; the problems as `where[i]: message`."""
    problems = []
    for i, item in enumerate(entries):
        try:
            catalogue.register(extractor_from_config(item))
        except (ValueError, TypeError, AttributeError) as exc:
            problems.append(f"{where}[{i}]: {exc}")
    return problems


class Body:
    """One namespace body found in a file, with its position and stack-config overrides."""

    def __init__(self, index: int, data: Any, overrides: Mapping[str, Any] | None = None,
                 problems: list[tuple[str, str]] | None = None, prefix: str = "",
                 stack_config: Mapping[str, Any] | None = None):
        self.index = index
        self.data = data
        self.overrides = dict(overrides or {})
        self.problems = problems or []
        self.prefix = prefix  # "request." for a stack entry in its {request: body, ...} form
        self.stack_config = stack_config  # the `config` block of the stack file the body is from

    @property
    def label(self) -> str:
        return f"namespace[{self.index}]"


def _bodies(documents: list[Any], catalogue: Catalogue) -> tuple[list[Body], list[str]]:
    """The namespace bodies of a file and its file-level problems (stack-config extractors)."""
    raw: list[tuple[Any, Mapping[str, Any] | None]] = []  # (item, its stack config)
    file_problems: list[str] = []
    stack = False
    for doc in documents:
        if doc is None:
            continue
        config = _stack_config(doc)
        if config is not None:
            stack = True
            key, extractors = _config_value(config, "extractors")
            if extractors is not None:
                if isinstance(extractors, list):
                    file_problems += register_entries(catalogue, extractors, f"config.{key}")
                else:
                    file_problems.append(f"config.{key}: expected a list of {{name, version, vectors}} entries")
            key, namespaces = _config_value(config, "namespaces")
            if namespaces is None:
                continue
            if not isinstance(namespaces, list):
                file_problems.append(f"config.{key}: expected a list of Create Namespace request bodies")
                continue
            raw += [(item, config) for item in namespaces]
        elif isinstance(doc, list):
            raw += [(item, None) for item in doc]
        else:
            raw.append((doc, None))
    bodies = []
    for i, (item, config) in enumerate(raw):
        if stack and isinstance(item, Mapping) and "request" in item:
            overrides = {k: v for k, v in item.items() if k != "request"}
            bodies.append(Body(i, item["request"], overrides, override_problems(overrides), prefix="request.",
                               stack_config=config))
        else:
            bodies.append(Body(i, item, stack_config=config))
    return bodies, file_problems


def override_problems(overrides: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Typos and wrong types in a stack entry's per-namespace overrides."""
    problems = [(str(k), f"unknown key; valid keys: {', '.join(sorted(STACK_ENTRY_KEYS))}")
                for k in sorted(set(overrides) - STACK_ENTRY_KEYS, key=str)]
    for key in ("deletion_protection", "vectors_on_disk"):
        if key in overrides and not isinstance(overrides[key], bool):
            problems.append((key, f"expected true or false, got {_short(overrides[key])}"))
    key = overrides.get("key")
    if key is not None and not (isinstance(key, str) and _RESOURCE_KEY.fullmatch(key)):
        problems.append(("key", f"{_short(key)} is not a resource name: 1-63 letters, digits, '_', '.' or '-', "
                                "starting with a letter or digit"))
    namespace_id = overrides.get("namespace_id")
    if namespace_id is not None and not (isinstance(namespace_id, str) and _NAMESPACE_ID.fullmatch(namespace_id)):
        problems.append(("namespace_id",
                         f"{_short(namespace_id)} is not 'ns_' followed by 10 lowercase hex characters"))
    return problems


class Result:
    """The outcome of one file: the plans of its valid namespaces and every problem."""

    def __init__(self, path: str):
        self.path = path
        self.plans: list[tuple[Body, NamespacePlan]] = []
        self.problems: list[str] = []  # already formatted, without the FILE prefix

    @property
    def ok(self) -> bool:
        return not self.problems


def process_file(path: str, catalogue: Catalogue) -> Result:
    """Load `path`, validate and plan every namespace in it; never raises for bad input."""
    result = Result(path)
    try:
        documents = load_documents(path)
    except InputError as exc:
        result.problems.append(str(exc))
        return result
    catalogue = catalogue.copy()  # a stack file's own extractors stay with that file
    bodies, file_problems = _bodies(documents, catalogue)
    result.problems += file_problems
    if not bodies and not file_problems:
        result.problems.append("no namespace request found (expected a request body, a list of them, "
                               "or a stack config with mixpeek-infra:namespaces)")
    names: dict[str, int] = {}
    checked: list[tuple[Body, NamespacePlan | None, list[tuple[str, str]]]] = []
    for body in bodies:
        problems = list(body.problems)
        plan = None
        try:
            plan = plan_namespace(body.data, catalogue=catalogue,
                                  vectors_on_disk=body.overrides.get("vectors_on_disk") is True)
        except InvalidRequest as exc:
            problems += [(body.prefix + p if p != "(body)" else (body.prefix.rstrip(".") or p), m)
                         for p, m in exc.problems]
        if plan is not None:
            if plan.namespace_name in names:
                problems.append((body.prefix + "namespace_name", f"duplicate namespace_name {plan.namespace_name!r} "
                                                                 f"(also namespace[{names[plan.namespace_name]}])"))
            else:
                names[plan.namespace_name] = body.index
        checked.append((body, plan, problems))
    _add_collection_conflicts(checked)
    for body, plan, problems in checked:
        if problems:
            result.problems += [f"{body.label}: {_clean(p)}: {_clean(m)}" for p, m in problems]
        else:
            result.plans.append((body, plan))
    return result


def _add_collection_conflicts(checked: list[tuple[Body, NamespacePlan | None, list[tuple[str, str]]]]) -> None:
    """Add to each stack body's problems the collections it would share (as the stack program refuses them)."""
    stacks: dict[int, list[tuple[Body, NamespacePlan, list[tuple[str, str]]]]] = {}
    for body, plan, problems in checked:
        # (the stack program checks only entries whose overrides are valid, so this does too)
        if plan is not None and not body.problems and body.stack_config is not None:
            stacks.setdefault(id(body.stack_config), []).append((body, plan, problems))
    for group in stacks.values():
        by_index = {body.index: (body, problems) for body, _, problems in group}
        default_qdrant = _config_value(group[0][0].stack_config, "qdrant")[1]
        for index, field, message in collection_conflicts([(b.index, p, b.overrides) for b, p, _ in group],
                                                          default_qdrant):
            body, problems = by_index[index]
            problems.append((field if field == "namespace_id" else body.prefix + field, message))


def _catalogue(args: argparse.Namespace, err: TextIO) -> Catalogue | None:
    catalogue = DEFAULT_CATALOGUE.copy()
    failed = False
    for path in getattr(args, "extractors", None) or []:
        try:
            entries = [e for doc in load_documents(path) if doc is not None for e in _extractor_entries(doc)]
        except InputError as exc:
            print(f"{_clean(path)}: {_clean(str(exc))}", file=err)
            failed = True
            continue
        for problem in register_entries(catalogue, entries):
            print(f"{_clean(path)}: {_clean(problem)}", file=err)
            failed = True
    return None if failed else catalogue


# ---------------------------------------------------------------------------------------------
# Output helpers


def _short(value: Any, limit: int = 60) -> str:
    return clip(repr(value), limit)


def _clean(text: Any, limit: int = MAX_TEXT) -> str:
    """Text safe for a terminal: long text cut, URL credentials redacted, control and invisible characters
    escaped."""
    text = clip(str(text), limit)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return _clean(value, 200)


def _count(items: Any, noun: str, plural: str | None = None) -> str:
    return f"{len(items)} {noun if len(items) == 1 else (plural or noun + 's')}"


def _table(headers: list[str], rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
    lines = [indent + "  ".join(h.ljust(w) for h, w in zip(headers, widths)).rstrip()]
    lines += [indent + "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return lines


def render_plan(plan: NamespacePlan) -> str:
    """A namespace plan as human-readable tables."""
    lines = [f"namespace {_fmt(plan.namespace_name)}"]
    if plan.description:
        lines.append(f"  description: {_fmt(plan.description)}")
    lines.append(f"  auto_create_indexes: {_fmt(plan.auto_create_indexes)}")
    lines += ["", "  feature extractors"]
    rows = [[_fmt(fe["feature_extractor_id"]), _fmt(fe["feature_extractor_name"]), _fmt(fe["version"]),
             ", ".join(f"{_fmt(k)}={_fmt(v)}" for k, v in sorted((fe.get("params") or {}).items())) or "-"]
            for fe in plan.feature_extractors]
    lines += _table(["ID", "NAME", "VERSION", "PARAMS"], rows, "    ")
    lines += ["", "  vectors"]
    if plan.vectors:
        rows = [[_fmt(v.name), str(v.size), _fmt(v.distance), _fmt(v.datatype), _fmt(v.on_disk),
                 _fmt(v.inference_service)] for v in plan.vectors]
        lines += _table(["NAME", "SIZE", "DISTANCE", "DATATYPE", "ON_DISK", "INFERENCE SERVICE"], rows, "    ")
    else:
        lines.append("    (none: the extractors create no vectors)")
    lines += ["", "  payload indexes"]
    rows = [[_fmt(ix.field_name), _fmt(ix.type), "yes" if ix.is_protected else "no",
             " ".join(f"{k}={_fmt(v)}" for k, v in ix.field_schema.items() if k != "type") or "-"]
            for ix in plan.payload_indexes]
    lines += _table(["FIELD", "TYPE", "PROTECTED", "FIELD SCHEMA"], rows, "    ")
    lines += ["", "  vector inference map"]
    if plan.vector_inference_map:
        rows = [[_fmt(name), _fmt(service)] for name, service in plan.vector_inference_map.items()]
        lines += _table(["VECTOR", "INFERENCE SERVICE"], rows, "    ")
    else:
        lines.append("    (empty)")
    lines += ["", "  infrastructure"]
    infra = plan.infrastructure.to_dict()
    width = max(len(k) for k in infra)
    lines += [f"    {k.ljust(width)}  {_fmt(v)}" for k, v in infra.items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Commands


def _run_files(args: argparse.Namespace, err: TextIO) -> list[Result] | None:
    catalogue = _catalogue(args, err)
    if catalogue is None:
        return None
    results = [process_file(path, catalogue) for path in args.files]
    for result in results:
        for problem in result.problems:
            print(f"{_clean(result.path)}: {problem}", file=err)
    return results


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`validate FILE...`: one line per valid namespace; every problem on stderr; exit 2 if any."""
    results = _run_files(args, err)
    if results is None:
        return EXIT_INVALID
    for result in results:
        for body, plan in result.plans:
            print(f"{_clean(result.path)}: {body.label} {_fmt(plan.namespace_name)}: ok "
                  f"({_count(plan.feature_extractors, 'feature extractor')}, {_count(plan.vectors, 'vector')}, "
                  f"{_count(plan.payload_indexes, 'payload index', 'payload indexes')})", file=out)
    return EXIT_OK if all(r.ok for r in results) else EXIT_INVALID


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`plan FILE... [--json]`: the plan of every namespace; nothing on stdout when any is invalid."""
    results = _run_files(args, err)
    if results is None or not all(r.ok for r in results):
        return EXIT_INVALID
    plans = [plan for r in results for _, plan in r.plans]
    if args.json:
        json.dump([p.to_dict() for p in plans], out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write("\n\n".join(render_plan(p) for p in plans) + "\n")
    return EXIT_OK


def cmd_schema(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`schema [--stack-config]`: the JSON Schema of the request (or of a stack config file)."""
    catalogue = _catalogue(args, err)
    if catalogue is None:
        return EXIT_INVALID
    schema = stack_config_json_schema(catalogue) if args.stack_config else request_json_schema(catalogue)
    json.dump(schema, out, indent=2, allow_nan=False)
    out.write("\n")
    return EXIT_OK


# ---------------------------------------------------------------------------------------------
# JSON Schema


def request_json_schema(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the Create Namespace request, from the pydantic model.

    On top of the model's own schema it states what the model checks in code, so an editor can
    flag it too: the namespace name rule, field name rule and protected names, `field_schema`
    tied to `type`, the extractor names, versions and params of `catalogue`.
    """
    catalogue = catalogue or DEFAULT_CATALOGUE
    schema = CreateNamespaceRequest.model_json_schema(mode="validation")
    defs = schema["$defs"]
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "title": "Mixpeek Create Namespace request", **{k: v for k, v in schema.items() if k != "title"}}

    name = schema["properties"]["namespace_name"]
    name.update(minLength=1, maxLength=64, pattern=_NAMESPACE_NAME.pattern, description=NAMESPACE_NAME_RULE)
    # v0.82: extractors, or bring-your-own vector_configs alone (standalone); hosted-only fields are refused.
    props = schema["properties"]
    schema["anyOf"] = [{"required": ["feature_extractors"], "properties": {"feature_extractors": {"minItems": 1}}},
                       {"required": ["vector_configs"], "properties": {"vector_configs": {"minItems": 1}}}]
    for field in HOSTED_FIELDS:
        props[field] = {"type": "null", "default": None, "description": HOSTED_ONLY}
    props["features"] = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}], "default": None,
                         "description": "refused: list the extractors in feature_extractors"}
    infra_props = defs["NamespaceInfrastructure"]["properties"]
    for field in HOSTED_INFRA_FIELDS:
        infra_props[field] = {"type": "null", "default": None, "description": HOSTED_ONLY}
    infra_props["compute_profiles"] = {"anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}],
                                       "default": None, "description": "refused: size workers with min_workers, "
                                                                       "max_workers, gpu_type, gpus_per_worker"}

    index = defs["PayloadIndexConfig"]
    index["properties"]["field_name"].update(
        pattern=_FIELD_NAME.pattern, **{"not": {"enum": list(PROTECTED_FIELDS)}},
        description="letters, digits, '_' and '-', with '.' between path segments; not a protected system field")
    index["properties"]["is_protected"]["const"] = False
    variants = {"text": "TextIndexParams", "keyword": "KeywordIndexParams", "integer": "IntegerIndexParams",
                "float": "FloatIndexParams", "bool": "BoolIndexParams", "geo": "GeoIndexParams",
                "datetime": "DatetimeIndexParams", "uuid": "UuidIndexParams"}
    index["properties"]["field_schema"] = {
        "anyOf": [{"$ref": f"#/$defs/{d}"} for d in variants.values()] + [{"type": "null"}],
        "default": None, "title": "Field Schema",
        "description": "the index parameters; its `type` (defaulted from `type`) must equal `type`"}
    index["allOf"] = [{"if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
                       "then": {"properties": {"field_schema": {
                           "anyOf": [{"$ref": f"#/$defs/{d}"}, {"type": "null"}]}}}}
                      for kind, d in variants.items()]
    for field in ("min_token_len", "max_token_len"):
        defs["TextIndexParams"]["properties"][field].update(minimum=1, maximum=1024)
    defs["IntegerIndexParams"]["not"] = {"properties": {"lookup": {"const": False}, "range": {"const": False}},
                                         "required": ["lookup", "range"]}

    fe = defs["FeatureExtractor"]
    names = catalogue.names()
    fe["properties"]["feature_extractor_name"]["enum"] = names
    fe["properties"]["version"]["enum"] = sorted({v for n in names for v in catalogue.versions(n)})
    rules: list[dict[str, Any]] = []
    for n in names:
        rules.append({"if": {"properties": {"feature_extractor_name": {"const": n}},
                             "required": ["feature_extractor_name"]},
                      "then": {"properties": {"version": {"enum": catalogue.versions(n)}}}})
        for v in catalogue.versions(n):
            entry = catalogue.entries[(n, v)]
            params = {"type": "object", "additionalProperties": False,
                      "properties": {p.name: {"enum": list(p.choices), "default": p.default} for p in entry.params}}
            rules.append({"if": {"properties": {"feature_extractor_name": {"const": n}, "version": {"const": v}},
                                 "required": ["feature_extractor_name", "version"]},
                          "then": {"properties": {"params": {"anyOf": [params, {"type": "null"}]},
                                                  "feature_extractor_id": {"anyOf": [
                                                      {"const": entry.feature_extractor_id}, {"type": "null"}]}}}})
    fe["allOf"] = rules
    return schema


def stack_config_json_schema(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """JSON Schema of a Pulumi stack config file (`Pulumi.<stack>.yaml`) of the mixpeek-infra project."""
    request = request_json_schema(catalogue)
    defs = request.pop("$defs")
    request.pop("$schema")
    defs["CreateNamespaceRequest"] = request
    vector = {"type": "object", "additionalProperties": False, "required": ["output", "size", "inference_service"],
              "properties": {"output": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                             "size": {"type": "integer", "minimum": 1, "maximum": 65536},
                             "inference_service": {"type": "string", "minLength": 1, "maxLength": 256},
                             "distance": {"enum": ["cosine", "dot", "euclid", "manhattan"], "default": "cosine"},
                             "datatype": {"enum": ["float32", "float16", "uint8"], "default": "float32"}}}
    defs["UserExtractor"] = {
        "type": "object", "additionalProperties": False, "required": ["name", "version"],
        "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                       "version": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
                       "vectors": {"type": "array", "items": vector}}}
    entry = {"type": "object", "additionalProperties": False, "required": ["request"],
             "properties": {"request": {"$ref": "#/$defs/CreateNamespaceRequest"},
                            **{k: {} for k in sorted(STACK_ENTRY_KEYS - {"request"})},
                            "deletion_protection": {"type": "boolean"}, "vectors_on_disk": {"type": "boolean"},
                            "namespace_id": {"type": "string", "pattern": "^ns_[0-9a-f]{10}$"}}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "mixpeek-infra Pulumi stack config",
        "type": "object",
        "properties": {"config": {"type": "object", "properties": {
            f"{STACK_PROJECT}:namespaces": {"type": "array", "minItems": 1, "items": {
                "anyOf": [{"$ref": "#/$defs/CreateNamespaceRequest"}, {"$ref": "#/$defs/StackNamespaceEntry"}]}},
            f"{STACK_PROJECT}:extractors": {"type": "array", "items": {"$ref": "#/$defs/UserExtractor"}},
        }}},
        "$defs": {**defs, "StackNamespaceEntry": entry},
    }


# ---------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `mixpeek-infra`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--extractors", metavar="FILE", action="append", default=[],
                        help="YAML/JSON list of user extractor versions {name, version, vectors: [{output, size, "
                             "inference_service, distance, datatype}]} to register before validating (repeatable)")
    parser = argparse.ArgumentParser(
        prog="mixpeek-infra",
        description="Validate and plan Mixpeek namespaces (Create Namespace requests) without touching any "
                    "infrastructure.",
        epilog="Exit status: 0 valid, 2 invalid input or usage error, 1 internal error.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    files_help = ("JSON or YAML file with a request body, a list of bodies, or a Pulumi stack config "
                  "(mixpeek-infra:namespaces); '-' reads standard input")
    p = sub.add_parser("validate", parents=[common], help="validate request files",
                       description="Validate Create Namespace requests; one line per valid namespace.")
    p.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("plan", parents=[common], help="show what each namespace needs",
                       description="The plan of each namespace: vectors, payload indexes, inference map, "
                                   "infrastructure.")
    p.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    p.add_argument("--json", action="store_true", help="a JSON list with one plan object per namespace")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser("schema", parents=[common], help="print the JSON Schema of the request",
                       description="The JSON Schema (draft 2020-12) of the Create Namespace request, for editors.")
    p.add_argument("--stack-config", action="store_true",
                   help="the schema of a whole Pulumi.<stack>.yaml file instead of one request body")
    p.set_defaults(func=cmd_schema)
    return parser


def _version() -> str:
    from . import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    """Run `mixpeek-infra` with `argv` (default: the process arguments); returns the exit status."""
    out, err = sys.stdout, sys.stderr
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else (EXIT_OK if exc.code is None else EXIT_INVALID)
        return args.func(args, out, err)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `mixpeek-infra plan x.yaml | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return EXIT_OK
    except Exception as exc:  # a bug, not bad input: say so briefly (set MIXPEEK_INFRA_DEBUG=1 for the traceback)
        if os.environ.get("MIXPEEK_INFRA_DEBUG"):
            raise
        print(f"mixpeek-infra: internal error: {type(exc).__name__}: {_clean(exc)} "
              "(set MIXPEEK_INFRA_DEBUG=1 for the traceback)", file=err)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
