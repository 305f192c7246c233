"""Import cost: `import mixpeek_infra...` vs `import pulumi`, each in a fresh interpreter.

Two measures, repetitions of every statement interleaved (rotating order each round):
- wall time of `python -c "import X"` (interpreter start-up included, as a user or the Pulumi
  language host pays it), with `python -c pass` as the start-up floor;
- import time only, from `python -X importtime`: the sum of the top-level imports the statement
  triggers (start-up imports excluded).

Every `pulumi up` and `pulumi preview` pays two Python start-ups of its own: the language host runs
the stack program, and the engine starts the SDK's dynamic provider host (`python -m pulumi.dynamic`),
which imports the provider modules when it unpickles `__provider`. Both import pulumi anyway, so
the goals are ratios to `import pulumi`, import time only:

- program import: `import mixpeek_infra.namespace` (the component a stack program uses) <= 1.3x;
- provider-host unpickle import: `import mixpeek_infra.qdrant.resources` (what unpickling a
  Collection's or PayloadIndex's `__provider` imports) <= 1.1x;
- and the package alone: `import mixpeek_infra` <= 1.3x (it loads no heavy dependency at all).

Context rows: `import mixpeek_infra.program, mixpeek_infra.namespace` (what the root `__main__.py`
imports before and during `run()`), `import mixpeek_infra.ray.local` (unpickling a LocalRayHead), and
`import mixpeek_infra.namespace` without a bytecode cache (PYTHONDONTWRITEBYTECODE=1: every process
compiles our modules from source). All other statements run with bytecode caching on, into a directory
outside the repository (bench/_common.py's `bytecode_env`), as on a usual machine.

`--where` (on by default; `--no-where` skips it) shows where each goal statement's time goes beyond
`import pulumi`: the modules it loads that `import pulumi` does not, grouped by package (our modules
one by one), self time summed (median of 3 runs of `-X importtime`), each with the first of our modules
on its import chain: what would have to be deferred to avoid it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, bytecode_env, finish, fmt_s, median, table

GOAL = 1.3
NO_CACHE = "mixpeek_infra.namespace, no bytecode cache"
PROGRAM_GOAL = 1.3  # import mixpeek_infra.namespace / import pulumi
HOST_GOAL = 1.1  # import mixpeek_infra.qdrant.resources / import pulumi
STATEMENTS = {
    "pass": "pass",
    "pulumi": "import pulumi",
    "mixpeek_infra": "import mixpeek_infra",
    "mixpeek_infra.namespace": "import mixpeek_infra.namespace",
    "mixpeek_infra.qdrant.resources": "import mixpeek_infra.qdrant.resources",
    "program": "import mixpeek_infra.program, mixpeek_infra.namespace",
    "mixpeek_infra.ray.local": "import mixpeek_infra.ray.local",
    NO_CACHE: "import mixpeek_infra.namespace",
}
#: Third-party packages worth knowing about when they load.
WATCHED = ("pydantic", "yaml", "qdrant_client", "qdrant_edge", "ray", "pulumi_kubernetes", "grpc", "dill",
           "google.protobuf", "opentelemetry")


#: Every statement runs with bytecode caching on (bench/_common.py), except NO_CACHE, which runs as
#: with PYTHONDONTWRITEBYTECODE=1 and no cache: our modules compiled from source at every start.
ENV = bytecode_env()
ENV_NO_CACHE = {**{k: v for k, v in os.environ.items() if k != "PYTHONPYCACHEPREFIX"}, "PYTHONDONTWRITEBYTECODE": "1"}


def env_of(name: str) -> dict[str, str]:
    return ENV_NO_CACHE if name == NO_CACHE else ENV


def wall(statement: str, env: dict[str, str] = ENV) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def import_time(statement: str, startup: frozenset[str] = frozenset(), env: dict[str, str] = ENV
                ) -> tuple[float, list[str]]:
    """Seconds of the top-level imports in -X importtime's report except the interpreter's start-up
    modules (`startup`), and the names of all top-level imports reported."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], check=True, cwd=ROOT,
                         capture_output=True, text=True, env=env).stderr
    entries = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if not cumulative.strip().isdigit():
            continue  # the header line
        if name.startswith("  "):
            continue  # nested: counted in its parent's cumulative time
        entries.append((name.strip(), int(cumulative)))
    return sum(us for n, us in entries if n not in startup) / 1e6, [n for n, _ in entries]


