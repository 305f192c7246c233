"""On a real Qdrant server: round trips per namespace (providers vs qdrant-client), and `pulumi up` of 20 namespaces.

The seed namespace (tests/data/seed.json: one collection, 3 named vectors, 7 payload indexes) is
created on the Qdrant server that tools/qdrant/install builds (`MIXPEEK_QDRANT_BIN_DIR`), started on
loopback with an API key by `tests/qdrant_server.py`, interleaved, a new collection name each round:

- **providers**: `CollectionProvider.check` + `create`, then `PayloadIndexProvider.check` + `create` for
  each index, as the engine calls them (`bench/provisioning.py`'s `provider_path`), through
  `ServerStore` over REST;
- **direct**: the same with qdrant-client alone (`direct_script`): the collection `<name>-g1`, 7
  `create_payload_index(wait=True)`, and the alias `<name>` users query it by, as the providers make
  it (a migration re-points that alias). Without the alias the script takes one request fewer
  (printed too).

Round trips are counted at the HTTP client (every request qdrant-client sends through httpx in this
process). Goal (issue 20): providers / direct <= 1.25x in round trips. The time ratio is printed too.

Then, through the real Pulumi CLI (`bench/engine_up.py`'s projects), `--engine-reps` interleaved rounds
(+1 warm-up) on the same server:

- **stack**: `pulumi up --yes --skip-preview` of the dev stack's namespace copied 20 times under distinct
  names (`bench/engine_preview.py`'s `stack_config`), its Qdrant target this server with `qdrantApiKey`
  set as a secret, Ray the shared cluster URL (no head): 20 collections and 140 payload indexes; then
  `pulumi destroy` (not timed);
- **floor**: `pulumi up` of an empty Python program with the same config (the engine, language host
  and interpreter start-up every `up` pays), plus the same 20 collections and indexes created one after
  the other by qdrant-client in this process (`direct_script`, qdrant-client already imported; the
  collections deleted after, not timed).

Goal (issue 20): stack / floor <= 1.3x (median of the per-round ratios). The engine creates resources
side by side where the script goes one by one, which favours the stack; everything else it pays
(the program, the provider host, the providers' checks and reads) counts against it.
"""

from __future__ import annotations

import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    ROOT,
    Row,
    arg_parser,
    finish,
    fmt_s,
    interleave,
    median,
    paired_ratios,
    table,
    use_bytecode_cache,
)
from bench.provisioning import direct_client, provider_path, seed_plan

GOAL = 1.25
ENGINE_GOAL = 1.3
ENGINE_NAMESPACES = 20


def direct_script(plan: Any, client: Any, name: str) -> None:
    """What the providers make, by hand with qdrant-client: the collection `<name>-g1` with its indexes
    (`direct_client`), and the alias `<name>` users query it by (which a migration re-points)."""
    from qdrant_client import models as qm

    direct_client(plan, client, f"{name}-g1")
    client.update_collection_aliases(change_aliases_operations=[
        qm.CreateAliasOperation(create_alias=qm.CreateAlias(collection_name=f"{name}-g1", alias_name=name))])


def delete_everything(client: Any) -> None:
    """Every collection on the bench's own server (their aliases go with them)."""
    for c in client.get_collections().collections:
        client.delete_collection(c.name)


class RequestLog:
    """Every HTTP request httpx sends in this process, as (method, path with the collection name as {name})."""

    def __init__(self) -> None:
        import httpx

        self.requests: list[tuple[str, str]] = []
        self._httpx = httpx
        self._send = httpx.Client.send
        log = self

        def send(client: Any, request: Any, *args: Any, **kwargs: Any) -> Any:
            log.requests.append((request.method, request.url.path))
            return log._send(client, request, *args, **kwargs)

        httpx.Client.send = send

    def take(self, name: str) -> Counter:
        counted = Counter(f"{m} {p.replace(name, '{name}')}" for m, p in self.requests)
        self.requests.clear()
        return counted

    def close(self) -> None:
        self._httpx.Client.send = self._send


