"""A migration killed (SIGKILL) at its steps, then run again: the next run finishes it, nothing is lost (issue 22).

A process migrates a collection of 3,000 points (`migration.migrate`); it stops at one of its steps
and is killed there: right after the new generation is created (nothing copied), after the copy
(its indexes about to be made), or with the generation complete (the switch about to happen). The
step is reached through a wrapper of the store's own call in the killed process, so the kill lands
there however loaded the machine. Readers by the collection's name see the old collection or the new one;
after the next run the collection has the new config, every point with its payload and unchanged
vector, and its indexes; exactly one previous collection is kept. On Edge and on a real server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

from mixpeek_infra.qdrant.migration import migrate
from mixpeek_infra.qdrant.store import forget_stores
from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

pytestmark = pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")

ROOT = Path(__file__).resolve().parent.parent
N = 3000
NS = "ns_00000000cc"
OLD = {"kept": {"size": 16, "distance": "cosine", "datatype": "float32", "on_disk": False},
       "changed": {"size": 8, "distance": "cosine", "datatype": "float32", "on_disk": False}}
NEW = {**OLD, "changed": {**OLD["changed"], "size": 12}}
INDEXES = {"tenant": {"type": "keyword", "is_tenant": False}, "n": {"type": "integer", "lookup": True, "range": True}}

RUN = textwrap.dedent("""
    import json, sys
    from mixpeek_infra.qdrant.migration import migrate
    spec = json.loads(sys.argv[1])
    if spec["kind"] == "embedded":
        from mixpeek_infra.qdrant.store.edge import EdgeStore
        store = EdgeStore(spec["path"], timeout=120)
    else:
        from mixpeek_infra.qdrant.store.server import ServerStore
        store = ServerStore.connect(spec["url"], api_key=spec["api_key"], timeout=120)
    real = getattr(store, spec["pause_in"])
    calls = []

    def pause(*args, **kwargs):
        if spec["pause_in"] == "create_generation":
            real(*args, **kwargs)
        print("paused", flush=True)
        sys.stdin.read()  # until killed

    setattr(store, spec["pause_in"], pause)
    migrate(store, "docs", spec["ns"], spec["new"], {}, retain_previous=True)
    print("finished", flush=True)
""")
#: where a killed migration stops: just after the new generation exists, after the copy, before the switch
STEPS = {"created": "create_generation", "copied": "create_payload_index", "complete": "switch"}


def fill(store) -> None:
    store.create_collection("docs", OLD, {}, NS)
    for field_name, schema in INDEXES.items():
        store.create_payload_index("docs", field_name, schema)
    points = [{"id": i + 1, "vector": {"kept": [float((i + j) % 7 + 1) for j in range(16)],
                                       "changed": [1.0] * 8}, "payload": {"tenant": f"t{i % 3}", "n": i}}
              for i in range(N)]
    for i in range(0, N, 500):
        store.upsert("docs", points[i:i + 500])


def killed_at(spec: dict, step: str) -> None:
    """Run a migration in another process until it reaches `step`, and SIGKILL it there."""
    proc = subprocess.Popen([sys.executable, "-c", RUN, json.dumps({**spec, "ns": NS, "new": NEW,
                                                                   "pause_in": STEPS[step]})],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        line = proc.stdout.readline()  # blocks until the step is reached (or the process ends)
        assert line.strip() == "paused", (line, proc.stderr.read() if proc.poll() is not None else "")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)


def assert_finished(store) -> None:
    state = store.read_collection("docs")
    assert state.vectors["changed"]["size"] == 12 and state.points_count == N and not state.staging
    if store.reads_payload_indexes:
        assert state.payload_schema == INDEXES
    assert store.count_points("docs", [{"key": "tenant", "value": "t1"}]) == N // 3
    [kept] = store.generations("docs", NS).values()
    assert kept.vectors["changed"]["size"] == 8 and kept.points_count == N


@pytest.mark.parametrize("step", list(STEPS))
def test_edge_migration_killed_then_finished(tmp_path, step):
    root = tmp_path / "qdrant"
    store = EdgeStore(str(root), timeout=120)
    fill(store)
    close_all_shards()
    killed_at({"kind": "embedded", "path": str(root)}, step)
    # Readers by the name see the whole old collection: nothing was switched.
    state = store.read_collection("docs")
    assert state.points_count == N and state.vectors["changed"]["size"] == 8
    assert store.read_collection("docs-g1").staging is (step != "complete")
    close_all_shards()
    migrate(store, "docs", NS, NEW, {}, retain_previous=True)
    assert_finished(store)
    close_all_shards()


@pytest.mark.qdrant_server
@pytest.mark.parametrize("step", list(STEPS))
def test_server_migration_killed_then_finished(qdrant_server, step):  # noqa: F811
    store = qdrant_server.store(timeout=120)
    try:
        for name in ("docs", *(f"docs-g{i}" for i in range(1, 5))):
            store.delete_collection(name)
        fill(store)
        killed_at({"kind": "server", "url": qdrant_server.url, "api_key": qdrant_server.api_key}, step)
        state = store.read_collection("docs")
        assert state.points_count == N and state.vectors["changed"]["size"] == 8
        assert store.read_collection("docs-g2").staging is (step != "complete")
        migrate(store, "docs", NS, NEW, {}, retain_previous=True)
        assert_finished(store)
    finally:
        for name in ("docs", *store.generations("docs", NS)):
            store.delete_collection(name)
        store.close()
        forget_stores()


@pytest.mark.qdrant_server
def test_server_switch_of_a_collection_made_before_aliases_killed_between_its_two_steps(qdrant_server):  # noqa: F811
    """The pre-alias collection was deleted and its name not yet made the alias: the next run makes the alias to
    the complete generation, which holds every point."""
    store = qdrant_server.store(timeout=120)
    try:
        store._create("legacy", OLD, {}, {"mixpeek_namespace_id": NS})  # made by an earlier version: no alias
        store.upsert("legacy", [{"id": 1, "vector": {"kept": [1.0] * 16}, "payload": {"n": 1}}])
        store.create_generation("legacy-g1", NEW, {}, NS)
        store.copy_points("legacy", "legacy-g1", ["kept"])
        store.finish_generation("legacy-g1")
        store.client.delete_collection("legacy")  # the kill lands here
        assert store.read_collection("legacy") is None
        done = migrate(store, "legacy", NS, NEW, {}, retain_previous=True)
        assert done.generation == "legacy-g1"
        state = store.read_collection("legacy")
        assert state.points_count == 1 and state.vectors["changed"]["size"] == 12
    finally:
        store.delete_collection("legacy")
        store.close()
        forget_stores()
