"""Final snapshot: before a collection is deleted or replaced, a restorable copy goes to `final_snapshot`.

Embedded: real Qdrant Edge shards in temp dirs; the snapshot is a tar of the flushed, closed shard,
and `restore_snapshot` brings back its points (payloads and every named vector), its payload
indexes (enforced: a filtered count works) and its owning namespace, which adopts it again.

Server: qdrant-client's local mode has no snapshots, so there the delete is refused (the refusal
path); the server path itself (create, download, restore by upload) runs against `FakeQdrant` of
tests/test_faults_qdrant.py extended with Qdrant's snapshot endpoints, which checks the API key on
every request. A real server is not available on these machines.

The stack config `mixpeek-infra:qdrant: {final_snapshot: DIR}` reaches the collection (mocks).
"""

from __future__ import annotations

import copy
import os
import pickle
import re
from email.parser import BytesParser
from urllib.parse import unquote, urlsplit

import pulumi
import pytest

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant import QdrantTarget, restore_snapshot
from mixpeek_infra.qdrant.resources import CollectionProvider, FinalSnapshotFailed, PayloadIndexProvider
from mixpeek_infra.qdrant.store import CollectionConflict, forget_stores, install_store, open_store
from mixpeek_infra.qdrant.store.edge import close_all_shards
from test_faults_qdrant import FakeQdrant, collection_inputs, create, wire

