"""Program scale: the stack program with N = 10, 100 and 500 namespaces under Pulumi mocks.

The stack program (`mixpeek_infra.program.run`, reading the `mixpeek-infra:namespaces` config) runs
under the mocks of `tests/stackmocks.py` (`FakeMocks`: every resource answered with plausible
outputs, no side effects). The config holds N copies of the seed body (`tests/data/seed.json`)
with distinct names, on the shared tier with an external Ray cluster (`ray: {mode: external, url:
..., shared_url: ...}`, so no local head) and embedded Qdrant (`qdrant: {path: .mixpeek/qdrant}`):
9 registrations per namespace (the component, its collection and 7 payload indexes).

The program runs as the engine runs it: `pulumi.runtime.set_mocks` with `FakeMocks` and Pulumi's own
mock monitor, the config set by `stackmocks.set_stack_config`, `run()` inside `pulumi.runtime.test`,
and the run ends when every registration and output has settled. `stackmocks.run_program` (what the
tests use) does the same plus it records every registration and resolves every namespace's outputs
(`Output.all` over them, which re-lifts each nested output value into Outputs); it is measured too,
as a variant, but it is not the program's cost.

Every (variant, N) runs in a fresh interpreter (the Pulumi runtime is process-global), which first
runs the program once with N = 1 (warm-up: lazy imports, caches), then measures one run: wall time,
time inside CPython's cyclic garbage collector (`gc.callbacks`) and the growth of peak RSS
(`ru_maxrss`). Per-namespace figures are marginal, against the N = 1 run of the same round:
(cost(N) - cost(1)) / (N - 1). Rounds interleave the variants and rotate the order of N; medians
are reported.

Variants:
- **program**: the stack program as shipped (the figures the goals apply to);
- **program via run_program** (informational): the same through the test harness;
- **bare pulumi** (baseline): the same resource graph with the same inputs, the same Output
  structure and the same output values, registered with plain `pulumi.CustomResource`s from values
  recorded from the N = 1 run: what Pulumi's SDK itself costs for this graph, without our request
  parsing, planning, input checks and provider pickling;
- **program, GC tuned (what-if)**: the program with CPython's full collections made rare
  (`gc.set_threshold(700, 10, 1000)`, the proposed fix, see docs/performance.md);
- **program, GC tuned + shallow constants (what-if)**: the above, and `Namespace`'s three outputs
  known at plan time (`vector_inference_map`, `payload_indexes`, `feature_extractors`) built as
  one known Output each instead of `Output.from_input(value)`, which turns every nested dict, list
  and scalar of the value into an Output of its own (simulated by intercepting those three calls);
- **program, GC off (diagnostic, only with `--variants`)**: the cyclic collector disabled.

Goals (docs/performance.md, Goals): cost per namespace flat (N = 500 within 1.3x of N = 10) and
under 20 ms per namespace.
"""

from __future__ import annotations

import copy
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, load_seed, median, table

GOAL_FLAT = 1.3
GOAL_MS = 20.0
SIZES = (10, 100, 500)
BASE_N = 1
VARIANTS = {
    "program": "program",
    "harness": "program via run_program",
    "bare": "bare pulumi (baseline)",
    "gc_tuned": "program, GC tuned (what-if)",
    "fixes": "program, GC tuned + shallow constants (what-if)",
    "gc_off": "program, GC off (diagnostic)",
}
DEFAULT_VARIANTS = ["program", "harness", "bare", "gc_tuned", "fixes"]
GC_TUNED = (700, 10, 1000)
RAY = {"mode": "external", "url": "ray://10.0.0.1:10001", "shared_url": "ray://10.0.0.1:10001"}


def stack_config(n: int) -> dict[str, Any]:
    seed = load_seed()
    bodies = []
    for i in range(n):
        body = copy.deepcopy(seed)
        body["namespace_name"] = f"bench_ns_{i:04d}"
        bodies.append(body)
    return {"namespaces": bodies, "ray": dict(RAY), "qdrant": {"path": ".mixpeek/qdrant"}}


# ---------------------------------------------------------------------------------------------
# The bare-pulumi baseline


