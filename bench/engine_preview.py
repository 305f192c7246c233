"""Real engine: a no-change `pulumi preview` at 1 to 100 namespaces vs do-nothing dynamic resources.

The CLI built by tools/pulumi/install drives copies of the project in a temp dir, offline, through
`tests/pulumicli.py`. For each N:

- **stack**: the stack program (root `__main__.py`) with N copies of the dev stack's namespace body
  under distinct `namespace_name`s, `mixpeek-infra:qdrant: {path: .mixpeek/qdrant}` (Qdrant Edge)
  and `mixpeek-infra:ray: {shared_url: ray://127.0.0.1:1}` (an external shared cluster: no Ray
  head resource, nothing is started). That is 8 dynamic resources per namespace (a collection and
  7 payload indexes) plus the Namespace component. `pulumi up` once (not timed), then
  `pulumi preview --expect-no-changes` timed;
- **baseline**: a Python program registering the same number of dynamic resources with the same
  inputs (copied from the stack's state, `__provider` aside) through a do-nothing provider
  (`bench/_trivial_provider.py`'s TrivialProvider, plus a `create` so `up` can run), no component,
  no exports. `pulumi up` once, then the same timed preview.

Both run with the same CLI, virtualenv and environment (`PYTHONPATH` = the repository, so the
provider host can import the baseline's provider; bytecode caching on, see bench/_common.py). Previews are interleaved: in every round each N
runs both variants back to back, the order alternating between rounds.

Goals: stack / baseline <= 1.5x at every N (median of per-round ratios), and flat per resource: the
marginal cost per resource over the last step (50 -> 100 namespaces by default) within 1.3x of that from
the first count to the start of that step (1 -> 50), both from medians. (1 -> 10 alone is too short to
measure: 72 resources add ~2 s to a ~13 s preview whose rounds vary by more than that on a loaded machine.)
The baseline's own growth is printed next to it, and each segment's marginal cost as stack / baseline.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, median, paired_ratios, table, use_bytecode_cache
from bench.engine_up import STACK, WARM_IMPORTS, dev_config, failure_text, find_cli, new_project, run_timed

GOAL = 1.5
FLAT_GOAL = 1.3
RESOURCES_PER_NAMESPACE = 8  # a collection and 7 payload indexes (the component is not a provider resource)
SHARED_URL = "ray://127.0.0.1:1"
SECRET_SIG = "4dabf18193072939515e22adb298388d"

NOOP_PROVIDER = '''"""The baseline's provider: bench/_trivial_provider.py's do-nothing Check and Diff, plus a Create
(which waits MIXPEEK_BENCH_CREATE_DELAY seconds first, when set: bench/engine_scale.py --create-delays)."""

import os
import time

from pulumi.dynamic import CreateResult

from bench._trivial_provider import TrivialProvider


class NoopProvider(TrivialProvider):
    def create(self, props):
        time.sleep(float(os.environ.get("MIXPEEK_BENCH_CREATE_DELAY") or 0))
        return CreateResult(id_="noop", outs={k: v for k, v in props.items() if k != "__provider"})
'''

BASELINE_PROGRAM = '''"""Do-nothing dynamic resources with the stack's inputs (resources.json): a preview's floor."""

import json
from pathlib import Path

from pulumi.dynamic import Resource

from noop_provider import NoopProvider


class Noop(Resource):
    def __init__(self, name, props):
        super().__init__(NoopProvider(), name, props)


for name, props in json.loads(Path("resources.json").read_text()):
    Noop(name, props)
'''


def stack_config(n: int) -> dict[str, Any]:
    """The dev stack's config with `n` copies of its namespace and an external shared Ray cluster."""
    config = dev_config()
    [body] = config["config"]["mixpeek-infra:namespaces"]
    namespaces = []
    for i in range(n):
        entry = copy.deepcopy(body)
        entry["namespace_name"] = f"bench_ns_{i:04d}"
        namespaces.append(entry)
    config["config"]["mixpeek-infra:namespaces"] = namespaces
    config["config"]["mixpeek-infra:ray"] = {"shared_url": SHARED_URL}
    config["config"]["mixpeek-infra:qdrant"] = {"path": ".mixpeek/qdrant"}
    return config


def _plain(value: Any) -> bool:
    return not (isinstance(value, dict) and SECRET_SIG in value)


