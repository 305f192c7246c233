"""Deletion protection with points in the collection, both in process and through the real host.

Every scenario runs twice: calling the providers' methods directly, and through the SDK's own
dynamic provider host (`python -u -m pulumi.dynamic`, tests/enginehost.py) the way `pulumi up`,
`pulumi preview` and `pulumi destroy` drive it. After every refusal the points are checked to be
still there: counted, and retrieved with their payloads and every named vector.

What tests/test_qdrant_providers.py and tests/test_engine_qdrant.py already cover (a removed
extractor refused at diff, a destroy refused and then allowed once protection is off) is not
repeated; this adds:
- the refusal is based on the live point count (the state's `points_count` is still 0);
- a changed vector size, a renamed collection and a moved target are refused during preview and during
  `up`, and nothing is created before the refusal;
- a removed extractor is not refused: no point is deleted, its named vectors are dropped in place
  (tests/test_remove_extractor.py has the rest);
- turning protection off in the same run as the destructive change does not bypass it;
- the update path: a changed vector size sent straight to `update` is refused in place;
- a destroy removes the payload indexes but keeps every point, even with a state that predates the
  `deletion_protection` output, and the next `up` restores the indexes (a filtered count works again).
"""

from __future__ import annotations

import copy
import os
import re
import time
import pytest

from enginehost import EngineHost, ProviderError, dynamic_type, from_struct, serialize_provider, to_struct
from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.resources import Collection, CollectionProvider, PayloadIndex, PayloadIndexProvider
from mixpeek_infra.qdrant.store import forget_stores
from mixpeek_infra.qdrant.store.edge import EdgeStore, close_all_shards

pytestmark = pytest.mark.engine

COLLECTION = dynamic_type(Collection)
INDEX = dynamic_type(PayloadIndex)
CP = serialize_provider(CollectionProvider())
IP = serialize_provider(PayloadIndexProvider())
IMAGE = "image_extractor_v1_embedding"
MULTIMODAL = "multimodal_extractor_v1_multimodal_embedding"


