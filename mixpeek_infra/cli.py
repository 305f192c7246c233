"""The `mixpeek-infra` command line: validate, plan and describe Create Namespace requests.

    mixpeek-infra validate FILE... [--extractors FILE]
    mixpeek-infra plan FILE... [--json] [--extractors FILE]
    mixpeek-infra schema [--stack-config] [--extractors FILE]
    mixpeek-infra restore ARCHIVE [--path DIR | --url URL] [--collection-name NAME]

A FILE is JSON or YAML (chosen by its extension; `-` reads standard input) and holds one Create
Namespace request body, a list of them, several YAML documents, or a Pulumi stack config file
(`Pulumi.<stack>.yaml`) whose `mixpeek-infra:namespaces` lists the bodies (inline, or in request files
read relative to the project root: the directory holding Pulumi.yaml at or above the stack file) and
whose `mixpeek-infra:extractors` registers user extractors.

Contract (other tools rely on it):
- exit 0 when every namespace is valid; exit 2 on invalid input (bad request, unreadable file,
  bad JSON or YAML, bad `--extractors` entries) and on usage errors; never a traceback for bad input;
- `validate` prints one line per valid namespace on stdout:
  `FILE: namespace[i] NAME: ok (...)`;
- every problem goes to stderr as `FILE: namespace[i]: field.path: message` (the message lists the
  valid choices where the field has a fixed set, and the closest ones to a typo: `(did you mean 'x'?)`),
  or `FILE: message` for a file-level problem (a tab in YAML is called a tab);
- `plan --json` prints a JSON list with one `NamespacePlan.to_dict()` object per namespace (a stack
  file's namespaces add `stack`: what the stack deploys for them);
- `schema` prints the JSON Schema (draft 2020-12) of the request body;
- `restore` brings a final snapshot back as a collection (embedded `--path`, default `.mixpeek/qdrant`, or
  a server `--url` whose key is read from the environment, never from the command line) and prints one
  line naming it; exit 2 when it is refused (no such archive, wrong kind, the collection exists, ...);
- nothing printed quotes a credential: `user:password@` in any URL is shown as `***@`.

A stack config file is parsed by `mixpeek_infra.stackconfig`, as the stack program parses it, so
`validate` refuses exactly what the program refuses; its stack-level problems are printed as
`FILE: config.mixpeek-infra:ray.mode: message`, and `plan` adds what the stack deploys per namespace.

This module never imports Ray or qdrant-client; bodies are checked without Pulumi, and a stack file
loads the Pulumi SDK only for the resources' own input checks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any, TextIO

from .documents import InputError, load_documents
from .extractors import DEFAULT_CATALOGUE, Catalogue, extractor_from_config
from .json_schema import request_json_schema, stack_config_json_schema
from .paths import project_root
from .plan import NamespacePlan, plan_namespace
from .render import clean, count, fmt, render_plan
from .schema import InvalidRequest
from .stackconfig import NamespaceEntry, StackConfig, parse_stack_config, project_values
from .vocabulary import STACK_PROJECT

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2


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

    def __init__(
        self,
        index: int,
        plan: NamespacePlan | None = None,
        problems: list[tuple[str, str]] | None = None,
        entry: NamespaceEntry | None = None,
        stack: StackConfig | None = None,
    ):
        self.index = index
        self.plan = plan
        self.problems = problems or []
        self.entry = entry  # the stack entry, for a namespace of a stack config file
        self.stack = stack

    @property
    def label(self) -> str:
        return f"namespace[{self.index}]"

    @property
    def valid_plan(self) -> NamespacePlan:
        """The plan of a body that `plans` lists (valid by construction)."""
        if self.plan is None:
            raise ValueError(f"{self.label} is invalid: it has no plan")
        return self.plan


def _stack_bodies(config: Mapping[str, Any], catalogue: Catalogue, root: str) -> tuple[list[Body], list[str]]:
    """The namespaces of a stack config file, parsed as the stack program parses them (request files
    read under `root`, the project root)."""
    values, secure = project_values(config)
    stack = parse_stack_config(values, secure=secure, catalogue=catalogue, root=root)
    bodies = {e.index: Body(e.index, e.plan, entry=e, stack=stack) for e in stack.namespaces}
    file_problems: list[str] = []
    for problem in stack.problems:
        located = stack.locate(problem.path)  # (index, path within it): `requests/a.json: x` keeps its file
        if located is None:
            file_problems.append(f"config.{STACK_PROJECT}:{problem.path}: {problem.message}")
            continue
        index, rest = located
        body = bodies.setdefault(index, Body(index, stack=stack))
        body.problems.append((rest, problem.message))
    return [bodies[i] for i in sorted(bodies)], file_problems


def _bodies(documents: list[Any], catalogue: Catalogue, root: str) -> tuple[list[Body], list[str]]:
    """The namespaces of a file, validated and planned, and its file-level problems."""
    bodies: list[Body] = []
    file_problems: list[str] = []
    plain: list[Any] = []
    for doc in documents:
        if doc is None:
            continue
        config = _stack_config(doc)
        if config is not None:
            found, problems = _stack_bodies(config, catalogue, root)
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
                body.problems.append(
                    (
                        "namespace_name",
                        f"duplicate namespace_name {body.plan.namespace_name!r} (also namespace[{first}])",
                    )
                )
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
    root = str(project_root(os.path.dirname(os.path.abspath(path)) if path != "-" else None))
    result.bodies, result.problems = _bodies(documents, catalogue, root)  # a stack's request files: under root
    if not result.bodies and not result.problems:
        result.problems.append(
            "no namespace request found (expected a request body, a list of them, "
            f"or a stack config with {STACK_PROJECT}:namespaces)"
        )
    return result


def _catalogue(args: argparse.Namespace, err: TextIO) -> Catalogue | None:
    catalogue = DEFAULT_CATALOGUE.copy()
    failed = False
    for path in getattr(args, "extractors", None) or []:
        try:
            entries = [e for doc in load_documents(path) if doc is not None for e in _extractor_entries(doc)]
        except InputError as exc:
            print(f"{clean(path)}: {clean(str(exc))}", file=err)
            failed = True
            continue
        for problem in register_entries(catalogue, entries):
            print(f"{clean(path)}: {clean(problem)}", file=err)
            failed = True
    return None if failed else catalogue


# ---------------------------------------------------------------------------------------------
# Commands


def _run_files(args: argparse.Namespace, err: TextIO) -> list[Result] | None:
    catalogue = _catalogue(args, err)
    if catalogue is None:
        return None
    results = [process_file(path, catalogue) for path in args.files]
    for result in results:
        for problem in result.problems:
            print(f"{clean(result.path)}: {clean(problem)}", file=err)
        for body in result.bodies:
            for path, message in body.problems:
                print(f"{clean(result.path)}: {body.label}: {clean(path)}: {clean(message)}", file=err)
    return results


def cmd_validate(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`validate FILE...`: one line per valid namespace; every problem on stderr; exit 2 if any."""
    results = _run_files(args, err)
    if results is None:
        return EXIT_INVALID
    for result in results:
        for body in result.plans:
            plan = body.valid_plan
            system = sum(ix.is_protected for ix in plan.payload_indexes)
            print(
                f"{clean(result.path)}: {body.label} {fmt(plan.namespace_name)}: ok "
                f"({count(plan.feature_extractors, 'feature extractor')}, {count(plan.vectors, 'vector')}, "
                f"{count(plan.payload_indexes[system:], 'payload index', 'payload indexes')} "
                f"+ {system} system)",
                file=out,
            )
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
        out.write("\n\n".join(render_plan(b.valid_plan, _deployment(b)) for b in bodies) + "\n")
    return EXIT_OK


