"""Import cost: `import mixpeek_infra` vs `import pulumi`, each in a fresh interpreter.

Two measures, repetitions of every statement interleaved (rotating order each round):
- wall time of `python -c "import X"` (interpreter start-up included, as a user or the Pulumi
  language host pays it), with `python -c pass` as the start-up floor;
- import time only, from `python -X importtime`: the sum of the top-level imports the statement
  triggers (start-up imports excluded).

Goal (DESIGN.md section 8): `import mixpeek_infra` <= 1.3x `import pulumi`. For context also
`import mixpeek_infra.namespace` (the component, what a stack program imports) and
`import mixpeek_infra.qdrant.resources` (what the dynamic provider host loads to unpickle
`__provider`) are measured, also as ratios to `import pulumi`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, median, table

GOAL = 1.3
STATEMENTS = {
    "pass": "pass",
    "pulumi": "import pulumi",
    "mixpeek_infra": "import mixpeek_infra",
    "mixpeek_infra.namespace": "import mixpeek_infra.namespace",
    "mixpeek_infra.qdrant.resources": "import mixpeek_infra.qdrant.resources",
}


def wall(statement: str) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", statement], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def import_time(statement: str, startup: frozenset[str] = frozenset()) -> tuple[float, list[str]]:
    """Seconds of the top-level imports in -X importtime's report except the interpreter's start-up
    modules (`startup`), and the names of all top-level imports reported."""
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", statement], check=True, cwd=ROOT,
                         capture_output=True, text=True).stderr
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
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, capture_output=True, text=True)
    return out.stdout.split()


def main(argv: list[str] | None = None) -> list[Row]:
    args = arg_parser(__doc__.splitlines()[0], default_reps=15).parse_args(argv)
    reps = 7 if args.quick else args.reps
    names = list(STATEMENTS)
    walls: dict[str, list[float]] = {n: [] for n in names}
    imports: dict[str, list[float]] = {n: [] for n in names}
    startup = frozenset(import_time("pass")[1])
    for name in names:  # warm the OS page cache for every variant once
        wall(STATEMENTS[name])
    print(f"{reps} interleaved rounds of {len(names)} statements, fresh interpreter each")
    for i in range(reps):
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            walls[name].append(wall(STATEMENTS[name]))
            imports[name].append(import_time(STATEMENTS[name], startup)[0])
    floor = median(walls["pass"])

    def ratio(series: dict[str, list[float]], num: str, den: str) -> float:
        return median([a / b for a, b in zip(series[num], series[den]) if b > 0])

    lines = []
    for name in names:
        if name == "pass":
            lines.append([STATEMENTS[name], fmt_s(median(walls[name])), "-", "-", "-"])
            continue
        lines.append([STATEMENTS[name], fmt_s(median(walls[name])), f"{ratio(walls, name, 'pulumi'):.2f}x",
                      fmt_s(median(imports[name])), f"{ratio(imports, name, 'pulumi'):.2f}x"])
    print()
    print(table(lines, ["statement", "wall (median)", "wall / pulumi", "imports only (median)",
                        "imports / pulumi"]))
    heavy = check_mixpeek_is_light()
    print(f"\ninterpreter start-up floor (python -c pass): {fmt_s(floor)}; heavy modules loaded by "
          f"`import mixpeek_infra`: {', '.join(heavy) or 'none'}")

    wall_ratio = ratio(walls, "mixpeek_infra", "pulumi")
    import_ratio = ratio(imports, "mixpeek_infra", "pulumi")
    rows = [
        Row("import", "import mixpeek_infra / import pulumi, wall time incl. start-up", wall_ratio, "x",
            f"<= {GOAL}x", wall_ratio <= GOAL, f"{fmt_s(median(walls['mixpeek_infra']))} vs "
                                               f"{fmt_s(median(walls['pulumi']))}"),
        Row("import", "import mixpeek_infra / import pulumi, imports only (-X importtime)", import_ratio, "x",
            f"<= {GOAL}x", import_ratio <= GOAL, f"{fmt_s(median(imports['mixpeek_infra']))} vs "
                                                 f"{fmt_s(median(imports['pulumi']))}; heavy modules: "
                                                 f"{', '.join(heavy) or 'none'}"),
        Row("import", "import mixpeek_infra.namespace / import pulumi, imports only",
            ratio(imports, "mixpeek_infra.namespace", "pulumi"), "x", "", None,
            f"{fmt_s(median(imports['mixpeek_infra.namespace']))}; context: what a stack program imports"),
        Row("import", "import mixpeek_infra.qdrant.resources / import pulumi, imports only",
            ratio(imports, "mixpeek_infra.qdrant.resources", "pulumi"), "x", "", None,
            f"{fmt_s(median(imports['mixpeek_infra.qdrant.resources']))}; what the provider host unpickles"),
    ]
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
