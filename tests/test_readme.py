"""The README's two commands are the ones the project really uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"^(python3 -m venv \.venv && .*python -m pytest[^\n`]*)$", readme, re.M).group(1).strip()
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert ci_lines[-1] == command
    # The real-engine tier runs in CI: the CLI is built first and a missing CLI fails the tier.
    install = next(i for i, line in enumerate(ci_lines) if "tools/pulumi/install" in line)
    assert install < len(ci_lines) - 1
    assert "export MIXPEEK_REQUIRE_PULUMI_CLI=1" in ci_lines


def test_readme_dev_stack_command_uses_the_dev_stack_config():
    readme = (ROOT / "README.md").read_text()
    assert "pulumi stack select dev --create && pulumi up --yes" in readme
    assert (ROOT / "stacks" / "Pulumi.dev.yaml").is_file()
    pulumi_yaml = (ROOT / "Pulumi.yaml").read_text()
    # The program is the root __main__.py: the dynamic provider plugin finds `.venv` only from there.
    assert "main:" not in pulumi_yaml and "stackConfigDir: stacks" in pulumi_yaml
    assert (ROOT / "__main__.py").is_file()
    assert "-e .[local]" in (ROOT / "requirements.txt").read_text()


def _python_blocks(section: str) -> list[str]:
    readme = (ROOT / "README.md").read_text()
    body = readme.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, re.S)


def test_readme_embedded_example_registers_an_edge_collection_and_a_local_head(tmp_path, monkeypatch):
    """The no-server example of "Use it from your own infra repo" runs as written (under the SDK's mocks)."""
    import pulumi
    from stackmocks import RecordingMocks

    [example] = [b for b in _python_blocks("Use it from your own infra repo") if "QdrantTarget.embedded" in b]
    monkeypatch.chdir(tmp_path)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, preview=True)
    pulumi.runtime.test(lambda: exec(compile(example, "README.md", "exec"), {}))()
    types = sorted({r.typ for r in mocks.resources})
    assert types == ["mixpeek:index:Namespace", "pulumi-python:dynamic/mixpeek:LocalRayHead",
                     "pulumi-python:dynamic/mixpeek:QdrantCollection",
                     "pulumi-python:dynamic/mixpeek:QdrantPayloadIndex"], types
    [collection] = [r for r in mocks.resources if r.typ.endswith(":QdrantCollection")]
    assert collection.inputs["target"]["kind"] == "embedded"
    assert list(collection.inputs["vectors"]) == ["image_extractor_v1_embedding"]


@pytest.mark.pulumi_cli
def test_readme_dev_stack_command_leaves_the_committed_stack_file_as_it_is(tmp_path):
    """`pulumi stack select dev --create` with the README's empty passphrase writes the stack file's
    `encryptionsalt`; the committed file already holds that salt, so the checkout stays clean."""
    from pulumicli import PulumiProject, cli_bin_dir

    committed = (ROOT / "stacks" / "Pulumi.dev.yaml").read_bytes()
    assert b"\nencryptionsalt: v1:" in committed
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir())
    proj.stack_file("dev").write_bytes(committed)
    proj.run("stack", "select", "dev", "--create", env={"PULUMI_CONFIG_PASSPHRASE": ""})
    assert proj.stack_file("dev").read_bytes() == committed
    # The salt is the empty passphrase's: the stack's secrets open with it, and with no other.
    proj.run("config", "set", "--secret", "probe", "x", "-s", "dev", env={"PULUMI_CONFIG_PASSPHRASE": ""})
    wrong = proj.run("config", "get", "probe", "-s", "dev", check=False, env={"PULUMI_CONFIG_PASSPHRASE": "other"})
    assert wrong.returncode != 0 and "passphrase" in (wrong.stdout + wrong.stderr).lower()
