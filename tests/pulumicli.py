"""Drive the real Pulumi CLI on a copy of this project in a temp dir (the `pulumi_cli` tier).

Each `PulumiProject` has its own `PULUMI_HOME`, a file backend, offline settings and a `.venv`
link to the test virtualenv, so nothing is installed and nothing outside the temp dir is touched.
The CLI comes from `tools/pulumi/install` (its bin directory on PATH, or `PULUMI_BIN_DIR`).
Where CI sets `MIXPEEK_REQUIRE_PULUMI_CLI=1`, a missing CLI fails the tier instead of skipping it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import pytest
import yaml
from conftest import require_or_skip

ROOT = Path(__file__).resolve().parent.parent
PASSPHRASE = "mixpeek-infra-tests"
HOST_BINARIES = ("pulumi", "pulumi-language-python", "pulumi-language-python-exec", "pulumi-resource-pulumi-python")

# The dev stack's seed namespace, as every real-engine test expects it.
NS = "spotify_playlists_dev"
SEED_MAP = {"multimodal_extractor_v1_multimodal_embedding": "vertex_multimodal_embedding",
            "multimodal_extractor_v1_transcription_embedding": "multilingual_e5_large_instruct_v1",
            "image_extractor_v1_embedding": "google_siglip_base_v1"}
SEED_VECTORS = {"multimodal_extractor_v1_multimodal_embedding": (1408, "cosine"),
                "multimodal_extractor_v1_transcription_embedding": (1024, "cosine"),
                "image_extractor_v1_embedding": (768, "cosine")}
LOCAL_HEAD = "pulumi-python:dynamic/mixpeek:LocalRayHead"


def cli_bin_dir() -> Path:
    """The directory holding `pulumi` and the Python language host; skips (or fails in CI) without it."""
    candidates = [os.environ.get("PULUMI_BIN_DIR", "")]
    found = shutil.which("pulumi")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for candidate in filter(None, candidates):
        if all((Path(candidate) / name).exists() for name in HOST_BINARIES):
            return Path(candidate)
    reason = ("the Pulumi CLI with the Python language host is not on PATH: run "
              "`export PATH=\"$(tools/pulumi/install | tail -n 1):$PATH\"`")
    require_or_skip(reason, "MIXPEEK_REQUIRE_PULUMI_CLI")


class PulumiProject:
    """A copy of Pulumi.yaml + stacks/ in `root`, driven by the real CLI."""

    def __init__(self, root: Path, bin_dir: Path, stack_files: Mapping[str, Mapping[str, Any]] | None = None):
        self.root = root
        self.bin_dir = bin_dir
        root.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
        (root / "stacks").mkdir(exist_ok=True)
        shutil.copy(ROOT / "__main__.py", root / "__main__.py")
        (root / "requirements.txt").write_text("# the test virtualenv already holds mixpeek-infra\n")
        # The test virtualenv serves as the project's `.venv`: no install, same code under test.
        (root / ".venv").symlink_to(Path(sys.prefix))
        for stack, config in (stack_files or {}).items():
            self.write_stack(stack, config)
        (root / "home").mkdir(exist_ok=True)
        (root / "state").mkdir(exist_ok=True)
        self.env = self._env()

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
        env.update({
            "PATH": f"{self.bin_dir}{os.pathsep}{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "PULUMI_HOME": str(self.root / "home"),
            "PULUMI_BACKEND_URL": f"file://{self.root / 'state'}",
            "PULUMI_CONFIG_PASSPHRASE": PASSPHRASE,
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_SKIP_CONFIRMATIONS": "true",
            "NO_COLOR": "1",
        })
        env.pop("VIRTUAL_ENV", None)
        return env

    def stack_file(self, stack: str) -> Path:
        return self.root / "stacks" / f"Pulumi.{stack}.yaml"

    def read_stack(self, stack: str) -> dict[str, Any]:
        path = self.stack_file(stack)
        return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}

    def write_stack(self, stack: str, config: Mapping[str, Any]) -> None:
        self.stack_file(stack).write_text(yaml.safe_dump(dict(config), sort_keys=False))

    def run(self, *args: str, check: bool = True, timeout: float = 600,
            env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """`pulumi ARGS` in the project; raises with the whole output when `check` and it fails."""
        proc = subprocess.run([str(self.bin_dir / "pulumi"), "--non-interactive", *args], cwd=self.root,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"pulumi {' '.join(args)} exited {proc.returncode}\n"
                                 f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}")
        return proc

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """`pulumi ARGS` in the background, in its own process group, output to `log`."""
        with open(log, "wb") as out:
            return subprocess.Popen([str(self.bin_dir / "pulumi"), "--non-interactive", *args], cwd=self.root,
                                    env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def init(self, stack: str) -> None:
        self.run("stack", "init", stack)

    def outputs(self, stack: str) -> dict[str, Any]:
        return json.loads(self.run("stack", "output", "--json", "--show-secrets", "-s", stack).stdout)

    def export(self, stack: str) -> dict[str, Any]:
        return json.loads(self.run("stack", "export", "-s", stack).stdout)

    def preview_steps(self, stack: str, *extra: str, check: bool = True) -> list[dict[str, Any]]:
        """`pulumi preview --diff --json`: the engine's steps."""
        proc = self.run("preview", "--diff", "--json", "-s", stack, *extra, check=check)
        return json.loads(proc.stdout).get("steps", [])

    def resources(self, stack: str) -> list[dict[str, Any]]:
        return self.export(stack)["deployment"].get("resources", [])