class Failed(Exception):
    """A provider call failed; `kind` is the exception class name, `message` its message."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        self.message = message
        super().__init__(f"{kind}: {message}")


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


# ---------------------------------------------------------------------------------------------
# Two drivers with one interface: `step` (one resource of `pulumi up` / `preview`) and `delete`


class Direct:
    """The providers' methods in this process, in the engine's order, values through the wire format."""

    name = "direct"

    def __init__(self, root: str):
        self.target = {"kind": "embedded", "path": root, "timeout": 10.0}
        self.root = root
        self.providers = {COLLECTION: CollectionProvider(), INDEX: PayloadIndexProvider()}

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - reported as the engine would show it
            raise Failed(type(exc).__name__, str(exc)) from None

    def _create(self, token: str, news: dict) -> dict:
        result = self._call(self.providers[token].create, news)
        return {"id": result.id, "inputs": news, "outputs": wire(result.outs)}

    def step(self, token: str, name: str, inputs: dict, state: dict | None = None, *, preview: bool = False) -> dict:
        provider = self.providers[token]
        checked = provider.check(wire(state["inputs"]) if state else {}, wire(inputs))
        assert checked.failures == [], [(f.property, f.reason) for f in checked.failures]
        news = wire(checked.inputs)
        if state is None:
            return {"op": "create", "state": None if preview else self._create(token, news)}
        diff = self._call(provider.diff, state["id"], state["outputs"], news)
        if not diff.changes:
            return {"op": "same", "state": state}
        op = "replace" if diff.replaces else "update"
        if preview:
            return {"op": op, "state": state}
        if op == "update":
            outs = self._call(provider.update, state["id"], state["outputs"], news).outs
            return {"op": op, "state": {"id": state["id"], "inputs": news, "outputs": wire(outs)}}
        if diff.delete_before_replace:
            self.delete(token, name, state)
            return {"op": op, "state": self._create(token, news)}
        created = self._create(token, news)
        self.delete(token, name, state)
        return {"op": op, "state": created}

    def update(self, token: str, name: str, state: dict, inputs: dict) -> dict:
        news = wire(self.providers[token].check(wire(state["inputs"]), wire(inputs)).inputs)
        outs = self._call(self.providers[token].update, state["id"], state["outputs"], news).outs
        return {"id": state["id"], "inputs": news, "outputs": wire(outs)}

    def delete(self, token: str, name: str, state: dict) -> None:
        self._call(self.providers[token].delete, state["id"], state["outputs"])


class Hosted:
    """The same through `python -u -m pulumi.dynamic` over gRPC (relative target path, host cwd = project)."""

    name = "host"

    def __init__(self, host: EngineHost, project: str):
        self.host = host
        self.target = {"kind": "embedded", "path": "state/qdrant", "timeout": 10.0}
        self.root = os.path.join(project, "state", "qdrant")

    @staticmethod
    def _failed(exc: ProviderError) -> Failed:
        # The host returns the provider's traceback; its last line is `module.Class: message`.
        last = exc.details.strip().splitlines()[-1]
        match = re.match(r"^([\w.]+): (.*)$", last, re.S)
        if not match:
            return Failed(exc.code, exc.details)
        return Failed(match.group(1).rsplit(".", 1)[-1], match.group(2))

    def step(self, token: str, name: str, inputs: dict, state: dict | None = None, *, preview: bool = False) -> dict:
        provider = CP if token == COLLECTION else IP
        try:
            result = self.host.step(token, name, {**inputs, "__provider": provider}, state, preview=preview)
        except ProviderError as exc:
            raise self._failed(exc) from None
        return {"op": result["op"], "state": result["state"]}

    def update(self, token: str, name: str, state: dict, inputs: dict) -> dict:
        provider = CP if token == COLLECTION else IP
        news = self.host.check(token, name, {**inputs, "__provider": provider}, state["inputs"])["inputs"]
        try:
            result = self.host.update(token, name, state["id"], state["outputs"], news, old_inputs=state["inputs"])
        except ProviderError as exc:
            raise self._failed(exc) from None
        return {"id": state["id"], "inputs": news, "outputs": result["properties"]}

    def delete(self, token: str, name: str, state: dict) -> None:
        try:
            self.host.delete(token, name, state["id"], state["outputs"], state["inputs"])
        except ProviderError as exc:
            raise self._failed(exc) from None


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    return tmp_path_factory.mktemp("protection")


@pytest.fixture(scope="module")
def host(project):
    with EngineHost(cwd=str(project), env={"MIXPEEK_EDGE_IDLE_CLOSE": "0.05"}) as h:
        h.configure({})
        yield h


@pytest.fixture(params=["direct", "host"])
def driver(request, project):
    if request.param == "direct":
        yield Direct(str(project / "direct" / "qdrant"))
    else:
        yield Hosted(request.getfixturevalue("host"), str(project))
    close_all_shards()
    forget_stores()


# ---------------------------------------------------------------------------------------------
# Helpers


def collection_inputs(driver, plan, **extra) -> dict:
    return {"target": driver.target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True,
            **extra}


def index_inputs(driver, ix, name: str) -> dict:
    return {"target": driver.target, "collection_name": name, "field_name": ix.field_name, "field_type": ix.type,
            "field_schema": dict(ix.field_schema)}


def up(driver, plan, *, state: dict | None = None, preview: bool = False, **extra) -> dict:
    """One `pulumi up` (or preview) of the namespace's collection and indexes; returns the new state."""
    coll = driver.step(COLLECTION, "ns-collection", collection_inputs(driver, plan, **extra),
                       state["collection"] if state else None, preview=preview)
    out = {"collection": coll["state"], "ops": {"collection": coll["op"]}, "indexes": {}}
    if coll["state"] is None:
        return out
    name = coll["state"]["outputs"]["collection_name"]
    for ix in plan.payload_indexes:
        prev = state["indexes"].get(ix.field_name) if state else None
        step = driver.step(INDEX, f"ns-index-{ix.field_name}", index_inputs(driver, ix, name), prev, preview=preview)
        out["indexes"][ix.field_name] = step["state"]
        out["ops"][ix.field_name] = step["op"]
    return out