pytestmark = [pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning"),
              pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")]

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()
IMAGE = "image_extractor_v1_embedding"
KEY = "final-snapshot-key-31c7"


def checked(provider, news: dict, olds: dict | None = None) -> dict:
    result = provider.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


def points() -> list[dict]:
    titles = ["Summer Hits 2024", "Winter chill", "summer road trip"]
    out = []
    for i, title in enumerate(titles):
        vector = [0.0] * 768
        vector[i] = 1.0
        out.append({"id": i + 1, "vector": {IMAGE: vector},
                    "payload": {"collection_id": f"col_{i % 2}", "metadata": {"title": title}}})
    return out


def deploy(plan, target, **extra) -> dict:
    """The collection, every payload index, and three points written by an application."""
    coll = create(COLLECTIONS, collection_inputs(plan, target, **extra))
    for ix in plan.payload_indexes:
        create(INDEXES, {"target": target, "collection_name": coll["id"], "field_name": ix.field_name,
                         "field_type": ix.type, "field_schema": dict(ix.field_schema), **(
                             {"api_key": extra["api_key"]} if "api_key" in extra else {})})
    open_store(target, extra.get("api_key")).upsert(coll["id"], points())
    return coll


def assert_restored(root: str, name: str, plan) -> None:
    """Points with payloads and vectors, the payload indexes (in effect) and the vectors' config are back."""
    import qdrant_edge as qe

    store = open_store({"kind": "embedded", "path": root, "timeout": 10.0})
    state = store.read_collection(name)
    assert state.points_count == 3 and state.vectors == plan.vector_config()
    assert state.payload_schema == {ix.field_name: dict(ix.field_schema) for ix in plan.payload_indexes}
    assert store.count_points(name, [{"key": "metadata.title", "text": "summer"}]) == 2
    assert store.count_points(name, [{"key": "collection_id", "value": "col_0"}]) == 2
    close_all_shards()
    shard = qe.EdgeShard.load(os.path.join(root, name))
    try:
        records = {r.id: r for r in shard.retrieve([1, 2, 3], True, True)}
    finally:
        shard.close()
    for point in points():
        assert records[point["id"]].payload == point["payload"]
        assert records[point["id"]].vector[IMAGE] == pytest.approx(point["vector"][IMAGE])


@pytest.fixture(autouse=True)
def _clean():
    yield
    close_all_shards()
    forget_stores()


# ---------------------------------------------------------------------------------------------
# Embedded (Qdrant Edge)


def test_delete_takes_a_final_snapshot_that_restores_points_vectors_and_indexes(tmp_path, seed, monkeypatch):
    root, snaps = str(tmp_path / "qdrant"), str(tmp_path / "snapshots")
    plan = plan_namespace(seed)
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    coll = deploy(plan, target, deletion_protection=False, final_snapshot=snaps)
    name, namespace_id = coll["id"], coll["outputs"]["namespace_id"]
    assert coll["outputs"]["final_snapshot"] == snaps

    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    COLLECTIONS.delete(name, coll["outputs"])
    assert open_store(target).read_collection(name) is None
    [archive] = [os.path.join(snaps, f) for f in os.listdir(snaps)]
    assert re.fullmatch(re.escape(name) + r"-\d{8}T\d{6}\.\d{6}Z\.tar\.gz", os.path.basename(archive))
    assert any(archive in message and "restore_snapshot" in message for message in logged), logged

    state = restore_snapshot(archive, QdrantTarget(path=root))
    assert state.name == name and state.namespace_id == namespace_id and state.points_count == 3
    assert_restored(root, name, plan)
    # Its namespace adopts it again (another namespace would be refused: it is recorded as this one's).
    adopted = create(COLLECTIONS, collection_inputs(plan, target, namespace_id=namespace_id))
    assert adopted["id"] == name and adopted["outputs"]["points_count"] == 3

    close_all_shards()
    copy_state = restore_snapshot(archive, QdrantTarget(path=root), collection_name="restored_copy")
    assert copy_state.points_count == 3
    assert_restored(root, "restored_copy", plan)
    with pytest.raises(CollectionConflict, match="exists"):
        restore_snapshot(archive, QdrantTarget(path=root), collection_name="restored_copy")


def test_final_snapshot_set_in_place_then_taken_when_a_replace_deletes_the_old_collection(tmp_path, seed):
    """Set final_snapshot (an in-place update, like deletion_protection), then a replace snapshots the old one."""
    root, snaps = str(tmp_path / "qdrant"), str(tmp_path / "snapshots")
    plan = plan_namespace(seed)
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    coll = deploy(plan, target)
    name = coll["id"]

    news = checked(COLLECTIONS, collection_inputs(plan, target, deletion_protection=False, final_snapshot=snaps),
                   coll["inputs"])
    d = COLLECTIONS.diff(name, coll["outputs"], news)
    assert d.changes is True and d.replaces == []
    outs = wire(COLLECTIONS.update(name, coll["outputs"], news).outs)
    assert outs["final_snapshot"] == snaps and outs["points_count"] == 3

    # Moving the namespace to another Qdrant target needs a new collection there (a vector's new size migrates).
    replacement = checked(COLLECTIONS, collection_inputs(plan, {**target, "path": str(tmp_path / "elsewhere")},
                                                         deletion_protection=False, final_snapshot=snaps), news)
    assert COLLECTIONS.diff(name, outs, replacement).replaces  # the engine creates the new one, then deletes this
    COLLECTIONS.delete(name, outs)
    [archive] = os.listdir(snaps)
    restore_snapshot(os.path.join(snaps, archive), QdrantTarget(path=root))
    assert_restored(root, name, plan)


def test_a_failed_final_snapshot_refuses_the_delete(tmp_path, seed):
    root, snaps = str(tmp_path / "qdrant"), tmp_path / "snapshots"
    plan = plan_namespace(seed)
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    coll = deploy(plan, target, deletion_protection=False, final_snapshot=str(snaps))
    snaps.write_text("now a file: no snapshot can be written here")
    with pytest.raises(FinalSnapshotFailed) as info:
        COLLECTIONS.delete(coll["id"], coll["outputs"])
    message = str(info.value)
    assert "final_snapshot" in message and "nothing was deleted" in message
    assert_restored(root, coll["id"], plan)  # untouched
    # And the same path is refused at check (preview) from now on.
    result = COLLECTIONS.check({}, wire(collection_inputs(plan, target, final_snapshot=str(snaps))))
    assert [f.property for f in result.failures] == ["final_snapshot"]


def test_without_final_snapshot_nothing_is_written(tmp_path, seed):
    root = str(tmp_path / "qdrant")
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    coll = deploy(plan_namespace(seed), target, deletion_protection=False)
    assert coll["outputs"].get("final_snapshot") is None
    COLLECTIONS.delete(coll["id"], coll["outputs"])
    assert sorted(os.listdir(tmp_path)) == ["qdrant"]


# ---------------------------------------------------------------------------------------------
# Server


def test_local_mode_cannot_snapshot_so_the_delete_is_refused(tmp_path, seed):
    from qdrant_client import QdrantClient

    from mixpeek_infra.qdrant.store.server import ServerStore

    spec = {"kind": "server", "url": "https://qdrant.test:6333", "timeout": 5.0, "prefer_grpc": False}
    install_store(spec, ServerStore(QdrantClient(path=str(tmp_path / "local")), location=spec["url"]))
    plan = plan_namespace(seed)
    coll = create(COLLECTIONS, collection_inputs(plan, spec, deletion_protection=False,
                                                 final_snapshot=str(tmp_path / "snapshots")))
    open_store(spec).upsert(coll["id"], points())
    with pytest.raises(FinalSnapshotFailed, match="local mode"):
        COLLECTIONS.delete(coll["id"], coll["outputs"])
    assert open_store(spec).count_points(coll["id"]) == 3


class SnapshotQdrant(FakeQdrant):
    """FakeQdrant plus Qdrant's collection snapshot endpoints (create, download, delete, upload)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.snapshots: dict[str, bytes] = {}

    def _serve(self, h) -> None:
        path = unquote(urlsplit(h.path).path)
        m = re.fullmatch(r"/collections/([^/]+)/snapshots(?:/([^/]+))?", path)
        if not m:
            return super()._serve(h)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        with self.lock:
            self.requests.append((h.command, path))
        if h.headers.get("api-key") != self.api_key:
            return self._reply(h, 401, {"status": {"error": "Must provide an API key"}})
        name, snap = m.groups()
        with self.lock:
            if snap != "upload":
                name = self.aliases.get(name, name)
            if h.command == "POST" and snap is None:
                blob = pickle.dumps(self.collections[name])
                snap = f"{name}-1.snapshot"
                self.snapshots[snap] = blob
                return self._reply(h, 200, {"result": {"name": snap, "creation_time": None, "size": len(blob)},
                                            "status": "ok", "time": 0.0})
            if h.command == "GET" and snap in self.snapshots:
                blob = self.snapshots[snap]
                h.send_response(200)
                h.send_header("Content-Type", "application/octet-stream")
                h.send_header("Content-Length", str(len(blob)))
                h.end_headers()
                h.wfile.write(blob)
                return None
            if h.command == "DELETE" and snap is not None:
                self.snapshots.pop(snap, None)
                return self._reply(h, 200, {"result": True, "status": "ok", "time": 0.0})
            if h.command == "POST" and snap == "upload":
                message = BytesParser().parsebytes(f"Content-Type: {h.headers['Content-Type']}\r\n\r\n".encode() + raw)
                self.collections[name] = pickle.loads(message.get_payload()[0].get_payload(decode=True))
                return self._reply(h, 200, {"result": True, "status": "ok", "time": 0.0})
        return self._reply(h, 404, {"status": {"error": f"no route {h.command} {path}"}})


def test_server_snapshot_is_downloaded_and_restored_by_upload(tmp_path, seed):
    fake = SnapshotQdrant(api_key=KEY)
    try:
        spec = {"kind": "server", "url": fake.url, "timeout": 5.0, "prefer_grpc": False}
        snaps = str(tmp_path / "snapshots")
        plan = plan_namespace(seed)
        coll = deploy(plan, spec, api_key=KEY, deletion_protection=False, final_snapshot=snaps)
        name = coll["id"]
        COLLECTIONS.delete(name, coll["outputs"])
        assert name not in fake.collections and fake.snapshots == {}  # the server's copy was removed
        [archive] = os.listdir(snaps)
        assert archive.startswith(f"{name}-") and archive.endswith(".snapshot")

        state = restore_snapshot(os.path.join(snaps, archive), QdrantTarget(url=fake.url, api_key=KEY))
        assert state.name == name and state.points_count == 3 and state.vectors == plan.vector_config()
        assert state.payload_schema == {ix.field_name: dict(ix.field_schema) for ix in plan.payload_indexes}
        assert ("POST", f"/collections/{name}/snapshots/upload") in fake.requests
    finally:
        fake.close()


# ---------------------------------------------------------------------------------------------
# Stack config


def test_stack_config_final_snapshot_reaches_the_collection(seed):
    from stackmocks import FakeMocks, run_program

    def collection_inputs_for(config: dict) -> dict:
        mocks = FakeMocks()
        run_program(config, mocks)
        return {r.name: r.inputs.get("final_snapshot") for r in mocks.resources if r.typ.endswith(":QdrantCollection")}

    other = dict(copy.deepcopy(seed), namespace_name="other_ns")
    config = {"qdrant": {"path": ".mixpeek/qdrant", "final_snapshot": ".mixpeek/snapshots"},
              "ray": {"mode": "local"},
              "namespaces": [seed, {"request": other, "qdrant": {"path": ".mixpeek/qdrant",
                                                                 "final_snapshot": "elsewhere"}}]}
    assert collection_inputs_for(config) == {"spotify_playlists_dev-collection": ".mixpeek/snapshots",
                                             "other_ns-collection": "elsewhere"}
    config["qdrant"] = {"path": ".mixpeek/qdrant"}
    config["namespaces"] = [seed]
    assert collection_inputs_for(config) == {"spotify_playlists_dev-collection": None}


# ---------------------------------------------------------------------------------------------
# Issue 18 item 8: a snapshot's size follows its data


def test_a_snapshot_is_as_large_as_its_data_not_its_preallocation(tmp_path, seed):
    """3 points: the shard's preallocated WAL and mmap files (over 100 MB of zeros) are not stored, and the archive
    is compressed; the restore gives every file back at its full size, points, vectors and indexes intact."""
    root, snaps = str(tmp_path / "qdrant"), str(tmp_path / "snapshots")
    plan = plan_namespace(seed)
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    coll = deploy(plan, target, deletion_protection=False, final_snapshot=snaps)
    name = coll["id"]
    close_all_shards()
    shard = os.path.join(root, name)
    sizes = {os.path.relpath(os.path.join(b, f), shard): os.path.getsize(os.path.join(b, f))
             for b, _, files in os.walk(shard) for f in files}
    assert sum(sizes.values()) > 50 * 2**20  # the preallocation this is about
    COLLECTIONS.delete(name, coll["outputs"])
    [archive] = [os.path.join(snaps, f) for f in os.listdir(snaps)]
    assert os.path.getsize(archive) < 512 * 1024, os.path.getsize(archive)

    import json
    import tarfile

    with tarfile.open(archive) as tar:
        stored = {m.name.split("/", 1)[1]: m.size for m in tar.getmembers() if m.isfile()}
        full = json.load(tar.extractfile(f"{name}/mixpeek_snapshot.json"))["full_sizes"]
    assert sum(stored.values()) < 2**20 < sum(full.values())  # the zeros were not stored
    restore_snapshot(archive, QdrantTarget(path=root))
    restored = {os.path.relpath(os.path.join(b, f), shard): os.path.getsize(os.path.join(b, f))
                for b, _, files in os.walk(shard) for f in files}
    # every file back at its full size, nothing added (the manifest is removed)
    assert restored == {k: full.get(k, v) for k, v in stored.items() if k != "mixpeek_snapshot.json"}
    assert_restored(root, name, plan)


def test_adopting_a_restored_collection_says_so_with_its_points(tmp_path, seed, monkeypatch):
    """Issue 18 item 10: create that adopts an existing collection says so, with its point count; a create that
    creates says nothing of the kind."""
    root, snaps = str(tmp_path / "qdrant"), str(tmp_path / "snapshots")
    plan = plan_namespace(seed)
    target = {"kind": "embedded", "path": root, "timeout": 10.0}
    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "info", lambda message, *args, **kwargs: logged.append(message))
    coll = deploy(plan, target, deletion_protection=False, final_snapshot=snaps)
    assert not [m for m in logged if "adopted" in m], logged
    COLLECTIONS.delete(coll["id"], coll["outputs"])
    restore_snapshot(os.path.join(snaps, os.listdir(snaps)[0]), QdrantTarget(path=root))
    logged.clear()
    create(COLLECTIONS, collection_inputs(plan, target, namespace_id=coll["outputs"]["namespace_id"]))
    [said] = [m for m in logged if "adopted" in m]
    assert f"adopted the existing Qdrant collection {coll['id']!r}" in said and "with 3 point(s)" in said, said


# ---------------------------------------------------------------------------------------------
# Issue 18 items 9 and 10 through the real Pulumi CLI


def _cli_project(tmp_path):
    import yaml

    from pulumicli import ROOT, PulumiProject, cli_bin_dir

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # a salt there belongs to someone else's passphrase, not this project's
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "url": "ray://127.0.0.1:10001"}  # no head process
    config["config"]["mixpeek-infra:qdrant"]["final_snapshot"] = ".mixpeek/snapshots"
    [body] = config["config"]["mixpeek-infra:namespaces"]
    config["config"]["mixpeek-infra:namespaces"] = [{"request": body, "deletion_protection": False}]
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {"dev": config})
    proj.init("dev")
    return proj


@pytest.mark.pulumi_cli
def test_restore_after_pulumi_destroy_gives_back_every_index_and_adoption_says_so(tmp_path):
    """`pulumi destroy` with final_snapshot: the snapshot holds the points, vectors and every payload index with
    its params (the indexes are no longer dropped before their collection), so restoring it gives them all back;
    re-adopting it with namespace_id says in `pulumi up`'s output that a collection with 3 points was adopted."""
    from pulumicli import NS

    proj = _cli_project(tmp_path)
    qdrant = str(proj.root / ".mixpeek" / "qdrant")
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", "dev")
        ns_id = proj.outputs("dev")[NS]["namespace_id"]
        store = open_store({"kind": "embedded", "path": qdrant, "timeout": 10.0})
        declared = store.read_payload_indexes(ns_id)
        assert len(declared) == 7, declared
        store.upsert(ns_id, [{"id": i, "vector": {IMAGE: [0.1 * (i + 1)] * 768},
                              "payload": {"metadata": {"title": f"playlist {i}"}}} for i in (1, 2, 3)])
        close_all_shards()
        forget_stores()

        proj.run("destroy", "--yes", "--skip-preview", "-s", "dev")
        assert not os.path.exists(os.path.join(qdrant, ns_id))
        [archive] = os.listdir(proj.root / ".mixpeek" / "snapshots")
        state = restore_snapshot(str(proj.root / ".mixpeek" / "snapshots" / archive), QdrantTarget(path=qdrant))
        assert state.points_count == 3 and state.namespace_id == ns_id
        assert state.payload_schema == declared  # every index, with its params
        assert IMAGE in state.vectors
        close_all_shards()
        forget_stores()

        # Item 10: declared again with its namespace_id, the restored collection is adopted, and `up` says so.
        config = proj.read_stack("dev")
        config["config"]["mixpeek-infra:namespaces"][0]["namespace_id"] = ns_id
        proj.write_stack("dev", config)
        up = proj.run("up", "--yes", "--skip-preview", "-s", "dev")
        said = up.stdout + up.stderr
        assert f"adopted the existing Qdrant collection {ns_id!r}" in said and "with 3 point(s)" in said, said
        assert proj.outputs("dev")[NS]["namespace_id"] == ns_id
        assert open_store({"kind": "embedded", "path": qdrant, "timeout": 10.0}).count_points(ns_id) == 3
    finally:
        close_all_shards()
        forget_stores()
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "dev", check=False)


