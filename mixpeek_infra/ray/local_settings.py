"""The settings of a local Ray head, checked and normalised in one place.

`normalize_local_head` serves both `RayHead.local` (paths `ray.<field>`) and the dynamic
provider's check (paths `<field>`, the engine's unknown values passed through). Pure and cheap to
import: the provider host loads it without the request schema.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..problems import Problem
from ..vocabulary import DEFAULT_RAY_STATE_DIR, RAY_READY_TIMEOUT, RAY_STOP_TIMEOUT

#: Every local head setting and its default; `state_dir` is required (its default applies only in
#: `RayHead.local`'s signature, so an explicit None or "" is refused).
LOCAL_HEAD_DEFAULTS: dict[str, Any] = {
    "state_dir": DEFAULT_RAY_STATE_DIR,
    "num_cpus": None,
    "num_gpus": None,
    "include_dashboard": True,
    "ready_timeout": RAY_READY_TIMEOUT,
    "stop_timeout": RAY_STOP_TIMEOUT,
}


def _count(value: Any) -> int | None:
    """A whole number >= 0 (a float such as the engine's 2.0 included), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not value.is_integer():
        return None
    return int(value) if value >= 0 else None


def _seconds(value: Any) -> float | None:
    """A finite number > 0 as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        return None
    return float(value)


def normalize_local_head(
    values: Mapping[str, Any], *, prefix: str = "ray.", unknown: Any = None
) -> tuple[dict[str, Any], list[Problem]]:
    """The local head settings in `values` (missing ones at their defaults) and the problems with them.

    Counts come back as ints, timeouts as floats. A value equal to `unknown` (when given: the
    engine's placeholder at preview) is kept unchecked. Problems are `Problem(prefix + field, message)`.
    """
    out = {key: values.get(key, default) for key, default in LOCAL_HEAD_DEFAULTS.items() if key != "state_dir"}
    out["state_dir"] = values.get("state_dir")
    problems: list[Problem] = []

    def unchecked(value: Any) -> bool:
        return unknown is not None and isinstance(value, str) and value == unknown

    state_dir = out["state_dir"]
    if not unchecked(state_dir):
        if state_dir is not None and not isinstance(state_dir, str):
            problems.append(
                Problem(f"{prefix}state_dir", f"expected a directory path (a string), got {type(state_dir).__name__}")
            )
        elif not state_dir or not state_dir.strip():
            problems.append(Problem(f"{prefix}state_dir", "required: a directory for the head's temp dir and logs"))
    for key in ("num_cpus", "num_gpus"):
        value = out[key]
        if value is None or unchecked(value):
            continue
        count = _count(value)
        if count is None:
            problems.append(Problem(f"{prefix}{key}", f"expected a whole number >= 0, got {value!r}"))
        else:
            out[key] = count
    for key in ("ready_timeout", "stop_timeout"):
        value = out[key]
        if unchecked(value):
            continue
        seconds = _seconds(value)
        if seconds is None:
            problems.append(Problem(f"{prefix}{key}", f"expected a number of seconds > 0, got {value!r}"))
        else:
            out[key] = seconds
    dashboard = out["include_dashboard"]
    if dashboard is None:
        out["include_dashboard"] = True
    elif not isinstance(dashboard, bool) and not unchecked(dashboard):
        problems.append(Problem(f"{prefix}include_dashboard", f"expected true or false, got {dashboard!r}"))
    return out, problems
