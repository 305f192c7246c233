"""Where a namespace's Qdrant collection lives: a Qdrant server (or cluster) or embedded Qdrant Edge.

`QdrantTarget(url=..., api_key=...)` reaches a server through qdrant-client;
`QdrantTarget(path=...)` keeps each collection as a Qdrant Edge shard directory `PATH/<collection>`.
Without either, the target is embedded at `.mixpeek/qdrant`.

A relative `path` is stored as written and resolved by the provider against the Pulumi project
root (the directory holding Pulumi.yaml; see `mixpeek_infra.paths`), so the state stays portable
between machines and checkouts.

The API key is never part of the target's plain-data `spec()`: the resources pass it separately,
as a Pulumi secret.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..paths import state_path
from ..redact import redact_url
from ..vocabulary import DEFAULT_QDRANT_PATH, QDRANT_TIMEOUT
from .errors import InvalidTarget, moved_under

if TYPE_CHECKING:
    import pulumi

DEFAULT_EMBEDDED_PATH = DEFAULT_QDRANT_PATH  # the name this module always exported
_URL = re.compile(r"https?://[^\s/?#]+(:[0-9]{1,5})?(/[^\s?#]*)?")


@dataclass(frozen=True)
class QdrantTarget:
    """A Qdrant server (`url`, optional `api_key`) or an embedded Qdrant Edge directory (`path`).

    Give exactly one of `url` and `path`; with neither the target is embedded at `.mixpeek/qdrant`.

    url: `http(s)://host[:port][/prefix]` of a Qdrant server or cluster.
    path: directory holding one Qdrant Edge shard per collection (relative paths resolve against
        the Pulumi project root, the directory holding Pulumi.yaml).
    api_key: the server's API key, a plain string or a `pulumi.Output`; the resources always pass it
        on as a Pulumi secret. Only for `url` targets.
    timeout: seconds a single operation may take (including retries of transient errors) before
        the provider gives up; also how long an embedded shard locked by another process is waited for.
    prefer_grpc: talk gRPC to the server instead of REST.
    """

    url: str | None = None
    path: str | None = None
    api_key: pulumi.Input[str] | None = field(default=None, repr=False, compare=False)
    timeout: float = QDRANT_TIMEOUT
    prefer_grpc: bool = False

    def __post_init__(self) -> None:
        if self.url is not None and self.path is not None:
            raise InvalidTarget(
                "QdrantTarget.url", "give either url (a Qdrant server) or path (embedded Qdrant Edge), not both"
            )
        if self.url is None and self.path is None:
            object.__setattr__(self, "path", DEFAULT_EMBEDDED_PATH)
        if self.url is not None:
            if not isinstance(self.url, str) or not _URL.fullmatch(self.url):
                raise InvalidTarget(
                    "QdrantTarget.url", f"{redact_url(repr(self.url))} is not an http(s)://host[:port][/prefix] URL"
                )
            if "@" in self.url.split("//", 1)[1].split("/", 1)[0]:
                raise InvalidTarget(
                    "QdrantTarget.url", "credentials in the URL are not allowed; pass api_key (kept as a Pulumi secret)"
                )
        else:
            problem = _path_text_problem(self.path)
            if problem:
                raise InvalidTarget("QdrantTarget.path", problem)
            if self.api_key is not None:
                raise InvalidTarget(
                    "QdrantTarget.api_key", "only a server target (url) takes an API key; an embedded path has none"
                )
            if self.prefer_grpc:
                raise InvalidTarget("QdrantTarget.prefer_grpc", "only applies to a server target (url)")
        if (
            isinstance(self.timeout, bool)
            or not isinstance(self.timeout, (int, float))
            or not math.isfinite(self.timeout)
            or self.timeout <= 0
        ):
            raise InvalidTarget("QdrantTarget.timeout", f"{self.timeout!r} must be a positive number of seconds")
        if not isinstance(self.prefer_grpc, bool):
            raise InvalidTarget("QdrantTarget.prefer_grpc", f"{self.prefer_grpc!r} must be true or false")

    @classmethod
    def embedded(cls, path: str = DEFAULT_QDRANT_PATH, *, timeout: float = QDRANT_TIMEOUT) -> QdrantTarget:
        """Embedded Qdrant Edge: one shard directory per collection under `path`."""
        return cls(path=path, timeout=timeout)

    @classmethod
    def server(
        cls,
        url: str,
        api_key: pulumi.Input[str] | None = None,
        *,
        timeout: float = QDRANT_TIMEOUT,
        prefer_grpc: bool = False,
    ) -> QdrantTarget:
        """A Qdrant server or cluster at `url`, reached through qdrant-client."""
        return cls(url=url, api_key=api_key, timeout=timeout, prefer_grpc=prefer_grpc)

    @property
    def kind(self) -> str:
        """`"server"` or `"embedded"`."""
        return "server" if self.url is not None else "embedded"

    def spec(self) -> dict[str, Any]:
        """The target as plain data for resource inputs; never holds the API key."""
        if self.url is not None:
            return {"kind": "server", "url": self.url, "timeout": float(self.timeout), "prefer_grpc": self.prefer_grpc}
        return {"kind": "embedded", "path": self.path, "timeout": float(self.timeout)}

    def describe(self) -> str:
        """A human-readable location (URL or path) for messages; never holds the API key."""
        return describe_spec(self.spec())

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], api_key: pulumi.Input[str] | None = None) -> QdrantTarget:
        """Rebuild a target from `spec()` output (plus the key, if any)."""
        spec = normalize_spec(spec)
        if spec["kind"] == "server":
            return cls(url=spec["url"], api_key=api_key, timeout=spec["timeout"], prefer_grpc=spec["prefer_grpc"])
        return cls(path=spec["path"], timeout=spec["timeout"])


def normalize_spec(spec: Any, field_name: str = "target") -> dict[str, Any]:
    """Validate a target spec arriving as resource input (numbers may be floats); raises `InvalidTarget`
    whose paths are under `field_name` (`target.url`)."""
    if not isinstance(spec, Mapping):
        raise InvalidTarget(field_name, f"expected an object with kind and url or path, got {redact_url(repr(spec))}")
    kind = spec.get("kind")
    extra = set(spec) - {"kind", "url", "path", "timeout", "prefer_grpc"}
    if extra:
        raise InvalidTarget(
            f"{field_name}.{sorted(extra)[0]}", "unknown field; valid fields: kind, url, path, timeout, prefer_grpc"
        )
    timeout = spec.get("timeout", QDRANT_TIMEOUT)
    try:
        if kind == "server":
            target = QdrantTarget(url=spec.get("url"), timeout=timeout, prefer_grpc=spec.get("prefer_grpc", False))
        elif kind == "embedded":
            if spec.get("url") is not None:
                raise InvalidTarget("url", "an embedded target has a path, not a url")
            target = QdrantTarget(path=spec.get("path"), timeout=timeout)
        else:
            raise InvalidTarget("kind", f"{kind!r} is not one of 'server', 'embedded'")
    except InvalidTarget as exc:
        raise InvalidTarget(moved_under(exc.problems, field_name, strip="QdrantTarget.")) from None
    return target.spec()


def describe_spec(spec: Mapping[str, Any]) -> str:
    """The URL of a server spec, or `embedded Qdrant Edge at PATH` for an embedded one."""
    if spec.get("kind") == "server":
        return redact_url(spec.get("url"))
    return f"embedded Qdrant Edge at {spec.get('path')}"


def is_plain_http_off_loopback(url: str) -> bool:
    """Whether `url` is `http://` to a host that is not loopback (no API key may travel there)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "http":
        return False
    host = (parts.hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def same_server(a: str, b: str) -> bool:
    """Whether two server URLs name the same endpoint (scheme, host, port, path prefix)."""

    def key(url: str) -> tuple:
        parts = urlsplit(url.strip())
        try:
            port = parts.port
        except ValueError:
            port = None
        return parts.scheme.lower(), (parts.hostname or "").lower(), port or 6333, parts.path.rstrip("/")

    return key(a) == key(b)


def _path_text_problem(path: Any) -> str | None:
    if not isinstance(path, str) or not path.strip():
        return f"{path!r} is not a directory path"
    if "\x00" in path:
        return f"{path!r} contains a NUL character; give a directory path without one"
    return None


#: the longest target or snapshot directory accepted (bytes): Qdrant Edge's files add a collection name (up to 255
#: bytes) and their own paths inside a shard below it, all within Linux's 4096-byte path limit
PATH_BYTES_MAX = 2048
NAME_BYTES_MAX = 255  # one path component (Linux's NAME_MAX)
#: kernel pseudo file systems: no directory can be created or written there
PSEUDO_FILE_SYSTEMS = frozenset(
    {
        "proc",
        "sysfs",
        "devtmpfs",
        "devpts",
        "cgroup",
        "cgroup2",
        "debugfs",
        "tracefs",
        "securityfs",
        "pstore",
        "bpf",
        "configfs",
        "fusectl",
        "mqueue",
        "binfmt_misc",
        "efivarfs",
        "selinuxfs",
        "autofs",
        "nsfs",
        "rpc_pipefs",
        "hugetlbfs",
    }
)
SHARD_FILES = ("edge_config.json", "mixpeek_collection.json")  # either one marks a Qdrant Edge shard directory


def _mount_of(path: str) -> tuple[str, str, bool] | None:
    """(mount point, file system type, read-only) of the mount holding the existing `path`; None if unknown."""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    best: tuple[str, str, bool] | None = None
    for line in lines:
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 6 or not tail:
            continue
        point = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), fields[4])
        inside = path == point or path.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) >= len(best[0])):
            best = (point, tail[0], "ro" in fields[5].split(","))
    return best