def unit(i: int, size: int) -> list[float]:
    v = [0.0] * size
    v[i % size] = 1.0
    return v


POINTS = [{"id": i, "vector": {IMAGE: unit(i, 768), MULTIMODAL: unit(i + 7, 1408)},
           "payload": {"collection_id": "col_a" if i < 3 else "col_b", "metadata": {"title": f"Playlist number {i}"}}}
          for i in range(1, 5)]


def add_points(driver, name: str) -> None:
    store = EdgeStore(driver.root, timeout=10)
    store.upsert(name, POINTS)
    close_all_shards()


def assert_points_intact(driver, name: str, dropped: tuple[str, ...] = ()) -> None:
    """Every point still there: counted, and retrieved with its payload and both named vectors (but `dropped`)."""
    import qdrant_edge as qe

    store = EdgeStore(driver.root, timeout=10)
    assert store.count_points(name) == len(POINTS)
    close_all_shards()
    shard = None
    for _ in range(200):  # the host lets go of the shard after its short idle time
        try:
            shard = qe.EdgeShard.load(os.path.join(driver.root, name))
            break
        except Exception:  # noqa: BLE001 - locked by the host for a moment
            time.sleep(0.05)
    assert shard is not None, "shard stayed locked"
    try:
        records = {r.id: r for r in shard.retrieve([p["id"] for p in POINTS], True, True)}
    finally:
        shard.close()
    assert sorted(records) == [p["id"] for p in POINTS]
    for point in POINTS:
        record = records[point["id"]]
        assert record.payload == point["payload"]
        for vector_name, values in point["vector"].items():
            if vector_name in dropped:
                assert vector_name not in record.vector, (point["id"], vector_name)
            else:
                assert record.vector[vector_name] == pytest.approx(values), (point["id"], vector_name)


def collections_on_disk(driver) -> set[str]:
    return set(os.listdir(driver.root)) if os.path.isdir(driver.root) else set()


def refused(info, action: str) -> str:
    assert info.value.kind == "DeletionProtected", info.value
    message = info.value.message
    assert f"refusing to {action}" in message and f"holds {len(POINTS)} point(s)" in message, message
    assert "deletion_protection" in message
    return message


@pytest.fixture
def deployed(driver, seed):
    """The seed namespace deployed, then points written by an application (state still says 0)."""
    plan = plan_namespace(seed)
    state = up(driver, plan)
    name = state["collection"]["id"]
    assert state["collection"]["outputs"]["points_count"] == 0
    add_points(driver, name)
    return plan, state, name


# ---------------------------------------------------------------------------------------------
# Destroy


def test_destroy_keeps_every_point_and_the_next_up_restores_the_indexes(driver, deployed):
    plan, state, name = deployed
    # `pulumi destroy` deletes the indexes first (they depend on the collection), then the collection.
    for field, res in state["indexes"].items():
        driver.delete(INDEX, f"ns-index-{field}", res)
    with pytest.raises(Failed) as info:
        driver.delete(COLLECTION, "ns-collection", state["collection"])
    refused(info, "delete")
    assert_points_intact(driver, name)
    store = EdgeStore(driver.root, timeout=10)
    assert store.read_payload_indexes(name) == {}
    close_all_shards()
    # The stack still holds the collection; the next `up` re-creates the dropped indexes.
    again = up(driver, plan, state={"collection": state["collection"], "indexes": {}})
    assert again["ops"]["collection"] == "same"
    assert set(again["ops"].values()) == {"same", "create"}
    store = EdgeStore(driver.root, timeout=10)
    assert set(store.read_payload_indexes(name)) == {ix.field_name for ix in plan.payload_indexes}
    assert store.count_points(name, [{"key": "collection_id", "value": "col_a"}]) == 2
    assert store.count_points(name, [{"key": "metadata.title", "text": "playlist"}]) == len(POINTS)
    close_all_shards()
    assert_points_intact(driver, name)