def bare_program(recorded: Any, n: int):
    """A program registering, per namespace, what `Namespace` registers, from recorded plain values.

    `recorded` is (FakeMocks of an N = 1 run, its resolved outputs). Same types, names, inputs (as the
    mocks received them, `__provider` included), parents, secret options, Output structure and output
    values as the real component; none of its Python work (parse, plan, checks, provider pickling).
    """
    import pulumi

    from mixpeek_infra.namespace import NAMESPACE_TYPE

    mocks, resolved = recorded
    (template_name, outs), = resolved.items()
    collection = next(r for r in mocks.resources if r.typ.endswith(":QdrantCollection"))
    indexes = [r for r in mocks.resources if r.typ.endswith(":QdrantPayloadIndex")]
    model = outs["namespace"]
    infra = outs["infrastructure"]
    ray_url = outs["ray_head_node_url"]
    coll_inputs = {"namespace_id": None, "collection_name": None, "api_key": None, "points_count": None,
                   "created_at": None, "updated_at": None, **collection.inputs}
    secret = ["api_key"]

    class BareNamespace(pulumi.ComponentResource):
        def __init__(self, name: str):
            super().__init__(NAMESPACE_TYPE, name, None, None)
            coll = pulumi.CustomResource(collection.typ, f"{name}-collection", dict(coll_inputs),
                                         pulumi.ResourceOptions(parent=self, additional_secret_outputs=secret))
            self.indexes = []
            for ix in indexes:
                props = {"api_key": None, **ix.inputs, "collection_name": coll.collection_name}
                self.indexes.append(pulumi.CustomResource(ix.typ, ix.name.replace(template_name, name), props,
                                                          pulumi.ResourceOptions(parent=coll,
                                                                                 additional_secret_outputs=secret)))
            url = pulumi.Output.from_input(ray_url).apply(lambda u: u)
            dashboard = pulumi.Output.from_input(None)
            self.namespace_id = coll.namespace_id
            self.qdrant_collection = coll.collection_name
            self.ray_head_node_url = url
            self.vector_inference_map = pulumi.Output.from_input(dict(outs["vector_inference_map"]))
            self.payload_indexes = pulumi.Output.from_input([dict(ix) for ix in model["payload_indexes"]])
            self.feature_extractors = pulumi.Output.from_input([dict(fe) for fe in model["feature_extractors"]])
            self.infrastructure = pulumi.Output.all(coll.collection_name, url, dashboard).apply(
                lambda xs: {**infra, "qdrant_collection": xs[0], "ray_head_node_url": xs[1]})
            self.namespace = pulumi.Output.all(
                coll.namespace_id, self.infrastructure, coll.points_count, coll.created_at, coll.updated_at,
                *[ix.field_schema for ix in self.indexes],
            ).apply(lambda xs: {**copy.deepcopy(model), "namespace_id": xs[0], "infrastructure": xs[1]})
            self.register_outputs({
                "namespace_id": self.namespace_id, "vector_inference_map": self.vector_inference_map,
                "qdrant_collection": self.qdrant_collection, "ray_head_node_url": self.ray_head_node_url,
                "infrastructure": self.infrastructure, "payload_indexes": self.payload_indexes,
                "feature_extractors": self.feature_extractors, "namespace": self.namespace,
            })

    def run() -> dict[str, Any]:
        pulumi.Config().require_object("namespaces")  # read the config, as the program does
        namespaces = {}
        for i in range(n):
            name = f"bench_ns_{i:04d}"
            ns = BareNamespace(name)
            pulumi.export(name, {"namespace_id": ns.namespace_id, "vector_inference_map": ns.vector_inference_map,
                                 "infrastructure": ns.infrastructure, "namespace": ns.namespace})
            namespaces[name] = ns
        return namespaces

    return run


# ---------------------------------------------------------------------------------------------
# One measured run, in a fresh interpreter


def run_as_engine(config: dict[str, Any], mocks: Any) -> None:
    """Run the stack program under `mocks` as the engine would: registrations and exports, nothing read back."""
    import pulumi
    from stackmocks import set_stack_config

    from mixpeek_infra import program

    pulumi.runtime.set_mocks(mocks, project="mixpeek-infra", stack="dev", preview=False)
    set_stack_config(config)

    @pulumi.runtime.test
    def stack() -> None:
        program.run()

    stack()


def simulate_shallow_constants() -> None:
    """What-if: `Namespace`'s `pulumi.Output.from_input(<plain dict or list>)` calls make one known Output.

    The proposed fix in `mixpeek_infra/namespace.py` is `pulumi.Output.from_input(None).apply(lambda _: value)`
    (an `apply` returning a plain value is not lifted further); simulated here by intercepting
    `Output.from_input` when called directly from that module with a plain dict or list.
    """
    from pulumi.output import Output

    lift = Output.from_input

    def from_input(val: Any) -> Any:
        caller = sys._getframe(1).f_code.co_filename
        if isinstance(val, (dict, list)) and Path(caller).parts[-2:] == ("mixpeek_infra", "namespace.py"):
            return lift(None).apply(lambda _: val)
        return lift(val)

    Output.from_input = staticmethod(from_input)


