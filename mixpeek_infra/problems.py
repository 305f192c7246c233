"""One shape for invalid input: `Problem(path, message)` and the errors that carry a list of them.

`path` names the field as the user wrote it (`infrastructure.max_workers`,
`config.mixpeek-infra:ray.mode`, `namespaces[0].ray.num_cpus`); `message` says what is wrong and,
where the field has a fixed set, the valid choices. Pure: imports nothing of the project.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, NamedTuple


class Problem(NamedTuple):
    """One invalid field: where it is and what is wrong with it."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def under(self, prefix: str) -> Problem:
        """The same problem with its path moved under `prefix` (`namespaces[0]` + `ray.mode`)."""
        if not prefix:
            return self
        if self.path in ("", "(body)"):
            return Problem(prefix, self.message)
        return Problem(f"{prefix}{'' if self.path.startswith('[') else '.'}{self.path}", self.message)


def did_you_mean(value: Any, choices: Iterable[Any]) -> str:
    """` (did you mean 'x'?)` naming the choices closest to a mistyped `value`, or '': difflib's close
    matches (case-insensitive) and the choices it begins, the best ones only."""
    if not isinstance(value, str) or not value:
        return ""
    names = {c.lower(): c for c in choices if isinstance(c, str) and c != value}
    typed = value.lower()
    scored = sorted(((difflib.SequenceMatcher(None, typed, low).ratio(), low) for low in names), reverse=True)
    close = [(r, low) for r, low in scored if r >= 0.6 or (len(typed) >= 3 and low.startswith(typed))]
    if not close:
        return ""
    best = close[0][0]
    shown = [names[low] for r, low in close if r >= best - 0.1][:3]
    return f" (did you mean {' or '.join(repr(c) for c in shown)}?)"


def problems_text(problems: Iterable[Problem], heading: str) -> str:
    """`heading:` then one indented `path: message` line per problem."""
    return heading + ":\n" + "\n".join(f"  {p.path}: {p.message}" for p in problems)


class InvalidInput(ValueError):
    """Base of every invalid-input error; `problems` lists `Problem(path, message)`, `source` the input's name."""

    heading = "invalid input"

    def __init__(self, problems: Iterable[tuple[str, str]], source: str | None = None):
        self.problems = [Problem(*p) for p in problems]
        self.source = source
        super().__init__(self._text())

    def _text(self) -> str:
        return (f"{self.source}: " if self.source else "") + problems_text(self.problems, self.heading)