def test_destroy_with_a_state_from_before_the_protection_output_is_refused(driver, deployed):
    """Outputs without `deletion_protection` (an older state) count as protected."""
    _, state, name = deployed
    old = copy.deepcopy(state["collection"])
    old["outputs"].pop("deletion_protection")
    with pytest.raises(Failed) as info:
        driver.delete(COLLECTION, "ns-collection", old)
    refused(info, "delete")
    assert_points_intact(driver, name)


# ---------------------------------------------------------------------------------------------
# Replace


def _changed_plans(seed, driver):
    """(label, plan, extra inputs, reason in the message) of changes that would replace the collection (a vector's
    new shape migrates instead: test_a_vector_size_change_under_protection_migrates_and_keeps_every_point)."""
    plan = plan_namespace(seed)
    moved = dict(driver.target, path=driver.target["path"] + "-moved")
    return [
        ("collection renamed", plan, {"collection_name": "renamed_playlists"}, "collection name changed"),
        ("target moved", plan, {"target": moved}, "target location changed"),
    ]


@pytest.mark.parametrize("change", ["collection renamed", "target moved"])
@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_replacement_is_refused_before_anything_is_created(driver, deployed, seed, change, preview):
    plan, state, name = deployed
    _, new_plan, extra, reason = next(c for c in _changed_plans(seed, driver) if c[0] == change)
    before = collections_on_disk(driver)
    inputs = collection_inputs(driver, new_plan, **extra)
    with pytest.raises(Failed) as info:
        driver.step(COLLECTION, "ns-collection", inputs, state["collection"], preview=preview)
    message = refused(info, "replace")
    assert reason in message and name in message, message
    assert collections_on_disk(driver) == before  # the replacement was not created first
    if change == "target moved":
        assert not os.path.exists(driver.root + "-moved")
    assert_points_intact(driver, name)
    # Undoing the change is a no-op.
    assert up(driver, plan, state=state)["ops"]["collection"] == "same"


def test_turning_protection_off_in_the_same_run_does_not_bypass_it(driver, deployed, seed):
    """The recorded protection (old outputs) decides: it must be turned off by a run of its own."""
    plan, state, name = deployed
    moved = dict(driver.target, path=driver.target["path"] + "-moved")
    inputs = collection_inputs(driver, plan, target=moved, deletion_protection=False)
    with pytest.raises(Failed) as info:
        driver.step(COLLECTION, "ns-collection", inputs, state["collection"])
    refused(info, "replace")
    assert_points_intact(driver, name)


# ---------------------------------------------------------------------------------------------
# The update path


def test_a_vector_size_change_under_protection_migrates_and_keeps_every_point(driver, deployed):
    """A vector's new size is no replace: `up` copies every point into a new generation (the resized vector left
    to be embedded again), keeps the previous collection with the old vectors, and protection still guards both."""
    plan, state, name = deployed
    resized = copy.deepcopy(plan.vector_config())
    resized[IMAGE]["size"] = 512
    step = driver.step(COLLECTION, "ns-collection", collection_inputs(driver, plan, vectors=resized),
                       state["collection"])
    assert step["op"] == "update"
    outputs = step["state"]["outputs"]
    assert outputs["collection_name"] == name
    assert outputs["namespace_id"] == state["collection"]["outputs"]["namespace_id"]
    [previous] = outputs["previous_collections"]
    store = EdgeStore(driver.root, timeout=10)
    assert store.read_collection(name).vectors[IMAGE]["size"] == 512
    assert store.read_collection(previous).vectors[IMAGE]["size"] == 768
    assert store.count_points(previous) == len(POINTS)
    close_all_shards()
    assert_points_intact(driver, name, dropped=(IMAGE,))
    with pytest.raises(Failed) as info:
        driver.delete(COLLECTION, "ns-collection", step["state"])
    refused(info, "delete")
    assert_points_intact(driver, name, dropped=(IMAGE,))


