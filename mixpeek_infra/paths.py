"""Where embedded state lives: relative paths resolve against the Pulumi project root.

The program and the dynamic provider host may run in the project directory or in its `main`
directory (`stacks/`); resolving against the directory holding `Pulumi.yaml` gives both the same
absolute path, while state keeps the relative path and stays portable between checkouts.
"""

from __future__ import annotations

import os
from pathlib import Path


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The nearest directory at or above `start` (default: cwd) holding Pulumi.yaml, else `start`."""
    here = Path(start or os.getcwd()).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate
    return here


def state_path(path: str | os.PathLike[str]) -> str:
    """`path` made absolute: as given when absolute, else under the project root."""
    p = Path(os.path.expanduser(os.fspath(path)))
    return str(p if p.is_absolute() else project_root() / p)
