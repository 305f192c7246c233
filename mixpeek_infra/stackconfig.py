"""The stack config of the `mixpeek-infra` project, parsed once into typed, validated settings.

Both the stack program (`mixpeek_infra.program`) and the CLI (`mixpeek-infra validate/plan` on a
`Pulumi.<stack>.yaml`) parse with `parse_stack_config`, so `validate` passes exactly the stack
files the program deploys without a configuration error. Every problem is a `Problem` whose
path is relative to the project's config (`ray.mode`, `namespaces[0].ray.num_cpus`,
`namespaces[1].request.feature_extractors[0].version`); readers prefix it as they show it.

Keys (all under the `mixpeek-infra:` project prefix):
  namespaces   a list of Create Namespace bodies, or of entries {request: body, key, renamed_from,
               protect, deletion_protection, namespace_id, cluster_id, qdrant, ray,
               collection_settings, vectors_on_disk, retain_previous}; instead of `request`, `file: PATH` (one body per
               JSON or YAML file) or `files: DIR | GLOB | [...]` (one namespace per file, sorted by path;
               its settings apply to each), relative to the project root. A body's problems in a file
               are `FILE: field.path` (`requests/a.json: feature_extractors[0].version`).
  qdrant       the default Qdrant target: {path} (embedded Qdrant Edge; default `.mixpeek/qdrant`) or
               {url, timeout, prefer_grpc}; plus final_snapshot (a directory)
  ray          the default Ray head ({mode: local|kubernetes|external, ...}) and `shared_url`, the
               shared cluster of shared-tier namespaces
  extractors   user extractor versions [{name, version, vectors: [...]}]
  qdrantApiKey, rayAuthToken   secrets: set with `pulumi config set --secret`

Imports no Pulumi, Qdrant or Ray. Parsing applies the rules of `RayHead` (`ray.spec`), `QdrantTarget`
and the Collection's input check (`qdrant.inputs`) by calling them, so each rule lives in one place;
those calls load the Pulumi SDK (not the engine) on first use.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .extractors import DEFAULT_CATALOGUE, Catalogue, extractor_from_config
from .plan import NamespacePlan, collection_conflicts, namespace_id_problem, plan_request, ray_head_problem
from .problems import Problem, did_you_mean
from .redact import redact_url
from .schema import CreateNamespaceRequest, InvalidRequest, key_text, parse_request, text_problems
from .settings import RESOURCE_NAME_PATTERN, NamespaceSettings, StackEntrySettings, setting_names, setting_problems
from .state_names import SHARED_RAY_NAME, ray_head_name
from .vocabulary import DEFAULT_QDRANT_PATH, QDRANT_TIMEOUT, STACK_PROJECT

SECRET_KEYS = ("qdrantApiKey", "rayAuthToken")
OBJECT_KEYS = ("namespaces", "qdrant", "ray", "extractors")
KEYS = OBJECT_KEYS + SECRET_KEYS
BODY_KEYS = ("request", "file", "files")  # where an entry's body is: inline, one file, many files
ENTRY_KEYS = BODY_KEYS + setting_names(StackEntrySettings)  # and its settings, each declared once in settings.py
QDRANT_KEYS = ("url", "path", "timeout", "prefer_grpc", "final_snapshot")
RESOURCE_NAME = re.compile(RESOURCE_NAME_PATTERN)
STACK_DEPTH = 64  # levels of nesting in a stack config value (a body in it: 32, see schema.MAX_DEPTH)
ENCRYPTED_PLACEHOLDER = "(encrypted in the stack file)"  # what `validate` holds for an encrypted key
PER_NAMESPACE_KEYS = ("key", "renamed_from", "namespace_id")  # settings that name one namespace: not with `files`
REQUEST_SUFFIXES = (".json", ".yaml", ".yml")  # the files of a `files` directory


@dataclass(frozen=True)
class QdrantSettings:
    """A validated Qdrant target from config: a server `url`, or an embedded `path`."""

    url: str | None = None
    path: str | None = None
    timeout: float = QDRANT_TIMEOUT
    prefer_grpc: bool = False
    final_snapshot: str | None = None

    def target_key(self) -> Mapping[str, Any]:
        """The settings as `plan.collection_conflicts` reads them."""
        return {"url": self.url, "path": self.path}


@dataclass(frozen=True)
class NamespaceEntry:
    """One namespace of the stack: its body, plan and per-namespace settings."""

    index: int  # its place among the stack's namespaces (a `files` entry adds one per file)
    request: CreateNamespaceRequest  # the body, validated against the stack's catalogue
    plan: NamespacePlan
    key: str  # the Namespace component's resource name (default: namespace_name)
    request_path: str  # `namespaces[i]`, `namespaces[i].request`, or its request file: where its body is
    renamed_from: tuple[str, ...] = ()  # earlier keys: Pulumi aliases, so a rename replaces nothing
    protect: bool = False  # Pulumi's `protect` on the component and every child
    qdrant: QdrantSettings | None = None  # its own target (replaces the stack's `qdrant`)
    ray: Any = None  # its own Ray head (a `RayHead`, parsed once; replaces the stack's `ray`)
    settings: NamespaceSettings = field(default_factory=NamespaceSettings)  # what `NamespaceArgs` takes too

    where: str = ""  # its entry in the config, `namespaces[i]`, which holds its settings
    source: str | None = None  # its request file (relative to the project root), if its body is in one

    def __getattr__(self, name: str) -> Any:  # a shared setting read as the entry's own: `entry.namespace_id`
        if name in setting_names() and "settings" in self.__dict__:
            return getattr(self.__dict__["settings"], name)
        raise AttributeError(name)

    @property
    def ray_path(self) -> str:
        return f"{self.where}.ray" if self.ray is not None else "ray"

    @property
    def label(self) -> str:
        """Where its body is, as problems name it: its request file, else its entry."""
        return self.source or self.where

    def field_path(self, name: str) -> str:
        """A field's path in its body: `namespaces[0].request.namespace_name`, `requests/a.json: namespace_name`."""
        return _under_body(Problem(name, ""), self.request_path, self.source).path