@pytest.mark.parametrize("preview", [True, False], ids=["preview", "up"])
def test_a_removed_extractor_is_not_refused_its_vectors_are_dropped_in_place(driver, deployed, seed, preview):
    """No point is deleted, so protection does not refuse: the preview is an update, and `up` drops only that
    extractor's named vectors; every point keeps its payload and its other vector; same collection and id."""
    plan, state, name = deployed
    fewer = copy.deepcopy(seed)
    fewer["feature_extractors"] = [fe for fe in fewer["feature_extractors"]
                                   if fe["feature_extractor_name"] != "multimodal_extractor"]
    before = collections_on_disk(driver)
    step = driver.step(COLLECTION, "ns-collection", collection_inputs(driver, plan_namespace(fewer)),
                       state["collection"], preview=preview)
    assert step["op"] == "update"
    assert collections_on_disk(driver) == before
    if preview:
        assert_points_intact(driver, name)
        return
    outputs = step["state"]["outputs"]
    assert set(outputs["vectors"]) == {IMAGE}
    assert outputs["namespace_id"] == state["collection"]["outputs"]["namespace_id"]
    assert outputs["collection_name"] == name
    store = EdgeStore(driver.root, timeout=10)
    assert set(store.read_collection(name).vectors) == {IMAGE}
    close_all_shards()
    assert_points_intact(driver, name, dropped=(MULTIMODAL,))


# ---------------------------------------------------------------------------------------------
# The real Pulumi CLI (issue 23 item 5)


@pytest.mark.pulumi_cli
def test_pulumi_destroy_of_a_collection_holding_points_is_refused_and_keeps_points_and_indexes(tmp_path):
    """`pulumi destroy` of the dev stack with 3 points and deletion_protection on (the default): the CLI exits
    non-zero naming the point count and the way out; every point and every payload index stays (the indexes are
    deleted with their collection, so they are not dropped before the refusal); the next `up` converges."""
    import yaml

    from mixpeek_infra.qdrant.store import open_store
    from pulumicli import NS, ROOT, PulumiProject, cli_bin_dir

    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())
    config.pop("encryptionsalt", None)  # a salt there belongs to someone else's passphrase, not this project's
    config["config"]["mixpeek-infra:ray"] = {"mode": "external", "url": "ray://127.0.0.1:10001"}  # no head process
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {"dev": config})
    proj.init("dev")
    target = {"kind": "embedded", "path": str(proj.root / ".mixpeek" / "qdrant"), "timeout": 10.0}
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", "dev")
        ns_id = proj.outputs("dev")[NS]["namespace_id"]
        store = open_store(target)
        indexes = store.read_payload_indexes(ns_id)
        store.upsert(ns_id, [{"id": i, "vector": {MULTIMODAL: [0.1 * i] * 1408}, "payload": {"n": i}}
                             for i in (1, 2, 3)])
        close_all_shards()
        forget_stores()

        refused = proj.run("destroy", "--yes", "--skip-preview", "-s", "dev", check=False)
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said
        assert "it holds 3 point(s) and deletion_protection is on" in said, said
        assert "deletion_protection=False" in said, said
        # One clear message, not the provider host's Python traceback (issue 21 part 3).
        assert "Traceback" not in said and 'File "' not in said, said
        diagnostics = said.split("Diagnostics:", 1)[-1]
        assert diagnostics.count("refusing to delete Qdrant collection") == 1, said
        store = open_store(target)
        assert store.count_points(ns_id) == 3
        assert store.read_payload_indexes(ns_id) == indexes
        close_all_shards()
        forget_stores()

        proj.run("up", "--yes", "--skip-preview", "-s", "dev")  # the state converges again, nothing lost
        assert proj.outputs("dev")[NS]["namespace_id"] == ns_id
        assert open_store(target).count_points(ns_id) == 3
        close_all_shards()
        forget_stores()
    finally:
        config = proj.read_stack("dev")
        [body] = config["config"]["mixpeek-infra:namespaces"]
        config["config"]["mixpeek-infra:namespaces"] = [{"request": body, "deletion_protection": False}]
        proj.write_stack("dev", config)
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", "dev", check=False)