def directory_problem(path: str) -> str | None:
    """Why `path` (relative paths resolve against the project root) cannot be used as a directory that this code
    creates and writes, else None: what `create` would fail on is refused at check."""
    problem = _path_text_problem(path)
    if problem:
        return problem
    full = state_path(path)
    raw = os.fsencode(full)
    if len(raw) > PATH_BYTES_MAX:
        return (
            f"{path[:60]!r}... is {len(raw)} bytes long as an absolute path; at most {PATH_BYTES_MAX} are "
            "accepted (Qdrant Edge's files below it must stay within the system's 4096-byte path limit); give a "
            "shorter directory path"
        )
    if any(len(part) > NAME_BYTES_MAX for part in raw.split(b"/")):
        return f"{path[:60]!r}... has a path component longer than {NAME_BYTES_MAX} bytes; give a shorter one"
    here = full
    while not os.path.lexists(here):
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    if not os.path.isdir(here):
        where = "is" if here == full else f"lies under {here}, which is"
        return f"{path!r} {where} a file, not a directory; give a directory path"
    mount = _mount_of(os.path.realpath(here))
    if mount is not None and mount[1] in PSEUDO_FILE_SYSTEMS:
        return (
            f"{path!r} lies on {mount[0]}, a kernel pseudo file system ({mount[1]}) where no directory can be "
            "created; give a directory on a disk"
        )
    if mount is not None and mount[2]:
        return f"{path!r} lies on {mount[0]}, a read-only file system (mounted read-only); give a writable directory"
    if not os.access(here, os.W_OK | os.X_OK):
        where = "" if here == full else f" (its nearest existing directory {here})"
        return f"{path!r}{where} is not writable by the user running Pulumi; make it writable or give another directory"
    return None


