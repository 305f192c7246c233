"""Pulumi's values as a dynamic provider receives them: unknowns (at preview) and secret wrappers."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

import pulumi
from pulumi.runtime import rpc


def is_unknown(value: Any) -> bool:
    """Whether `value` is not known until apply (an `Unknown` or the engine's unknown sentinel)."""
    return isinstance(value, pulumi.output.Unknown) or (isinstance(value, str) and value == rpc.UNKNOWN)


def has_unknown(value: Any) -> bool:
    """Whether `value` or anything inside it is unknown."""
    if is_unknown(value):
        return True
    if isinstance(value, Mapping):
        return any(has_unknown(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_unknown(v) for v in value)
    return False


def plain(value: Any) -> Any:
    """The value with every Pulumi RPC secret wrapper removed (providers may receive either form)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def plain_props(props: Mapping[str, Any]) -> dict[str, Any]:
    """Every property plain, without the provider's own `__provider`."""
    return {k: plain(v) for k, v in props.items() if k != "__provider"}


def now() -> str:
    """The current UTC time, to the second, as `2026-01-01T00:00:00Z`."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


__all__ = ["has_unknown", "is_unknown", "now", "plain", "plain_props"]
