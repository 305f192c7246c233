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
from .plan import NamespacePlan, plan_namespace
from .json_schema import request_json_schema, stack_config_json_schema
from .schema import InvalidRequest, clip
from .stackconfig import NamespaceEntry, StackConfig, parse_stack_config, project_values
from .vocabulary import STACK_PROJECT

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_VALUES = 200_000  # values in one file after expanding YAML aliases
MAX_TEXT = 300  # characters of a path or message echoed to the terminal


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
    """One namespace found in a file: its position, its plan when valid, and its problems."""

    def __init__(self, index: int, plan: NamespacePlan | None = None, problems: list[tuple[str, str]] | None = None,
                 entry: NamespaceEntry | None = None, stack: StackConfig | None = None):
        self.index = index
        self.plan = plan
        self.problems = problems or []
        self.entry = entry  # the stack entry, for a namespace of a stack config file
        self.stack = stack

    @property
    def label(self) -> str:
        return f"namespace[{self.index}]"


def _stack_bodies(config: Mapping[str, Any], catalogue: Catalogue) -> tuple[list[Body], list[str]]:
    """The namespaces of a stack config file, parsed as the stack program parses them."""
    values, secure = project_values(config)
    stack = parse_stack_config(values, secure=secure, catalogue=catalogue)
    bodies = {e.index: Body(e.index, e.plan, entry=e, stack=stack) for e in stack.namespaces}
    file_problems: list[str] = []
    for problem in stack.problems:
        match = _ENTRY_PATH.match(problem.path)
        if match is None:
            file_problems.append(f"config.{STACK_PROJECT}:{problem.path}: {problem.message}")
            continue
        index = int(match["index"])
        body = bodies.setdefault(index, Body(index, stack=stack))
        body.problems.append((match["rest"] or "(body)", problem.message))
    return [bodies[i] for i in sorted(bodies)], file_problems


_ENTRY_PATH = re.compile(r"namespaces\[(?P<index>[0-9]+)\](?:\.(?P<rest>.*))?")


def _bodies(documents: list[Any], catalogue: Catalogue) -> tuple[list[Body], list[str]]:
    """The namespaces of a file, validated and planned, and its file-level problems."""
    bodies: list[Body] = []
    file_problems: list[str] = []
    plain: list[Any] = []
    for doc in documents:
        if doc is None:
            continue
        config = _stack_config(doc)
        if config is not None:
            found, problems = _stack_bodies(config, catalogue)
            bodies += [_renumbered(b, len(bodies)) for b in found]
            file_problems += problems
        elif isinstance(doc, list):
            plain += doc
        else:
            plain.append(doc)
    names: dict[str, int] = {}
    for item in plain:
        body = Body(len(bodies))
        try:
            body.plan = plan_namespace(item, catalogue=catalogue)
        except InvalidRequest as exc:
            body.problems += exc.problems
        if body.plan is not None:
            first = names.setdefault(body.plan.namespace_name, body.index)
            if first != body.index:
                body.problems.append(("namespace_name", f"duplicate namespace_name {body.plan.namespace_name!r} "
                                                        f"(also namespace[{first}])"))
        bodies.append(body)
    return bodies, file_problems


def _renumbered(body: Body, offset: int) -> Body:
    body.index += offset
    return body


class Result:
    """The outcome of one file: its namespaces (valid or not) and its file-level problems."""

    def __init__(self, path: str):
        self.path = path
        self.bodies: list[Body] = []
        self.problems: list[str] = []  # already formatted, without the FILE prefix

    @property
    def plans(self) -> list[Body]:
        """The valid namespaces."""
        return [b for b in self.bodies if b.plan is not None and not b.problems]

    @property
    def ok(self) -> bool:
        return not self.problems and all(not b.problems for b in self.bodies)


def process_file(path: str, catalogue: Catalogue) -> Result:
    """Load `path`, validate and plan every namespace in it; never raises for bad input."""
    result = Result(path)
    try:
        documents = load_documents(path)
    except InputError as exc:
        result.problems.append(str(exc))
        return result
    result.bodies, result.problems = _bodies(documents, catalogue)
    if not result.bodies and not result.problems:
        result.problems.append("no namespace request found (expected a request body, a list of them, "
                               f"or a stack config with {STACK_PROJECT}:namespaces)")
    return result


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