@dataclass(frozen=True)
class StackConfig:
    """The whole stack config, validated; `problems` is empty when it deploys."""

    namespaces: tuple[NamespaceEntry, ...] = ()
    qdrant: QdrantSettings = field(default_factory=lambda: QdrantSettings(path=DEFAULT_QDRANT_PATH))
    ray: Any = None  # the default Ray head (a `RayHead`, parsed once); None: a local head (`default_head`)
    shared_url: str | None = None
    catalogue: Catalogue = field(default_factory=DEFAULT_CATALOGUE.copy)
    secrets: frozenset[str] = frozenset()  # which of SECRET_KEYS are set
    problems: tuple[Problem, ...] = ()
    origins: tuple[tuple[str, str | None], ...] = ()  # by index, every namespace's (entry, request file), valid or not

    def locate(self, path: str) -> tuple[int, str] | None:
        """The namespace a problem's `path` is about, as (its index, the path within it); None for a problem of the
        stack, or of a `files` entry's settings (shared by its namespaces)."""
        head = path.split(": ", 1)[0]
        for index, (_, source) in enumerate(self.origins):
            if source is not None and source == head:
                return index, path
        match = _ENTRY_PATH.match(path)
        if match is None:
            return None
        found = [i for i, (where, _) in enumerate(self.origins) if where == match["where"]]
        return (found[0], match["rest"] or "(body)") if len(found) == 1 else None

    def target_of(self, entry: NamespaceEntry) -> QdrantSettings | None:
        """The entry's Qdrant target; None when its request names one (`infrastructure.qdrant_url`)."""
        if entry.plan.infrastructure.qdrant_url:
            return None
        return entry.qdrant or self.qdrant

    def gets_api_key(self, entry: NamespaceEntry) -> bool:
        """Whether the stack's `qdrantApiKey` goes to the entry's target: only to the server it is configured
        for, the stack's `qdrant.url` (a namespace's own `qdrant.url` on that same server included)."""
        from .qdrant.target import same_server

        target = self.target_of(entry)
        url, stack_url = (target.url if target is not None else None), self.qdrant.url
        if "qdrantApiKey" not in self.secrets or not url or not stack_url:
            return False
        return same_server(url, stack_url)

    @property
    def default_head(self) -> Any:
        """The stack's default Ray head (`RayHead`): its `ray`, else a local head."""
        if self.ray is not None:
            return self.ray
        from .ray.spec import RayHead

        return RayHead.local()

    def head_of(self, entry: NamespaceEntry) -> tuple[str, Any]:
        """Which Ray head the entry uses: ("own", its RayHead), ("default", the stack's), ("request", None) for its
        `ray_head_node_url`, ("shared", None) for the stack's shared head. Without the stack's `rayAuthToken`:
        the program adds it (`RayHead.with_auth_token`)."""
        if entry.ray is not None:
            return "own", entry.ray
        infra = entry.plan.infrastructure
        if infra.ray_head_node_url:
            return "request", None
        if infra.compute_tier == "shared":
            return "shared", None
        return "default", self.default_head

    @property
    def runs_shared_head(self) -> bool:
        """Whether the stack runs its own shared Ray head (shared-tier namespaces and no `ray.shared_url`)."""
        return self.shared_url is None and any(self.head_of(e)[0] == "shared" for e in self.namespaces)

    def deployment(self, entry: NamespaceEntry) -> dict[str, Any]:
        """What the stack deploys for `entry` beyond its plan: its resource key and protection, the
        effective Qdrant target and Ray head (credentials never included)."""
        infra = entry.plan.infrastructure
        target = self.target_of(entry)
        if target is None:
            qdrant: dict[str, Any] = {"url": redact_url(infra.qdrant_url), "from": "request"}
        elif target.url:
            qdrant = {
                "url": redact_url(target.url),
                "timeout": target.timeout,
                "prefer_grpc": target.prefer_grpc,
                "api_key": "qdrantApiKey (secret)" if self.gets_api_key(entry) else None,
            }
        else:
            qdrant = {"path": target.path}
        if target is not None:
            qdrant["from"] = f"{entry.where}.qdrant" if entry.qdrant is not None else "qdrant"
            qdrant["final_snapshot"] = target.final_snapshot
        return {
            "key": entry.key,
            "renamed_from": list(entry.renamed_from),
            "protect": entry.protect,
            "deletion_protection": entry.deletion_protection,
            "namespace_id": entry.namespace_id or entry.plan.namespace_id,
            "cluster_id": entry.cluster_id,
            "qdrant": qdrant,
            "collection_settings": dict(entry.collection_settings or {}),
            "ray": self._head(entry),
        }

    def _head(self, entry: NamespaceEntry) -> dict[str, Any]:
        use, settings = self.head_of(entry)
        if use == "request":
            return {
                "mode": "external",
                "url": redact_url(entry.plan.infrastructure.ray_head_node_url),
                "from": "request",
            }
        if use == "shared":
            if self.shared_url is not None:
                return {"mode": "external", "url": redact_url(self.shared_url), "from": "ray.shared_url"}
            return {
                **_head_settings(self.default_head, SHARED_RAY_NAME, SHARED_RAY_NAME, self.secrets),
                "head": SHARED_RAY_NAME,
                "from": "ray (the stack's shared head)",
            }
        return {
            **_head_settings(settings, ray_head_name(entry.key), entry.plan.namespace_name, self.secrets),
            "from": entry.ray_path,
        }