def _deployment(body: Body) -> dict[str, Any] | None:
    return body.stack.deployment(body.entry) if body.stack is not None and body.entry is not None else None


def _plan_data(body: Body) -> dict[str, Any]:
    data = body.valid_plan.to_dict()
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


def _api_key(args: argparse.Namespace) -> tuple[str | None, str | None]:
    """The server's API key for `restore`, and a problem: from `--api-key-env VAR`, else `QDRANT_API_KEY`
    when `QDRANT_URL` names the same server (an ambient key goes only to the URL configured with it)."""
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        return (key, None) if key else (None, f"--api-key-env: environment variable {args.api_key_env} is not set")
    key, url = os.environ.get("QDRANT_API_KEY"), os.environ.get("QDRANT_URL")
    if key and url:
        from .qdrant.target import same_server

        if same_server(args.url, url):
            return key, None
    return None, None


def cmd_restore(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    """`restore ARCHIVE`: a final snapshot back as a collection of an embedded path or a server."""
    from .problems import InvalidInput
    from .qdrant.errors import QdrantError

    archive = args.archive
    server = archive.endswith(".snapshot")
    key = None
    if args.url is not None:
        key, problem = _api_key(args)
        if problem is None and not server:
            problem = (
                f"{archive} is an embedded Qdrant Edge snapshot (.tar.gz/.tar): restore it into an embedded "
                "path with --path DIR"
            )
    else:
        problem = (
            f"{archive} is a Qdrant server snapshot (.snapshot): restore it into a server with --url URL"
            if server
            else None
        )
    if problem is None and not os.path.isfile(archive):
        problem = f"{archive}: no such snapshot file"
    if problem is None:
        from .qdrant.snapshot import restore_snapshot
        from .qdrant.target import QdrantTarget

        try:
            target = (
                QdrantTarget(url=args.url, api_key=key)
                if args.url is not None
                else QdrantTarget(path=args.path or None)
            )
            state = restore_snapshot(archive, target, collection_name=args.collection_name)
        except (InvalidInput, QdrantError, OSError, ValueError) as exc:
            problem = str(exc)
    if problem is not None:
        print(f"mixpeek-infra restore: {clean(_hidden(problem, key), 1000)}", file=err)
        return EXIT_INVALID
    print(
        f"restored {clean(archive)} as Qdrant collection {state.name!r} ({state.points_count} point(s), namespace "
        f"{state.namespace_id}); to manage it again, declare the namespace with namespace_id: "
        f"{state.namespace_id}",
        file=out,
    )
    return EXIT_OK


def _hidden(text: str, key: str | None) -> str:
    """`text` with the API key, should any message quote it, replaced by `***`."""
    return text.replace(key, "***") if key else text


# ---------------------------------------------------------------------------------------------
# Entry point


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `mixpeek-infra`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--extractors",
        metavar="FILE",
        action="append",
        default=[],
        help="YAML/JSON list of user extractor versions {name, version, vectors: [{output, size, "
        "inference_service, distance, datatype, multivector}]} to register before validating "
        "(repeatable)",
    )
    parser = argparse.ArgumentParser(
        prog="mixpeek-infra",
        description="Validate and plan Mixpeek namespaces (Create Namespace requests) without touching any "
        "infrastructure.",
        epilog="Exit status: 0 valid, 2 invalid input or usage error, 1 internal error.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    files_help = (
        "JSON or YAML file with a request body, a list of bodies, or a Pulumi stack config "
        "(mixpeek-infra:namespaces); '-' reads standard input"
    )
    p = sub.add_parser(
        "validate",
        parents=[common],
        help="validate request files",
        description="Validate Create Namespace requests; one line per valid namespace.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser(
        "plan",
        parents=[common],
        help="show what each namespace needs",
        description="The plan of each namespace: vectors, payload indexes, inference map, infrastructure.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=files_help)
    p.add_argument("--json", action="store_true", help="a JSON list with one plan object per namespace")
    p.set_defaults(func=cmd_plan)
    p = sub.add_parser(
        "schema",
        parents=[common],
        help="print the JSON Schema of the request",
        description="The JSON Schema (draft 2020-12) of the Create Namespace request, for editors.",
    )
    p.add_argument(
        "--stack-config",
        action="store_true",
        help="the schema of a whole Pulumi.<stack>.yaml file instead of one request body",
    )
    p.set_defaults(func=cmd_schema)
    p = sub.add_parser(
        "restore",
        help="restore a final snapshot as a Qdrant collection",
        description="Restore a final snapshot (written before a collection was deleted or replaced) "
        "as a collection: points, vectors, payload indexes and its namespace_id come "
        "back. Refuses to overwrite an existing collection.",
        epilog="The server's API key is never a command-line argument: it is read from the "
        "environment variable named by --api-key-env, else from QDRANT_API_KEY when "
        'QDRANT_URL is the same server. E.g. QDRANT_API_KEY="$(pulumi config get '
        'qdrantApiKey -s prod)" QDRANT_URL=https://... mixpeek-infra restore X --url '
        "https://...",
    )
    p.add_argument(
        "archive",
        metavar="ARCHIVE",
        help="the snapshot file: <collection>-<UTC time>.tar.gz (embedded) or .snapshot (server)",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--path",
        metavar="DIR",
        default=None,
        help="embedded Qdrant Edge directory (default .mixpeek/qdrant; relative paths resolve "
        "against the Pulumi project root, as in the stack)",
    )
    where.add_argument("--url", metavar="URL", default=None, help="a Qdrant server, http(s)://host[:port]")
    p.add_argument(
        "--api-key-env",
        metavar="VAR",
        default=None,
        help="environment variable holding the server's API key (default: QDRANT_API_KEY, sent only "
        "when QDRANT_URL is the same server)",
    )
    p.add_argument(
        "--collection-name",
        metavar="NAME",
        default=None,
        help="restore under this name (default: the name the snapshot was taken of)",
    )
    p.set_defaults(func=cmd_restore)
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
        print(
            f"mixpeek-infra: internal error: {type(exc).__name__}: {clean(exc)} "
            "(set MIXPEEK_INFRA_DEBUG=1 for the traceback)",
            file=err,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