def requests_part(server: Any, plan: Any, reps: int) -> list[Row]:
    """The seed namespace through the providers vs qdrant-client: requests and time per namespace."""
    import os

    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store import forget_stores

    log = RequestLog()
    counts: dict[str, Counter] = {}
    spec = {"kind": "server", "url": server.url, "timeout": 30.0, "prefer_grpc": False}
    direct = QdrantClient(url=server.url, api_key=server.api_key, timeout=30, check_compatibility=False)
    rounds = iter(range(10**9))
    try:
        def providers() -> float:
            log.take("")
            start = time.perf_counter()
            coll, _ = provider_path(plan, spec)
            elapsed = time.perf_counter() - start
            counts["providers"] = log.take(coll["collection_name"])
            forget_stores()
            return elapsed

        def direct_path() -> float:
            name = f"ns_direct{next(rounds):05d}"
            log.take("")
            start = time.perf_counter()
            direct_script(plan, direct, name)
            elapsed = time.perf_counter() - start
            counts["direct"] = log.take(name)
            return elapsed

        os.environ["QDRANT_URL"], os.environ["QDRANT_API_KEY"] = server.url, server.api_key  # the ambient key
        print(f"seed namespace on Qdrant {server.get('/').json()['version']} at {server.url}: "
              f"{reps} interleaved rounds (+1 warm-up)")
        times = interleave({"providers": providers, "direct": direct_path}, reps)
    finally:
        delete_everything(direct)
        direct.close()
        log.close()
    ratios = paired_ratios(times, "providers", "direct")
    n_p, n_d = sum(counts["providers"].values()), sum(counts["direct"].values())
    print()
    print(table([["providers (ServerStore, REST)", n_p, fmt_s(median(times["providers"]))],
                 ["direct qdrant-client", n_d, fmt_s(median(times["direct"]))]],
                ["path", "requests", "time (median)"]))
    print(f"\nrequests: providers {dict(sorted(counts['providers'].items()))}\n"
          f"          direct    {dict(sorted(counts['direct'].items()))}")
    print(f"without the alias the direct script takes {n_d - 1}: {n_p / (n_d - 1):.2f}x")
    print(f"time ratio per round: median {median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")
    return [Row("qdrant_server", "requests per namespace, providers / direct", n_p / n_d, "x", f"<= {GOAL}x",
                n_p / n_d <= GOAL, f"{n_p} vs {n_d} requests"),
            Row("qdrant_server", "time per namespace, providers / direct", median(ratios), "x", "", None,
                f"{fmt_s(median(times['providers']))} vs {fmt_s(median(times['direct']))}")]


