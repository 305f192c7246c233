"""The real engine: the Pulumi CLI built by tools/pulumi/install runs the dev stack on a copy of the
project (file backend, own PULUMI_HOME, offline), and every answer asserted here is the engine's own.

CI sets MIXPEEK_REQUIRE_PULUMI_CLI=1, so this tier fails there rather than skipping.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from mixpeek_infra.qdrant.store import forget_stores, open_store
from mixpeek_infra.ray.local import process_info
from pulumicli import (LOCAL_HEAD, NS, SEED_VECTORS, PulumiProject, assert_seed_outputs, cli_bin_dir, kill_group,
                       ops_by_name, ray_sessions, wait_dead)
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.pulumi_cli

ROOT = Path(__file__).resolve().parent.parent


def dev_stack() -> dict:
    """stacks/Pulumi.dev.yaml as the README runs it, with one CPU for the local head."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # a salt there belongs to someone else's passphrase, not this project's
    config["config"]["mixpeek-infra:ray"]["num_cpus"] = 1
    return config


@pytest.fixture
def project(tmp_path):
    bin_dir = cli_bin_dir()
    proj = PulumiProject(tmp_path / "proj", bin_dir, {"dev": dev_stack()})
    proj.init("dev")
    yield proj
    # Leave nothing behind whatever the test did: destroy with protection off, then kill leftovers.
    _cleanup(proj)


def _cleanup(proj: PulumiProject) -> None:
    try:
        pids = _head_pids(proj)
    except Exception:  # noqa: BLE001 - state may be unreadable after a killed engine
        pids = []
    config = proj.read_stack("dev") or {}
    for entry in config.get("config", {}).get("mixpeek-infra:namespaces", []):
        if isinstance(entry, dict) and "request" in entry:
            entry["deletion_protection"] = False
    if config:
        proj.write_stack("dev", config)
    proj.run("cancel", "--yes", check=False, timeout=60)
    proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "dev", check=False)
    for session in set(pids) | ray_sessions(proj):
        try:
            os.killpg(session, signal.SIGKILL)
        except ProcessLookupError:
            pass
    forget_stores()


def _head_pids(proj: PulumiProject) -> list[int]:
    return [int(r["outputs"]["pid"]) for r in proj.resources("dev")
            if r["type"] == LOCAL_HEAD and "pid" in r.get("outputs", {})]


def _store(proj: PulumiProject):
    return open_store({"kind": "embedded", "path": str(proj.root / ".mixpeek" / "qdrant")})


def _ray_task(url: str) -> str:
    code = ("import ray, sys; ray.init(sys.argv[1], logging_level='ERROR'); "
            "print(ray.get(ray.remote(lambda: 'pong').remote())); ray.shutdown()")
    done = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=180)
    return done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-2000:]


def test_readme_dev_stack_up_outputs_shard_ray_then_no_changes_then_destroy(project):
    up = project.run("up", "--yes", "-s", "dev")
    assert "error" not in up.stderr.lower(), up.stderr

    out = project.outputs("dev")[NS]
    ns_id = assert_seed_outputs(out)
    model = out["namespace"]

    # Read back after the engine (and its provider host) exited: the shard is closed and complete.
    store = _store(project)
    state = store.read_collection(ns_id)
    assert state is not None and state.points_count == 0
    assert {k: (v["size"], v["distance"]) for k, v in state.vectors.items()} == SEED_VECTORS
    indexes = store.read_payload_indexes(ns_id)
    assert indexes["metadata.title"] == {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                         "max_token_len": 15, "lowercase": True}
    assert indexes["metadata.description"] == {"type": "keyword", "is_tenant": True}
    assert indexes["collection_id"] == {"type": "keyword", "is_tenant": True}
    assert set(indexes) == {ix["field_name"] for ix in model["payload_indexes"]}
    forget_stores()

    # The local head outlived the engine and runs work.
    url = out["infrastructure"]["ray_head_node_url"]
    assert url.startswith("ray://127.0.0.1:")
    [pid] = _head_pids(project)
    assert process_info(pid) is not None
    assert _ray_task(url) == "pong"

    project.run("preview", "--expect-no-changes", "-s", "dev")

    project.run("destroy", "--yes", "-s", "dev")
    assert not (project.root / ".mixpeek" / "qdrant" / ns_id).exists()
    assert wait_dead(pid), "the Ray head survived pulumi destroy"
    assert project.resources("dev") == []


