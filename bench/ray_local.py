"""Local Ray head: start-to-ready through the provider vs a bare `ray start --head --block`.

Each round starts one head each way, interleaved (the order alternates every round), and stops it
before the next start, so two heads never compete for the CPUs:

- **provider**: `LocalRayHeadProvider.check` + `create` with the inputs a `LocalRayHead` sends
  (defaults: Ray detects the CPUs, dashboard on), timed until `create` returns, which is when a Ray
  client has connected. Then `delete` (not timed).
- **bare**: `ray start --head --block --temp-dir <own dir> --disable-usage-stats` with every
  component port from the same `free_ports()` the provider uses, started in its own session,
  waited on by the provider module's own readiness check `wait_for_ray_client` (a child interpreter
  whose `ray.init(url)` succeeds, reaching that head's node manager), with the same arguments.
  Stopped by SIGTERM to its leader, then by killing its process group and any leftover of its
  session. `ray stop` is never used: it would stop every Ray process on the machine.
- **bare + provider's flags** (diagnostic): the bare command plus the flags the provider adds
  (`--dashboard-host 127.0.0.1 --min-worker-port 0 --max-worker-port 0`), to tell what the flags
  cost from what the provider's own code costs.

Both sides get the same environment (`RAY_USAGE_STATS_ENABLED=0`, `GRPC_ENABLE_FORK_SUPPORT=0`,
no `RAY_ADDRESS`), so they differ only by what the provider adds around `ray start`: input checks,
its extra flags, the state and log directories, the process-table reads and the outputs.

Goal (docs/performance.md, Goals): median ratio provider / bare <= 1.1x.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Row, arg_parser, finish, fmt_s, interleave, median, paired_ratios, table

GOAL = 1.1
READY_TIMEOUT = 120.0
FLAGS = "bare + provider's flags"
#: What the provider's `ray start` adds to the bare command (besides its marker variable).
PROVIDER_FLAGS = ["--dashboard-host", "127.0.0.1", "--min-worker-port", "0", "--max-worker-port", "0"]

_LIVE: dict[str, Any] = {}  # what is running right now, so an interrupted run still cleans up


def provider_inputs(state_dir: str) -> dict[str, Any]:
    """What `LocalRayHead(name, state_dir=...)` sends (before check)."""
    return {"state_dir": state_dir, "state_path": state_dir, "namespace_id": "ns_0123456789", "num_cpus": None,
            "num_gpus": None, "include_dashboard": True, "ready_timeout": READY_TIMEOUT, "stop_timeout": 20.0}


def run_provider(workdir: str, counter: Any, record: dict[str, list[float]]) -> float:
    from mixpeek_infra.ray.local import LocalRayHeadProvider

    provider = LocalRayHeadProvider()
    state = os.path.join(workdir, f"p{next(counter)}")
    start = time.perf_counter()
    checked = provider.check({}, provider_inputs(state))
    assert not checked.failures, checked.failures
    result = provider.create(checked.inputs)
    elapsed = time.perf_counter() - start
    _LIVE["provider"] = (provider, result.id, result.outs)
    record.setdefault("provider probe", []).append(float(result.outs["probe_seconds"]))
    t0 = time.perf_counter()
    stop_provider()
    record.setdefault("provider stop", []).append(time.perf_counter() - t0)
    shutil.rmtree(state, ignore_errors=True)
    return elapsed


def stop_provider() -> None:
    live = _LIVE.pop("provider", None)
    if live is not None:
        provider, head_id, outs = live
        provider.delete(head_id, outs)


def bare_command(ray: str, temp_dir: str, ports: dict[str, int], extra: list[str] | None = None) -> list[str]:
    from mixpeek_infra.ray.local import PORT_FLAGS

    cmd = [ray, "start", "--head", "--block", "--temp-dir", temp_dir, "--disable-usage-stats", *(extra or [])]
    for component, flag in PORT_FLAGS.items():
        cmd += [flag, str(ports[component])]
    return cmd


BARE_HEAD_ID = "rayhead-bench0bare00"


def run_bare(counter: Any, record: dict[str, list[float]], label: str = "bare",
             extra: list[str] | None = None) -> float:
    from mixpeek_infra.ray import local

    ray = local.find_ray_executable()
    python = local._probe_python(ray)
    temp_dir = tempfile.mkdtemp(prefix=f"mxb{next(counter)}-", dir="/tmp")  # short, as Ray's sockets need
    env = local._clean_env()
    env.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    env["MIXPEEK_RAY_HEAD_ID"] = BARE_HEAD_ID  # so stop_bare can prove its leftovers are the bare head's
    start = time.perf_counter()
    ports = dict(zip(local.PORT_FLAGS, local.free_ports(len(local.PORT_FLAGS))))
    with open(os.path.join(temp_dir, "head.log"), "ab") as log:
        proc = subprocess.Popen(bare_command(ray, temp_dir, ports, extra), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True, close_fds=True)
    _LIVE["bare"] = (proc, temp_dir)
    url = f"ray://127.0.0.1:{ports['client']}"
    try:
        probe = local.wait_for_ray_client(url, READY_TIMEOUT, python=python, alive=lambda: proc.poll() is None,
                                          server_log=os.path.join(temp_dir, "session_latest", "logs",
                                                                  "ray_client_server.err"),
                                          node_manager_port=ports["node_manager"])
        elapsed = time.perf_counter() - start
    except local.RayHeadError as exc:
        tail = Path(temp_dir, "head.log").read_text(errors="replace")[-2000:]
        stop_bare()
        raise RuntimeError(f"bare head never got ready: {exc}\n--- head.log:\n{tail}") from None
    record.setdefault(f"{label} probe", []).append(probe)
    t0 = time.perf_counter()
    stop_bare()
    record.setdefault(f"{label} stop", []).append(time.perf_counter() - t0)
    return elapsed


def stop_bare() -> None:
    """Stop the bare head: SIGTERM to the `ray start` leader (Ray's own graceful stop), then SIGKILL to its
    process group, then SIGKILL to what is left of its session (Ray's workers make their own groups).

    A SIGTERM to the whole group at once is not used: Ray's components then wait on each other and the
    head hangs (checked here: still up 8 s later, where SIGTERM to the leader alone stops it in ~2 s).
    """
    from mixpeek_infra.ray import local

    live = _LIVE.pop("bare", None)
    if live is None:
        return
    proc, temp_dir = live
    info = local.process_info(proc.pid)
    start = info.start if info is not None else None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15.0)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and _group_alive(proc.pid):
        time.sleep(0.05)
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    if start is not None:  # Ray's workers left the process group, not the session
        left = local.stop_session(proc.pid, start, timeout=0.0, head_id=BARE_HEAD_ID)
        if left:
            print(f"WARNING: bare head processes {left} survived SIGKILL", file=sys.stderr)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    """Whether a live (non-zombie) process of the group `pgid` remains."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    from mixpeek_infra.ray import local

    return any(p.pgid == pgid and not p.zombie for p in local.process_table())


def cleanup() -> None:
    for stop in (stop_provider, stop_bare):
        try:
            stop()
        except Exception as exc:  # noqa: BLE001 - best effort at exit, keep going
            print(f"cleanup: {exc!r}", file=sys.stderr)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=5)
    parser.add_argument("--warmup", type=int, default=1, help="discarded warm-up rounds (default 1)")
    parser.add_argument("--no-flags-variant", action="store_true",
                        help="skip the diagnostic variant (bare with the provider's extra ray start flags)")
    args = parser.parse_args(argv)
    reps = 2 if args.quick else args.reps
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        rows = [Row("ray_local", "local Ray head, provider / bare", None, "x", f"<= {GOAL}x", None,
                    "Ray is not installed (pip install 'mixpeek-infra[local]')")]
        return finish(rows, args.json)
    from mixpeek_infra.ray import local

    atexit.register(cleanup)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))  # runs the finally blocks and atexit
    ray = local.find_ray_executable()
    print(f"{reps} interleaved rounds (+{args.warmup} warm-up) of one head per variant, each stopped before the next")
    shown = " ".join(bare_command(os.path.basename(ray), "<temp dir>", {k: 0 for k in local.PORT_FLAGS}))
    print("bare: " + shown.replace(" 0", " <free port>"))
    record: dict[str, list[float]] = {}
    counter = iter(range(10**6))
    with tempfile.TemporaryDirectory(prefix="mxp", dir="/tmp") as workdir:
        try:
            variants = {"provider": lambda: run_provider(workdir, counter, record),
                        "bare": lambda: run_bare(counter, record)}
            if not args.no_flags_variant:
                variants[FLAGS] = lambda: run_bare(counter, record, FLAGS, PROVIDER_FLAGS)
            times = interleave(variants, reps, warmup=args.warmup)
        finally:
            cleanup()
    extra = {k: v[args.warmup:] for k, v in record.items()}  # drop the warm-up rounds' records too
    ratios = paired_ratios(times, "provider", "bare")
    ratio = median(ratios)
    labels = {"provider": "provider (check + create)", "bare": "bare `ray start --head --block`",
              FLAGS: f"bare + `{' '.join(PROVIDER_FLAGS)}` (diagnostic)"}
    lines = []
    for name in times:
        r = paired_ratios(times, name, "bare")
        lines.append([labels[name], fmt_s(median(times[name])), fmt_s(median(extra[f"{name} probe"])),
                      fmt_s(median(extra[f"{name} stop"])), f"{median(r):.2f}x", f"{min(r):.2f}-{max(r):.2f}x"])
    print()
    print(table(lines, ["variant", "start to ready (median)", "of which readiness wait", "stop (median)",
                        "/ bare (median)", "range of rounds"]))
    print()
    for name in times:
        print(f"rounds, {name}: " + ", ".join(f"{t:.2f} s" for t in times[name]))
    print(f"provider / bare: median of per-round ratios {ratio:.2f}x (range {min(ratios):.2f}-{max(ratios):.2f}x)")
    rows = [Row("ray_local", "local Ray head start-to-ready, provider / bare `ray start --head --block`", ratio, "x",
                f"<= {GOAL}x", ratio <= GOAL,
                f"{fmt_s(median(times['provider']))} vs {fmt_s(median(times['bare']))}; {reps} rounds")]
    if FLAGS in times:
        r = median(paired_ratios(times, FLAGS, "bare"))
        rows.append(Row("ray_local", "bare with the provider's extra ray start flags / bare (diagnostic)", r, "x", "",
                        None, f"{fmt_s(median(times[FLAGS]))}; flags {' '.join(PROVIDER_FLAGS)}"))
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
