"""Real engine at scale (issue 24): N namespaces from request files vs N x 8 do-nothing dynamic resources.

The CLI built by tools/pulumi/install drives copies of the project in a temp dir, offline, through
`tests/pulumicli.py`. For each N (default 100 and 300):

- **stack**: the stack program (root `__main__.py`) with N copies of the dev stack's body under distinct
  `namespace_name`s, one JSON request file each (`mixpeek-infra:namespaces: [{files: requests}]`, so the
  config stays small: inline, N = 200 stops `pulumi` with `argument list too long`), Qdrant Edge and an
  external shared Ray URL (no Ray head). 8 dynamic resources per namespace (a collection and 7 indexes)
  plus the Namespace component and its exports;
- **baseline**: a program registering the same dynamic resources with the same inputs (from the stack's
  state, `__provider` aside) through bench/engine_preview.py's do-nothing provider: no component, no export.

Timed: `pulumi up` of each (stack first, then the baseline, which needs the stack's state), then
`--reps` rounds of `pulumi preview --expect-no-changes`, interleaved, the order alternating, then
`pulumi destroy` of each (unless `--no-destroy`; checked: no resource left in either state; the Edge
directory's entries left are printed). While each runs, /proc is sampled every 50 ms for the peak RSS
(VmHWM) and the CPU seconds (user + system) of the engine (`pulumi`), the program and the provider host.
Then the state: bytes per namespace of the file backend's checkpoint, and of its `__provider`s, other
inputs and outputs; and the `__provider` strings the host unpickles (each distinct string once per host
process: the SDK caches providers by it).

`--skip-checkpoints`: every run (`up`, preview, `destroy`) has `PULUMI_SKIP_CHECKPOINTS=true` (the engine
writes the state once, at the end, instead of after every step): what the checkpoint writes cost each side.

`--split`: one more no-change preview of each with the engine's log (`--logflow -v=9`), split at its
timestamps: engine start to the program's first resource, the program registering (first to last
resource, until its function returns), the providers' Check and Diff calls as the engine saw them (sum
per resource), and the rest to the CLI's exit.

`--profile`: one more no-change preview of each with the program under cProfile (its main thread, where
resources are registered and serialized), printing the functions with the most own time per resource.

`--create-delays S [S ...]`: after the previews, the baseline goes up again (destroyed first) once per delay,
its do-nothing `create` waiting S seconds: how the program's CPU at `up` depends on how long creates take
rather than on what the program registers (the SDK's wait for pending Outputs, docs/performance.md).
"""

from __future__ import annotations

import base64
import json
import os
import pstats
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Row, arg_parser, finish, fmt_s, median, paired_ratios, table, use_bytecode_cache
from bench.engine_preview import BASELINE_PROGRAM, NOOP_PROVIDER, RESOURCES_PER_NAMESPACE, stack_config, stack_inputs, up
from bench.engine_up import STACK, VERBOSE, WARM_IMPORTS, failure_text, find_cli, new_project, parse_engine_log, run_timed

GOAL = 1.3
ROOT = Path(__file__).resolve().parent.parent
PROFILED = '''"""The stack program (or the baseline) under cProfile; stats to {out!r} at exit."""
import atexit, cProfile
_profile = cProfile.Profile()
_profile.enable()
atexit.register(lambda: (_profile.disable(), _profile.dump_stats({out!r})))
{program}
'''
STACK_PROGRAM = "from mixpeek_infra.program import run\nrun()\n"


def files_config(root: Path, n: int) -> dict[str, Any]:
    """bench/engine_preview.py's stack config for `n` namespaces, its bodies moved to requests/*.json."""
    config = stack_config(n)
    config.pop("encryptionsalt", None)  # a salt a local `pulumi` run left in stacks/Pulumi.dev.yaml is not ours
    bodies = config["config"]["mixpeek-infra:namespaces"]
    (root / "requests").mkdir(parents=True, exist_ok=True)
    for body in bodies:
        (root / "requests" / f"{body['namespace_name']}.json").write_text(json.dumps(body))
    config["config"]["mixpeek-infra:namespaces"] = [{"files": "requests"}]
    return config