def _namespace_entry(proj: PulumiProject) -> dict:
    """The dev stack's one namespace entry, turned into the override form `{request, key}`."""
    config = proj.read_stack("dev")
    [entry] = config["config"]["mixpeek-infra:namespaces"]
    if "request" not in entry:
        entry = {"request": entry, "key": NS}
    return entry


def _write_entry(proj: PulumiProject, entry: dict) -> None:
    config = proj.read_stack("dev")
    config["config"]["mixpeek-infra:namespaces"] = [entry]
    proj.write_stack("dev", config)


def _edit_and_preview(proj: PulumiProject, edit) -> dict[str, str]:
    """Apply `edit(request, entry)` to the stack file; the engine's op per custom resource."""
    entry = _namespace_entry(proj)
    edit(entry["request"], entry)
    _write_entry(proj, entry)
    return ops_by_name(proj.preview_steps("dev"))


def _changed(ops: dict[str, str]) -> dict[str, str]:
    return {name: op for name, op in ops.items() if op != "same"}


COLLECTION = f"{NS}-collection"


def test_every_row_of_the_readme_pr_preview_table(project):
    """Each README row performed for real: the preview's op per resource, then `up`, data kept."""
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    ns_id = project.outputs("dev")[NS]["namespace_id"]

    # Row: description / namespace_name (with the entry's `key` fixed): outputs only.
    ops = _edit_and_preview(project, lambda body, e: body.update(description="Spotify playlists, v2"))
    assert _changed(ops) == {}, ops
    ops = _edit_and_preview(project, lambda body, e: body.update(namespace_name="spotify_playlists"))
    assert _changed(ops) == {}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    out = project.outputs("dev")
    assert out["spotify_playlists"]["namespace_id"] == ns_id
    assert out["spotify_playlists"]["namespace"]["description"] == "Spotify playlists, v2"

    # Points the remaining rows must keep (written while no engine runs).
    store = _store(project)
    store.upsert(ns_id, [{"id": i, "vector": {"image_extractor_v1_embedding": [0.1 * (i + 1)] * 768},
                          "payload": {"metadata": {"title": f"playlist {i}"}}} for i in range(3)])
    forget_stores()

    # Row: add a custom payload index -> create.
    ops = _edit_and_preview(project, lambda body, e: body["payload_indexes"].append(
        {"field_name": "metadata.year", "type": "integer"}))
    assert _changed(ops) == {f"{NS}-index-metadata.year": "create"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")

    # Row: change a payload index's params -> update of that index.
    ops = _edit_and_preview(project, lambda body, e: body["payload_indexes"][0]["field_schema"].update(
        min_token_len=3))
    assert _changed(ops) == {f"{NS}-index-metadata.title": "update"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")

    # Row: remove a custom payload index -> delete.
    ops = _edit_and_preview(project, lambda body, e: body["payload_indexes"].pop(1))
    assert _changed(ops) == {f"{NS}-index-metadata.description": "delete"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")

    # Row: add a feature extractor -> update of the collection (named vector added in place).
    ops = _edit_and_preview(project, lambda body, e: body["feature_extractors"].append(
        {"feature_extractor_name": "text_extractor", "version": "v1"}))
    assert _changed(ops) == {COLLECTION: "update"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")

    store = _store(project)
    state = store.read_collection(ns_id)
    indexes = store.read_payload_indexes(ns_id)
    forget_stores()
    assert state.points_count == 3, "a row that promises 'kept' lost points"
    assert state.vectors["text_extractor_v1_embedding"]["size"] == 1024
    assert indexes["metadata.year"]["type"] == "integer"
    assert indexes["metadata.title"]["min_token_len"] == 3
    assert "metadata.description" not in indexes

    # Row: remove an extractor -> update of the collection: its named vectors dropped in place, points kept.
    ops = _edit_and_preview(project, lambda body, e: body.update(feature_extractors=[
        x for x in body["feature_extractors"] if x["feature_extractor_name"] != "image_extractor"]))
    assert _changed(ops) == {COLLECTION: "update"}, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    assert project.outputs("dev")["spotify_playlists"]["namespace_id"] == ns_id
    state = _store(project).read_collection(ns_id)
    forget_stores()
    assert "image_extractor_v1_embedding" not in state.vectors and state.points_count == 3
    assert "text_extractor_v1_embedding" in state.vectors

    # Row: a version whose vectors have other names -> update: migrate (the old vectors kept in the previous one).
    def multimodal(dims):
        def edit(body, e):
            [mm] = [x for x in body["feature_extractors"] if x["feature_extractor_name"] == "multimodal_extractor"]
            mm.update(version="v2", feature_extractor_id="multimodal_extractor_v2",
                      params={"output_dimensionality": dims})
        return edit
    assert _changed(_edit_and_preview(project, multimodal(1536))) == {COLLECTION: "update"}
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    store = _store(project)
    assert store.read_collection(ns_id).points_count == 3
    [previous] = store.generations(ns_id, ns_id)
    assert "multimodal_extractor_v1_multimodal_embedding" in store.read_collection(previous).vectors
    assert store.count_points(previous) == 3
    forget_stores()

    # Row: change an extractor's vectors under the same names (a vector's size) -> update: migrate. With points and
    # protection on nothing is refused: every point is copied, the namespace keeps its id, the previous collection
    # is kept.
    entry = _namespace_entry(project)
    multimodal(768)(entry["request"], entry)
    _write_entry(project, entry)
    preview = project.run("preview", "--diff", "-s", "dev")
    said = preview.stdout + preview.stderr
    assert "migrate: 3 point(s) copied" in said, said
    assert "vectors to re-embed: multimodal_extractor_v2_multimodal_embedding" in said, said
    assert _changed(ops_by_name(project.preview_steps("dev"))) == {COLLECTION: "update"}
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    assert project.outputs("dev")["spotify_playlists"]["namespace_id"] == ns_id
    state = _store(project).read_collection(ns_id)
    forget_stores()
    assert state.vectors["multimodal_extractor_v2_multimodal_embedding"]["size"] == 768
    assert state.points_count == 3

    # Row: infrastructure / compute tier -> the Ray head is created (and the unused shared one removed).
    ops = _edit_and_preview(project, lambda body, e: body.update(infrastructure={"compute_tier": "dedicated_cpu"}))
    changed = _changed(ops)
    assert changed.get(f"{NS}-ray") == "create", ops
    assert changed.get("shared-ray") == "delete", ops
    assert COLLECTION not in changed, ops
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    [pid] = _head_pids(project)
    assert process_info(pid) is not None


def test_refresh_sees_a_deleted_index_and_a_dead_head_and_up_restores_both(project):
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    ns_id = project.outputs("dev")[NS]["namespace_id"]
    [pid] = _head_pids(project)

    assert _store(project).delete_payload_index(ns_id, "metadata.title")
    forget_stores()
    os.killpg(pid, signal.SIGKILL)
    assert wait_dead(pid)

    project.run("refresh", "--yes", "--skip-preview", "-s", "dev")
    names = {r["urn"].split("::")[-1] for r in project.resources("dev")}
    assert f"{NS}-index-metadata.title" not in names
    assert "shared-ray" not in names

    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    indexes = _store(project).read_payload_indexes(ns_id)
    forget_stores()
    assert indexes["metadata.title"]["min_token_len"] == 2
    [new_pid] = _head_pids(project)
    assert new_pid != pid and process_info(new_pid) is not None
    assert _ray_task(project.outputs("dev")[NS]["infrastructure"]["ray_head_node_url"]) == "pong"


@pytest.mark.parametrize("how", ["sigint", "sigkill"])
def test_interrupted_up_converges_on_the_next_up(project, tmp_path, how):
    """Stop the engine mid-update; the documented recovery brings the stack to the same end state."""
    log = tmp_path / "up.log"
    proc = project.start("up", "--yes", "--skip-preview", "-s", "dev", log=log)
    # Interrupt once the collection exists and the indexes are being created.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if "QdrantPayloadIndex" in log.read_text(errors="replace") and "creating" in log.read_text(errors="replace"):
            break
        time.sleep(0.05)
    if how == "sigint":
        proc.send_signal(signal.SIGINT)
    else:
        kill_group(proc)
    proc.wait(timeout=120)
    interrupted = log.read_text(errors="replace")
    assert proc.returncode != 0, f"the update finished before it was interrupted:\n{interrupted}"
    print(f"--- interrupted run ({how}, exit {proc.returncode}):\n{interrupted[-3000:]}")

    # Recovery (docs/operations.md): a killed engine leaves the stack locked; `pulumi cancel` removes the
    # lock, then `pulumi up` converges (pending creates are adopted or redone; an orphaned head is stopped).
    if how == "sigkill":
        locked = project.run("up", "--yes", "--skip-preview", "-s", "dev", check=False)
        if "failed to load checkpoint: EOF" in locked.stderr:
            # Killed while the file backend wrote the checkpoint: its attributes file is left empty beside the
            # intact checkpoint (docs/operations.md): delete it, as the recovery there says.
            empty = [p for p in (project.root / "state" / ".pulumi").rglob("*.json.attrs") if p.stat().st_size == 0]
            assert empty, locked.stderr
            for p in empty:
                p.unlink()
            locked = project.run("up", "--yes", "--skip-preview", "-s", "dev", check=False)
        assert locked.returncode != 0 and "locked" in locked.stdout + locked.stderr
        project.run("cancel", "--yes", "-s", "dev", timeout=60)
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    project.run("preview", "--expect-no-changes", "-s", "dev")

    ns_id = project.outputs("dev")[NS]["namespace_id"]
    shards = sorted(p.name for p in (project.root / ".mixpeek" / "qdrant").iterdir() if p.is_dir())
    assert shards == [ns_id], f"a leftover shard after the interrupted run: {shards}"
    indexes = _store(project).read_payload_indexes(ns_id)
    forget_stores()
    assert len(indexes) == 7
    heads = [p for p in _head_pids(project) if process_info(p) is not None]
    assert len(heads) == 1
    assert ray_sessions(project) == set(heads), "a Ray head outside the state was left running"


RAY_TOKEN = "rt-9a8b7c6d5e4f3a2b"


@pytest.mark.qdrant_server
def test_secrets_stay_encrypted_in_state_config_and_engine_logs(project, qdrant_server):
    """The dev stack with its Qdrant target on a real server that requires `qdrantApiKey`: the key really
    reaches a target (the server refuses every request without it), and it is in plain text nowhere: not in
    `pulumi stack export`, not in the stack file, not in the `-v=9` engine logs."""
    config = project.read_stack("dev")
    config["config"]["mixpeek-infra:qdrant"] = qdrant_server.target()
    project.write_stack("dev", config)
    secrets = {"qdrantApiKey": qdrant_server.api_key, "rayAuthToken": RAY_TOKEN}
    for key, value in secrets.items():
        project.run("config", "set", "--secret", key, value, "-s", "dev")
    verbose = ("--logflow", "-v=9", "--logtostderr")
    runs = [project.run("up", "--yes", "--skip-preview", "-s", "dev", *verbose),
            project.run("preview", "--diff", "-s", "dev", *verbose),
            project.run("refresh", "--yes", "--skip-preview", "-s", "dev", *verbose)]
    logs = "".join(run.stdout + run.stderr for run in runs)
    assert "Registering resource" in logs or "RegisterResource" in logs, "no verbose engine log captured"
    exported = project.run("stack", "export", "-s", "dev").stdout
    stack_file = project.stack_file("dev").read_text()
    for value in secrets.values():
        assert value not in exported
        assert value not in stack_file
        assert value not in logs
    # The key did reach the server (it answers nothing without it): the collection is there, with its owner.
    ns_id = project.outputs("dev")[NS]["namespace_id"]
    store = qdrant_server.store()
    try:
        assert store.read_collection(ns_id).namespace_id == ns_id
    finally:
        store.close()
    # And the state holds it only as a secret: the collection's and every index's `api_key` output.
    resources = json.loads(exported)["deployment"]["resources"]
    holders = [r for r in resources if "QdrantCollection" in r["type"] or "QdrantPayloadIndex" in r["type"]]
    assert len(holders) == 8
    for r in holders:
        assert "ciphertext" in r["outputs"]["api_key"], r["urn"]
    assert "secure:" in stack_file


def test_cli_import_cannot_read_dynamic_resources_and_namespace_id_adopts_instead(project):
    """`pulumi import` of a dynamic resource fails in the SDK's dynamic provider host (no
    `__provider` in a bare import); the way that works is the `namespace_id` override, which adopts
    the existing collection, points and all, into a new stack."""
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    ns_id = project.outputs("dev")[NS]["namespace_id"]
    refused = project.run("import", "pulumi-python:dynamic/mixpeek:QdrantCollection", "imported", ns_id,
                          "--yes", "-s", "dev", check=False)
    assert refused.returncode != 0
    assert "KeyError: '__provider'" in refused.stdout + refused.stderr

    store = _store(project)
    store.upsert(ns_id, [{"id": 1, "vector": {"image_extractor_v1_embedding": [0.5] * 768}, "payload": {}}])
    forget_stores()
    # The state is lost (the stack is removed without touching its resources); the head is stopped by hand.
    [pid] = _head_pids(project)
    project.run("stack", "rm", "--force", "--yes", "--preserve-config", "-s", "dev")
    os.killpg(pid, signal.SIGKILL)

    project.init("dev")
    entry = _namespace_entry(project)
    entry["namespace_id"] = ns_id
    _write_entry(project, entry)
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    assert project.outputs("dev")[NS]["namespace_id"] == ns_id
    state = _store(project).read_collection(ns_id)
    forget_stores()
    assert state.points_count == 1
    project.run("preview", "--expect-no-changes", "-s", "dev")


def test_renamed_from_makes_a_rename_a_label_change_and_protect_holds(project):
    """`renamed_from` (aliases): renaming a namespace without a fixed key replaces nothing, indexes included;
    `protect: true` is Pulumi's protect on the namespace and every child."""
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    ns_id = project.outputs("dev")[NS]["namespace_id"]
    config = project.read_stack("dev")
    [body] = config["config"]["mixpeek-infra:namespaces"]
    body = copy.deepcopy(body["request"] if "request" in body else body)

    # Without renamed_from the rename would replace the collection and every index (the old key goes).
    body["namespace_name"] = "spotify_playlists"
    _write_entry(project, {"request": body})
    ops = _changed(ops_by_name(project.preview_steps("dev")))
    assert ops.get(COLLECTION) == "delete" and ops.get("spotify_playlists-collection") == "create", ops

    _write_entry(project, {"request": body, "renamed_from": NS})
    assert _changed(ops_by_name(project.preview_steps("dev"))) == {}  # every resource: same, under its new name
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    out = project.outputs("dev")
    assert out["spotify_playlists"]["namespace_id"] == ns_id
    assert all(not r["urn"].split("::")[-1].startswith(NS) for r in project.resources("dev")), "old names left"

    _write_entry(project, {"request": body, "renamed_from": NS, "protect": True})
    project.run("up", "--yes", "--skip-preview", "-s", "dev")
    protected = {r["urn"].split("::")[-1] for r in project.resources("dev") if r.get("protect")}
    assert {"spotify_playlists", "spotify_playlists-collection", "spotify_playlists-index-metadata.title"} <= protected
    assert "shared-ray" not in protected  # the stack's shared head is no namespace's child
    refused = project.run("destroy", "--yes", "--skip-preview", "-s", "dev", check=False)
    assert refused.returncode != 0 and "protected" in (refused.stdout + refused.stderr)
    assert _store(project).read_collection(ns_id) is not None
    forget_stores()
    _write_entry(project, {"request": body, "renamed_from": NS})
    project.run("up", "--yes", "--skip-preview", "-s", "dev")  # protection off again, for the fixture's destroy