def check_mixpeek_is_light() -> list[str]:
    """Heavy packages `import mixpeek_infra` must not pull in."""
    code = ("import sys, mixpeek_infra; heavy = ('pulumi', 'qdrant_client', 'qdrant_edge', 'ray', 'pulumi_kubernetes', "
            "'grpc'); print(' '.join(m for m in heavy if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True, env=ENV)
    return out.stdout.split()


def loaded(statement: str) -> list[str]:
    """Which of WATCHED the statement leaves in sys.modules."""
    code = f"{statement}\nimport sys; print(' '.join(m for m in {WATCHED!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True, env=ENV)
    return out.stdout.split()


def import_tree(statement: str) -> list[tuple[str, int, str]]:
    """[(module, self microseconds, first mixpeek_infra module on its import chain or "")] from -X importtime."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], check=True, cwd=ROOT,
                         capture_output=True, text=True, env=ENV).stderr
    rows: list[tuple[int, str, int]] = []
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        if not self_us.strip().isdigit():
            continue
        rows.append(((len(name) - len(name.lstrip()) - 1) // 2, name.strip(), int(self_us)))
    # -X importtime prints a module after the modules it imported, one level deeper: link children to parents.
    parent: list[int | None] = [None] * len(rows)
    pending: dict[int, list[int]] = {}
    for i, (depth, _, _) in enumerate(rows):
        for child in pending.pop(depth + 1, []):
            parent[child] = i
        pending.setdefault(depth, []).append(i)
    out_rows = []
    for i, (_, name, self_us) in enumerate(rows):
        chain, j = [], i
        while j is not None:
            chain.append(rows[j][1])
            j = parent[j]
        ours = [m for m in reversed(chain) if m.startswith("mixpeek_infra")]
        out_rows.append((name, self_us, ours[-1] if ours else ""))
    return out_rows


def where_time_goes(statement: str, base: frozenset[str], runs: int = 3) -> list[tuple[str, float, str]]:
    """[(group, median ms, our module that imports it)] for the modules `statement` loads beyond `base`:
    third-party and standard-library modules grouped by top-level package, ours one by one; largest first."""
    per_run: list[dict[str, float]] = []
    via: dict[str, str] = {}
    for _ in range(runs):
        groups: dict[str, float] = {}
        for name, self_us, ours in import_tree(statement):
            if name in base:
                continue
            group = name if name.startswith("mixpeek_infra") else name.split(".")[0]
            groups[group] = groups.get(group, 0.0) + self_us / 1e3
            via.setdefault(group, ours)
        per_run.append(groups)
    names = set().union(*per_run)
    result = [(g, median([r.get(g, 0.0) for r in per_run]), via.get(g, "")) for g in names]
    return sorted(result, key=lambda item: -item[1])


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=15)
    parser.add_argument("--no-where", action="store_true", help="skip the per-package breakdown of the goal statements")
    parser.add_argument("--top", type=int, default=15, help="groups shown per statement in the breakdown")
    args = parser.parse_args(argv)
    reps = 7 if args.quick else args.reps
    names = list(STATEMENTS)
    walls: dict[str, list[float]] = {n: [] for n in names}
    imports: dict[str, list[float]] = {n: [] for n in names}
    startup = frozenset(import_time("pass")[1])
    for name in names:  # warm the OS page cache and the bytecode cache for every variant once
        wall(STATEMENTS[name], env_of(name))
    print(f"{reps} interleaved rounds of {len(names)} statements, fresh interpreter each")
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            walls[name].append(wall(STATEMENTS[name], env_of(name)))
            imports[name].append(import_time(STATEMENTS[name], startup, env_of(name))[0])
    floor = median(walls["pass"])

    def ratio(series: dict[str, list[float]], num: str, den: str) -> float:
        return median([a / b for a, b in zip(series[num], series[den]) if b > 0])

    lines = []
    for name in names:
        if name == "pass":
            lines.append([STATEMENTS[name], fmt_s(median(walls[name])), "-", "-", "-", ""])
            continue
        label = STATEMENTS[name] + (" (no bytecode cache)" if name == NO_CACHE else "")
        lines.append([label, fmt_s(median(walls[name])), f"{ratio(walls, name, 'pulumi'):.2f}x",
                      fmt_s(median(imports[name])), f"{ratio(imports, name, 'pulumi'):.2f}x",
                      " ".join(loaded(STATEMENTS[name]))])
    print()
    print(table(lines, ["statement", "wall (median)", "wall / pulumi", "imports only (median)",
                        "imports / pulumi", "of " + "/".join(WATCHED) + " loaded"]))
    heavy = check_mixpeek_is_light()
    print(f"\ninterpreter start-up floor (python -c pass): {fmt_s(floor)}; heavy modules loaded by "
          f"`import mixpeek_infra`: {', '.join(heavy) or 'none'}")

    if not args.no_where:
        base = frozenset(name for name, _, _ in import_tree(STATEMENTS["pulumi"])) | startup
        for name in ("mixpeek_infra.namespace", "program", "mixpeek_infra.qdrant.resources"):
            groups = where_time_goes(STATEMENTS[name], base)
            total = sum(ms for _, ms, _ in groups)
            print(f"\n`{STATEMENTS[name]}` beyond `import pulumi`: {total:.1f} ms of self time (-X importtime, "
                  f"median of 3 runs), largest first:")
            print(table([[g, f"{ms:.1f} ms", via or "-"] for g, ms, via in groups[:args.top]],
                        ["module or package", "self time", "first of our modules on its import chain"]))

    def goal_row(name: str, goal: float, what: str) -> Row:
        r = ratio(imports, name, "pulumi")
        return Row("import", f"{STATEMENTS[name]} / import pulumi, imports only ({what})", r, "x", f"<= {goal}x",
                   r <= goal, f"{fmt_s(median(imports[name]))} vs {fmt_s(median(imports['pulumi']))}; wall "
                              f"{ratio(walls, name, 'pulumi'):.2f}x ({fmt_s(median(walls[name]))})")

    wall_ratio = ratio(walls, "mixpeek_infra", "pulumi")
    import_ratio = ratio(imports, "mixpeek_infra", "pulumi")
    rows = [
        goal_row("mixpeek_infra.namespace", PROGRAM_GOAL, "program import"),
        goal_row("mixpeek_infra.qdrant.resources", HOST_GOAL, "provider-host unpickle import"),
        Row("import", "import mixpeek_infra / import pulumi, wall time incl. start-up", wall_ratio, "x",
            f"<= {GOAL}x", wall_ratio <= GOAL, f"{fmt_s(median(walls['mixpeek_infra']))} vs "
                                               f"{fmt_s(median(walls['pulumi']))}"),
        Row("import", "import mixpeek_infra / import pulumi, imports only (-X importtime)", import_ratio, "x",
            f"<= {GOAL}x", import_ratio <= GOAL, f"{fmt_s(median(imports['mixpeek_infra']))} vs "
                                                 f"{fmt_s(median(imports['pulumi']))}; heavy modules: "
                                                 f"{', '.join(heavy) or 'none'}"),
        Row("import", "stack program's imports (program + namespace) / import pulumi, imports only",
            ratio(imports, "program", "pulumi"), "x", "", None,
            f"{fmt_s(median(imports['program']))}; context: what the root __main__.py imports"),
        Row("import", "import mixpeek_infra.ray.local / import pulumi, imports only",
            ratio(imports, "mixpeek_infra.ray.local", "pulumi"), "x", "", None,
            f"{fmt_s(median(imports['mixpeek_infra.ray.local']))}; context: unpickling a LocalRayHead"),
        Row("import", "import mixpeek_infra.namespace without a bytecode cache / import pulumi, imports only",
            ratio(imports, NO_CACHE, "pulumi"), "x", "", None,
            f"{fmt_s(median(imports[NO_CACHE]))}; as every start pays with PYTHONDONTWRITEBYTECODE=1"),
    ]
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