def _head_settings(spec: Any, name: str, namespace_name: str, secrets: frozenset[str]) -> dict[str, Any]:
    """A head's mode and where it runs, from its `RayHead`."""
    mode = spec.mode
    if mode == "external":
        return {"mode": mode, "url": redact_url(spec.url)}
    if mode == "local":
        return {"mode": mode, "state_dir": spec.state_dir, "num_cpus": spec.num_cpus}
    from .ray.kubernetes import head_names

    namespace, base = head_names(name, spec.k8s, namespace_name)
    return {
        "mode": mode,
        "kubernetes_mode": spec.k8s.mode,
        "kubernetes_namespace": namespace,
        "objects": f"{base}-*",
        # A parsed stack config refuses an inline token (`_ray_head`): the stack's secret is the only one.
        "auth_token": "rayAuthToken (secret)" if "rayAuthToken" in secrets else None,
    }


# ---------------------------------------------------------------------------------------------
# Parsing


def is_secure(value: Any) -> bool:
    """Whether a stack file value is an encrypted one (`{secure: v1:...}`)."""
    return isinstance(value, Mapping) and set(value) == {"secure"} and isinstance(value["secure"], str)


def project_values(config: Mapping[str, Any], project: str = STACK_PROJECT) -> tuple[dict[str, Any], set[str]]:
    """The project's values of a stack file's `config:` block, without the `project:` prefix, and which are secure."""
    values: dict[str, Any] = {}
    secure: set[str] = set()
    for full, value in config.items():
        if not isinstance(full, str) or ":" not in full:
            continue
        prefix, _, name = full.partition(":")
        if prefix != project:
            continue
        values[name] = value
        if is_secure(value):
            secure.add(name)
    return values, secure


def parse_stack_config(
    values: Mapping[str, Any],
    *,
    secure: Collection[str] = (),
    catalogue: Catalogue | None = None,
    root: str | os.PathLike[str] | None = None,
) -> StackConfig:
    """Parse the project's config `values` (keys without the `mixpeek-infra:` prefix; object values as
    data or JSON text, as the engine passes them); `secure` names the keys that were set encrypted; request
    files are read under `root`, the project root (default: the one at or above the working directory).
    Never raises for bad input: the result's `problems` lists everything wrong."""
    problems: list[Problem] = []
    for name in sorted(set(values) - set(KEYS), key=str):
        problems.append(
            Problem(key_text(name), f"unknown key{did_you_mean(name, KEYS)}; valid keys: {', '.join(KEYS)}")
        )
    for name in SECRET_KEYS:
        if name in values and name not in secure:
            problems.append(
                Problem(
                    name,
                    f"a secret must not be stored in plain text: run `pulumi config set "
                    f"--secret {STACK_PROJECT}:{name} <value>` (it is then stored encrypted)",
                )
            )
    objects = {}
    for name in OBJECT_KEYS:
        if name in values:
            objects[name] = _object(values[name], name, problems)
    # Text that would crash a parser, the engine's gRPC or the terminal stops here, naming its path.
    hostile = text_problems({**values, **objects}, max_depth=STACK_DEPTH, finite=False)
    if hostile:
        return StackConfig(problems=tuple(problems + [Problem(*p) for p in hostile]))
    if "namespaces" in objects:
        objects["namespaces"] = _request_api_keys(objects["namespaces"], "namespaces" in secure, problems)
    catalogue = (catalogue or DEFAULT_CATALOGUE).copy()
    extractors = objects.get("extractors")
    if extractors is not None:
        if not isinstance(extractors, list):
            problems.append(Problem("extractors", "expected a list of {name, version, vectors: [...]} entries"))
        else:
            for i, item in enumerate(extractors):
                try:
                    catalogue.register(extractor_from_config(item))
                except (ValueError, TypeError, AttributeError) as exc:
                    problems.append(Problem(f"extractors[{i}]", str(exc)))
    qdrant = _qdrant(objects.get("qdrant"), "qdrant", problems)
    ray, shared_url = _default_ray(objects.get("ray"), problems)
    if "namespaces" not in values:
        if not any(did_you_mean(k, ("namespaces",)) for k in set(values) - set(KEYS)):  # else a typo, reported
            problems.append(Problem("namespaces", "required: a list of Create Namespace request bodies"))
        entries: list[NamespaceEntry] = []
        origins: list[tuple[str, str | None]] = []
    else:
        from .paths import project_root

        entries, origins = _entries(
            objects.get("namespaces"), catalogue, problems, root=Path(root) if root is not None else project_root()
        )
    config = StackConfig(
        namespaces=tuple(entries),
        qdrant=qdrant or QdrantSettings(path=DEFAULT_QDRANT_PATH),
        ray=ray,
        shared_url=shared_url,
        catalogue=catalogue,
        secrets=frozenset(k for k in SECRET_KEYS if k in values),
        origins=tuple(origins),
    )
    # A refused `qdrant` leaves the default (embedded) target in its place: no check may read it as the user's.
    problems += _stack_problems(config, default_target=qdrant is not None or objects.get("qdrant") is None)
    return StackConfig(**{**config.__dict__, "problems": tuple(problems)})