def engine_part(server: Any, plan: Any, reps: int, workdir: Path) -> list[Row]:
    """`pulumi up` of 20 namespaces into the server vs an empty program's `up` + the same work by qdrant-client."""
    import os

    from qdrant_client import QdrantClient

    from bench.engine_preview import stack_config
    from bench.engine_up import EMPTY_PROGRAM, STACK, WARM_IMPORTS, failure_text, find_cli, new_project, run_timed

    metric = f"up of {ENGINE_NAMESPACES} namespaces into the server, stack / (empty up + qdrant-client)"
    bin_dir = find_cli()
    if bin_dir is None:
        return [Row("qdrant_server", metric, None, "x", f"<= {ENGINE_GOAL}x", None,
                    "the Pulumi CLI is not on PATH (tools/pulumi/install)")]
    use_bytecode_cache(WARM_IMPORTS)
    config = stack_config(ENGINE_NAMESPACES)
    config.pop("encryptionsalt", None)  # the dev stack's salt is for the empty passphrase, not the tests' one
    config["config"]["mixpeek-infra:qdrant"] = {"url": server.url, "timeout": 30}
    projects = {}
    for name, program in (("stack", None), ("empty", EMPTY_PROGRAM)):
        projects[name] = new_project(workdir / name, bin_dir, config, program=program, env={"PYTHONPATH": str(ROOT)})
        projects[name].run("config", "set", "--secret", "qdrantApiKey", server.api_key, "-s", STACK)
    client = QdrantClient(url=server.url, api_key=server.api_key, timeout=30, check_compatibility=False)
    parts: dict[str, list[float]] = {"empty up": [], "qdrant-client": []}
    rounds = iter(range(10**9))

    def collections() -> list[str]:
        return [c.name for c in client.get_collections().collections]

    def pulumi(project: Any, *args: str) -> float:
        elapsed, proc, _ = run_timed(project, *args, "-s", STACK)
        if proc.returncode != 0:
            raise RuntimeError(failure_text(args, proc))
        return elapsed

    def stack() -> float:
        elapsed = pulumi(projects["stack"], "up", "--yes", "--skip-preview")
        if len(collections()) != ENGINE_NAMESPACES:
            raise RuntimeError(f"expected {ENGINE_NAMESPACES} collections on the server, found {collections()}")
        pulumi(projects["stack"], "destroy", "--yes", "--skip-preview")
        return elapsed

    def floor() -> float:
        empty = pulumi(projects["empty"], "up", "--yes", "--skip-preview")
        pulumi(projects["empty"], "destroy", "--yes", "--skip-preview")
        i = next(rounds)
        names = [f"ns_floor{i:03d}{k:03d}" for k in range(ENGINE_NAMESPACES)]
        start = time.perf_counter()
        for name in names:
            direct_script(plan, client, name)
        direct = time.perf_counter() - start
        delete_everything(client)
        parts["empty up"].append(empty)
        parts["qdrant-client"].append(direct)
        return empty + direct

    print(f"\n`pulumi up` of {ENGINE_NAMESPACES} namespaces into Qdrant at {server.url}: {reps} interleaved rounds "
          f"(+1 warm-up); load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}", flush=True)
    try:
        times = interleave({"stack": stack, "floor": floor}, reps)
    finally:
        delete_everything(client)
        client.close()
    ratios = paired_ratios(times, "stack", "floor")
    empty, direct = median(parts["empty up"][1:]), median(parts["qdrant-client"][1:])
    print(table([["stack: `pulumi up`", fmt_s(median(times["stack"])), " ".join(fmt_s(t) for t in times["stack"])],
                 ["floor: empty `up` + qdrant-client", fmt_s(median(times["floor"])),
                  " ".join(fmt_s(t) for t in times["floor"])],
                 ["  empty `pulumi up`", fmt_s(empty), ""], ["  qdrant-client, 20 namespaces", fmt_s(direct), ""]],
                ["path", "time (median)", "rounds"]))
    print(f"ratio per round: {' '.join(f'{r:.2f}x' for r in ratios)}; median {median(ratios):.2f}x; "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    return [Row("qdrant_server", metric, median(ratios), "x", f"<= {ENGINE_GOAL}x", median(ratios) <= ENGINE_GOAL,
                f"{fmt_s(median(times['stack']))} vs {fmt_s(median(times['floor']))} "
                f"({fmt_s(empty)} empty up + {fmt_s(direct)} qdrant-client)")]


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=15)
    parser.add_argument("--engine-reps", type=int, default=3, help="rounds of the 20-namespace `up` (default 3)")
    parser.add_argument("--only", choices=("requests", "engine"), help="run one of the two parts")
    args = parser.parse_args(argv)
    reps = 5 if args.quick else args.reps
    engine_reps = 1 if args.quick else args.engine_reps
    warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
    sys.path.insert(0, str(ROOT / "tests"))
    import os

    from qdrant_server import QdrantServer

    bin_dir = os.environ.get("MIXPEEK_QDRANT_BIN_DIR", "")
    if not bin_dir or not (Path(bin_dir) / "qdrant").is_file():
        print("qdrant_server: not available: run `export MIXPEEK_QDRANT_BIN_DIR=\"$(tools/qdrant/install | tail -n 1)\"`")
        return finish([Row("qdrant_server", "requests per namespace, providers / direct", None, "x",
                           f"<= {GOAL}x", None, "no Qdrant server built")], args.json)
    plan = seed_plan()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-qdrant-server-") as workdir:
        server = QdrantServer.with_key(Path(bin_dir) / "qdrant", Path(workdir) / "qdrant").start()
        try:
            if args.only in (None, "requests"):
                rows += requests_part(server, plan, reps)
            if args.only in (None, "engine"):
                rows += engine_part(server, plan, engine_reps, Path(workdir))
        finally:
            server.stop()
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