class PeakMemory:
    """Samples /proc while a CLI run lasts: the peak RSS (VmHWM, KiB) of the engine, the program and the
    provider host of one project (processes whose working directory is its root)."""

    ROLES = {"engine": lambda cmd: os.path.basename(cmd[0]) == "pulumi",
             "program": lambda cmd: any("pulumi-language-python-exec" in c for c in cmd),
             "provider host": lambda cmd: "pulumi.dynamic" in cmd}

    def __init__(self, root: Path):
        self.root = str(root.resolve())
        self.peak: dict[str, int] = {}
        self._ticks: dict[int, tuple[str, int]] = {}  # pid -> (role, utime + stime in clock ticks, last seen)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "PeakMemory":
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                try:
                    if os.readlink(f"/proc/{entry.name}/cwd") != self.root:
                        continue
                    cmd = Path(f"/proc/{entry.name}/cmdline").read_bytes().decode(errors="replace").split("\0")
                    status = Path(f"/proc/{entry.name}/status").read_text()
                    stat = Path(f"/proc/{entry.name}/stat").read_text()
                except OSError:
                    continue
                role = next((r for r, match in self.ROLES.items() if match(cmd)), None)
                hwm = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)
                if role is not None:
                    self.peak[role] = max(self.peak.get(role, 0), hwm)
                    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
                    self._ticks[int(entry.name)] = (role, int(fields[11]) + int(fields[12]))

    def cpu(self) -> dict[str, float]:
        """CPU seconds (user + system) of each role, as last sampled (up to 50 ms before each process ended)."""
        out: dict[str, float] = {}
        for role, ticks in self._ticks.values():
            out[role] = out.get(role, 0.0) + ticks / os.sysconf("SC_CLK_TCK")
        return out


def timed(project, *args: str, cpu: dict[str, list[float]] | None = None) -> tuple[float, dict[str, int]]:
    """`pulumi ARGS` timed, with the peak RSS of its processes; raises when it fails. `cpu`: each role's CPU
    seconds appended to cpu[role]."""
    with PeakMemory(project.root) as memory:
        elapsed, proc, _ = run_timed(project, *args)
    if proc.returncode != 0:
        raise RuntimeError(failure_text(args, proc))
    if cpu is not None:
        for role, seconds in memory.cpu().items():
            cpu.setdefault(role, []).append(seconds)
    return elapsed, memory.peak


def state_figures(project, n: int) -> dict[str, float]:
    """Bytes per namespace of the exported state, by part, and the distinct `__provider` strings."""
    exported = project.export(STACK)
    resources = exported["deployment"].get("resources", [])
    provider = inputs = outputs = 0
    providers: set[str] = set()
    for resource in resources:
        ins = resource.get("inputs", {})
        if "__provider" in ins:
            providers.add(ins["__provider"])
            provider += len(json.dumps(ins["__provider"]))
        inputs += len(json.dumps({k: v for k, v in ins.items() if k != "__provider"}))
        outputs += len(json.dumps(resource.get("outputs", {})))
    checkpoint = project.root / "state" / ".pulumi" / "stacks" / "mixpeek-infra" / f"{STACK}.json"
    total = checkpoint.stat().st_size if checkpoint.is_file() else len(json.dumps(exported))  # as the backend writes it
    unpickle = []
    for text in providers:
        import dill

        start = time.perf_counter()
        try:
            dill.loads(base64.b64decode(text))
        except ImportError:  # the baseline's provider module lives in its project
            continue
        unpickle.append(time.perf_counter() - start)
    return {"total": total / n, "provider": provider / n, "inputs": inputs / n, "outputs": outputs / n,
            "resources": len(resources), "distinct providers": len(providers),
            "provider bytes": max((len(p) for p in providers), default=0),
            "unpickle ms": sum(unpickle) * 1e3}


def split_preview(project, resources: int) -> dict[str, float]:
    """One no-change preview with the engine's log, split at its timestamps (seconds; per resource in ms)."""
    args = ("preview", "--expect-no-changes", "-s", STACK, *VERBOSE)
    elapsed, proc, t0 = run_timed(project, *args)
    if proc.returncode != 0:
        raise RuntimeError(failure_text(args, proc))
    marks, calls = parse_engine_log(proc.stderr)
    registered = [line for line in proc.stderr.splitlines() if "registering resource: ty=" in line]
    last_registered = max((at for line in registered if (at := _line_time(line)) is not None), default=None)
    check = sum(e - s for s, e in calls.get("Check", {}).values())
    diff = sum(e - s for s, e in _diffs(proc.stderr))
    start = marks.get("first_custom", t0)
    return {"wall": elapsed, "to first resource": start - t0,
            "registering": (last_registered or start) - start,
            "program done after last registration": marks.get("program_done", start) - (last_registered or start),
            "check ms per resource": check / resources * 1e3, "diff ms per resource": diff / resources * 1e3,
            "after program to exit": t0 + elapsed - marks.get("program_done", t0 + elapsed)}


