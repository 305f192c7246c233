"""Final snapshot size: an embedded (Qdrant Edge) collection's snapshot against the same points as JSON.

The seed namespace's collection (its 3 named vectors and 7 payload indexes) on Qdrant Edge in a temp
dir, with 0, 3 and 10,000 points (each a random 768-d `image_extractor_v1_embedding` vector and a
small payload), snapshotted the way a delete with `final_snapshot` does (`EdgeStore.snapshot`), then
restored (`restore_snapshot`). Reported per size: the archive's bytes, the shard's apparent size on
disk (what an uncompressed tar of it held before: Edge preallocates its WAL and mmap files), the bytes
of the same points as compact JSON (ids, vectors as Python floats, payloads), the ratio
snapshot / JSON, and the seconds to write and to restore the snapshot (context only).

Goal (docs/performance.md): a snapshot's size follows its data: under 1 MB for an empty or 3-point
collection, and no larger than the same points as JSON.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Row, arg_parser, finish, load_seed, table

SIZES = (0, 3, 10_000)
VECTOR = "image_extractor_v1_embedding"
SMALL = 1 << 20


def _points(n: int, dim: int) -> list[dict]:
    rng = random.Random(7)
    return [{"id": i + 1, "vector": {VECTOR: [rng.uniform(-1, 1) for _ in range(dim)]},
             "payload": {"collection_id": f"col_{i % 5}", "metadata": {"title": f"playlist {i + 1}",
                                                                       "description": "keyword"}}}
            for i in range(n)]


def _apparent_size(path: str) -> int:
    return sum(os.path.getsize(os.path.join(b, f)) for b, _, files in os.walk(path) for f in files)


def measure(n: int, work: str) -> dict:
    from mixpeek_infra.plan import plan_namespace
    from mixpeek_infra.qdrant import QdrantTarget, restore_snapshot
    from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

    plan = plan_namespace(load_seed())
    root, snaps = os.path.join(work, f"qdrant-{n}"), os.path.join(work, f"snapshots-{n}")
    store = EdgeStore(root)
    name = "ns_00000bench"
    store.create_collection(name, plan.vector_config(), {}, "ns_00000bench")
    for ix in plan.payload_indexes:
        store.create_payload_index(name, ix.field_name, dict(ix.field_schema))
    points = _points(n, plan.vector_config()[VECTOR]["size"])
    for start in range(0, n, 500):
        store.upsert(name, points[start:start + 500])
    close_all_shards()
    shard_bytes = _apparent_size(os.path.join(root, name))
    json_bytes = len(json.dumps(points, separators=(",", ":")).encode())

    began = time.perf_counter()
    archive = store.snapshot(name, snaps)
    write_s = time.perf_counter() - began
    store.delete_collection(name)
    began = time.perf_counter()
    state = restore_snapshot(archive, QdrantTarget(path=root))
    restore_s = time.perf_counter() - began
    assert state.points_count == n and set(state.payload_schema) == {ix.field_name for ix in plan.payload_indexes}
    close_all_shards()
    return {"points": n, "snapshot": os.path.getsize(archive), "shard": shard_bytes, "json": json_bytes,
            "write_s": write_s, "restore_s": restore_s}


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], 1)
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="mixpeek-bench-snapshot-")
    try:
        results = [measure(n, work) for n in SIZES]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(table([[r["points"], f"{r['snapshot']:,}", f"{r['shard']:,}", f"{r['json']:,}",
                  f"{r['snapshot'] / r['json']:.2f}" if r["json"] > 2 else "-", f"{r['write_s']:.2f}",
                  f"{r['restore_s']:.2f}"] for r in results],
                ["points", "snapshot B", "shard on disk B", "same points as JSON B", "snapshot/JSON", "write s",
                 "restore s"]))
    rows = []
    for r in results:
        if r["points"] <= 3:
            rows.append(Row("snapshot_size", f"snapshot, {r['points']} points", r["snapshot"], "B", "< 1 MB",
                            r["snapshot"] < SMALL, f"shard on disk {r['shard']:,} B"))
        else:
            ratio = r["snapshot"] / r["json"]
            rows.append(Row("snapshot_size", f"snapshot / JSON, {r['points']} points", round(ratio, 3), "x",
                            "<= 1.0", ratio <= 1.0, f"{r['snapshot']:,} B vs {r['json']:,} B"))
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