class FilesProject(PulumiProject):
    """A Pulumi project of someone else's in `root`: only the `files` given (its own Pulumi.yaml and
    program), plus the same `home`, file backend and offline environment as `PulumiProject`."""

    def __init__(self, root: Path, bin_dir: Path, files: Mapping[str, str]):  # noqa: super-init
        self.root, self.bin_dir = root, bin_dir
        root.mkdir(parents=True)
        for name, text in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
        for sub in ("home", "state"):
            (root / sub).mkdir()
        self.env = self._env()


def ops_by_name(steps: list[dict[str, Any]]) -> dict[str, str]:
    """`{resource name: op}` for the custom (non-component, non-stack) resources of a preview."""
    ops: dict[str, str] = {}
    for step in steps:
        urn = step["urn"]
        type_ = urn.split("::")[2]
        if type_.startswith("pulumi:pulumi:Stack") or type_.endswith("mixpeek:index:Namespace"):
            continue
        ops[urn.split("::")[-1]] = step["op"]
    return ops


def ray_sessions(proj: PulumiProject) -> set[int]:
    """Session ids of the live `ray start --head` processes this project's Ray heads run."""
    launcher = f"{proj.root}/.venv/bin/ray\0start\0--head".encode()
    sessions = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if launcher in (entry / "cmdline").read_bytes():
                sessions.add(os.getsid(int(entry.name)))
        except (OSError, ProcessLookupError):
            continue
    return sessions - {os.getsid(0)}


def wait_dead(pid: int, timeout: float = 20.0) -> bool:
    """True once `pid` is gone (or a zombie) within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
                return True
        except OSError:
            return True
        time.sleep(0.2)
    return False


def kill_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGKILL) -> None:
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def assert_seed_outputs(out: dict[str, Any]) -> str:
    """The dev stack's seed namespace outputs as the Python stack exports them; returns its namespace_id."""
    ns_id = out["namespace_id"]
    assert re.fullmatch(r"ns_[0-9a-f]{10}", ns_id)
    assert out["vector_inference_map"] == SEED_MAP
    model = out["namespace"]
    assert model["namespace_id"] == ns_id and model["namespace_name"] == NS
    assert model["document_count"] == 0
    assert [e["feature_extractor_name"] for e in model["feature_extractors"]] == ["multimodal_extractor",
                                                                                  "image_extractor"]
    return ns_id