def _small_shard(root: str, name: str = "docs") -> str:
    from mixpeek_infra.qdrant.store.edge import EdgeStore

    store = EdgeStore(root)
    store.create_collection(name, {"v": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}},
                            {}, "ns_0123456789")
    store.upsert(name, [{"id": 1, "vector": {"v": [1.0, 0, 0, 0]}, "payload": {"a": 1}}])
    close_all_shards()
    return os.path.join(root, name)


def test_a_plain_tar_snapshot_of_an_earlier_version_still_restores(tmp_path):
    import tarfile

    shard = _small_shard(str(tmp_path / "old"))
    archive = str(tmp_path / "docs-20260101T000000.000000Z.tar")
    with tarfile.open(archive, "w") as tar:
        tar.add(shard, arcname="docs")
    state = restore_snapshot(archive, QdrantTarget(path=str(tmp_path / "new")))
    assert state.points_count == 1 and state.namespace_id == "ns_0123456789"


@pytest.mark.parametrize("manifest", [{"full_sizes": {"../../escape": 10}}, {"full_sizes": {"wal/open-1": 2**50}},
                                      {"full_sizes": {"wal/open-1": 1}}, {"full_sizes": "x"}])
def test_a_snapshot_with_a_hostile_size_manifest_is_refused_and_creates_nothing(tmp_path, manifest):
    """The sizes manifest is data: only files of the archive, only grown, at most 1 TiB, or the restore is refused."""
    import io
    import json
    import tarfile

    from mixpeek_infra.qdrant.store import QdrantError
    from mixpeek_infra.qdrant.store.edge import EdgeStore

    _small_shard(str(tmp_path / "old"))
    archive = EdgeStore(str(tmp_path / "old")).snapshot("docs", str(tmp_path / "snaps"))
    hostile = str(tmp_path / "docs-20260101T000000.000000Z.tar.gz")
    with tarfile.open(archive) as src, tarfile.open(hostile, "w:gz") as out:
        for member in src.getmembers():
            if member.name == "docs/mixpeek_snapshot.json":
                data = json.dumps(manifest).encode()
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))
            else:
                out.addfile(member, src.extractfile(member) if member.isfile() else None)
    root = tmp_path / "new"
    with pytest.raises(QdrantError, match="mixpeek_snapshot.json"):
        restore_snapshot(hostile, QdrantTarget(path=str(root)))
    assert not (root / "docs").exists() and not (tmp_path / "escape").exists()
    assert [p for p in os.listdir(root) if not p.endswith(".lock")] == []