def render_plan(plan: NamespacePlan, deployment: Mapping[str, Any] | None = None) -> str:
    """A namespace plan as human-readable tables; `deployment` (a stack file's namespace) adds what the
    stack deploys: key, protection, Qdrant target, Ray head."""
    lines = [f"namespace {_fmt(plan.namespace_name)}"]
    if plan.description:
        lines.append(f"  description: {_fmt(plan.description)}")
    lines.append(f"  mode: {_fmt(plan.mode)}")
    lines.append(f"  auto_create_indexes: {_fmt(plan.auto_create_indexes)}")
    for name, value in plan.labels.items():
        lines.append(f"  {name}: {_fmt(value)}")
    if plan.warnings:
        lines += ["", "  warnings"] + [f"    {_clean(p)}: {_clean(m)}" for p, m in plan.warnings]
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
    if deployment is not None:
        lines += ["", "  stack"] + _settings_lines(deployment, "    ")
    return "\n".join(lines)


def _settings_lines(settings: Mapping[str, Any], indent: str) -> list[str]:
    """Nested settings as aligned `key  value` lines; empty values are left out."""
    shown = {k: v for k, v in settings.items() if v not in (None, [], {})}
    width = max((len(k) for k in shown), default=0)
    lines: list[str] = []
    for key, value in shown.items():
        if isinstance(value, Mapping):
            lines += [f"{indent}{key}"] + _settings_lines(value, indent + "  ")
        elif isinstance(value, list):
            lines.append(f"{indent}{key.ljust(width)}  {', '.join(_fmt(v) for v in value)}")
        else:
            lines.append(f"{indent}{key.ljust(width)}  {_fmt(value)}")
    return lines


# ---------------------------------------------------------------------------------------------
# Commands


def _run_files(args: argparse.Namespace, err: TextIO) -> list[Result] | None:
    catalogue = _catalogue(args, err)
    if catalogue is None:
        return None
    results = [process_file(path, catalogue) for path in args.files]
    for result in results:
        for problem in result.problems:
            print(f"{_clean(result.path)}: {_clean(problem)}", file=err)
        for body in result.bodies:
            for path, message in body.problems:
                print(f"{_clean(result.path)}: {body.label}: {_clean(path)}: {_clean(message)}", file=err)
    return results


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`validate FILE...`: one line per valid namespace; every problem on stderr; exit 2 if any."""
    results = _run_files(args, err)
    if results is None:
        return EXIT_INVALID
    for result in results:
        for body in result.plans:
            plan = body.plan
            system = sum(ix.is_protected for ix in plan.payload_indexes)
            print(f"{_clean(result.path)}: {body.label} {_fmt(plan.namespace_name)}: ok "
                  f"({_count(plan.feature_extractors, 'feature extractor')}, {_count(plan.vectors, 'vector')}, "
                  f"{_count(plan.payload_indexes[system:], 'payload index', 'payload indexes')} "
                  f"+ {system} system)", file=out)
    return EXIT_OK if all(r.ok for r in results) else EXIT_INVALID


def cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`plan FILE... [--json]`: the plan of every namespace; nothing on stdout when any is invalid."""
    results = _run_files(args, err)
    if results is None or not all(r.ok for r in results):
        return EXIT_INVALID
    bodies = [body for r in results for body in r.plans]
    if args.json:
        json.dump([_plan_data(b) for b in bodies], out, indent=2, allow_nan=False)
        out.write("\n")
    else:
        out.write("\n\n".join(render_plan(b.plan, _deployment(b)) for b in bodies) + "\n")
    return EXIT_OK


def _deployment(body: Body) -> dict[str, Any] | None:
    return body.stack.deployment(body.entry) if body.stack is not None and body.entry is not None else None


def _plan_data(body: Body) -> dict[str, Any]:
    data = body.plan.to_dict()
    deployment = _deployment(body)
    return data if deployment is None else {**data, "stack": deployment}


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
