"""Blue/green migration (issue 22): copy throughput against a direct scroll-and-upsert, and queries during the switch.

A collection of N points (N = 10,000 and 100,000), each with a kept 64-d vector `kept`, a 32-d
vector `changed` and a small payload, with one keyword and one integer payload index, is migrated
to `changed` at 48 dimensions by `mixpeek_infra.qdrant.migration.migrate` (new generation, copy of
every point with its payload and `kept`, indexes re-created, switch). The baseline moves the same
points the direct way: create a collection with the new config, scroll the old one and upsert each
page (256 points, the same page size), create the two indexes. Both run on the same source, one
after the other, alternating which goes first; the ratio is migrate / direct (goal <= 1.2x).

The timed rounds run alone; one more migration runs with a query loop in a thread by the collection's name (a server: through
qdrant-client, by the alias; Edge: through the same store, in the same process, since an Edge shard
is open in one process at a time) and counts answers, errors and answers missing a point of a fixed
set of 10 (goal: 0 errors, 0 missing); after it, the collection holds all N points (goal: 0 lost).

On a real Qdrant server (tools/qdrant/install; MIXPEEK_QDRANT_BIN_DIR) and on Qdrant Edge. The ratio is
the median of the rounds' paired ratios (`--reps`, default 1).
"""

from __future__ import annotations

import os
import random
import shutil
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, table

GOAL = 1.2
SIZES = (10_000, 100_000)
OLD = {"kept": {"size": 64, "distance": "cosine", "datatype": "float32", "on_disk": False},
       "changed": {"size": 32, "distance": "cosine", "datatype": "float32", "on_disk": False}}
NEW = {**OLD, "changed": {**OLD["changed"], "size": 48}}
INDEXES = {"tenant": {"type": "keyword", "is_tenant": False}, "n": {"type": "integer", "lookup": True, "range": True}}
WATCHED = list(range(1, 11))  # the points every query must find
NS = "ns_00000000bb"


def _points(n: int) -> list[dict[str, Any]]:
    rng = random.Random(11)
    return [{"id": i + 1, "vector": {"kept": [rng.uniform(-1, 1) for _ in range(64)],
                                     "changed": [rng.uniform(-1, 1) for _ in range(32)]},
             "payload": {"tenant": f"t{i % 7}", "n": i}} for i in range(n)]


def _fill(store: Any, name: str, n: int) -> None:
    store.create_collection(name, OLD, {}, NS)
    for field_name, schema in INDEXES.items():
        store.create_payload_index(name, field_name, schema)
    points = _points(n)
    for i in range(0, n, 1000):
        store.upsert(name, points[i:i + 1000])


class QueryLoop:
    """Queries `name` by its `kept` vector, filtered to the watched ids, until stopped."""

    def __init__(self, query: Any) -> None:
        self.query, self.answers, self.errors, self.missing = query, 0, [], 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                found = self.query()
                self.answers += 1
                if set(found) != set(WATCHED):
                    self.missing += 1
            except Exception as exc:  # noqa: BLE001 - every failure is the finding
                self.errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    def __enter__(self) -> QueryLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=300)


def _server_direct(client: Any, source: str, dest: str) -> None:
    from qdrant_client import models as qm

    client.create_collection(dest, vectors_config={
        k: qm.VectorParams(size=v["size"], distance=qm.Distance.COSINE) for k, v in NEW.items()})
    offset = None
    while True:
        records, offset = client.scroll(source, limit=256, offset=offset, with_payload=True, with_vectors=["kept"])
        if records:
            client.upsert(dest, [qm.PointStruct(id=r.id, vector=r.vector, payload=r.payload) for r in records],
                          wait=True)
        if offset is None:
            break
    client.create_payload_index(dest, "tenant", qm.KeywordIndexParams(type="keyword", is_tenant=False), wait=True)
    client.create_payload_index(dest, "n", qm.IntegerIndexParams(type="integer", lookup=True, range=True), wait=True)


def _edge_direct(root: str, source: str, dest: str) -> None:
    import qdrant_edge as qe

    from mixpeek_infra.qdrant.store.edge import _edge_config, _index_params

    src = qe.EdgeShard.load(os.path.join(root, source))
    dst = qe.EdgeShard.create(os.path.join(root, dest), _edge_config(NEW, {}))
    try:
        offset = None
        while True:
            records, offset = src.scroll(qe.ScrollRequest(offset=offset, limit=256, with_payload=True,
                                                          with_vector=["kept"]))
            if records:
                dst.update(qe.UpdateOperation.upsert_points([qe.Point(r.id, dict(r.vector), r.payload)
                                                             for r in records]))
            if offset is None:
                break
        for field_name, schema in INDEXES.items():
            dst.update(qe.UpdateOperation.create_field_index(field_name, _index_params(schema)))
        dst.flush()
    finally:
        src.close()
        dst.close()


