"""Server round trips and time per namespace on a real Qdrant server: the providers vs a direct qdrant-client script.

The seed namespace (tests/data/seed.json: one collection, 3 named vectors, 7 payload indexes) is
created on the Qdrant server that tools/qdrant/install builds (`MIXPEEK_QDRANT_BIN_DIR`), started on
loopback with an API key by `tests/qdrant_server.py`, interleaved, a new collection name each round:

- **providers**: `CollectionProvider.check` + `create`, then `PayloadIndexProvider.check` + `create` for
  each index, as the engine calls them (`bench/provisioning.py`'s `provider_path`), through
  `ServerStore` over REST;
- **direct**: the same collection and indexes with qdrant-client alone (`direct_client`: one
  `create_collection`, 7 `create_payload_index(wait=True)`).

Round trips are counted at the HTTP client (every request qdrant-client sends through httpx in this
process). Goal (issue 20): providers / direct <= 1.25x in round trips. The time ratio is printed too.
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

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, interleave, median, paired_ratios, table
from bench.provisioning import direct_client, provider_path, seed_plan

GOAL = 1.25


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


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=15)
    args = parser.parse_args(argv)
    reps = 5 if args.quick else args.reps
    warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
    sys.path.insert(0, str(ROOT / "tests"))
    import os

    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store import forget_stores
    from qdrant_server import QdrantServer

    bin_dir = os.environ.get("MIXPEEK_QDRANT_BIN_DIR", "")
    if not bin_dir or not (Path(bin_dir) / "qdrant").is_file():
        print("qdrant_server: not available: run `export MIXPEEK_QDRANT_BIN_DIR=\"$(tools/qdrant/install | tail -n 1)\"`")
        return finish([Row("qdrant_server", "requests per namespace, providers / direct", None, "x",
                           f"<= {GOAL}x", None, "no Qdrant server built")], args.json)
    plan = seed_plan()
    log = RequestLog()
    counts: dict[str, Counter] = {}
    with tempfile.TemporaryDirectory(prefix="bench-qdrant-server-") as workdir:
        server = QdrantServer.with_key(Path(bin_dir) / "qdrant", Path(workdir)).start()
        spec = {"kind": "server", "url": server.url, "timeout": 30.0, "prefer_grpc": False}
        direct = QdrantClient(url=server.url, api_key=server.api_key, timeout=30, check_compatibility=False)
        made: list[str] = []
        rounds = iter(range(10**9))
        try:
            def providers() -> float:
                log.take("")
                start = time.perf_counter()
                coll, _ = provider_path(plan, spec)
                elapsed = time.perf_counter() - start
                made.append(coll["collection_name"])
                counts["providers"] = log.take(coll["collection_name"])
                forget_stores()
                return elapsed

            def direct_path() -> float:
                name = f"ns_direct{next(rounds):05d}"
                log.take("")
                start = time.perf_counter()
                direct_client(plan, direct, name)
                elapsed = time.perf_counter() - start
                made.append(name)
                counts["direct"] = log.take(name)
                return elapsed

            os.environ["QDRANT_URL"], os.environ["QDRANT_API_KEY"] = server.url, server.api_key  # the ambient key
            print(f"seed namespace on Qdrant {server.get('/').json()['version']} at {server.url}: "
                  f"{reps} interleaved rounds (+1 warm-up)")
            times = interleave({"providers": providers, "direct": direct_path}, reps)
        finally:
            for name in made:
                try:
                    direct.delete_collection(name)
                except Exception:  # noqa: BLE001 - best effort
                    pass
            direct.close()
            log.close()
            server.stop()
    ratios = paired_ratios(times, "providers", "direct")
    n_p, n_d = sum(counts["providers"].values()), sum(counts["direct"].values())
    print()
    print(table([["providers (ServerStore, REST)", n_p, fmt_s(median(times["providers"]))],
                 ["direct qdrant-client", n_d, fmt_s(median(times["direct"]))]],
                ["path", "requests", "time (median)"]))
    print(f"\nrequests: providers {dict(sorted(counts['providers'].items()))}\n"
          f"          direct    {dict(sorted(counts['direct'].items()))}")
    print(f"time ratio per round: median {median(ratios):.2f}x, range {min(ratios):.2f}-{max(ratios):.2f}x")
    rows = [Row("qdrant_server", "requests per namespace, providers / direct", n_p / n_d, "x", f"<= {GOAL}x",
                n_p / n_d <= GOAL, f"{n_p} vs {n_d} requests"),
            Row("qdrant_server", "time per namespace, providers / direct", median(ratios), "x", "", None,
                f"{fmt_s(median(times['providers']))} vs {fmt_s(median(times['direct']))}")]
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
