"""The package's shape: no import circles anywhere in `mixpeek_infra`, a core that imports no shell.

The core (schema, catalogue, plan, stack config, problems, vocabulary) is pure: it imports no Pulumi,
Qdrant or Ray at import time. Layers go core -> qdrant/ray -> namespace -> program, never back.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ["mixpeek_infra.problems", "mixpeek_infra.vocabulary", "mixpeek_infra.extractors", "mixpeek_infra.schema",
        "mixpeek_infra.plan", "mixpeek_infra.stackconfig", "mixpeek_infra.json_schema", "mixpeek_infra.documents",
        "mixpeek_infra.render", "mixpeek_infra.cli", "mixpeek_infra.state_names"]


def import_graph() -> dict[str, set[str]]:
    """module -> modules of mixpeek_infra it imports, at any level (functions and TYPE_CHECKING too).

    `from pkg import name` is an import of `pkg.name` when that is a module, else of `pkg` (its __init__).
    A package whose __init__ only maps names to module paths (strings) imports nothing.
    """
    modules: dict[str, Path] = {}
    for path in (ROOT / "mixpeek_infra").rglob("*.py"):
        dotted = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        modules[dotted.removesuffix(".__init__")] = path

    def resolve(module: str, level: int, name: str | None) -> str:
        parts = module.split(".")
        if modules[module].name != "__init__.py":
            parts = parts[:-1]
        parts = parts[:len(parts) - (level - 1)] if level else []
        return ".".join(parts + ([name] if name else [])) if level else (name or "")

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                graph[module] |= {t for a in node.names if (t := known(a.name))}
            elif isinstance(node, ast.ImportFrom):
                target = resolve(module, node.level, node.module)
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    found = sub if sub in modules else known(target)
                    if found:
                        graph[module].add(found)
        graph[module].discard(module)
    return graph


def circle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    stack, seen = [[start]], set()
    while stack:
        path = stack.pop()
        for nxt in sorted(graph[path[-1]]):
            if nxt == start:
                return path + [nxt]
            if nxt not in seen:
                seen.add(nxt)
                stack.append(path + [nxt])
    return None


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    assert {"mixpeek_infra.ray.spec", "mixpeek_infra.qdrant.store.base", "mixpeek_infra.stackconfig"} <= set(graph)
    circles = [c for m in sorted(graph) if (c := circle_through(graph, m))]
    assert circles == [], "\n".join(" -> ".join(c) for c in circles)


def test_the_graph_sees_a_circle_when_there_is_one():
    graph = import_graph()
    graph["mixpeek_infra.plan"] = graph["mixpeek_infra.plan"] | {"mixpeek_infra.program"}  # program -> ... -> plan
    assert circle_through(graph, "mixpeek_infra.plan")


def test_layers_point_one_way():
    graph = import_graph()
    # The Ray head spec imports no deployer; the provider host watch serves both providers and knows no Ray.
    assert not graph["mixpeek_infra.ray.spec"] & {"mixpeek_infra.ray.local", "mixpeek_infra.ray.kubernetes",
                                                  "mixpeek_infra.ray.deploy"}
    assert not {m for m in graph["mixpeek_infra.hostwatch"] if m.startswith("mixpeek_infra.ray")}
    shells = {"mixpeek_infra.namespace", "mixpeek_infra.program"}
    for module in CORE + ["mixpeek_infra.qdrant.providers", "mixpeek_infra.ray.deploy"]:
        assert not graph[module] & shells, module
    assert not graph["mixpeek_infra.program"] & {"mixpeek_infra.cli"}  # the program shares the core, not the CLI


def test_the_core_imports_no_pulumi_qdrant_or_ray():
    code = ("import sys\n" + "".join(f"import {m}\n" for m in CORE) +
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pulumi', 'qdrant_client', 'qdrant_edge', "
            "'ray', 'pulumi_kubernetes'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.strip()
    assert out == "[]"
