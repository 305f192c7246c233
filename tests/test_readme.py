"""The README's two commands are the ones the project really uses."""

from __future__ import annotations

import re
from pathlib import Path

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
