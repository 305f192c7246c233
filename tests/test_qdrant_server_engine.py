"""The prod stack through the real engine against a real Qdrant server (tiers `pulumi_cli` + `qdrant_server`).

stacks/Pulumi.prod.yaml with its Qdrant target switched to the test server (`tests/qdrant_server.py`)
and `qdrantApiKey` set as a secret; Ray: the shared cluster URL for every head (`{mode: external}`),
so no Kubernetes. Everything asserted is read back from the server itself or is the engine's answer.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import yaml

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant import QdrantTarget, restore_snapshot
from mixpeek_infra.qdrant.store import forget_stores
from pulumicli import PulumiProject, cli_bin_dir, kill_group, ops_by_name
from qdrant_server import QdrantServer, qdrant_server, qdrant_server_factory, wait_for  # noqa: F401 - fixtures

pytestmark = [pytest.mark.pulumi_cli, pytest.mark.qdrant_server,
              pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
CATALOG, VIDEO = "product_catalog", "video_moderation"
RAY_URL = "ray://127.0.0.1:10001"


def prod_stack(server: QdrantServer, **qdrant: object) -> dict:
    """stacks/Pulumi.prod.yaml with the Qdrant target on `server` and every Ray head the shared cluster URL."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    config["config"]["mixpeek-infra:qdrant"] = server.target(**qdrant)
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "shared_url": RAY_URL}
    return config


def requests(proj: PulumiProject) -> dict[str, dict]:
    """The stack's request bodies by namespace name, from its stack file."""
    out = {}
    for entry in proj.read_stack(STACK)["config"]["mixpeek-infra:namespaces"]:
        body = entry["request"] if "request" in entry else entry
        out[body["namespace_name"]] = body
    return out


def edit_entries(proj: PulumiProject, edit) -> None:
    """Apply `edit(entry)` to every namespace entry of the stack file, each in its `{request, key}` form."""
    config = proj.read_stack(STACK)
    entries = []
    for entry in config["config"]["mixpeek-infra:namespaces"]:
        if "request" not in entry:
            entry = {"request": entry, "key": entry["namespace_name"]}
        edit(entry)
        entries.append(entry)
    config["config"]["mixpeek-infra:namespaces"] = entries
    proj.write_stack(STACK, config)


def edit_catalog(proj: PulumiProject, edit) -> dict[str, str]:
    """Apply `edit(request, entry)` to the product_catalog entry; the preview's op per changed resource."""
    def one(entry):
        if entry["request"]["namespace_name"] == CATALOG or entry.get("key") == CATALOG:
            edit(entry["request"], entry)
    edit_entries(proj, one)
    return {name: op for name, op in ops_by_name(proj.preview_steps(STACK)).items() if op != "same"}


def destroy(proj: PulumiProject) -> None:
    """Protection off, then destroy (what a test leaves is gone whatever it did)."""
    def unprotect(entry):
        entry["deletion_protection"] = False
    try:
        edit_entries(proj, unprotect)
        proj.run("cancel", "--yes", check=False, timeout=60)
        proj.run("up", "--yes", "--skip-preview", "-s", STACK, check=False)
    finally:
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", STACK, check=False)
        forget_stores()


@pytest.fixture
def project(tmp_path, qdrant_server):
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: prod_stack(qdrant_server)})
    proj.init(STACK)
    proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", STACK)
    yield proj
    destroy(proj)


@pytest.fixture
def store(qdrant_server):
    s = qdrant_server.store()
    yield s
    s.close()


def _points(vector: str, size: int, n: int = 3) -> list[dict]:
    return [{"id": i + 1, "vector": {vector: [0.1 * (i + 1)] * size},
             "payload": {"metadata": {"sku": f"sku-{i}", "price": 9.5 + i, "title": f"item {i}"}}} for i in range(n)]