_DIFF = re.compile(r"^Provider\[[^\]]*\]\.Diff\((urn:[^,)]*)[^)]*\):? (executing|success)")


def _diffs(stderr: str) -> list[tuple[float, float]]:
    """(executing, success) of each provider Diff in the engine's log (its line differs from Check's)."""
    slots: dict[str, list[float]] = {}
    for line in stderr.splitlines():
        if ".Diff(urn" not in line or not line.startswith("{"):
            continue
        entry = json.loads(line)
        match, at = _DIFF.match(str(entry.get("msg", ""))), _line_time(line)
        if match and at is not None:
            slot = slots.setdefault(match[1], [0.0, 0.0])
            slot[0 if match[2] == "executing" else 1] = slot[0] or at if match[2] == "executing" else at
    return [(s, e) for s, e in slots.values() if s and e]


def _line_time(line: str) -> float | None:
    from bench.engine_up import _epoch

    try:
        return _epoch(str(json.loads(line).get("time", "")))
    except ValueError:
        return None


def profile_preview(project, program: str, out: Path) -> pstats.Stats:
    """One no-change preview with the program under cProfile; its stats."""
    main = project.root / "__main__.py"
    original = main.read_text()
    main.write_text(PROFILED.format(out=str(out), program=program))
    try:
        timed(project, "preview", "--expect-no-changes", "-s", STACK)
    finally:
        main.write_text(original)
    return pstats.Stats(str(out))


