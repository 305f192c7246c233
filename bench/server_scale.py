"""`pulumi up` of N namespaces into one real Qdrant server vs a direct qdrant-client script plus an empty program's `up`.

Issue 24's server figure (goal <= 1.3x, default N = 300). The Qdrant server that tools/qdrant/install
builds (`MIXPEEK_QDRANT_BIN_DIR`) runs on loopback with an API key (`tests/qdrant_server.py`); the
Pulumi CLI is the one tools/pulumi/install builds (on PATH). Each round, interleaved, the order
alternating:

- **stack**: the stack program (root `__main__.py`) with N copies of the dev stack's body under distinct
  `namespace_name`s, one JSON request file each (bench/engine_scale.py's `files_config`), its Qdrant target
  the server (`mixpeek-infra:qdrant: {url}`, `qdrantApiKey` a secret), Ray an external shared URL (no
  head): `pulumi up --yes --skip-preview`, timed to the CLI's exit;
- **floor**, the sum of: `pulumi up --yes --skip-preview` of an **empty program** (same Pulumi.yaml, stack
  config and virtualenv; `__main__.py` does nothing), and a **direct qdrant-client script** in a fresh
  interpreter creating the same N collections and their payload indexes on the same server
  (bench/provisioning.py's `direct_client`: one `create_collection`, 7 `create_payload_index(wait=True)`
  each, one after the other, over REST as the providers use it).

After each round (not timed, figures printed for context) the stack is destroyed and the direct
collections deleted, so every round starts from an empty server. The `up`s run with
`PULUMI_SKIP_CHECKPOINTS=true` unless `--checkpoints`: the file backend otherwise rewrites the whole
checkpoint after every step (quadratic in N; bench/engine_scale.py measures that term), which is the
engine's and not the Qdrant work this figure is about. The load average is printed with every figure.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, median, paired_ratios, table, use_bytecode_cache
from bench.engine_scale import files_config, timed
from bench.engine_up import STACK, WARM_IMPORTS, find_cli, new_project

GOAL = 1.3
PREFIX = "ns_direct"
DIRECT = '''"""N namespaces' collections and payload indexes with qdrant-client alone (argv: url, n, round)."""
import os, sys, warnings
warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
sys.path.insert(0, {root!r})
from qdrant_client import QdrantClient
from bench.provisioning import direct_client
from mixpeek_infra.plan import plan_namespace
import json
url, n, rnd = sys.argv[1], int(sys.argv[2]), sys.argv[3]
body = json.loads(open(sys.argv[4]).read())
plan = plan_namespace(body)
client = QdrantClient(url=url, api_key=os.environ["QDRANT_API_KEY"], timeout=60, check_compatibility=False)
for i in range(n):
    direct_client(plan, client, f"{prefix}{{rnd}}_{{i:04d}}")