def _object(value: Any, name: str, problems: list[Problem]) -> Any:
    """An object-valued key as data: the engine passes JSON text, a stack file parsed YAML."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            problems.append(Problem(name, "expected an object or list, got a plain string"))
            return None
        except RecursionError:
            problems.append(Problem(name, f"nested too deeply (more than {STACK_DEPTH} levels)"))
            return None
    return value


def _request_api_keys(items: Any, encrypted: bool, problems: list[Problem]) -> Any:
    """`namespaces` with each inline body's `infrastructure.qdrant_api_key` checked: in a stack file it is
    `{secure: ...}` (`pulumi config set --secret --path`), which the engine decrypts for the program and marks
    `namespaces` secret (`encrypted`); plain text is refused, the way out named. The CLI cannot decrypt: an
    encrypted key stands in as a placeholder, never used to connect."""
    if not isinstance(items, list):
        return items
    out = list(items)
    for i, item in enumerate(items):
        if isinstance(item, Mapping) and isinstance(item.get("request"), Mapping):
            body, path = item["request"], f"namespaces[{i}].request"
        elif isinstance(item, Mapping) and not any(k in item for k in BODY_KEYS):
            body, path = item, f"namespaces[{i}]"
        else:
            continue
        infra = body.get("infrastructure")
        if not isinstance(infra, Mapping) or not (
            is_secure(infra.get("qdrant_api_key")) or (isinstance(infra.get("qdrant_api_key"), str) and not encrypted)
        ):
            continue
        if not is_secure(infra["qdrant_api_key"]):
            where = f"{path}.infrastructure.qdrant_api_key"
            problems.append(
                Problem(
                    where,
                    f"a secret must not be stored in plain text: run `pulumi config set "
                    f"--secret --path '{STACK_PROJECT}:{where}' <value>` (it is then "
                    "stored encrypted, and the program gets it as a secret)",
                )
            )
        body = {**body, "infrastructure": {**infra, "qdrant_api_key": ENCRYPTED_PLACEHOLDER}}
        out[i] = {**item, "request": body} if "request" in item else body
    return out


def _file_api_key(body: Any, source: str, where: str) -> list[Problem]:
    """A request file is plain text, never decrypted: an `infrastructure.qdrant_api_key` in it is refused, the
    way out named (the body inline at `where`, its key set encrypted)."""
    infra = body.get("infrastructure") if isinstance(body, Mapping) else None
    if not isinstance(infra, Mapping) or infra.get("qdrant_api_key") is None:
        return []
    return [
        Problem(
            f"{source}: infrastructure.qdrant_api_key",
            "a request file is stored in plain text, so it must not hold a secret: leave the key out of it, "
            f"give this namespace its body inline ({where}.request) and run `pulumi config set --secret "
            f"--path '{STACK_PROJECT}:{where}.request.infrastructure.qdrant_api_key' <value>`",
        )
    ]


def _entries(
    items: Any, catalogue: Catalogue, problems: list[Problem], *, root: Path
) -> tuple[list[NamespaceEntry], list[tuple[str, str | None]]]:
    """The valid namespaces, and every namespace's (entry, request file) by index."""
    if not isinstance(items, list) or not items:
        problems.append(Problem("namespaces", "expected a non-empty list of Create Namespace request bodies"))
        return [], []
    entries: list[NamespaceEntry] = []
    origins: list[tuple[str, str | None]] = []
    named = {
        os.path.normpath(item["file"])
        for item in items  # given their own settings: `files` skip them
        if isinstance(item, Mapping) and isinstance(item.get("file"), str)
    }
    matched: dict[str, str] = {}  # request file -> the `files` entry that matched it first
    for i, item in enumerate(items):
        where = f"namespaces[{i}]"
        entry_problems: list[Problem] = []
        if isinstance(item, Mapping) and any(k in item for k in BODY_KEYS):
            settings = _entry_settings(item, where, entry_problems)
            bodies = _entry_bodies(item, where, root, named, matched, entry_problems)
        else:
            settings, bodies = {}, [(item, where, None)]
        problems += entry_problems
        for body, request_path, source in bodies:
            index = len(origins)
            origins.append((where, source))
            body_problems: list[Problem] = []
            try:
                if body is _UNREADABLE:
                    continue
                if source is not None:
                    body_problems += _file_api_key(body, source, where if "file" in item else "namespaces[<i>]")
                body = parse_request(_unwrapped(body), catalogue=catalogue)  # the component gets this model
                plan = plan_request(body, catalogue=catalogue, vectors_on_disk=settings.get("vectors_on_disk", False))
            except InvalidRequest as exc:
                body_problems += [_under_body(p, request_path, source) for p in exc.problems]
                plan = None
            if plan is not None and (p := namespace_id_problem(plan, settings.get("namespace_id"))) is not None:
                body_problems.append(p.under(where))
            problems += body_problems
            if plan is None or body_problems or entry_problems:
                continue
            shared = {k: v for k, v in settings.items() if k in setting_names()}
            own = {k: v for k, v in settings.items() if k not in shared}
            entries.append(
                NamespaceEntry(
                    index=index,
                    request=body,
                    plan=plan,
                    request_path=request_path,
                    where=where,
                    source=source,
                    settings=NamespaceSettings(**shared),
                    **{**own, "key": settings.get("key") or plan.namespace_name},
                )
            )
    return entries, origins


