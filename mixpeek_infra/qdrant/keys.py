"""Which Qdrant API key goes to which server, and how it stays a secret.

A resource's key is its secret `api_key` input (from `QdrantTarget.api_key` or a request's
`infrastructure.qdrant_api_key`); without one, an ambient key, sent only to the URL configured with
it:

- the stack config `mixpeek-infra:qdrantApiKey` (`pulumi config set --secret qdrantApiKey ...` in this
  project) to the `url` of the stack config `mixpeek-infra:qdrant`; dynamic providers receive the
  stack config through `configure`. (`mixpeek:qdrantApiKey` for `mixpeek:qdrantUrl`, the pair earlier
  versions of the docs named, is still read.)
- the environment variable `QDRANT_API_KEY` to `QDRANT_URL`.

So a URL named in a request gets no key it did not bring. When given as an input the key is also
kept in the outputs, so refresh and destroy can reach the server; there it is always a secret.
The configuration is kept in this module, never on the provider object Pulumi pickles.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pulumi.runtime import rpc

from ..vocabulary import STACK_PROJECT
from .store.cache import open_store
from .target import normalize_spec, same_server
from .values import is_unknown, plain

if TYPE_CHECKING:
    from .store.base import Store

CONFIG_API_KEY = f"{STACK_PROJECT}:qdrantApiKey"
CONFIG_TARGET = f"{STACK_PROJECT}:qdrant"  # the stack's default target; the key is for its `url`
LEGACY_CONFIG_API_KEY = "mixpeek:qdrantApiKey"
LEGACY_CONFIG_URL = "mixpeek:qdrantUrl"
ENV_API_KEY = "QDRANT_API_KEY"
ENV_URL = "QDRANT_URL"

# (key, url) pairs from the provider configuration, set by `configure`; deliberately not on the provider object.
_CONFIGURED: list[tuple[str, str]] = []


def _text(value: Any) -> str | None:
    value = rpc.unwrap_rpc_secret(value) if value is not None else None
    return str(value) if value else None


def _url_of(target: Any) -> str | None:
    """The `url` of the stack config's `qdrant` value (an object, or its JSON text as the engine sends it)."""
    if isinstance(target, str):
        try:
            target = json.loads(target)
        except ValueError:
            return None
    url = target.get("url") if isinstance(target, Mapping) else None
    return url if isinstance(url, str) and url else None


def configure(config: Any) -> None:
    """Take the ambient key and its URL from the provider configuration (`ConfigureRequest.config`)."""
    pairs = [
        (_text(config.get(CONFIG_API_KEY)), _url_of(rpc.unwrap_rpc_secret(config.get(CONFIG_TARGET)))),
        (_text(config.get(LEGACY_CONFIG_API_KEY)), _text(config.get(LEGACY_CONFIG_URL))),
    ]
    _CONFIGURED[:] = [(key, url) for key, url in pairs if key and url]


def ambient_key(spec: Any) -> str | None:
    """The key from provider config or the environment, only for the server URL configured with it."""
    if not isinstance(spec, Mapping) or spec.get("kind") != "server" or is_unknown(spec.get("url")):
        return None
    for key, url in [*_CONFIGURED, (os.environ.get(ENV_API_KEY), os.environ.get(ENV_URL))]:
        if key and url and same_server(url, str(spec.get("url"))):
            return key
    return None


def key_for(props: Mapping[str, Any]) -> str | None:
    """The key a resource's requests carry: its `api_key` input, else the ambient key for its target."""
    key = plain(props.get("api_key"))
    if isinstance(key, str) and key and not is_unknown(key):
        return key
    return ambient_key(plain(props.get("target")))


def store_for(props: Mapping[str, Any]) -> Store:
    """The store of a resource's target (with its key, for a server)."""
    spec = normalize_spec(plain(props.get("target")))
    return open_store(spec, key_for(props) if spec["kind"] == "server" else None)


def secret_key_output(props: Mapping[str, Any]) -> dict[str, Any]:
    """`{"api_key": <secret>}` when the key came as an input (refresh and destroy need it), else nothing."""
    key = plain(props.get("api_key"))
    if isinstance(key, str) and key:
        return {"api_key": rpc.wrap_rpc_secret(key)}
    return {}


def keep_key_secret(inputs: dict[str, Any]) -> dict[str, Any]:
    """Checked inputs hand the key back marked secret (the engine strips the marker on the way in)."""
    key = inputs.get("api_key")
    if isinstance(key, str):
        inputs = {**inputs, "api_key": rpc.wrap_rpc_secret(key)}
    return inputs


__all__ = [
    "CONFIG_API_KEY",
    "CONFIG_TARGET",
    "ENV_API_KEY",
    "ENV_URL",
    "ambient_key",
    "configure",
    "keep_key_secret",
    "key_for",
    "secret_key_output",
    "store_for",
]
