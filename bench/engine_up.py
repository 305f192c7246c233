"""Real engine: `pulumi up` of the dev stack vs its floor, with the real Pulumi CLI.

The CLI built by tools/pulumi/install drives a copy of the project in a temp dir, offline, through
`tests/pulumicli.py` (own PULUMI_HOME, file backend, passphrase, `.venv` linked to this virtualenv).
Each round runs, interleaved (the order alternates every round):

- **stack**: `pulumi up --yes --skip-preview -s dev` of stacks/Pulumi.dev.yaml with
  `mixpeek-infra:ray.num_cpus: 1` (as the CLI tests run it): the real engine, the real language host,
  the SDK's dynamic provider host, a Qdrant Edge shard with the collection and its 7 payload indexes,
  and a local Ray head, timed until the CLI exits; then `pulumi destroy` (not timed);
- **floor**, the sum of three parts run one after the other:
  1. `pulumi up --yes --skip-preview` of an empty Python program (the same Pulumi.yaml, stack config and
     virtualenv, a `__main__.py` that does nothing): the engine, language host and interpreter start-up
     every `pulumi up` pays; then `pulumi destroy` (not timed);
  2. the same collection and indexes through Qdrant Edge's own API in this process
     (`bench/provisioning.py`'s `direct_edge`, qdrant_edge already imported);
  3. a bare `ray start --head --block --num-cpus 1` waited on to the same readiness as the provider
     (`bench/ray_local.py`'s `run_bare`: a Ray client connects), then stopped (not timed).

Goal: stack / floor <= 1.5x (median of the per-round ratios). The engine overlaps the Ray head with
the Qdrant work where the floor adds them, which favours the stack; everything the stack pays on top
(the program's imports and planning, the provider host, `__provider` unpickling, the providers' own
code) counts against it.

Then (unless `--no-breakdown`) one more up of each side with `--logflow -v=9 --logtostderr`, split
along the critical path at the engine's log timestamps: engine + language host metadata, program
process start, the program's own start, provider host start, first Check, Ray head create, program
exit, shutdown; plus the Qdrant work that runs in parallel with the head.

Every Python process runs with bytecode caching on (bench/_common.py's `use_bytecode_cache`), as on a
usual machine, whatever PYTHONDONTWRITEBYTECODE says.

Failures under load (a Ray head that never gets ready on a starved machine) are retried up to
`--retries` times per round and counted in the output.
"""

from __future__ import annotations

import atexit
import calendar
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (ROOT, Row, arg_parser, finish, fmt_s, interleave, median, paired_ratios, table,
                           use_bytecode_cache)

sys.path.insert(0, str(ROOT / "tests"))

GOAL = 1.5
STACK = "dev"
LOCAL_HEAD = "pulumi-python:dynamic/mixpeek:LocalRayHead"
EMPTY_PROGRAM = '"""Does nothing: the floor of a `pulumi up` with the Python language host."""\n'
VERBOSE = ("--logflow", "-v=9", "--logtostderr")
#: Imported once before any timing, so the bytecode cache (bench/_common.py) holds what the runs import.
WARM_IMPORTS = ("import pulumi, pulumi.dynamic, grpc, dill, yaml, qdrant_edge, ray, ray.scripts.scripts, "
                "mixpeek_infra.program, mixpeek_infra.namespace, mixpeek_infra.ray.local, "
                "mixpeek_infra.qdrant.resources, mixpeek_infra.qdrant.store.edge")


# ---------------------------------------------------------------------------------------------
# Projects (shared with bench/engine_preview.py)


def find_cli() -> Path | None:
    """The bin directory of the Pulumi CLI with the Python language host, or None."""
    import pytest
    from pulumicli import cli_bin_dir

    try:
        return cli_bin_dir()
    except (pytest.skip.Exception, pytest.fail.Exception):  # how cli_bin_dir reports a missing CLI
        return None