_UNREADABLE = object()  # a request file that could not be read (its problem is already listed)
_ENTRY_PATH = re.compile(r"(?P<where>namespaces\[[0-9]+\])(?:\.(?P<rest>.*))?")  # a path in an entry
_NAMESPACE_REF = re.compile(r"namespaces\[([0-9]+)\]")  # a namespace named in a message, by its index


_CLIENT_WRAPPER = re.compile(
    r"(any|one)of_schema_[0-9]+_validator|discriminator_value_class_map|actual_instance|"
    r"(any|one)_of_schemas"
)


def _unwrapped(body: Any, depth: int = 0) -> Any:
    """`body` without the official client's anyOf/oneOf wrappers, which its `model_dump_json()` writes
    (`field_schema: {actual_instance: {...}, any_of_schemas: [...], anyof_schema_1_validator: null, ...}`):
    each wrapper becomes its `actual_instance`. Anything else is returned as is."""
    if depth > 32:
        return body
    if type(body) is dict:  # JSON and YAML data (a typing.Mapping check costs ~10x, once per value)
        if "actual_instance" in body and all(isinstance(k, str) and _CLIENT_WRAPPER.fullmatch(k) for k in body):
            return _unwrapped(body["actual_instance"], depth + 1)
        items = {k: _unwrapped(v, depth + 1) for k, v in body.items()}
        return body if all(items[k] is v for k, v in body.items()) else items
    if type(body) is list:
        values = [_unwrapped(v, depth + 1) for v in body]
        return body if all(a is b for a, b in zip(values, body)) else values
    return body


def _under_body(problem: Problem, request_path: str, source: str | None) -> Problem:
    """A problem of a body moved under where the body is: `namespaces[0].request.x`, or `requests/a.json: x`."""
    if source is None:
        return problem.under(request_path)
    return Problem(source if problem.path in ("", "(body)") else f"{source}: {problem.path}", problem.message)


def _entry_bodies(
    item: Mapping[str, Any], where: str, root: Path, named: set[str], matched: dict[str, str], problems: list[Problem]
) -> list[tuple[Any, str, str | None]]:
    """An entry's bodies as (body, request path, request file): its `request`, its `file`, or one per file its
    `files` name (a directory's *.json, *.yaml and *.yml files, or a glob's matches; sorted by path)."""
    given = [k for k in BODY_KEYS if k in item]
    if len(given) > 1:
        problems.append(Problem(where, f"expected one of {', '.join(BODY_KEYS)}, got {' and '.join(given)}"))
        return []
    if "request" in item:
        return [(item["request"], f"{where}.request", None)]
    if "file" in item:
        path = _request_file(item["file"], f"{where}.file", root, problems)
        return [] if path is None else [(_read_body(path, root, problems), path, path)]
    for name in PER_NAMESPACE_KEYS:
        if name in item:
            problems.append(
                Problem(
                    f"{where}.{name}",
                    "names one namespace, and `files` may read many: give that "
                    "file its own entry (`file: PATH`) with this setting",
                )
            )
    patterns = item["files"]
    listed = isinstance(patterns, list)
    if not (isinstance(patterns, str) or listed and patterns):
        problems.append(
            Problem(
                f"{where}.files",
                f"expected a directory or glob (or a list of them) relative to the "
                f"project root, got {_short(patterns)}",
            )
        )
        return []
    found: list[str] = []
    for j, pattern in enumerate(patterns if listed else [patterns]):
        at = f"{where}.files[{j}]" if listed else f"{where}.files"
        for path in _matches(pattern, at, root, problems):
            first = matched.setdefault(path, at)
            if first != at:
                problems.append(Problem(at, f"{path} is also matched by {first}: each request file is one namespace"))
            elif path not in named:
                found.append(path)
    return [(_read_body(path, root, problems), path, path) for path in found]


