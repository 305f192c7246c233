"""A blue/green migration through the real Pulumi CLI (issue 22), on embedded Qdrant Edge and on a real Qdrant server.

The dev stack's namespace uses multimodal_extractor v2 at 3072 dimensions and holds 3 points; its
`output_dimensionality` moves to 768. `preview --diff` shows an update of the collection (no replace,
no delete) and the one "migrate:" line; `up` keeps every point, payload and unchanged vector and the
namespace_id; the next preview is empty; reverting the change switches back to the kept collection
with the old vectors. Then the extractor moves to v1 (vectors with other names): a migration again, the
v2 vectors kept in a previous collection; and it is removed: its vectors dropped in place, every point kept.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from pulumicli import PulumiProject, cli_bin_dir, ops_by_name
from qdrant_server import qdrant_server  # noqa: F401 - the fixture

from mixpeek_infra.qdrant.store import forget_stores, open_store

pytestmark = [pytest.mark.pulumi_cli,
              pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

ROOT = Path(__file__).resolve().parent.parent
NS = "spotify_playlists_dev"
IMAGE = "image_extractor_v1_embedding"
MULTIMODAL = "multimodal_extractor_v2_multimodal_embedding"
TRANSCRIPTION = "multimodal_extractor_v2_transcription_embedding"


def unit(size: int, i: int) -> list[float]:
    v = [0.0] * size
    v[i] = 1.0
    return v


POINTS = [{"id": i + 1, "vector": {IMAGE: unit(768, i), MULTIMODAL: unit(3072, i), TRANSCRIPTION: unit(1024, i)},
           "payload": {"metadata": {"title": f"playlist {i}"}}} for i in range(3)]


def set_dimensions(proj: PulumiProject, dims: int) -> None:
    stack = proj.read_stack("dev")
    [body] = stack["config"]["mixpeek-infra:namespaces"]
    for fe in body["feature_extractors"]:
        if fe["feature_extractor_name"] == "multimodal_extractor":
            fe.update(version="v2", feature_extractor_id="multimodal_extractor_v2",
                      params={"output_dimensionality": dims})
    proj.write_stack("dev", stack)


def dev_project(tmp_path: Path, qdrant: dict | None) -> PulumiProject:
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # the salt of the README's empty passphrase; the tests use their own
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "url": "ray://127.0.0.1:10001",
                                             "shared_url": "ray://127.0.0.1:10001"}
    if qdrant is not None:
        config["config"]["mixpeek-infra:qdrant"] = qdrant
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {"dev": copy.deepcopy(config)})
    proj.init("dev")
    return proj


def records(store, name: str) -> dict:
    if hasattr(store, "client"):
        found = store.client.retrieve(name, [1, 2, 3], with_payload=True, with_vectors=True)
        return {r.id: (r.payload, {k: list(v) for k, v in (r.vector or {}).items()}) for r in found}
    import os

    import qdrant_edge as qe

    from mixpeek_infra.qdrant.store.edge import close_all_shards

    close_all_shards()
    shard = qe.EdgeShard.load(os.path.join(store.root, name))
    try:
        found = shard.retrieve([1, 2, 3], with_payload=True, with_vector=True)
        return {r.id: (r.payload, {k: list(v) for k, v in (r.vector or {}).items()}) for r in found}
    finally:
        shard.close()


def migrate_through_the_cli(proj: PulumiProject, store_of) -> None:
    set_dimensions(proj, 3072)
    proj.run("up", "--yes", "--skip-preview", "-s", "dev")
    ns_id = proj.outputs("dev")[NS]["namespace_id"]
    store = store_of()
    store.upsert(ns_id, POINTS)
    forget_stores()

    set_dimensions(proj, 768)
    said = preview_diff(proj)
    [line] = [ln for ln in said.splitlines() if "migrate:" in ln]
    assert "3 point(s) copied" in line and f"vectors to re-embed: {MULTIMODAL}" in line, line
    assert IMAGE in line and TRANSCRIPTION in line and "previous collection kept as" in line, line

    proj.run("up", "--yes", "--skip-preview", "-s", "dev")
    out = proj.outputs("dev")[NS]
    assert out["namespace_id"] == ns_id and out["namespace"]["namespace_id"] == ns_id
    store = store_of()
    state = store.read_collection(ns_id)
    assert state.vectors[MULTIMODAL]["size"] == 768 and state.points_count == 3
    got = records(store, ns_id)
    assert sorted(got) == [1, 2, 3]
    for point in POINTS:
        payload, vectors = got[point["id"]]
        assert payload == point["payload"] and set(vectors) == {IMAGE, TRANSCRIPTION}
    [kept] = store.generations(ns_id, ns_id)
    assert store.read_collection(kept).vectors[MULTIMODAL]["size"] == 3072
    forget_stores()
    proj.run("preview", "--expect-no-changes", "-s", "dev")

    # Rollback: revert the change; the kept collection serves again, with its old vectors.
    set_dimensions(proj, 3072)
    proj.run("up", "--yes", "--skip-preview", "-s", "dev")
    store = store_of()
    back = records(store, ns_id)
    assert all(set(vectors) == {IMAGE, MULTIMODAL, TRANSCRIPTION} for _, vectors in back.values()), back
    forget_stores()
    proj.run("preview", "--expect-no-changes", "-s", "dev")

    # Another version (v1: vectors with other names) migrates too: the v2 vectors stay in a kept collection.
    edit_multimodal(proj, lambda fe: fe.update(version="v1", feature_extractor_id="multimodal_extractor_v1", params={}))
    said = preview_diff(proj)
    [line] = [ln for ln in said.splitlines() if "migrate:" in ln]
    assert "3 point(s) copied" in line and f"vectors dropped: {MULTIMODAL}, {TRANSCRIPTION}" in line, line
    proj.run("up", "--yes", "--skip-preview", "-s", "dev")
    assert proj.outputs("dev")[NS]["namespace_id"] == ns_id
    store = store_of()
    got = records(store, ns_id)
    assert sorted(got) == [1, 2, 3] and all(set(vectors) == {IMAGE} for _, vectors in got.values()), got
    assert any(MULTIMODAL in store.read_collection(g).vectors for g in store.generations(ns_id, ns_id))
    forget_stores()
    proj.run("preview", "--expect-no-changes", "-s", "dev")

    # Removing the extractor drops its vectors in place: no migration, every point and its image vector kept.
    edit_multimodal(proj, None)
    said = preview_diff(proj)
    assert "migrate:" not in said and "drops the named vector(s)" in said, said
    proj.run("up", "--yes", "--skip-preview", "-s", "dev")
    store = store_of()
    assert set(store.read_collection(ns_id).vectors) == {IMAGE}
    got = records(store, ns_id)
    assert sorted(got) == [1, 2, 3] and all(set(vectors) == {IMAGE} for _, vectors in got.values()), got
    forget_stores()
    proj.run("preview", "--expect-no-changes", "-s", "dev")


def edit_multimodal(proj: PulumiProject, change) -> None:
    """Apply `change` to the multimodal extractor of the stack's body; None removes it."""
    stack = proj.read_stack("dev")
    [body] = stack["config"]["mixpeek-infra:namespaces"]
    [fe] = [fe for fe in body["feature_extractors"] if fe["feature_extractor_name"] == "multimodal_extractor"]
    if change is None:
        body["feature_extractors"].remove(fe)
    else:
        change(fe)
    proj.write_stack("dev", stack)