def top_own_time(stats: pstats.Stats, resources: int, limit: int = 12) -> list[list[str]]:
    """The functions with the most own time, in µs per resource."""
    rows = sorted(((tt, ct, nc, func) for func, (_, nc, tt, ct, _) in stats.stats.items()), reverse=True)[:limit]
    return [[f"{Path(f[0]).name}:{f[1]} {f[2]}", str(nc), f"{tt / resources * 1e6:.0f} µs", f"{ct / resources * 1e6:.0f} µs"]
            for tt, ct, nc, f in rows]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=2)
    parser.add_argument("--namespaces", type=int, nargs="+", default=None, help="namespace counts (default 100 300)")
    parser.add_argument("--profile", action="store_true", help="also profile one preview of each program")
    parser.add_argument("--split", action="store_true", help="also split one verbose preview of each")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    parser.add_argument("--no-destroy", action="store_true", help="leave out the `pulumi destroy` of each")
    parser.add_argument("--skip-checkpoints", action="store_true",
                        help="run the ups with PULUMI_SKIP_CHECKPOINTS=true (state written once, at the end)")
    parser.add_argument("--create-delays", type=float, nargs="+", default=[],
                        help="also `up` the baseline once per delay, its create waiting that many seconds")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    counts = sorted(set(args.namespaces or ([20] if args.quick else [100, 300])))
    bin_dir = find_cli()
    if bin_dir is None:
        return finish([Row("engine_scale", "up at scale, stack / do-nothing resources", None, "x", f"<= {GOAL}x", None,
                           "the Pulumi CLI is not on PATH (tools/pulumi/install)")], args.json)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    use_bytecode_cache(WARM_IMPORTS)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    env = {"PYTHONPATH": str(ROOT)}
    if args.skip_checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    workdir = Path(tempfile.mkdtemp(prefix="mxes", dir="/tmp"))
    rows: list[Row] = []
    results: dict[int, dict[str, Any]] = {}
    try:
        for n in counts:
            res: dict[str, Any] = {"preview": {"stack": [], "baseline": []}, "memory": {}, "cpu": {}}
            stack_root = workdir / f"stack{n}"
            stack_root.mkdir()
            stack = new_project(stack_root, bin_dir, files_config(stack_root, n), env=env)
            res["config bytes"] = stack.stack_file(STACK).stat().st_size
            res["up stack"], res["memory"]["up stack"] = timed(stack, "up", "--yes", "--skip-preview", "-s", STACK,
                                                                  cpu=res["cpu"].setdefault("up stack", {}))
            resources = stack_inputs(stack)
            if len(resources) != RESOURCES_PER_NAMESPACE * n:
                raise RuntimeError(f"expected {RESOURCES_PER_NAMESPACE * n} dynamic resources, got {len(resources)}")
            baseline = new_project(workdir / f"base{n}", bin_dir, {"config": {"mixpeek-infra:bench": "baseline"}},
                                   program=BASELINE_PROGRAM, env=env)
            (baseline.root / "noop_provider.py").write_text(NOOP_PROVIDER)
            (baseline.root / "resources.json").write_text(json.dumps(resources))
            res["up baseline"], res["memory"]["up baseline"] = timed(baseline, "up", "--yes", "--skip-preview",
                                                                     "-s", STACK,
                                                                     cpu=res["cpu"].setdefault("up baseline", {}))
            print(f"N = {n}: up {fmt_s(res['up stack'])} (stack), {fmt_s(res['up baseline'])} (baseline); "
                  f"peak RSS {res['memory']['up stack']} / {res['memory']['up baseline']} KiB", flush=True)
            projects = {"stack": stack, "baseline": baseline}
            for i in range(reps):
                for variant in (["stack", "baseline"] if i % 2 == 0 else ["baseline", "stack"]):
                    elapsed, peak = timed(projects[variant], "preview", "--expect-no-changes", "-s", STACK,
                                          cpu=res["cpu"].setdefault(f"preview {variant}", {}))
                    res["preview"][variant].append(elapsed)
                    res["memory"][f"preview {variant}"] = peak
                print(f"  round {i + 1}: preview stack {fmt_s(res['preview']['stack'][-1])}, baseline "
                      f"{fmt_s(res['preview']['baseline'][-1])}", flush=True)
            res["state"] = state_figures(stack, n)
            res["state baseline"] = state_figures(baseline, n)
            print(f"  state per namespace: {json.dumps(res['state'])}", flush=True)
            print(f"  baseline state per namespace: {json.dumps(res['state baseline'])}", flush=True)
            if args.split:
                for variant in ("stack", "baseline"):
                    res[f"split {variant}"] = split_preview(projects[variant], RESOURCES_PER_NAMESPACE * n)
                    print(f"  split, {variant}: " + ", ".join(f"{k} {v:.2f}" for k, v in res[f"split {variant}"].items()),
                          flush=True)
            if args.profile:
                for variant, program in (("stack", STACK_PROGRAM), ("baseline", BASELINE_PROGRAM)):
                    stats = profile_preview(projects[variant], program, workdir / f"{variant}{n}.prof")
                    total = sum(tt for _, _, tt, _, _ in stats.stats.values())
                    print(f"\n  program profile, {variant}, N = {n}: {total / (RESOURCES_PER_NAMESPACE * n) * 1e3:.2f} "
                          "ms own time per resource in the main thread")
                    print(table(top_own_time(stats, RESOURCES_PER_NAMESPACE * n),
                                ["function", "calls", "own / resource", "cumulative / resource"]))
            for delay in args.create_delays:
                timed(baseline, "destroy", "--yes", "--skip-preview", "-s", STACK)
                baseline.env["MIXPEEK_BENCH_CREATE_DELAY"] = str(delay)
                try:
                    res[f"up baseline, create {delay:g} s"], _ = timed(
                        baseline, "up", "--yes", "--skip-preview", "-s", STACK,
                        cpu=res["cpu"].setdefault(f"up baseline, create {delay:g} s", {}))
                finally:
                    del baseline.env["MIXPEEK_BENCH_CREATE_DELAY"]
                print(f"  baseline up, each create waiting {delay:g} s: {fmt_s(res[f'up baseline, create {delay:g} s'])}, "
                      f"program CPU {median(res['cpu'][f'up baseline, create {delay:g} s'].get('program', [0])):.1f} s",
                      flush=True)
            if not args.no_destroy:
                for variant in (["stack", "baseline"] if n % 2 == 0 else ["baseline", "stack"]):
                    res[f"destroy {variant}"], res["memory"][f"destroy {variant}"] = timed(
                        projects[variant], "destroy", "--yes", "--skip-preview", "-s", STACK,
                        cpu=res["cpu"].setdefault(f"destroy {variant}", {}))
                    left = [r for r in projects[variant].resources(STACK)
                            if not r["type"].startswith(("pulumi:pulumi:Stack", "pulumi:providers:"))]
                    if left:
                        raise RuntimeError(f"{variant}: {len(left)} resources left after `pulumi destroy`")
                shards = stack.root / ".mixpeek" / "qdrant"
                res["edge shards left"] = sum(1 for _ in shards.iterdir()) if shards.is_dir() else 0
                print(f"  destroy: stack {fmt_s(res['destroy stack'])}, baseline {fmt_s(res['destroy baseline'])} "
                      f"({res['destroy stack'] / res['destroy baseline']:.2f}x); Edge directory entries left "
                      f"{res['edge shards left']}; peak RSS {res['memory']['destroy stack']} / "
                      f"{res['memory']['destroy baseline']} KiB", flush=True)
            results[n] = res
            print(f"  load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    lines = []
    for n, res in results.items():
        count = RESOURCES_PER_NAMESPACE * n
        up_ratio = res["up stack"] / res["up baseline"]
        ratios = paired_ratios(res["preview"], "stack", "baseline")
        pv = {v: median(t) for v, t in res["preview"].items()}
        mem = res["memory"]
        lines.append([str(n), str(count), fmt_s(res["up stack"]), fmt_s(res["up baseline"]), f"{up_ratio:.2f}x",
                      fmt_s(pv["stack"]), fmt_s(pv["baseline"]), f"{median(ratios):.2f}x",
                      f"{mem['up stack'].get('program', 0) / 1024:.0f} / {mem['up stack'].get('provider host', 0) / 1024:.0f}"
                      f" / {mem['up stack'].get('engine', 0) / 1024:.0f} MiB",
                      f"{res['state']['total'] / 1024:.1f} KiB"])
        rows.append(Row("engine_scale", f"up, {n} namespaces from files ({count} resources), stack / do-nothing",
                        up_ratio, "x", f"<= {GOAL}x", up_ratio <= GOAL,
                        f"{fmt_s(res['up stack'])} vs {fmt_s(res['up baseline'])}; "
                        f"{res['up stack'] / count * 1e3:.1f} vs {res['up baseline'] / count * 1e3:.1f} ms per resource"))
        rows.append(Row("engine_scale", f"no-change preview, {n} namespaces from files, stack / do-nothing",
                        median(ratios), "x", f"<= {GOAL}x", median(ratios) <= GOAL,
                        f"{fmt_s(pv['stack'])} vs {fmt_s(pv['baseline'])}; "
                        f"{pv['stack'] / count * 1e3:.1f} vs {pv['baseline'] / count * 1e3:.1f} ms per resource"))
        if "destroy stack" in res:
            ratio = res["destroy stack"] / res["destroy baseline"]
            rows.append(Row("engine_scale", f"destroy, {n} namespaces from files, stack / do-nothing", ratio, "x", "",
                            None, f"{fmt_s(res['destroy stack'])} vs {fmt_s(res['destroy baseline'])}; "
                                  f"{res['destroy stack'] / n * 1e3:.0f} ms per namespace; peak RSS of the provider "
                                  f"host {res['memory']['destroy stack'].get('provider host', 0) / 1024:.0f} MiB"))
        rows.append(Row("engine_scale", f"state file per namespace, N = {n}", res["state"]["total"] / 1024, "KiB",
                        "", None, f"__provider {res['state']['provider']:.0f} B, other inputs "
                                  f"{res['state']['inputs']:.0f} B, outputs {res['state']['outputs']:.0f} B"))
    print()
    print(table(lines, ["N", "resources", "up stack", "up baseline", "up ratio", "preview stack (median)",
                        "preview baseline", "preview ratio", "peak RSS at up: program / provider host / engine",
                        "state per namespace"]))
    if len(results) > 1:
        a, b = min(results), max(results)
        per = lambda n, key: results[n][key] / (RESOURCES_PER_NAMESPACE * n)  # noqa: E731
        marginal = lambda key: (results[b][key] - results[a][key]) / (RESOURCES_PER_NAMESPACE * (b - a)) * 1e3  # noqa: E731
        print(f"\nup, marginal cost per resource {a} -> {b} namespaces: stack {marginal('up stack'):.1f} ms, baseline "
              f"{marginal('up baseline'):.1f} ms (at {a}: {per(a, 'up stack') * 1e3:.1f} / "
              f"{per(a, 'up baseline') * 1e3:.1f} ms per resource)")
        if "destroy stack" in results[a] and "destroy stack" in results[b]:
            print(f"destroy, marginal cost per namespace {a} -> {b}: stack {marginal('destroy stack') * RESOURCES_PER_NAMESPACE:.0f} ms, "
                  f"baseline {marginal('destroy baseline') * RESOURCES_PER_NAMESPACE:.0f} ms")
        for variant in ("stack", "baseline"):
            ma, mb = median(results[a]["preview"][variant]), median(results[b]["preview"][variant])
            print(f"preview {variant}, marginal cost per resource {a} -> {b}: "
                  f"{(mb - ma) / (RESOURCES_PER_NAMESPACE * (b - a)) * 1e3:.1f} ms")
    for n, res in results.items():
        print(f"peak RSS (KiB), N = {n}: " + "; ".join(f"{k}: {v}" for k, v in res["memory"].items()))
        print(f"CPU seconds (median of runs), N = {n}: " + "; ".join(
            f"{k}: " + ", ".join(f"{role} {median(v):.1f}" for role, v in sorted(roles.items()))
            for k, roles in res["cpu"].items()))
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