def _request_file(value: Any, at: str, root: Path, problems: list[Problem]) -> str | None:
    """A request file or directory path from config: relative to the project root and inside it, normalized."""
    if not (isinstance(value, str) and value.strip() and "\x00" not in value):
        problems.append(Problem(at, f"expected a path relative to the project root, got {_short(value)}"))
        return None
    path = os.path.normpath(value)
    inside = not os.path.isabs(path) and path != ".." and not path.startswith(".." + os.sep)
    if inside:
        try:
            inside = (root / path).resolve().is_relative_to(root.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            inside = False
    if not inside:
        problems.append(
            Problem(at, f"{_short(value)} is not inside the project root: request files are read relative to it")
        )
        return None
    return path


def _matches(pattern: Any, at: str, root: Path, problems: list[Problem]) -> list[str]:
    """The request files a `files` pattern names: a directory's *.json, *.yaml and *.yml files, or a glob's
    matching files (`**` recurses); sorted by path."""
    base = _request_file(pattern, at, root, problems)
    if base is None:
        return []
    if not glob.has_magic(pattern):
        directory = root / base
        if not directory.is_dir():
            problems.append(Problem(at, f"{pattern} is not a directory (or a glob) under the project root"))
            return []
        found = sorted(
            os.path.join(base, p.name)
            for p in directory.iterdir()
            if p.suffix.lower() in REQUEST_SUFFIXES and p.is_file()
        )
        what = f"no request file (*.json, *.yaml, *.yml) in {pattern}"
    else:
        found = sorted(
            os.path.normpath(p) for p in glob.glob(base, root_dir=root, recursive=True) if (root / p).is_file()
        )
        what = f"no file matches {pattern}"
    inside = [p for p in found if _request_file(p, at, root, problems) is not None]
    if not found:
        problems.append(Problem(at, what))
    return inside


def _read_body(path: str, root: Path, problems: list[Problem]) -> Any:
    """The one Create Namespace body of a request file (JSON or YAML, read strictly as the CLI reads files)."""
    from .documents import InputError, load_documents

    try:
        documents = load_documents(str(root / path))
    except InputError as exc:
        problems.append(Problem(path, str(exc)))
        return _UNREADABLE
    if len(documents) != 1:
        problems.append(
            Problem(path, f"expected one Create Namespace request body, found {len(documents)} YAML documents")
        )
        return _UNREADABLE
    return documents[0]


def _entry_settings(item: Mapping[str, Any], where: str, problems: list[Problem]) -> dict[str, Any]:
    """An entry's settings beside its request, checked; keys as `StackEntrySettings` fields."""
    for name in sorted(set(item) - set(ENTRY_KEYS), key=str):
        problems.append(
            Problem(
                f"{where}.{name}", f"unknown key{did_you_mean(name, ENTRY_KEYS)}; valid keys: {', '.join(ENTRY_KEYS)}"
            )
        )
    # Each setting is checked by its declaration (settings.py); these three by their parsers below.
    out, found = setting_problems(StackEntrySettings, {k: v for k, v in item.items() if k not in _OWN_PARSERS}, where)
    problems += found
    if "qdrant" in item:
        out["qdrant"] = _qdrant(item["qdrant"], f"{where}.qdrant", problems, required=True)
    if "ray" in item:
        out["ray"] = _ray_head(item["ray"], f"{where}.ray", problems)
    if "collection_settings" in item:
        from .qdrant.errors import InvalidSpec
        from .qdrant.normalize import normalize_settings

        try:
            out["collection_settings"] = normalize_settings(item["collection_settings"], "collection_settings")
        except InvalidSpec as exc:
            problems += [p.under(where) for p in exc.problems]
    return out


_OWN_PARSERS = ("qdrant", "ray", "collection_settings")  # settings whose parsers report several problems at once


def _qdrant(value: Any, where: str, problems: list[Problem], *, required: bool = False) -> QdrantSettings | None:
    """A Qdrant target from config, checked by the rules `QdrantTarget` applies."""
    if value is None and not required:
        return None
    if not isinstance(value, Mapping):
        problems.append(Problem(where, f"expected a mapping with `path` or `url`, got {_short(value)}"))
        return None
    found = [
        Problem(f"{where}.{k}", _unknown_qdrant_key(k, where)) for k in sorted(set(value) - set(QDRANT_KEYS), key=str)
    ]
    snapshot = value.get("final_snapshot")
    if snapshot is not None and not (isinstance(snapshot, str) and snapshot.strip() and "\x00" not in snapshot):
        found.append(Problem(f"{where}.final_snapshot", f"{_short(snapshot)} is not a directory path"))
    if not found:
        from .qdrant.errors import InvalidTarget
        from .qdrant.target import QdrantTarget

        try:
            target = QdrantTarget(
                url=value.get("url") or None,
                path=value.get("path"),
                timeout=value.get("timeout", QDRANT_TIMEOUT),
                prefer_grpc=value.get("prefer_grpc", False),
            )
        except InvalidTarget as exc:
            found += [Problem(f"{where}.{p.path.removeprefix('QdrantTarget.')}", p.message) for p in exc.problems]
        else:
            problems += found
            return QdrantSettings(
                url=target.url,
                path=None if target.url else target.path,
                timeout=float(target.timeout),
                prefer_grpc=target.prefer_grpc,
                final_snapshot=snapshot,
            )
    problems += found
    return None


def _unknown_qdrant_key(key: Any, where: str) -> str:
    """Why a key of a `qdrant` target is refused; a credential points to the `qdrantApiKey` secret."""
    from .extractors import is_credential

    if not is_credential(key):
        return f"unknown key{did_you_mean(key, QDRANT_KEYS)}; valid keys: {', '.join(QDRANT_KEYS)}"
    head = (
        "a secret does not go in the stack file in plain text: remove it and run `pulumi config set --secret "
        "qdrantApiKey <key>`"
    )
    if where == "qdrant":
        return head + " (stored encrypted; sent only to qdrant.url's server)"
    return head + (
        ", sent here when this url is the stack's qdrant.url server (for another server: the body's "
        "infrastructure.qdrant_api_key, set with --secret --path)"
    )


def _default_ray(value: Any, problems: list[Problem]) -> tuple[Any, str | None]:
    """The stack's default Ray head (a `RayHead`; None for the default local one) and its shared cluster's URL."""
    if value is None:
        return None, None
    if not isinstance(value, Mapping):
        problems.append(Problem("ray", f"expected a mapping with a 'mode' key, got {_short(value)}"))
        return None, None
    settings = dict(value)
    shared_url = settings.pop("shared_url", None)
    if shared_url is not None:
        from .ray.spec import ray_url_problem

        if (p := ray_url_problem(shared_url, "ray.shared_url")) is not None:
            problems.append(p)
            shared_url = None
    if not settings:
        return None, shared_url
    if settings.get("mode") == "external" and "url" not in settings and shared_url is not None:
        settings["url"] = shared_url  # `{mode: external, shared_url: U}`: every head is the cluster at U
    return _ray_head(settings, "ray", problems), shared_url


def _ray_head(settings: Any, where: str, problems: list[Problem]) -> Any:
    """The `RayHead` of `settings` (parsed once, here: the stack's `rayAuthToken` is the program's to add), or None
    with what `RayHead.from_config` refuses added to `problems` under `where`."""
    from .ray.spec import InvalidRayHead, RayHead

    k8s = settings.get("kubernetes") if isinstance(settings, Mapping) else None
    if isinstance(k8s, Mapping) and "auth_token" in k8s:
        problems.append(
            Problem(
                f"{where}.kubernetes.auth_token",
                "a secret must not be stored in plain text: run `pulumi config set --secret "
                f"{STACK_PROJECT}:rayAuthToken <value>` (every Kubernetes head of the stack then "
                "uses it)",
            )
        )
        return None
    try:
        return RayHead.from_config(settings)
    except InvalidRayHead as exc:
        problems += [Problem(where + p.path.removeprefix("ray"), p.message) for p in exc.problems]
        return None


def _stack_problems(config: StackConfig, *, default_target: bool = True) -> list[Problem]:
    """Problems between namespaces: names, keys, shared collections, Ray heads and their Kubernetes names."""
    problems: list[Problem] = []
    names: dict[str, NamespaceEntry] = {}
    for entry in config.namespaces:
        given_key = () if entry.key == entry.plan.namespace_name else (("key", entry.key),)
        for field_name, value in (
            ("namespace_name", entry.plan.namespace_name),
            *given_key,
            *(("renamed_from", old) for old in entry.renamed_from),
        ):
            if names.get(value, entry) is not entry:  # an entry's key may equal its own namespace_name
                path = (
                    entry.field_path("namespace_name")
                    if field_name == "namespace_name"
                    else f"{entry.where}.{field_name}"
                )
                problems.append(Problem(path, f"{value!r} is already used by {names[value].label}"))
            names.setdefault(value, entry)
    by_index = {e.index: e for e in config.namespaces}
    for i, field_name, message in collection_conflicts(
        [
            (
                e.index,
                e.plan,
                {"namespace_id": e.namespace_id} | ({"qdrant": e.qdrant.target_key()} if e.qdrant else {}),
            )
            for e in config.namespaces
        ],
        config.qdrant.target_key(),
    ):
        path = (
            f"{by_index[i].where}.{field_name}" if field_name == "namespace_id" else by_index[i].field_path(field_name)
        )
        problems.append(
            Problem(
                path,
                _NAMESPACE_REF.sub(  # the other namespace as this config names it
                    lambda m: by_index[int(m[1])].label if int(m[1]) in by_index else m[0], message
                ),
            )
        )
    problems += _head_problems(config)
    for entry in config.namespaces:
        if not default_target and entry.qdrant is None and config.target_of(entry) is not None:
            continue  # its target is the refused `qdrant`, already reported
        problems += _collection_problems(entry, config.target_of(entry), config.gets_api_key(entry))
    return problems


def _head_problems(config: StackConfig) -> list[Problem]:
    """Each namespace's Ray head against its plan, and Kubernetes heads whose objects would collide."""
    problems: list[Problem] = []
    heads: list[tuple[NamespaceEntry | None, Any, str]] = []  # (entry or None for the shared head, settings, path)
    for entry in config.namespaces:
        use, settings = config.head_of(entry)
        mode = settings.mode if settings is not None else ("external" if use == "request" else None)
        if use == "own" and (p := ray_head_problem(entry.plan.infrastructure, mode)) is not None:
            problems.append(_under_body(p, entry.request_path, entry.source))
            continue
        if settings is None:
            continue
        problems += [_under_body(p, entry.request_path, entry.source) for p in settings.plan_problems(entry.plan)]
        if settings.mode == "kubernetes":
            heads.append((entry, settings, entry.ray_path))
    if config.runs_shared_head and config.default_head.mode == "kubernetes":
        heads.insert(0, (None, config.default_head, "ray"))
    return problems + _kubernetes_name_problems(heads)


def _kubernetes_name_problems(heads: list[tuple[NamespaceEntry | None, Any, str]]) -> list[Problem]:
    """Kubernetes heads that would render one object name, or share a head's own (default) namespace."""
    from .ray.kubernetes import head_names

    problems: list[Problem] = []
    objects: dict[tuple[str, str], str] = {}
    users: dict[str, tuple[str, Any]] = {}
    for entry, spec, ray_path in heads:
        label = "the shared Ray head" if entry is None else entry.label
        name = SHARED_RAY_NAME if entry is None else ray_head_name(entry.key)
        namespace_name = SHARED_RAY_NAME if entry is None else entry.plan.namespace_name
        namespace, base = head_names(name, spec.k8s, namespace_name)
        first = objects.setdefault((namespace, base), label)
        if first != label:
            problems.append(
                Problem(
                    f"{entry.where}.key" if entry is not None else ray_path,
                    f"its Ray head's Kubernetes objects ({base}-*) in namespace {namespace!r} would "
                    f"be {first}'s; set a `key` that names it differently",
                )
            )
        first_label, first_spec = users.setdefault(namespace, (label, spec))
        if first_label != label and not (first_spec.k8s.namespace and spec.k8s.namespace):
            problems.append(
                Problem(
                    f"{ray_path}.kubernetes.namespace",
                    f"Kubernetes namespace {namespace!r} is also {first_label}'s, and a head's default "
                    "namespace is its own (created and deleted with it): set another namespace, or "
                    "the same explicit ray.kubernetes.namespace for both so the stack owns it",
                )
            )
    return problems


def _collection_problems(entry: NamespaceEntry, target: QdrantSettings | None, key_set: bool) -> list[Problem]:
    """What the namespace's Collection would refuse (its inputs as the component passes them; `key_set`: the
    stack's qdrantApiKey goes with a server target)."""
    from .qdrant.errors import InvalidSpec
    from .qdrant.inputs import normalize_collection_inputs

    spec = None
    if target is not None:
        spec = (
            {"kind": "server", "url": target.url, "timeout": target.timeout, "prefer_grpc": target.prefer_grpc}
            if target.url
            else {"kind": "embedded", "path": target.path, "timeout": target.timeout}
        )
    props = {
        "target": spec,
        "vectors": entry.plan.vector_config(),
        "settings": dict(entry.collection_settings or {}),
        "namespace_id": entry.namespace_id or entry.plan.namespace_id,
        "collection_name": entry.plan.infrastructure.qdrant_collection,
        "deletion_protection": entry.deletion_protection,
        "final_snapshot": target.final_snapshot if target is not None else None,
        "retain_previous": entry.retain_previous,
        "api_key": "(the stack's qdrantApiKey)" if key_set else None,
    }
    try:
        normalize_collection_inputs({k: v for k, v in props.items() if v is not None})
    except InvalidSpec as exc:
        return [Problem(_collection_path(p.path, entry), p.message) for p in exc.problems]
    return []


def _collection_path(path: str, entry: NamespaceEntry) -> str:
    """A Collection input's path as the stack config names it."""
    head, dot, rest = path.partition(".")
    own = f"{entry.where}."
    if head == "settings":
        return f"{own}collection_settings{dot}{rest}"
    if head in ("target", "final_snapshot", "api_key"):
        where = f"{own}qdrant" if entry.qdrant is not None else "qdrant"
        if head == "final_snapshot":
            return f"{where}.final_snapshot"
        return f"{where}.{rest}" if rest else where
    return own + path


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
