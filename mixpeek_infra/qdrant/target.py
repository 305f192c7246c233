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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping
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
            raise InvalidTarget("QdrantTarget.url", "give either url (a Qdrant server) or path (embedded Qdrant Edge), "
                                                    "not both")
        if self.url is None and self.path is None:
            object.__setattr__(self, "path", DEFAULT_EMBEDDED_PATH)
        if self.url is not None:
            if not isinstance(self.url, str) or not _URL.fullmatch(self.url):
                raise InvalidTarget("QdrantTarget.url", f"{redact_url(repr(self.url))} is not an "
                                                        "http(s)://host[:port][/prefix] URL")
            if "@" in self.url.split("//", 1)[1].split("/", 1)[0]:
                raise InvalidTarget("QdrantTarget.url", "credentials in the URL are not allowed; pass api_key "
                                                        "(kept as a Pulumi secret)")
        else:
            problem = _path_text_problem(self.path)
            if problem:
                raise InvalidTarget("QdrantTarget.path", problem)
            if self.api_key is not None:
                raise InvalidTarget("QdrantTarget.api_key", "only a server target (url) takes an API key; "
                                                            "an embedded path has none")
            if self.prefer_grpc:
                raise InvalidTarget("QdrantTarget.prefer_grpc", "only applies to a server target (url)")
        if isinstance(self.timeout, bool) or not isinstance(self.timeout, (int, float)) \
                or not math.isfinite(self.timeout) or self.timeout <= 0:
            raise InvalidTarget("QdrantTarget.timeout", f"{self.timeout!r} must be a positive number of seconds")
        if not isinstance(self.prefer_grpc, bool):
            raise InvalidTarget("QdrantTarget.prefer_grpc", f"{self.prefer_grpc!r} must be true or false")

    @classmethod
    def embedded(cls, path: str = DEFAULT_QDRANT_PATH, *, timeout: float = QDRANT_TIMEOUT) -> "QdrantTarget":
        """Embedded Qdrant Edge: one shard directory per collection under `path`."""
        return cls(path=path, timeout=timeout)

    @classmethod
    def server(cls, url: str, api_key: pulumi.Input[str] | None = None, *, timeout: float = QDRANT_TIMEOUT,
               prefer_grpc: bool = False) -> "QdrantTarget":
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
    def from_spec(cls, spec: Mapping[str, Any], api_key: pulumi.Input[str] | None = None) -> "QdrantTarget":
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
        raise InvalidTarget(f"{field_name}.{sorted(extra)[0]}", "unknown field; valid fields: kind, url, path, "
                                                                "timeout, prefer_grpc")
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


def directory_problem(path: str) -> str | None:
    """Why `path` (relative paths resolve against the project root) cannot be used as a directory, else None."""
    problem = _path_text_problem(path)
    if problem:
        return problem
    here = state_path(path)
    while not os.path.lexists(here):
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent
    if os.path.isdir(here):
        return None
    where = "is" if here == state_path(path) else f"lies under {here}, which is"
    return f"{path!r} {where} a file, not a directory; give a directory path"