def stack_inputs(project) -> list[tuple[str, dict[str, Any]]]:
    """[(name, inputs without __provider and secrets)] of the stack's dynamic resources, from its state."""
    out = []
    for resource in project.resources(STACK):
        if not resource["type"].startswith("pulumi-python:dynamic"):
            continue
        inputs = {k: v for k, v in resource.get("inputs", {}).items() if k != "__provider" and _plain(v)}
        out.append((resource["urn"].split("::")[-1], inputs))
    return out


def up(project, label: str, retries: int = 2) -> float:
    """`pulumi up` (not timed in the figures); a failed one is shown and run again (it resumes)."""
    args = ("up", "--yes", "--skip-preview", "-s", STACK)
    for attempt in range(retries + 1):
        elapsed, proc, _ = run_timed(project, *args)
        if proc.returncode == 0:
            return elapsed
        print(f"  {label}: attempt {attempt + 1} failed:\n{failure_text(args, proc)[-2500:]}", flush=True)
    raise RuntimeError(f"{label}: `pulumi up` failed {retries + 1} times")


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=3)
    parser.add_argument("--namespaces", type=int, nargs="+", default=None,
                        help="namespace counts (default 1 10 50 100; 1 10 with --quick)")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    counts = sorted(set(args.namespaces or ([1, 10] if args.quick else [1, 10, 50, 100])))
    bin_dir = find_cli()
    if bin_dir is None:
        return finish([Row("engine_preview", "no-change preview, stack / do-nothing resources", None, "x",
                           f"<= {GOAL}x", None, "the Pulumi CLI is not on PATH (tools/pulumi/install)")], args.json)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))  # run the finally block: remove the temp dir
    use_bytecode_cache(WARM_IMPORTS)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    env = {"PYTHONPATH": str(ROOT)}
    workdir = Path(tempfile.mkdtemp(prefix="mxep", dir="/tmp"))
    ups: dict[tuple[str, int], float] = {}
    times: dict[int, dict[str, list[float]]] = {n: {"stack": [], "baseline": []} for n in counts}
    projects: dict[tuple[str, int], Any] = {}
    try:
        print(f"CLI: {bin_dir}\nN = {counts} namespaces ({RESOURCES_PER_NAMESPACE} dynamic resources each); "
              f"up once per N and variant, then {reps} interleaved rounds of `pulumi preview --expect-no-changes`",
              flush=True)
        for n in counts:
            stack = new_project(workdir / f"stack{n}", bin_dir, stack_config(n), env=env)
            ups[("stack", n)] = up(stack, f"stack, N = {n}")
            resources = stack_inputs(stack)
            if len(resources) != RESOURCES_PER_NAMESPACE * n:
                raise RuntimeError(f"expected {RESOURCES_PER_NAMESPACE * n} dynamic resources, state has {len(resources)}")
            baseline = new_project(workdir / f"base{n}", bin_dir, {"config": {"mixpeek-infra:bench": "baseline"}},
                                   program=BASELINE_PROGRAM, env=env)
            (baseline.root / "noop_provider.py").write_text(NOOP_PROVIDER)
            (baseline.root / "resources.json").write_text(json.dumps(resources))
            ups[("baseline", n)] = up(baseline, f"baseline, N = {n}")
            projects[("stack", n)], projects[("baseline", n)] = stack, baseline
            print(f"  N = {n}: up {fmt_s(ups[('stack', n)])} (stack), {fmt_s(ups[('baseline', n)])} (baseline)",
                  flush=True)

        def preview(variant: str, n: int) -> float:
            args_ = ("preview", "--expect-no-changes", "-s", STACK)
            elapsed, proc, _ = run_timed(projects[(variant, n)], *args_)
            if proc.returncode != 0:
                raise RuntimeError(failure_text(args_, proc))
            return elapsed

        for n in counts:  # warm-up: one preview of each, discarded
            preview("stack", n), preview("baseline", n)
        for i in range(reps):
            order = ["stack", "baseline"] if i % 2 == 0 else ["baseline", "stack"]
            for n in counts[i % len(counts):] + counts[:i % len(counts)]:
                for variant in order:
                    times[n][variant].append(preview(variant, n))
                print(f"  round {i + 1}, N = {n}: stack {fmt_s(times[n]['stack'][-1])}, baseline "
                      f"{fmt_s(times[n]['baseline'][-1])}", flush=True)
    finally:
        # Nothing runs in the background (no Ray head; the provider hosts exit with each CLI run): removing
        # the temp dir removes the stacks' state and Edge shards.
        shutil.rmtree(workdir, ignore_errors=True)

    lines, rows = [], []
    med = {n: {v: median(t) for v, t in times[n].items()} for n in counts}

    def slope(variant: str, a: int, b: int) -> float:
        """ms per resource added between a and b namespaces (medians)."""
        return (med[b][variant] - med[a][variant]) / (RESOURCES_PER_NAMESPACE * (b - a)) * 1e3

    for n in counts:
        resources = RESOURCES_PER_NAMESPACE * n
        ratios = paired_ratios(times[n], "stack", "baseline")
        ratio = median(ratios)
        lines.append([str(n), str(resources), fmt_s(med[n]["stack"]), fmt_s(med[n]["baseline"]), f"{ratio:.2f}x",
                      f"{min(ratios):.2f}-{max(ratios):.2f}x", f"{med[n]['stack'] / resources * 1e3:.1f} ms",
                      f"{med[n]['baseline'] / resources * 1e3:.1f} ms"])
        rows.append(Row("engine_preview", f"no-change preview, {n} namespaces ({resources} resources), stack / "
                                          "do-nothing resources", ratio, "x", f"<= {GOAL}x", ratio <= GOAL,
                        f"{fmt_s(med[n]['stack'])} vs {fmt_s(med[n]['baseline'])}; "
                        f"{med[n]['stack'] / resources * 1e3:.1f} vs {med[n]['baseline'] / resources * 1e3:.1f} ms "
                        f"per resource"))
    print()
    print(table(lines, ["N", "resources", "stack (median)", "baseline (median)", "stack / baseline",
                        "range of rounds", "stack per resource", "baseline per resource"]))
    if len(counts) > 1:
        segments = list(zip(counts, counts[1:]))
        print()
        print(table([[f"{a} -> {b}", f"{slope('stack', a, b):.1f} ms", f"{slope('baseline', a, b):.1f} ms",
                      f"{slope('stack', a, b) / slope('baseline', a, b):.2f}x"
                      if slope('baseline', a, b) > 0 else "n/a"] for a, b in segments],
                    ["namespaces", "stack: marginal cost per resource", "baseline: marginal cost per resource",
                     "stack / baseline"]))
    print("\nup once (not timed in the figures): " + ", ".join(
        f"N = {n}: {fmt_s(ups[('stack', n)])} / {fmt_s(ups[('baseline', n)])}" for n in counts))
    for n in counts:
        print(f"rounds, N = {n}: stack " + ", ".join(fmt_s(t) for t in times[n]["stack"]) + "; baseline " +
              ", ".join(fmt_s(t) for t in times[n]["baseline"]))
    if len(counts) >= 3:
        # Flatness: the marginal cost per resource over the last segment against that from the first count to the
        # start of the last segment (both long enough to stand above the noise with the default counts).
        first, mid, top = counts[0], counts[-2], counts[-1]
        early, late = slope("stack", first, mid), slope("stack", mid, top)
        b_early, b_late = slope("baseline", first, mid), slope("baseline", mid, top)
        # A marginal cost at or below zero means the step was lost in the noise: no verdict then.
        growth = late / early if early > 0 and late > 0 else None
        b_growth = b_late / b_early if b_early > 0 and b_late > 0 else None
        shown = lambda g: "n/a: lost in the noise" if g is None else f"{g:.2f}x"  # noqa: E731
        print(f"\nmarginal cost per resource, {mid} -> {top} against {first} -> {mid} namespaces: stack "
              f"{early:.1f} -> {late:.1f} ms ({shown(growth)}), baseline {b_early:.1f} -> {b_late:.1f} ms "
              f"({shown(b_growth)})")
        rows.append(Row("engine_preview", f"marginal preview cost per resource, N {mid}->{top} / N {first}->{mid}",
                        growth, "x", f"<= {FLAT_GOAL}x", None if growth is None else growth <= FLAT_GOAL,
                        f"{early:.1f} -> {late:.1f} ms per resource; baseline {b_early:.1f} -> {b_late:.1f} ms "
                        f"({shown(b_growth)})"))
        whole, b_whole = slope("stack", first, top), slope("baseline", first, top)
        rows.append(Row("engine_preview", f"marginal preview cost per resource, stack / baseline, N {first}->{top}",
                        whole / b_whole if whole > 0 and b_whole > 0 else None, "x", "", None,
                        f"{whole:.1f} vs {b_whole:.1f} ms per resource"))
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