def dev_config() -> dict[str, Any]:
    """stacks/Pulumi.dev.yaml with one CPU for the local head (as tests/test_pulumi_cli.py runs it)."""
    import yaml

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config["config"]["mixpeek-infra:ray"]["num_cpus"] = 1
    return config


def new_project(root: Path, bin_dir: Path, config: dict[str, Any], program: str | None = None,
                env: dict[str, str] | None = None):
    """A PulumiProject for stack `dev` with `config`, initialised; `program` replaces the root __main__.py."""
    from pulumicli import PulumiProject

    project = PulumiProject(root, bin_dir, {STACK: config})
    if program is not None:
        (root / "__main__.py").write_text(program)
    if env:
        project.env.update(env)
    project.init(STACK)
    return project


def run_timed(project, *args: str, timeout: float = 1800) -> tuple[float, subprocess.CompletedProcess[str], float]:
    """`pulumi ARGS` (no check): (wall seconds, the process, its start as epoch seconds)."""
    started_epoch = time.time()
    start = time.perf_counter()
    proc = project.run(*args, check=False, timeout=timeout)
    return time.perf_counter() - start, proc, started_epoch


def failure_text(args: tuple[str, ...], proc: subprocess.CompletedProcess[str]) -> str:
    """What a failed run printed: its stdout's tail and stderr's head (where an engine panic starts)."""
    stderr = proc.stderr or ""
    panic = stderr.find("panic:")
    stderr = stderr[panic:panic + 1500] if panic >= 0 else stderr[-1500:]
    return f"pulumi {' '.join(args)} exited {proc.returncode}:\n{(proc.stdout or '')[-3000:]}\n{stderr}"