def preview_diff(proj: PulumiProject) -> str:
    """`preview --diff`: only the collection changes, by an update (no replace, no delete, nothing refused)."""
    ops = {name: op for name, op in ops_by_name(proj.preview_steps("dev")).items() if op != "same"}
    assert ops == {f"{NS}-collection": "update"}, ops
    shown = proj.run("preview", "--diff", "-s", "dev")
    said = shown.stdout + shown.stderr
    for word in ("replace", "+-", "- pulumi-python:dynamic/mixpeek:QdrantCollection", "refusing"):
        assert word not in said, said
    return said


def test_migration_through_the_cli_on_edge(tmp_path):
    proj = dev_project(tmp_path, None)
    path = str(proj.root / ".mixpeek" / "qdrant")
    try:
        migrate_through_the_cli(proj, lambda: open_store({"kind": "embedded", "path": path}))
    finally:
        forget_stores()


@pytest.mark.qdrant_server
def test_migration_through_the_cli_on_a_server(tmp_path, qdrant_server):  # noqa: F811
    proj = dev_project(tmp_path, qdrant_server.target())
    proj.run("config", "set", "--secret", "qdrantApiKey", qdrant_server.api_key, "-s", "dev")
    try:
        migrate_through_the_cli(proj, lambda: qdrant_server.store())
    finally:
        forget_stores()