def child(variant: str, n: int, count_outputs: bool = False) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "tests"))
    import pulumi  # noqa: F401 - imported before measuring
    from stackmocks import FakeMocks, run_program

    import mixpeek_infra.namespace  # noqa: F401
    import mixpeek_infra.program as program

    # Warm-up (lazy imports, caches), and the recording the bare baseline replays.
    warm = FakeMocks()
    warm_outputs, _ = run_program(stack_config(1), warm)
    config = stack_config(n)
    if variant == "bare":
        program.run = bare_program((warm, warm_outputs), n)
    del warm, warm_outputs
    created = [0]
    if count_outputs:
        from pulumi.output import Output

        track = Output._track

        def counted(self: Any) -> None:
            created[0] += 1
            track(self)

        Output._track = counted
    gc_time = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    gc.collect()
    if variant == "fixes":
        simulate_shallow_constants()
    if variant in ("gc_tuned", "fixes"):
        gc.set_threshold(*GC_TUNED)
    elif variant == "gc_off":
        gc.disable()
    gc.callbacks.append(on_gc)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    mocks = FakeMocks()
    start = time.perf_counter()
    if variant == "harness":
        outputs, _ = run_program(config, mocks)
        assert len(outputs) == n, len(outputs)
    else:
        run_as_engine(config, mocks)
    seconds = time.perf_counter() - start
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    gc.callbacks.remove(on_gc)
    assert len(mocks.resources) == 9 * n, len(mocks.resources)
    scale = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"variant": variant, "n": n, "seconds": seconds, "rss_kib": (rss1 - rss0) / scale,
            "gc_seconds": gc_time[0], "outputs": created[0], "resources": len(mocks.resources)}


def run_child(variant: str, n: int, count_outputs: bool = False) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.program_scale", "--child", variant, str(n)]
    if count_outputs:
        cmd.append("--count-outputs")
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} N={n} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------