def kill_leftovers(project) -> int:
    """SIGKILL the sessions of Ray heads this project started that survived; returns how many."""
    from pulumicli import ray_sessions

    sessions = ray_sessions(project)
    for session in sessions:
        try:
            os.killpg(session, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return len(sessions)


def destroy(project) -> float:
    """`pulumi destroy` (cancelling a stuck lock first if it fails), then kill leftover heads; seconds."""
    elapsed, proc, _ = run_timed(project, "destroy", "--yes", "--skip-preview", "-s", STACK)
    if proc.returncode != 0:
        project.run("cancel", "--yes", check=False, timeout=60)
        project.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", STACK, check=False)
    left = kill_leftovers(project)
    if left:
        print(f"WARNING: killed {left} Ray head session(s) left after destroy in {project.root}", file=sys.stderr)
    return elapsed


# ---------------------------------------------------------------------------------------------
# Engine log (`--logflow -v=9 --logtostderr`) -> milestones

_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")
_PROVIDER_CALL = re.compile(r"^Provider\[[^\]]*\]\.(Check|Diff|Create|Read|Update|Delete)\((urn:[^)]*)\) "
                            r"(executing|success)")


def _epoch(stamp: str) -> float | None:
    match = _TIME.match(stamp)
    if not match:
        return None
    whole = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
    return whole + (float("0." + match[2]) if match[2] else 0.0)


def parse_engine_log(stderr: str) -> tuple[dict[str, float], dict[str, dict[str, tuple[float, float]]]]:
    """(first time of each milestone, {op: {urn: (executing, success)}}) from the engine's JSON log lines."""
    marks: dict[str, float] = {}
    calls: dict[str, dict[str, list[float]]] = {}

    def mark(name: str, at: float, last: bool = False) -> None:
        if last or name not in marks:
            marks[name] = at

    for line in stderr.splitlines():
        if not line.startswith("{"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        at = _epoch(str(entry.get("time", "")))
        msg = str(entry.get("msg", ""))
        if at is None:
            continue
        mark("log_start", at)
        if msg.startswith("langhost[python].About() executing"):
            mark("about_start", at)
        elif msg.startswith("langhost[python].About() success"):
            mark("about_end", at)
        elif msg.startswith("langhost[python].GetRequiredPackages(") and "executing" in msg:
            mark("packages_start", at)
        elif msg.startswith("langhost[python].GetRequiredPackages(") and " success" in msg:
            mark("packages_end", at)
        elif msg.startswith("langhost[python].Run(") and msg.endswith("executing"):
            mark("run_start", at)
        elif msg.startswith("langhost[python].Run(") and " success" in msg:
            mark("run_end", at)
        elif msg.startswith("registering resource: ty=pulumi:pulumi:Stack"):
            mark("stack_registered", at)
        elif msg.startswith("registering resource: ty=") and "custom=True" in msg:
            mark("first_custom", at)
        elif msg.startswith("newPlugin(): Launching plugin 'pulumi-python (resource)'"):
            mark("provider_launch", at)
        elif "Handshake:" in msg and "pulumi-resource-pulumi-python" in msg:
            mark("provider_ready", at)
        elif msg.startswith("run_pulumi_func completed"):
            mark("program_done", at)
        elif msg.startswith("killing plugin") and "pulumi-resource-pulumi-python" in msg:
            mark("provider_kill", at)
        elif msg.startswith("*** ") and "complete ***" in msg:
            mark("update_complete", at, last=True)
        match = _PROVIDER_CALL.match(msg)
        if match:
            op, urn, phase = match.groups()
            slot = calls.setdefault(op, {}).setdefault(urn, [0.0, 0.0])
            if phase == "executing" and not slot[0]:
                slot[0] = at
            elif phase == "success":
                slot[1] = at
    done = {op: {urn: (s, e) for urn, (s, e) in by_urn.items() if s and e} for op, by_urn in calls.items()}
    return marks, done


def _kind(urn: str) -> str:
    return urn.split("::")[2].rsplit("$", 1)[-1]


def stack_phases(marks: dict[str, float], calls: dict[str, dict[str, tuple[float, float]]], t0: float,
                 t_end: float, ray_ready: float | None) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Critical-path phases of a dev-stack up (they add up to the wall time) and parallel/detail figures."""
    creates = calls.get("Create", {})
    checks = calls.get("Check", {})
    head = [v for urn, v in creates.items() if _kind(urn).endswith("LocalRayHead")]
    head_check = [v for urn, v in checks.items() if _kind(urn).endswith("LocalRayHead")]
    ray_start, ray_end = head[0] if head else (marks.get("run_end", t_end), marks.get("run_end", t_end))
    points = [
        ("engine start + language host metadata (About, GetRequiredPackages)", marks.get("run_start")),
        ("program process: language host, Python start, `import pulumi`, Stack registered",
         marks.get("stack_registered")),
        ("program's own start: `import mixpeek_infra...`, config, plan, first resource registered",
         marks.get("first_custom")),
        ("provider host start (`python -m pulumi.dynamic`, until its handshake)", marks.get("provider_ready")),
        ("first Check (LocalRayHead: unpickle `__provider`, import its module) and engine steps", ray_start),
        ("Ray head Create (provider: ports, dirs, `ray start`, wait for a client)", ray_end),
        ("rest of the program (outputs) and its exit", marks.get("run_end")),
        ("engine shutdown: provider host stopped, checkpoint, CLI exit", t_end),
    ]
    phases = _phases(points, t0)
    details = engine_start_details(marks, t0)
    if head_check:
        details.append(("  Check of the LocalRayHead (first call: unpickles, imports mixpeek_infra.ray.local)",
                        head_check[0][1] - head_check[0][0]))
    if head and ray_ready is not None:
        details.append(("  of the Ray head Create: `ray start` to a connected client (outputs.ready_seconds)",
                        ray_ready))
        details.append(("  of the Ray head Create: the provider's own work around it", (ray_end - ray_start) - ray_ready))
    qdrant = [(urn, v) for op in ("Check", "Create") for urn, v in calls.get(op, {}).items()
              if "Qdrant" in _kind(urn)]
    if qdrant:
        first = min(s for _, (s, _) in qdrant)
        last_q = max(e for _, (_, e) in qdrant)
        details.append(("in parallel with the head: Qdrant collection + 7 indexes, first Check to last Create",
                         last_q - first))
        coll = [v for urn, v in creates.items() if _kind(urn).endswith("QdrantCollection")]
        if coll:
            details.append(("  of which the collection's Create (first Edge call: imports qdrant_edge, creates "
                            "the shard)", coll[0][1] - coll[0][0]))
        details.append(("  sum of the Qdrant Check + Create calls as the engine saw them",
                        sum(e - s for _, (s, e) in qdrant)))
    return phases, details


def _phases(points: list[tuple[str, Any]], t0: float) -> list[tuple[str, float]]:
    """`(label, seconds)` between consecutive time marks; a missing or earlier mark counts as zero."""
    phases, last = [], t0
    for label, at in points:
        at = last if at is None else max(at, last)
        phases.append((label, at - last))
        last = at
    return phases


def engine_start_details(marks: dict[str, float], t0: float) -> list[tuple[str, float]]:
    """The engine start split: CLI process start, the language host's About and GetRequiredPackages, the rest."""
    details: list[tuple[str, float]] = []
    if "log_start" in marks:
        details.append(("  of the engine start: CLI process start to its first log line", marks["log_start"] - t0))
    known = 0.0
    for label, start, end in (("langhost About() (finds the virtualenv's python)", "about_start", "about_end"),
                              ("langhost GetRequiredPackages() (lists the virtualenv's packages)", "packages_start",
                               "packages_end")):
        if start in marks and end in marks:
            details.append((f"  of the engine start: {label}", marks[end] - marks[start]))
            known += marks[end] - marks[start]
    if "log_start" in marks and "run_start" in marks:
        details.append(("  of the engine start: the rest (backend, stack, config, plugins, snapshot)",
                        marks["run_start"] - marks["log_start"] - known))
    return details


def empty_phases(marks: dict[str, float], t0: float, t_end: float) -> list[tuple[str, float]]:
    points = [
        ("engine start + language host metadata (About, GetRequiredPackages)", marks.get("run_start")),
        ("program process: language host, Python start, `import pulumi`, Stack registered",
         marks.get("stack_registered")),
        ("the (empty) program and its exit", marks.get("run_end")),
        ("engine shutdown: checkpoint, CLI exit", t_end),
    ]
    phases = _phases(points, t0)
    return phases


# ---------------------------------------------------------------------------------------------
# The bench


class Bench:
    """The two projects, the direct-Edge plan and the bare-Ray helpers, with their cleanup."""

    def __init__(self, workdir: Path, bin_dir: Path, retries: int):
        from bench import ray_local
        from bench.provisioning import direct_edge
        from mixpeek_infra.plan import plan_namespace

        self.workdir = workdir
        self.retries = retries
        config = dev_config()
        self.stack = new_project(workdir / "stack", bin_dir, config)
        self.empty = new_project(workdir / "empty", bin_dir, config, program=EMPTY_PROGRAM)
        self.plan = plan_namespace(config["config"]["mixpeek-infra:namespaces"][0])
        self.direct_edge = direct_edge
        self.ray_local = ray_local
        self.counter = iter(range(10**6))
        self.record: dict[str, list[float]] = {}
        self.failures: list[str] = []
        import qdrant_edge  # noqa: F401 - imported before any timing: the floor's Edge part is the calls only

    def note(self, key: str, value: float) -> None:
        self.record.setdefault(key, []).append(value)

    def _up(self, project, label: str, extra: tuple[str, ...] = ()) -> tuple[float, subprocess.CompletedProcess[str],
                                                                                float]:
        args = ("up", "--yes", "--skip-preview", "-s", STACK, *extra)
        for attempt in range(self.retries + 1):
            elapsed, proc, started = run_timed(project, *args)
            if proc.returncode == 0:
                return elapsed, proc, started
            self.failures.append(f"{label} attempt {attempt + 1}: {failure_text(args, proc)[-600:]}")
            print(f"  {label}: `pulumi up` failed (attempt {attempt + 1}), destroying and retrying", flush=True)
            destroy(project)
        raise RuntimeError(self.failures[-1])

    def head_outputs(self) -> dict[str, Any]:
        for resource in self.stack.resources(STACK):
            if resource["type"] == LOCAL_HEAD:
                return resource.get("outputs", {})
        return {}

    def stack_round(self) -> float:
        elapsed, _, _ = self._up(self.stack, "stack")
        outs = self.head_outputs()
        if outs.get("ready_seconds") is not None:
            self.note("stack: Ray head ready_seconds", float(outs["ready_seconds"]))
        self.note("stack: destroy", destroy(self.stack))
        return elapsed

    def floor_round(self) -> float:
        up, _, _ = self._up(self.empty, "empty program")
        self.note("floor: empty program up", up)
        self.note("floor: empty program destroy", destroy(self.empty))
        edge_root = self.workdir / f"edge{next(self.counter)}"
        edge_root.mkdir()
        start = time.perf_counter()
        self.direct_edge(self.plan, str(edge_root / "ns_0123456789"))
        edge = time.perf_counter() - start
        shutil.rmtree(edge_root, ignore_errors=True)
        self.note("floor: direct Edge calls", edge)
        ray = None
        for attempt in range(self.retries + 1):
            try:
                ray = self.ray_local.run_bare(self.counter, self.record, "floor: bare ray", ["--num-cpus", "1"])
                break
            except RuntimeError as exc:
                self.failures.append(f"bare ray attempt {attempt + 1}: {str(exc)[:600]}")
                print(f"  bare `ray start` never got ready (attempt {attempt + 1}), retrying", flush=True)
                self.ray_local.stop_bare()
        if ray is None:
            raise RuntimeError(self.failures[-1])
        self.note("floor: bare ray start to ready", ray)
        return up + edge + ray

    def breakdown(self) -> tuple[list[tuple[str, float]], list[tuple[str, float]], list[tuple[str, float]], float,
                                 float]:
        """One verbose up of each side: (stack phases, stack details, empty phases, stack wall, empty wall)."""
        wall, proc, t0 = self._up(self.stack, "stack (verbose)", VERBOSE)
        t_end = t0 + wall
        outs = self.head_outputs()
        marks, calls = parse_engine_log(proc.stderr)
        phases, details = stack_phases(marks, calls, t0, t_end, outs.get("ready_seconds"))
        destroy(self.stack)
        e_wall, e_proc, e_t0 = self._up(self.empty, "empty program (verbose)", VERBOSE)
        e_marks, _ = parse_engine_log(e_proc.stderr)
        e_phases = empty_phases(e_marks, e_t0, e_t0 + e_wall) + engine_start_details(e_marks, e_t0)
        destroy(self.empty)
        return phases, details, e_phases, wall, e_wall

    def cleanup(self) -> None:
        for step in (lambda: destroy(self.stack), lambda: destroy(self.empty), self.ray_local.cleanup):
            try:
                step()
            except Exception as exc:  # noqa: BLE001 - best effort, keep going
                print(f"cleanup: {exc!r}", file=sys.stderr)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=3)
    parser.add_argument("--warmup", type=int, default=None, help="discarded warm-up rounds (default 1; 0 with --quick)")
    parser.add_argument("--retries", type=int, default=2, help="retries of a failed up or Ray start per round")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the verbose run that splits an up in phases")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    warmup = args.warmup if args.warmup is not None else (0 if args.quick else 1)
    bin_dir = find_cli()
    if bin_dir is None:
        return finish([Row("engine_up", "dev stack `pulumi up` / floor", None, "x", f"<= {GOAL}x", None,
                           "the Pulumi CLI is not on PATH (tools/pulumi/install)")], args.json)
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        return finish([Row("engine_up", "dev stack `pulumi up` / floor", None, "x", f"<= {GOAL}x", None,
                           "Ray is not installed (pip install 'mixpeek-infra[local]')")], args.json)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))  # run the finally blocks: destroy what was created
    use_bytecode_cache(WARM_IMPORTS)
    print(f"load average at start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="mxeu", dir="/tmp"))  # short: Ray's socket paths live under it
    bench = Bench(workdir, bin_dir, args.retries)
    atexit.register(bench.cleanup)
    try:
        print(f"CLI: {bin_dir}\n{reps} interleaved rounds (+{warmup} warm-up): `pulumi up` of the dev stack, then "
              "destroy; the floor (empty program up + direct Edge calls + bare `ray start --head`)", flush=True)

        def logged(name: str, fn: Callable[[], float]) -> Callable[[], float]:
            def run() -> float:
                value = fn()
                print(f"  {name}: {fmt_s(value)}", flush=True)
                return value
            return run

        times = interleave({"stack": logged("stack", bench.stack_round), "floor": logged("floor", bench.floor_round)},
                           reps, warmup=warmup)
        record = {k: v[warmup:] if len(v) > reps else v for k, v in bench.record.items()}
        breakdown = None if args.no_breakdown else bench.breakdown()
    finally:
        bench.cleanup()
        atexit.unregister(bench.cleanup)
        shutil.rmtree(workdir, ignore_errors=True)

    ratios = paired_ratios(times, "stack", "floor")
    ratio = median(ratios)
    lines = [["`pulumi up` of the dev stack", fmt_s(median(times["stack"])), ", ".join(fmt_s(t) for t in times["stack"])],
             ["floor (sum of the three below)", fmt_s(median(times["floor"])),
              ", ".join(fmt_s(t) for t in times["floor"])]]
    for key in ("floor: empty program up", "floor: direct Edge calls", "floor: bare ray start to ready",
                "stack: Ray head ready_seconds", "stack: destroy", "floor: empty program destroy"):
        if record.get(key):
            lines.append([f"  {key}", fmt_s(median(record[key])), ", ".join(fmt_s(t) for t in record[key])])
    print()
    print(table(lines, ["variant", "median", "rounds"]))
    print(f"\nstack / floor: median of per-round ratios {ratio:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x); "
          f"failed attempts retried: {len(bench.failures)}")
    for failure in bench.failures:
        print(f"  retried: {failure.splitlines()[0]}")
    rows = [Row("engine_up", "dev stack `pulumi up` / floor (empty-program up + direct Edge + bare ray start)", ratio,
                "x", f"<= {GOAL}x", ratio <= GOAL,
                f"{fmt_s(median(times['stack']))} vs {fmt_s(median(times['floor']))}; {reps} rounds; "
                f"{len(bench.failures)} failed attempts retried")]
    if record.get("floor: empty program up"):
        empty_up = median(record["floor: empty program up"])
        rows.append(Row("engine_up", "empty-program `pulumi up` (the engine's floor)", round(empty_up, 3), "s", "",
                        None, "engine + language host + interpreter, no resources"))
    if breakdown is not None:
        phases, details, e_phases, wall, e_wall = breakdown
        print(f"\nwhere the time of one verbose `pulumi up` goes (critical path; -v=9 logging adds a little):")
        out = [[label, fmt_s(sec), f"{sec / wall * 100:.0f}%"] for label, sec in phases]
        out.append(["total (CLI wall time)", fmt_s(wall), "100%"])
        out += [[label, fmt_s(sec), ""] for label, sec in details]
        print(table(out, ["dev stack `pulumi up`", "time", "share"]))
        print()
        main_phases = [(label, sec) for label, sec in e_phases if not label.startswith("  ")]
        out = [[label, fmt_s(sec), f"{sec / e_wall * 100:.0f}%"] for label, sec in main_phases]
        out.append(["total (CLI wall time)", fmt_s(e_wall), "100%"])
        out += [[label, fmt_s(sec), ""] for label, sec in e_phases if label.startswith("  ")]
        print(table(out, ["empty program `pulumi up`", "time", "share"]))
        for label, sec in phases:
            rows.append(Row("engine_up", f"breakdown: {label}", round(sec, 3), "s", "", None,
                            f"{sec / wall * 100:.0f}% of one verbose up ({fmt_s(wall)})"))
    print(f"\nload average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
