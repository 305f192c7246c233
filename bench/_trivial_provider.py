"""A do-nothing dynamic provider: the floor of a Check + Diff through the SDK's provider host.

Pickled by reference (`bench._trivial_provider.TrivialProvider`), so the host needs the repository
root on its PYTHONPATH.
"""

from __future__ import annotations

from typing import Any

from pulumi.dynamic import CheckResult, DiffResult, ResourceProvider


class TrivialProvider(ResourceProvider):
    serialize_as_secret_always = False

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        return CheckResult({k: v for k, v in news.items() if k != "__provider"}, [])

    def diff(self, _id: str, _olds: dict[str, Any], _news: dict[str, Any]) -> DiffResult:
        return DiffResult(changes=False)
