"""pulumi-kubernetes as a dependency an infra repo can live with, and the test environment's pin.

pyproject.toml admits a range of pulumi-kubernetes releases, so mixpeek-infra installs beside the
version a user's repo already has; constraints.txt pins the test environment (README's test
command, .ci/run) to the one build whose provider plugin tools/k8s/install builds. The resolver
checks ask pip itself, against PyPI, without installing anything (`pip install --dry-run --report`).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
USERS_CURRENT = "4.34.2"
NETWORK_ERRORS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
                  "Could not fetch URL", "ConnectionError")


def _runtime_requirement(name: str) -> Requirement:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        pytest.skip("tomllib needs Python 3.11: run this test with Python 3.11 or later")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [req] = [Requirement(d) for d in deps if Requirement(d).name == name]
    return req


def _pinned(name: str) -> Version:
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and Requirement(line).name == name:
            [spec] = Requirement(line).specifier
            assert spec.operator == "=="
            return Version(spec.version)
    raise AssertionError(f"constraints.txt pins no {name}")


def _resolve(*args: str) -> dict[str, str]:
    """{name: version} pip would install for `args` into an empty environment (nothing installed)."""
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--disable-pip-version-check", "--report", "-", *args],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0 and any(e in done.stderr for e in NETWORK_ERRORS):
        pytest.skip(f"PyPI is not reachable ({done.stderr.strip().splitlines()[-1]}): run it where pip can reach PyPI "
                    "or a mirror (PIP_INDEX_URL)")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    return {re.sub(r"[-_.]+", "-", i["metadata"]["name"]).lower(): i["metadata"]["version"] for i in report["install"]}


def test_the_runtime_range_admits_current_releases_and_the_pinned_build_only_when_pinned():
    req = _runtime_requirement("pulumi-kubernetes")
    assert req.specifier.contains(USERS_CURRENT)
    assert req.specifier.contains("4.24.0") and not req.specifier.contains("5.0.0")
    # The test environment's pre-release build is inside the range (pip takes it where it is pinned).
    pinned = _pinned("pulumi-kubernetes")
    assert pinned.is_prerelease and req.specifier.contains(pinned, prereleases=True)


def test_the_pin_is_the_build_of_the_kubernetes_tiers_plugin():
    """tools/k8s/provider/version is the plugin's semver (4.25.0-alpha.<commit time>); Python spells it 4.25.0a<time>."""
    plugin = (ROOT / "tools" / "k8s" / "provider" / "version").read_text().strip()
    assert Version(plugin.replace("-alpha.", "a")) == _pinned("pulumi-kubernetes")


def test_pip_installs_mixpeek_infra_beside_the_users_pulumi_kubernetes():
    resolved = _resolve(str(ROOT), f"pulumi-kubernetes=={USERS_CURRENT}")
    assert resolved["pulumi-kubernetes"] == USERS_CURRENT
    assert "mixpeek-infra" in resolved


def test_without_a_pin_pip_takes_a_release_not_one_of_pulumis_per_commit_builds():
    resolved = Version(_resolve(str(ROOT))["pulumi-kubernetes"])
    assert not resolved.is_prerelease and resolved >= Version(USERS_CURRENT)


def test_the_test_environment_resolves_to_the_pinned_build():
    resolved = _resolve("-c", str(ROOT / "constraints.txt"), str(ROOT))
    assert Version(resolved["pulumi-kubernetes"]) == _pinned("pulumi-kubernetes")
