"""The package is clean for ruff (lint and format) and mypy, as configured in pyproject.toml.

Both tools are pinned in the `dev` extra; a finding fails the suite, so CI fails with it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", [("ruff", "check", "mixpeek_infra"), ("ruff", "format", "--check", "mixpeek_infra")],
                         ids=["ruff-check", "ruff-format"])
def test_ruff(command):
    result = _run(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy():
    result = _run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