def test_prod_stack_up_reads_back_from_the_server_then_no_change_preview_and_destroy(project, store):
    project.run("up", "--yes", "-s", STACK)
    out = project.outputs(STACK)
    bodies = requests(project)
    ids = {}
    for name in (CATALOG, VIDEO):
        ns = out[name]
        ids[name] = ns_id = ns["namespace_id"]
        plan = plan_namespace(bodies[name])
        state = store.read_collection(ns_id)
        assert state is not None, f"{name}: collection {ns_id} is not on the server"
        # Every vector param and every index param, as the server reports them.
        assert state.vectors == plan.vector_config()
        assert state.payload_schema == {ix.field_name: ix.field_schema for ix in plan.payload_indexes}
        assert state.namespace_id == ns_id, "the owner record is not in the collection's metadata"
        assert state.points_count == 0
        assert ns["namespace"]["namespace_id"] == ns_id and ns["namespace"]["document_count"] == 0
        assert {ix["field_name"] for ix in ns["namespace"]["payload_indexes"]} == set(state.payload_schema)
        assert ns["vector_inference_map"] == plan.vector_inference_map
        assert ns["infrastructure"]["ray_head_node_url"] == RAY_URL
    assert store.read_collection(ids[VIDEO]).settings["replication_factor"] == 2
    assert store.read_payload_indexes(ids[VIDEO])["metadata.duration_s"] == {"type": "integer", "lookup": False,
                                                                             "range": True}
    assert store.read_payload_indexes(ids[VIDEO])["metadata.channel_id"] == {"type": "keyword", "is_tenant": True}

    project.run("preview", "--expect-no-changes", "-s", STACK)

    project.run("destroy", "--yes", "-s", STACK)
    for ns_id in ids.values():
        assert store.read_collection(ns_id) is None
    assert project.resources(STACK) == []