def profile(n: int) -> None:
    """cProfile of the program with `n` namespaces (in this process): top functions by own time."""
    import cProfile
    import pstats

    sys.path.insert(0, str(ROOT / "tests"))
    from stackmocks import FakeMocks

    run_as_engine(stack_config(1), FakeMocks())
    config = stack_config(n)
    prof = cProfile.Profile()
    prof.enable()
    run_as_engine(config, FakeMocks())
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(20)
    stats.sort_stats("cumulative").print_stats(r"mixpeek_infra", 15)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES),
                        help="namespace counts (default 10 100 500)")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=DEFAULT_VARIANTS,
                        help=f"default: {' '.join(DEFAULT_VARIANTS)}")
    parser.add_argument("--profile", type=int, metavar="N", help="print a cProfile of the program with N namespaces")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "N"), help=argparse_hidden())
    parser.add_argument("--count-outputs", action="store_true", help=argparse_hidden())
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.count_outputs)))
        return []
    if args.profile:
        profile(args.profile)
        return []
    reps = 1 if args.quick else args.reps
    sizes = sorted(set(args.sizes))
    variants = [v for v in VARIANTS if v in args.variants]
    if "program" not in variants:
        parser.error("the program variant is required")
    points = [BASE_N] + sizes
    print(f"{reps} round(s); each round runs every (variant, N) for N in {points} in a fresh interpreter, "
          f"interleaved (N order rotates, variant order alternates)")
    results: dict[tuple[str, int], list[dict[str, Any]]] = {(v, n): [] for v in variants for n in points}
    started = time.monotonic()
    for rnd in range(reps):
        order = points[rnd % len(points):] + points[:rnd % len(points)]
        for j, n in enumerate(order):
            for v in (variants if (rnd + j) % 2 == 0 else variants[::-1]):
                r = run_child(v, n)
                results[(v, n)].append(r)
                print(f"  round {rnd + 1}: {VARIANTS[v]:<30} N={n:<4} {fmt_s(r['seconds']):>10}  "
                      f"GC {fmt_s(r['gc_seconds']):>10}  peak RSS +{r['rss_kib'] / 1024:.1f} MiB", flush=True)
    print(f"measured in {time.monotonic() - started:.0f} s")
    counts = {v: run_child(v, 10, count_outputs=True)["outputs"] for v in ("program", "harness", "bare", "fixes")
              if v in variants}

    def per_ns(v: str, n: int, key: str, rnd: int) -> float:
        """Marginal cost of one namespace at N in round `rnd`, against the N = 1 run of that round."""
        return (results[(v, n)][rnd][key] - results[(v, BASE_N)][rnd][key]) / (n - BASE_N)

    def med(v: str, n: int, key: str) -> float:
        return median([per_ns(v, n, key, i) for i in range(reps)])

    def total(v: str, n: int, key: str = "seconds") -> float:
        return median([r[key] for r in results[(v, n)]])

    lines = []
    for v in variants:
        for n in sizes:
            gc_share = total(v, n, "gc_seconds") / total(v, n)
            lines.append([VARIANTS[v], n, fmt_s(total(v, n)), f"{total(v, n) / n * 1e3:.2f} ms",
                          f"{med(v, n, 'seconds') * 1e3:.2f} ms", f"{gc_share:.0%}",
                          f"{med(v, n, 'rss_kib'):.0f} KiB"])
    print()
    print(table(lines, ["variant", "N", "run (median)", "run / N", "per namespace (marginal)", "of which GC",
                        "peak RSS per namespace"]))
    print(f"(N = {BASE_N} runs, subtracted: " + ", ".join(f"{VARIANTS[v]} {fmt_s(total(v, BASE_N))}"
                                                           for v in variants) + ")")
    lo, hi = sizes[0], sizes[-1]

    def growth(v: str, key: str = "seconds") -> float:
        return median([per_ns(v, hi, key, i) / per_ns(v, lo, key, i) for i in range(reps)
                       if per_ns(v, lo, key, i) > 0])

    print()
    print(table([[VARIANTS[v], f"{growth(v):.2f}x", f"{growth(v, 'rss_kib'):.2f}x",
                  f"{max(med(v, n, 'seconds') for n in sizes) * 1e3:.2f} ms"] for v in variants],
                ["variant", f"time per namespace, N={hi} / N={lo}", f"memory per namespace, N={hi} / N={lo}",
                 "worst time per namespace"]))
    if "bare" in variants:
        print()
        def vs_bare(n: int) -> float:
            return median([per_ns("program", n, "seconds", i) / per_ns("bare", n, "seconds", i) for i in range(reps)])

        print("program / bare pulumi, time per namespace: " + ", ".join(f"N={n} {vs_bare(n):.2f}x" for n in sizes))
    if counts:
        print("pulumi Outputs created per namespace (N=10): " + ", ".join(
            f"{VARIANTS[v]} {c / 10:.0f}" for v, c in counts.items()))

    worst = max(med("program", n, "seconds") for n in sizes) * 1e3
    g = growth("program")
    gc_hi = total("program", hi, "gc_seconds") / total("program", hi)
    rows = [Row("program_scale", f"time per namespace, N={hi} / N={lo}", g, "x", f"<= {GOAL_FLAT}x", g <= GOAL_FLAT,
                f"{med('program', lo, 'seconds') * 1e3:.1f} -> {med('program', hi, 'seconds') * 1e3:.1f} ms; "
                f"GC {gc_hi:.0%} of the N={hi} run"),
            Row("program_scale", f"time per namespace, worst of N={'/'.join(map(str, sizes))}", worst, "ms",
                f"< {GOAL_MS:g} ms", worst < GOAL_MS,
                ", ".join(f"N={n} {med('program', n, 'seconds') * 1e3:.1f}" for n in sizes))]
    for n in sizes:
        rows.append(Row("program_scale", f"peak RSS per namespace, N={n}", round(med("program", n, "rss_kib")), "KiB",
                        "", None, f"growth of ru_maxrss, marginal against N={BASE_N}"))
    if "bare" in variants:
        pb = median([per_ns("program", hi, "seconds", i) / per_ns("bare", hi, "seconds", i) for i in range(reps)])
        rows.append(Row("program_scale", f"program / bare pulumi, time per namespace at N={hi}", pb, "x", "", None,
                        "same graph, Outputs and values through plain pulumi resources"))
        b = growth("bare")
        rows.append(Row("program_scale", f"bare pulumi baseline: time per namespace, N={hi} / N={lo}", b, "x", "", None,
                        f"{med('bare', lo, 'seconds') * 1e3:.1f} -> {med('bare', hi, 'seconds') * 1e3:.1f} ms"))
    for v in ("gc_tuned", "fixes", "gc_off"):
        if v in variants:
            worst_v = max(med(v, n, "seconds") for n in sizes) * 1e3
            rows.append(Row("program_scale", f"{VARIANTS[v]}: time per namespace, N={hi} / N={lo}", growth(v), "x",
                            f"<= {GOAL_FLAT}x", None,
                            f"{med(v, lo, 'seconds') * 1e3:.1f} -> {med(v, hi, 'seconds') * 1e3:.1f} ms; worst "
                            f"{worst_v:.1f} ms (goal < {GOAL_MS:g})"))
    return finish(rows, args.json)


def argparse_hidden() -> str:
    import argparse

    return argparse.SUPPRESS


if __name__ == "__main__":
    main()