client.close()
'''


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=2)
    parser.add_argument("--namespaces", type=int, default=None, help="namespaces per up (default 300; --quick 20)")
    parser.add_argument("--checkpoints", action="store_true",
                        help="let the file backend write its checkpoint after every step (as shipped)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (its path is printed)")
    args = parser.parse_args(argv)
    reps = 1 if args.quick else args.reps
    n = args.namespaces or (20 if args.quick else 300)
    warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
    bin_dir = find_cli()
    qdrant_dir = os.environ.get("MIXPEEK_QDRANT_BIN_DIR", "")
    if bin_dir is None or not qdrant_dir or not (Path(qdrant_dir) / "qdrant").is_file():
        missing = "the Pulumi CLI (tools/pulumi/install)" if bin_dir is None else \
            "the Qdrant server: export MIXPEEK_QDRANT_BIN_DIR=\"$(tools/qdrant/install | tail -n 1)\""
        return finish([Row("server_scale", f"up of {n} namespaces into one Qdrant server / floor", None, "x",
                           f"<= {GOAL}x", None, f"not available: {missing}")], args.json)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    sys.path.insert(0, str(ROOT / "tests"))
    from qdrant_client import QdrantClient
    from qdrant_server import QdrantServer

    use_bytecode_cache(WARM_IMPORTS + "; import qdrant_client")
    print(f"load average at start: {load()}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="mxss", dir="/tmp"))
    server = QdrantServer.with_key(Path(qdrant_dir) / "qdrant", workdir / "qdrant").start()
    client = QdrantClient(url=server.url, api_key=server.api_key, timeout=60, check_compatibility=False)
    env = {"PYTHONPATH": str(ROOT)}
    if not args.checkpoints:
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"
    times: dict[str, list[float]] = {"stack": [], "floor": [], "empty up": [], "direct": []}
    info: dict[str, list[float]] = {"stack destroy": [], "direct delete": []}
    memory: dict[str, dict[str, int]] = {}
    cpu: dict[str, dict[str, list[float]]] = {"stack": {}, "empty up": {}}
    loads: list[str] = []
    try:
        version = server.get("/").json()["version"]
        print(f"Qdrant {version} at {server.url}; N = {n}, {reps} round(s)", flush=True)
        (workdir / "direct.py").write_text(DIRECT.format(root=str(ROOT), prefix=PREFIX))
        for i in range(reps):
            stack_root = workdir / f"stack{i}"
            stack_root.mkdir()
            config = files_config(stack_root, n)
            config["config"]["mixpeek-infra:qdrant"] = server.target()
            body_path = workdir / "body.json"
            body_path.write_text((stack_root / "requests" / "bench_ns_0000.json").read_text())
            stack = new_project(stack_root, bin_dir, config, env=env)
            stack.run("config", "set", "--secret", "qdrantApiKey", server.api_key, "-s", STACK)
            empty = new_project(workdir / f"empty{i}", bin_dir, config, program="", env=env)
            empty.run("config", "set", "--secret", "qdrantApiKey", server.api_key, "-s", STACK)

            def run_stack(stack=stack) -> None:  # type: ignore[no-untyped-def]
                elapsed, memory["stack up"] = timed(stack, "up", "--yes", "--skip-preview", "-s", STACK,
                                                    cpu=cpu["stack"])
                times["stack"].append(elapsed)

            def run_floor(empty=empty, i=i, body_path=body_path) -> None:  # type: ignore[no-untyped-def]
                elapsed, _ = timed(empty, "up", "--yes", "--skip-preview", "-s", STACK, cpu=cpu["empty up"])
                times["empty up"].append(elapsed)
                start = time.perf_counter()
                subprocess.run([sys.executable, str(workdir / "direct.py"), server.url, str(n), str(i), str(body_path)],
                               check=True, env={**os.environ, "QDRANT_API_KEY": server.api_key})
                times["direct"].append(time.perf_counter() - start)
                times["floor"].append(times["empty up"][-1] + times["direct"][-1])

            for part in ((run_stack, run_floor) if i % 2 == 0 else (run_floor, run_stack)):
                part()
            loads.append(load())
            names = [c.name for c in client.get_collections().collections]
            made = sum(1 for c in names if not c.startswith(PREFIX))
            direct_made = sum(1 for c in names if c.startswith(PREFIX))
            if made != n or direct_made != n:
                raise RuntimeError(f"expected {n} collections of each, the server has {made} (stack) and "
                                   f"{direct_made} (direct)")
            print(f"round {i + 1}: stack up {fmt_s(times['stack'][-1])}, floor {fmt_s(times['floor'][-1])} "
                  f"(empty-program up {fmt_s(times['empty up'][-1])} + direct {fmt_s(times['direct'][-1])}): "
                  f"{times['stack'][-1] / times['floor'][-1]:.2f}x; load {loads[-1]}", flush=True)
            elapsed, memory["stack destroy"] = timed(stack, "destroy", "--yes", "--skip-preview", "-s", STACK)
            info["stack destroy"].append(elapsed)
            start = time.perf_counter()
            for name in names:
                if name.startswith(PREFIX):
                    client.delete_collection(name)
            info["direct delete"].append(time.perf_counter() - start)
            left = [c.name for c in client.get_collections().collections]
            print(f"  cleanup: stack destroy {fmt_s(info['stack destroy'][-1])}, direct deletes "
                  f"{fmt_s(info['direct delete'][-1])}; collections left {len(left)}", flush=True)
            if left:
                raise RuntimeError(f"{len(left)} collections left after the destroy: {left[:5]}")
            state = stack.export(STACK)["deployment"].get("resources", [])
            if any(not r["type"].startswith(("pulumi:pulumi:Stack", "pulumi:providers:")) for r in state):
                raise RuntimeError("resources left in the stack's state after `pulumi destroy`")
    finally:
        client.close()
        server.stop()
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    ratios = paired_ratios(times, "stack", "floor")
    print()
    print(table([[f"`pulumi up` of {n} namespaces into the server", fmt_s(median(times["stack"])),
                  ", ".join(fmt_s(t) for t in times["stack"])],
                 ["floor: empty-program up + direct qdrant-client", fmt_s(median(times["floor"])),
                  ", ".join(fmt_s(t) for t in times["floor"])],
                 ["· empty-program `pulumi up`", fmt_s(median(times["empty up"])),
                  ", ".join(fmt_s(t) for t in times["empty up"])],
                 ["· direct qdrant-client script", fmt_s(median(times["direct"])),
                  ", ".join(fmt_s(t) for t in times["direct"])],
                 ["stack destroy (not in the figure)", fmt_s(median(info["stack destroy"])), ""],
                 ["direct deletes (not in the figure)", fmt_s(median(info["direct delete"])), ""]],
                ["variant", "median", "rounds"]))
    print(f"\nstack / floor per round: {', '.join(f'{r:.2f}x' for r in ratios)}; load averages after each round: "
          f"{'; '.join(loads)}; at the end {load()}")
    print("peak RSS (KiB): " + "; ".join(f"{k}: {v}" for k, v in memory.items()))
    print("CPU seconds (median): " + "; ".join(
        f"{k}: " + ", ".join(f"{role} {median(v):.1f}" for role, v in sorted(roles.items()))
        for k, roles in cpu.items()))
    print(f"per namespace: stack {median(times['stack']) / n * 1e3:.0f} ms, direct {median(times['direct']) / n * 1e3:.0f} ms")
    rows = [Row("server_scale", f"up of {n} namespaces into one Qdrant server / (direct qdrant-client + empty up)",
                median(ratios), "x", f"<= {GOAL}x", median(ratios) <= GOAL,
                f"{fmt_s(median(times['stack']))} vs {fmt_s(median(times['floor']))}; "
                f"checkpoints {'on' if args.checkpoints else 'skipped'}; load {'; '.join(loads)}")]
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