def test_every_pr_table_row_and_refresh_on_the_server(project, store):
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    ns_id = project.outputs(STACK)[CATALOG]["namespace_id"]
    store.upsert(ns_id, _points("image_extractor_v1_embedding", 768))
    prefix = f"{CATALOG}-index-"

    # Add a custom payload index -> create.
    ops = edit_catalog(project, lambda body, e: body["payload_indexes"].append(
        {"field_name": "metadata.title", "type": "text"}))
    assert ops == {f"{prefix}metadata.title": "create"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    assert store.read_payload_indexes(ns_id)["metadata.title"]["type"] == "text"

    # Change an index's params -> update of that index, re-created on the server with them.
    ops = edit_catalog(project, lambda body, e: body["payload_indexes"][-1].update(
        field_schema={"type": "text", "tokenizer": "prefix", "min_token_len": 3, "max_token_len": 12,
                      "lowercase": False}))
    assert ops == {f"{prefix}metadata.title": "update"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    assert store.read_collection(ns_id).payload_schema["metadata.title"] == {
        "type": "text", "tokenizer": "prefix", "min_token_len": 3, "max_token_len": 12, "lowercase": False}

    # Remove a custom payload index -> delete.
    ops = edit_catalog(project, lambda body, e: body["payload_indexes"].pop(0))
    assert ops == {f"{prefix}metadata.sku": "delete"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    assert "metadata.sku" not in store.read_collection(ns_id).payload_schema

    # Add an extractor -> the collection is updated in place: the server adds the named vector, points kept.
    ops = edit_catalog(project, lambda body, e: body["feature_extractors"].append(
        {"feature_extractor_name": "multimodal_extractor", "version": "v1"}))
    assert ops == {f"{CATALOG}-collection": "update"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    state = store.read_collection(ns_id)
    assert state.vectors == plan_namespace(requests(project)[CATALOG]).vector_config()
    assert state.points_count == 3
    assert project.outputs(STACK)[CATALOG]["namespace_id"] == ns_id

    # Rename with renamed_from -> no resource changes, same collection.
    def rename(body, entry):
        body["namespace_name"] = "catalog"
        entry["key"] = "catalog"
        entry["renamed_from"] = [CATALOG]
    ops = edit_catalog(project, rename)
    assert ops == {}, ops
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    assert project.outputs(STACK)["catalog"]["namespace_id"] == ns_id

    # Out-of-band index delete -> refresh drops it from the state; the next up re-creates it.
    assert store.delete_payload_index(ns_id, "metadata.price")
    project.run("refresh", "--yes", "--skip-preview", "-s", STACK)
    names = {r["urn"].split("::")[-1] for r in project.resources(STACK)}
    assert "catalog-index-metadata.price" not in names and "catalog-index-metadata.title" in names
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    assert store.read_collection(ns_id).payload_schema["metadata.price"] == {"type": "float"}
    project.run("preview", "--expect-no-changes", "-s", STACK)
    assert store.read_collection(ns_id).points_count == 3


def test_protection_then_final_snapshot_through_the_server_and_restore(project, store, qdrant_server, tmp_path):
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    ns_id = project.outputs(STACK)[CATALOG]["namespace_id"]
    points = _points("image_extractor_v1_embedding", 768)
    store.upsert(ns_id, points)
    before = store.read_collection(ns_id)

    refused = project.run("destroy", "--yes", "--skip-preview", "-s", STACK, check=False)
    said = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "it holds 3 point(s) and deletion_protection is on" in said, said
    assert qdrant_server.url in said and qdrant_server.api_key not in said
    assert store.count_points(ns_id) == 3

    snapshots = tmp_path / "final-snapshots"
    config = project.read_stack(STACK)
    config["config"]["mixpeek-infra:qdrant"]["final_snapshot"] = str(snapshots)
    project.write_stack(STACK, config)

    def unprotect(entry):
        entry["deletion_protection"] = False
    edit_entries(project, unprotect)
    project.run("up", "--yes", "--skip-preview", "-s", STACK)
    done = project.run("destroy", "--yes", "--skip-preview", "-s", STACK)
    assert store.read_collection(ns_id) is None
    [archive] = sorted(snapshots.glob(f"{ns_id}-*.snapshot"))
    assert str(archive) in done.stdout + done.stderr or archive.name in done.stdout + done.stderr

    restored = restore_snapshot(str(archive), QdrantTarget.server(qdrant_server.url, api_key=qdrant_server.api_key))
    try:
        assert restored.name == ns_id and restored.namespace_id == ns_id
        assert restored.vectors == before.vectors
        assert restored.points_count == 3
        # The payload indexes are back after the server's snapshot recovery; `before` had them all.
        state = store.read_collection(ns_id)
        assert state.payload_schema == before.payload_schema
        assert state.settings == before.settings
        hits = store.query(ns_id, "image_extractor_v1_embedding", [0.3] * 768,
                           [{"key": "metadata.sku", "value": "sku-2"}])
        assert [h["id"] for h in hits] == [3]
        assert hits[0]["payload"] == points[2]["payload"]
    finally:
        store.delete_collection(ns_id)


def _failed_up(proj: PulumiProject) -> str:
    proc = proj.run("up", "--yes", "--skip-preview", "-s", STACK, check=False)
    assert proc.returncode != 0, proc.stdout
    return proc.stdout + proc.stderr


def test_a_wrong_or_missing_api_key_fails_naming_the_server_never_the_key(tmp_path, qdrant_server, store):
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: prod_stack(qdrant_server)})
    proj.init(STACK)
    wrong = "qk-wrong-" + qdrant_server.api_key[::-1]
    try:
        proj.run("config", "set", "--secret", "qdrantApiKey", wrong, "-s", STACK)
        said = _failed_up(proj)
        assert f"Qdrant at {qdrant_server.url} refused" in said and "HTTP 401" in said, said
        assert "check the API key" in said
        assert wrong not in said and qdrant_server.api_key not in said
        proj.run("config", "rm", "qdrantApiKey", "-s", STACK)
        said = _failed_up(proj)
        assert f"Qdrant at {qdrant_server.url} refused" in said and "HTTP 401" in said, said
        assert qdrant_server.api_key not in said
        assert proj.resources(STACK) == [] or all(
            r["type"].startswith(("pulumi:", "mixpeek:index:")) for r in proj.resources(STACK))
    finally:
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", STACK, check=False)


def test_server_killed_mid_up_then_restarted_the_next_up_converges(tmp_path, qdrant_server_factory):
    server = qdrant_server_factory()
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: prod_stack(server, timeout=15)})
    proj.init(STACK)
    proj.run("config", "set", "--secret", "qdrantApiKey", server.api_key, "-s", STACK)
    log = tmp_path / "up.log"
    proc = proj.start("up", "--yes", "--skip-preview", "-s", STACK, log=log)
    try:
        # Kill the server once both collections exist (each one's alias is made last) and the engine is creating
        # payload indexes: an `up` killed between its collections' creates is not this test's case (the create
        # that was cut off leaves an empty collection under an id no state records: docs/qdrant.md, Faults).
        def both_collections_and_indexing() -> bool:
            return (len(server.get("/aliases").json()["result"]["aliases"]) == 2
                    and "QdrantPayloadIndex" in log.read_text(errors="replace"))

        wait_for(both_collections_and_indexing, 300, "both collections created and the engine creating payload indexes",
                 alive=lambda: None if proc.poll() is None else f"up ended first:\n{log.read_text()}")
        server.kill()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            kill_group(proc, signal.SIGKILL)
            proc.wait(timeout=60)
    said = log.read_text(errors="replace")
    assert proc.returncode != 0, f"the update finished before the server was killed:\n{said}"
    assert server.url in said and server.api_key not in said
    assert "did not answer" in said, said[-3000:]

    server.start()
    proj.run("up", "--yes", "--skip-preview", "-s", STACK)
    proj.run("preview", "--expect-no-changes", "-s", STACK)
    out = proj.outputs(STACK)
    s = server.store()
    try:
        for name in (CATALOG, VIDEO):
            state = s.read_collection(out[name]["namespace_id"])
            plan = plan_namespace(requests(proj)[name])
            assert state.vectors == plan.vector_config()
            assert state.payload_schema == {ix.field_name: ix.field_schema for ix in plan.payload_indexes}
        aliases = {a.alias_name: a.collection_name for a in s.client.get_aliases().aliases}
        assert set(aliases) == {out[CATALOG]["namespace_id"], out[VIDEO]["namespace_id"]}
        listed = {c.name for c in s.client.get_collections().collections}
        assert listed == set(aliases.values()), "a leftover collection"
    finally:
        s.close()
        destroy(proj)