def snapshot_dir_problem(directory: str, target: Mapping[str, Any] | None, collection_name: str | None) -> str | None:
    """Why final_snapshot `directory` would be lost with a collection, else None: it is, or lies inside, a Qdrant
    Edge shard directory (one holding edge_config.json or mixpeek_collection.json, of any target) or the directory
    collection `collection_name` of an embedded `target` has (or will have). Symbolic links are resolved."""
    here = os.path.realpath(state_path(directory))
    if isinstance(target, Mapping) and target.get("kind") == "embedded" and isinstance(collection_name, str):
        shard = os.path.realpath(os.path.join(state_path(target["path"]), collection_name))
        if here == shard or here.startswith(shard + os.sep):
            return (
                f"{directory!r} is {'' if here == shard else 'inside '}the shard directory {shard} of collection "
                f"{collection_name!r}: a snapshot there would be deleted with the collection it keeps. Give a "
                "directory outside every shard, e.g. .mixpeek/snapshots"
            )
    probe = here
    while True:
        if any(os.path.isfile(os.path.join(probe, f)) for f in SHARD_FILES):
            return (
                f"{directory!r} is {'' if probe == here else 'inside '}the Qdrant Edge shard directory {probe}: a "
                "snapshot there would be deleted with that collection. Give a directory outside every shard, "
                "e.g. .mixpeek/snapshots"
            )
        parent = os.path.dirname(probe)
        if parent == probe:
            return None
        probe = parent
