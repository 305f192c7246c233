"""Shared fixtures: the documented seed request and paths to the shared reference data."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent
SEED_PATH = Path(__file__).parent / "data" / "seed.json"
SHARED_REFERENCE = ROOT.parent / "shared" / "reference"


@pytest.fixture
def seed() -> dict:
    """A fresh copy of the documented spotify_playlists_dev Create Namespace body."""
    return copy.deepcopy(json.loads(SEED_PATH.read_text()))


@pytest.fixture
def provider_log(monkeypatch) -> list[str]:
    """What the providers say through `pulumi.log.warn` / `.info` in this process (the preview's lines)."""
    lines: list[str] = []
    import pulumi

    monkeypatch.setattr(pulumi.log, "warn", lambda msg, *a, **k: lines.append(msg))
    monkeypatch.setattr(pulumi.log, "info", lambda msg, *a, **k: lines.append(msg))
    return lines


def require_shared_reference(path: Path) -> Path:
    """`path` under ../shared/reference, or a skip that says where to put it (a failure in CI, which
    lays shared/ beside the checkout and sets MIXPEEK_REQUIRE_SHARED_REFERENCE=1)."""
    if not path.exists():
        require_or_skip(f"{path} is missing: these checks compare against the shared reference data; "
                        f"put the project's shared/ folder beside the checkout ({ROOT.parent})",
                        "MIXPEEK_REQUIRE_SHARED_REFERENCE")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc, sig: int, grace: float, kill_wait: float) -> None:
    """Send `sig` to the process group of `proc` (a session leader this test started), wait up to `grace`
    seconds, then SIGKILL the group and wait up to `kill_wait`."""
    import os
    import signal
    import subprocess

    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=kill_wait)


def require_or_skip(reason: str, switch: str) -> NoReturn:
    """Skip a tier that cannot run here with `reason` (which says what to do), or fail where CI sets
    the tier's `switch` environment variable to 1: there the tier must run, never skip silently."""
    import os

    if os.environ.get(switch) == "1":
        pytest.fail(f"{reason} ({switch}=1: this tier must run)", pytrace=False)
    pytest.skip(reason)