def test_grpc_target_up_read_back_no_change_preview_and_destroy(tmp_path, qdrant_server):
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: prod_stack(qdrant_server, prefer_grpc=True)})
    proj.init(STACK)
    proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", STACK)
    s = qdrant_server.store(prefer_grpc=True)
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", STACK)
        out = proj.outputs(STACK)
        for name in (CATALOG, VIDEO):
            state = s.read_collection(out[name]["namespace_id"])
            plan = plan_namespace(requests(proj)[name])
            assert state.vectors == plan.vector_config()
            assert state.payload_schema == {ix.field_name: ix.field_schema for ix in plan.payload_indexes}
            assert state.namespace_id == out[name]["namespace_id"]
        proj.run("preview", "--expect-no-changes", "-s", STACK)
        proj.run("destroy", "--yes", "--skip-preview", "-s", STACK)
        for name in (CATALOG, VIDEO):
            assert s.read_collection(out[name]["namespace_id"]) is None
    finally:
        s.close()
        destroy(proj)


def test_state_lost_then_namespace_id_adopts_the_collection_and_another_namespace_is_refused(tmp_path, qdrant_server,
                                                                                            store):
    """Adoption by `namespace_id` on the server: the stack's state is removed (`stack rm --force`, the collection
    kept, with points); the namespace declared again with its namespace_id adopts it and `up` says so; another
    stack whose namespace has another namespace_id and names that collection is refused at preview, naming its
    owner, and the collection is left as it was."""
    config = prod_stack(qdrant_server)
    [body] = [e for e in config["config"]["mixpeek-infra:namespaces"] if e.get("namespace_name") == CATALOG]
    config["config"]["mixpeek-infra:namespaces"] = [{"request": body, "deletion_protection": False}]
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: config})
    proj.init(STACK)
    proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", STACK)
    ns_id = None
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", STACK)
        ns_id = proj.outputs(STACK)[CATALOG]["namespace_id"]
        store.upsert(ns_id, _points("image_extractor_v1_embedding", 768))
        proj.run("stack", "rm", "--force", "--yes", "--preserve-config", "-s", STACK)
        assert store.read_collection(ns_id).points_count == 3  # only the state went

        proj.init(STACK)
        proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", STACK)
        edit_entries(proj, lambda entry: entry.update(namespace_id=ns_id))
        up = proj.run("up", "--yes", "--skip-preview", "-s", STACK)
        said = up.stdout + up.stderr
        assert (f"adopted the existing Qdrant collection {ns_id!r} at {qdrant_server.url} with 3 point(s) as "
                f"namespace {ns_id}") in said, said
        assert proj.outputs(STACK)[CATALOG]["namespace_id"] == ns_id
        proj.run("preview", "--expect-no-changes", "-s", STACK)

        other = {"request": {**body, "infrastructure": {"qdrant_collection": ns_id}},
                 "namespace_id": "ns_00000000aa", "deletion_protection": False}
        proj.write_stack("other", {"config": {**config["config"], "mixpeek-infra:namespaces": [other]}})
        proj.init("other")
        proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", "other")
        refused = proj.run("preview", "-s", "other", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0
        assert (f"Qdrant collection {ns_id!r} at {qdrant_server.url} belongs to namespace {ns_id}" in said
                and "refusing to adopt it for namespace ns_00000000aa" in said), said
        assert qdrant_server.api_key not in said
        state = store.read_collection(ns_id)
        assert state.namespace_id == ns_id and state.points_count == 3
    finally:
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "other", check=False)
        destroy(proj)
        if ns_id is not None:
            store.delete_collection(ns_id)