def measure(kind: str, store: Any, n: int, reps: int, *, client: Any = None, root: str = "") -> dict[str, Any]:
    from mixpeek_infra.qdrant.migration import migrate
    from mixpeek_infra.qdrant.store.edge import close_all_shards

    times: dict[str, list[float]] = {"migrate": [], "direct": []}
    loops: list[QueryLoop] = []
    lost = 0
    for rep in range(reps + 1):  # the last round: a migration under a query loop, not timed
        name = f"c{n}_{rep}"
        _fill(store, name, n)
        if kind == "embedded":
            close_all_shards()
        if kind == "server":
            from qdrant_client import models as qm

            def query(name: str = name) -> list[int]:
                hits = client.query_points(name, query=[1.0] * 64, using="kept", limit=10, query_filter=qm.Filter(
                    must=[qm.HasIdCondition(has_id=WATCHED)])).points
                return [h.id for h in hits]
        else:
            def query(name: str = name) -> list[int]:
                return _edge_watched(store, name)

        def migrated(name: str = name) -> float:
            start = time.perf_counter()
            migrate(store, name, NS, NEW, {}, retain_previous=True)
            return time.perf_counter() - start

        def direct(name: str = name) -> float:
            start = time.perf_counter()
            if kind == "server":
                _server_direct(client, name, f"{name}_direct")
            else:
                close_all_shards()
                _edge_direct(root, name, f"{name}_direct")
            return time.perf_counter() - start

        if rep == reps:
            with QueryLoop(query) as loop:
                migrate(store, name, NS, NEW, {}, retain_previous=True)
            loops.append(loop)
        else:
            order = [("migrate", migrated), ("direct", direct)]
            for label, run in order if rep % 2 == 0 else order[::-1]:
                times[label].append(run())
        if kind == "embedded":
            close_all_shards()
        lost += n - store.count_points(name)
        store.delete_collection(name)  # keep the machine's memory to one source at a time
        for other in store.generations(name, NS):
            store.delete_collection(other)
        if rep < reps:
            if kind == "server":
                client.delete_collection(f"{name}_direct")
            else:
                shutil.rmtree(os.path.join(root, f"{name}_direct"), ignore_errors=True)
    ratio = sorted(a / b for a, b in zip(times["migrate"], times["direct"]))[len(times["direct"]) // 2]
    return {"kind": kind, "points": n, "migrate_s": min(times["migrate"]), "direct_s": min(times["direct"]),
            "ratio": ratio, "answers": sum(loop.answers for loop in loops),
            "errors": [e for loop in loops for e in loop.errors], "missing": sum(loop.missing for loop in loops),
            "lost": lost}


def _edge_watched(store: Any, name: str) -> list[int]:
    conditions = [{"key": "n", "value": i - 1} for i in WATCHED]
    found: list[int] = []
    for condition in conditions:
        found += [h["id"] for h in store.query(name, "kept", [1.0] * 64, conditions=[condition], limit=1)]
    return found


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], 1)
    parser.add_argument("--only", choices=("server", "embedded"))
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    warnings.filterwarnings("ignore", message="Api key is used with an insecure connection")
    results = []
    work = tempfile.mkdtemp(prefix="mixpeek-bench-migration-")
    try:
        if args.only in (None, "embedded"):
            from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

            root = os.path.join(work, "edge")
            store = EdgeStore(root, timeout=120)
            for n in sizes:
                results.append(measure("embedded", store, n, args.reps, root=store.root))
            close_all_shards()
        if args.only in (None, "server"):
            bin_dir = os.environ.get("MIXPEEK_QDRANT_BIN_DIR", "")
            if not bin_dir or not (Path(bin_dir) / "qdrant").is_file():
                print("migration (server): not available: run "
                      "`export MIXPEEK_QDRANT_BIN_DIR=\"$(tools/qdrant/install | tail -n 1)\"`")
            else:
                sys.path.insert(0, str(ROOT / "tests"))
                from qdrant_client import QdrantClient
                from qdrant_server import QdrantServer

                server = QdrantServer.with_key(Path(bin_dir) / "qdrant", Path(work) / "qdrant").start()
                try:
                    store = server.store(timeout=300)
                    client = QdrantClient(url=server.url, api_key=server.api_key, timeout=300,
                                          check_compatibility=False)
                    for n in sizes:
                        results.append(measure("server", store, n, args.reps, client=client))
                finally:
                    server.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table([[r["kind"], f"{r['points']:,}", f"{r['migrate_s']:.2f}", f"{r['direct_s']:.2f}", f"{r['ratio']:.2f}",
                  r["answers"], len(r["errors"]), r["missing"], r["lost"]] for r in results],
                ["target", "points", "migrate s", "direct s", "migrate/direct", "queries answered", "query errors",
                 "answers missing a point", "points lost"]))
    for r in results:
        for e in r["errors"][:3]:
            print(f"  {r['kind']} {r['points']}: {e}")
    rows = []
    for r in results:
        label = f"{r['kind']}, {r['points']:,} points"
        rows.append(Row("migration", f"copy: migrate / scroll+upsert, {label}", round(r["ratio"], 3), "x",
                        f"<= {GOAL}", r["ratio"] <= GOAL, f"{r['migrate_s']:.2f} s vs {r['direct_s']:.2f} s"))
        bad = len(r["errors"]) + r["missing"] + r["lost"]
        rows.append(Row("migration", f"query errors + missing answers + lost points, {label}", bad, "", "0",
                        bad == 0 and r["answers"] > 0, f"{r['answers']} queries answered during the migration"))
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
