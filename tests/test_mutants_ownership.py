"""The ownership and protection decisions, pinned where the mutation check (docs/testing.md) found
that a changed comparison, a dropped branch or an altered refusal passed the rest of the suite.

Pure functions of mixpeek_infra.qdrant.changes, `refuse_foreign` / `_is_foreign` of the providers
against a store that records an owner, and the checks of `HeadSession.recorded`.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from enginehost import from_struct, to_struct

from mixpeek_infra.qdrant.changes import deletion_message, location_changed, managed_settings, vector_change
from mixpeek_infra.qdrant.errors import CollectionConflict, CollectionNotFound, DeletionProtected
from mixpeek_infra.qdrant.providers import _is_foreign, refuse_foreign
from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
from mixpeek_infra.qdrant.store import forget_stores, open_store
from mixpeek_infra.qdrant.store.edge import MARKER_FILE, close_all_shards

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect:UserWarning")

COLLECTIONS = CollectionProvider()
INDEXES = PayloadIndexProvider()
VECTORS = {"image": {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}}
KEYWORD = {"type": "keyword", "is_tenant": False}
INTEGER = {"type": "integer", "lookup": True, "range": True}
NS_A, NS_B = "ns_aaaaaaaaaa", "ns_bbbbbbbbbb"


# --- location_changed: a moved target replaces the collection; the same place written another way does not


@pytest.mark.parametrize("old, new, moved", [
    (None, {"kind": "edge", "path": "/q"}, True),
    ({}, {"kind": "edge", "path": "/q"}, True),
    ({"kind": "edge", "path": "/q"}, {"kind": "server", "url": "http://h:6333"}, True),
    ({"kind": "server", "url": "http://h:6333/"}, {"kind": "server", "url": "http://h:6333"}, False),
    ({"kind": "server", "url": "http://h:6333"}, {"kind": "server", "url": "http://h:6333/"}, False),
    ({"kind": "server", "url": "http://h:6333"}, {"kind": "server", "url": "http://other:6333"}, True),
    ({"kind": "server"}, {"kind": "server"}, False),
    ({"kind": "server", "url": "http://h/pathX"}, {"kind": "server", "url": "http://h/path"}, True),
    ({"kind": "server", "url": "http://h/path"}, {"kind": "server", "url": "http://h/pathX"}, True),
    ({"kind": "edge", "path": "/q/data/"}, {"kind": "edge", "path": "/q/./data"}, False),
    ({"kind": "edge", "path": "/q/a"}, {"kind": "edge", "path": "/q/b"}, True),
    ({"kind": "edge"}, {"kind": "edge"}, False),
    ({"kind": "edge", "path": "/q", "url": "http://a"}, {"kind": "edge", "path": "/q", "url": "http://b"}, False),
])
def test_location_changed_compares_kind_then_url_or_normalised_path(old, new, moved):
    """A server target is its URL without a trailing slash; an embedded one is its normalised path."""
    assert location_changed(old, new) is moved


# --- vector_change: which differences replace, add or change in place


def test_vector_change_names_every_replace_reason_in_order():
    old = {"b": {"size": 4, "distance": "Cosine"}, "a": {"size": 8, "distance": "Dot", "datatype": "float32"},
           "gone": {"size": 2, "distance": "Cosine"}, "also_gone": {"size": 2}}
    new = {"a": {"size": 16, "distance": "Euclid", "datatype": "uint8", "multivector": {"comparator": "max_sim"}},
           "b": {"size": 4, "distance": "Cosine"}, "z": {"size": 3}, "c": {"size": 1}}
    replace, added, removed, in_place = vector_change(old, new)
    assert replace == ["vector 'a' size 8 -> 16",
                       "vector 'a' distance 'Dot' -> 'Euclid'",
                       "vector 'a' datatype 'float32' -> 'uint8'",
                       "vector 'a' multivector None -> {'comparator': 'max_sim'}"]
    assert added == ["c", "z"]
    assert removed == ["also_gone", "gone"]
    assert in_place == []


def test_vector_change_on_disk_is_in_place_and_absent_means_false():
    old = {"v": {"size": 4, "distance": "Cosine"}, "w": {"size": 4, "distance": "Cosine", "on_disk": True}}
    new = {"v": {"size": 4, "distance": "Cosine", "on_disk": False}, "w": {"size": 4, "distance": "Cosine"}}
    assert vector_change(old, new) == ([], [], [], ["vector 'w' on_disk"])
    assert vector_change(new, old) == ([], [], [], ["vector 'w' on_disk"])
    assert vector_change({"v": {"size": 4, "on_disk": True}}, {"v": {"size": 4, "on_disk": 1}}) == ([], [], [], [])


# --- managed_settings: the real settings reduced to what the inputs manage


def test_managed_settings_without_real_settings_is_a_copy_of_the_desired():
    desired = {"hnsw_config": {"m": 16}}
    for got in (managed_settings(None, desired), managed_settings({"hnsw_config": {"m": 8}}, desired, False)):
        assert got == desired and got is not desired


def test_managed_settings_keeps_only_managed_keys_and_sub_keys():
    real = {"hnsw_config": {"m": 8, "ef_construct": 100, "full_scan_threshold": 10},
            "optimizers_config": {"indexing_threshold": 5}, "on_disk_payload": True, "shard_number": 3,
            "quantization_config": {"scalar": {"type": "int8", "quantile": 0.9, "always_ram": True}}}
    desired = {"not_reported": 1, "hnsw_config": {"m": 16, "ef_construct": 64, "payload_m": 4},
               "on_disk_payload": False, "quantization_config": {"scalar": {"type": "int8", "always_ram": False}}}
    assert managed_settings(real, desired) == {
        "hnsw_config": {"m": 8, "ef_construct": 100},
        "on_disk_payload": True,
        "quantization_config": {"scalar": {"type": "int8", "always_ram": True}},
    }


def test_managed_settings_shows_another_quantization_kind_whole():
    real = {"quantization_config": {"product": {"compression": "x16"}}}
    desired = {"quantization_config": {"scalar": {"type": "int8"}}}
    assert managed_settings(real, desired) == {"quantization_config": {"product": {"compression": "x16"}}}


# --- deletion_message: the refusal says what would be lost and how to proceed


def test_deletion_message_names_the_collection_the_loss_and_the_way_out():
    text = deletion_message("c1", "edge:/q", 7, "replace", ["vector 'a' removed", "target moved"])
    assert text.startswith("refusing to replace Qdrant collection 'c1' at edge:/q "
                           "(vector 'a' removed; target moved): it holds 7 point(s) and deletion_protection is on, "
                           "so its vectors would be lost. ")
    assert "set deletion_protection=False (NamespaceArgs(deletion_protection=False)) and run `pulumi up` once" in text
    assert "set final_snapshot to a directory (NamespaceArgs(final_snapshot=...) or stack config " \
           "qdrant.final_snapshot) in that same first run" in text
    assert text.endswith("Or revert the change to keep the collection.")
    assert deletion_message("c1", "edge:/q", 1, "delete").startswith(
        "refusing to delete Qdrant collection 'c1' at edge:/q: it holds 1 point(s)")
    assert deletion_message("c1", "edge:/q", 1, "delete", []) == deletion_message("c1", "edge:/q", 1, "delete")


# --- refuse_foreign / _is_foreign: a collection recorded as another namespace's is never changed


class OwnerStore:
    """A store that records one owner per collection and counts its owner reads."""

    location = "edge:/owners"

    def __init__(self, owners):
        self.owners = owners
        self.reads = []

    def read_owner(self, name, *, recent=False):
        self.reads.append((name, recent))
        return self.owners.get(name)


def test_refuse_foreign_refuses_another_namespaces_collection_naming_both():
    store = OwnerStore({"c": "ns_other"})
    with pytest.raises(CollectionConflict) as info:
        refuse_foreign(store, "c", "ns_mine", "delete", recent=True)
    message = str(info.value)
    assert "'c' at edge:/owners belongs to namespace ns_other, not to namespace ns_mine" in message
    assert "refusing to delete it" in message
    assert store.reads == [("c", True)]


@pytest.mark.parametrize("owners, namespace_id", [
    ({"c": "ns_mine"}, "ns_mine"),  # its own
    ({}, "ns_mine"),  # unrecorded
    ({"c": ""}, "ns_mine"),  # recorded as nobody's
])
def test_refuse_foreign_passes_own_and_unrecorded_collections(owners, namespace_id):
    store = OwnerStore(owners)
    refuse_foreign(store, "c", namespace_id, "update")
    assert store.reads == [("c", False)]


@pytest.mark.parametrize("namespace_id", [None, "", 5])
def test_refuse_foreign_without_a_recorded_namespace_reads_nothing(namespace_id):
    """State of an older version records no namespace: nothing to compare, and the target is not read."""
    store = OwnerStore({"c": "ns_other"})
    refuse_foreign(store, "c", namespace_id, "update")
    assert store.reads == []


@pytest.mark.parametrize("owner, namespace_id, foreign", [
    ("ns_other", "ns_mine", True),
    ("ns_mine", "ns_mine", False),
    (None, "ns_mine", False),
    ("", "ns_mine", False),
    ("ns_other", None, False),
    ("ns_other", "", False),
    ("ns_other", 7, False),
])
def test_is_foreign_only_for_another_recorded_namespace(owner, namespace_id, foreign):
    assert _is_foreign(owner, namespace_id) is foreign


# --- HeadSession.recorded: a record is data, believed only when it is an identity


def test_head_session_recorded_accepts_an_identity_and_the_engines_float_pid():
    from mixpeek_infra.ray._process import HeadSession

    assert HeadSession.recorded(4242, 12.5, "rayhead-a", "boot-1") == HeadSession(4242, 12.5, "rayhead-a", "boot-1")
    session = HeadSession.recorded(4242.0, 0, "rayhead-a")
    assert session == HeadSession(4242, 0.0, "rayhead-a", None)
    assert type(session.pid) is int and type(session.start) is float
    assert HeadSession.recorded(2, 1, "h").pid == 2 and HeadSession.recorded(2 ** 31 - 1, 1, "h") is not None


@pytest.mark.parametrize("pid, start, head_id, boot_id", [
    (1, 1.0, "h", None),  # init is never a head
    (0, 1.0, "h", None),
    (-5, 1.0, "h", None),
    (2 ** 31, 1.0, "h", None),
    (True, 1.0, "h", None),
    (4242.5, 1.0, "h", None),
    ("4242", 1.0, "h", None),
    (None, 1.0, "h", None),
    (4242, -0.5, "h", None),
    (4242, None, "h", None),
    (4242, "1.0", "h", None),
    (4242, True, "h", None),
    (4242, float("nan"), "h", None),
    (4242, float("inf"), "h", None),
    (4242, 1.0, "", None),
    (4242, 1.0, None, None),
    (4242, 1.0, 7, None),
    (4242, 1.0, "h", 7),
])
def test_head_session_recorded_refuses_what_is_not_an_identity(pid, start, head_id, boot_id):
    from mixpeek_infra.ray._process import HeadSession

    assert HeadSession.recorded(pid, start, head_id, boot_id) is None


# --- the providers' diff: the refusal says what it refuses, and an old state is protected too


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def checked(provider, news: dict, olds: dict | None = None) -> dict:
    result = provider.check(wire(olds or {}), wire(news))
    assert result.failures == [], [(f.property, f.reason) for f in result.failures]
    return wire(result.inputs)


@pytest.fixture
def target(tmp_path):
    yield {"kind": "embedded", "path": str(tmp_path / "qdrant"), "timeout": 10.0}
    close_all_shards()
    forget_stores()


def collection(target, **extra) -> dict:
    return {"target": target, "vectors": VECTORS, "settings": {}, "deletion_protection": True,
            "collection_name": "docs", **extra}


def index(target, field: str, schema: dict, **extra) -> dict:
    return {"target": target, "collection_name": "docs", "field_name": field, "field_type": schema["type"],
            "field_schema": schema, **extra}


def test_a_replace_of_a_collection_whose_state_predates_deletion_protection_is_refused(target):
    """State written before the `deletion_protection` output exists reads as protected."""
    inputs = checked(COLLECTIONS, collection(target, namespace_id=NS_A))
    outs = wire(COLLECTIONS.create(inputs).outs)
    store = open_store(target)
    store.upsert("docs", [{"id": 1, "vector": {"image": [1.0, 0, 0, 0]}, "payload": {}}])
    old_state = {k: v for k, v in outs.items() if k != "deletion_protection"}
    elsewhere = {**target, "path": target["path"] + "-elsewhere"}  # a move to another target is a replace
    news = checked(COLLECTIONS, collection(elsewhere, namespace_id=NS_A), inputs)
    with pytest.raises(DeletionProtected) as info:
        COLLECTIONS.diff("docs", old_state, news)
    assert str(info.value).startswith(
        f"refusing to replace Qdrant collection 'docs' at {store.location} (target location changed): "
        "it holds 1 point(s)")
    assert store.count_points("docs") == 1


def test_a_change_to_another_namespaces_collection_names_what_is_refused(target):
    """The diff's refusal says whether an update or a replace was refused."""
    a_inputs = checked(COLLECTIONS, collection(target, namespace_id=NS_A))
    a_outs = wire(COLLECTIONS.create(a_inputs).outs)
    store = open_store(target)
    store.delete_collection("docs")  # lost out of band, the name taken by B
    COLLECTIONS.create(checked(COLLECTIONS, collection(target, namespace_id=NS_B)))
    tuned = collection(target, namespace_id=NS_A, settings={"hnsw_config": {"m": 32}})
    in_place = checked(COLLECTIONS, tuned, a_inputs)
    with pytest.raises(CollectionConflict, match=f"belongs to namespace {NS_B}.*refusing to update it"):
        COLLECTIONS.diff("docs", a_outs, in_place)
    elsewhere = {**target, "path": target["path"] + "-elsewhere"}
    replacing = checked(COLLECTIONS, collection(elsewhere, namespace_id=NS_A), a_inputs)
    with pytest.raises(CollectionConflict, match=f"belongs to namespace {NS_B}.*refusing to replace it"):
        COLLECTIONS.diff("docs", a_outs, replacing)


@pytest.mark.parametrize("old_namespace, new_namespace", [
    (NS_A, NS_B),  # the state's namespace is the one checked, not the new inputs'
    (None, NS_A),  # a state that records none: the new inputs' namespace is checked
])
def test_an_index_change_on_another_namespaces_collection_is_refused(target, old_namespace, new_namespace):
    COLLECTIONS.create(checked(COLLECTIONS, collection(target, namespace_id=NS_B)))
    olds = wire(index(target, "f", KEYWORD, **({"namespace_id": old_namespace} if old_namespace else {})))
    news = checked(INDEXES, index(target, "f", INTEGER, namespace_id=new_namespace), olds)
    with pytest.raises(CollectionConflict) as info:
        INDEXES.diff("docs/f", olds, news)
    assert f"belongs to namespace {NS_B}, not to namespace {old_namespace or new_namespace}" in str(info.value)
    assert "refusing to change payload index 'f' of it" in str(info.value)


def test_a_state_whose_old_target_is_no_target_diffs_as_a_replace_without_reading_it(target):
    """An old state's target that is not a valid one (older state) is neither checked for an owner nor opened."""
    inputs = checked(COLLECTIONS, collection(target, namespace_id=NS_A))
    outs = wire(COLLECTIONS.create(inputs).outs)
    result = COLLECTIONS.diff("docs", {**outs, "target": {"kind": "bogus"}}, inputs)
    assert result.changes and "target" in result.replaces
    index_olds = wire(index({"kind": "bogus"}, "f", KEYWORD, namespace_id=NS_A))
    news = checked(INDEXES, index(target, "f", KEYWORD, namespace_id=NS_A))
    assert INDEXES.diff("docs/f", index_olds, news).changes


# --- the Edge store's own ownership answers


def _unfinished_create(root, name: str, namespace_id: str) -> str:
    """A shard directory holding only the marker, as a create killed before Edge wrote anything leaves it."""
    path = os.path.join(root, name)
    os.makedirs(path)
    with open(os.path.join(path, MARKER_FILE), "w", encoding="utf-8") as fh:
        json.dump({"created_by": "mixpeek-infra", "namespace_id": namespace_id}, fh)
    return path


def test_edge_read_owner_of_an_unfinished_create_is_none(target):
    """An interrupted create is no collection yet: it records no owner (its own namespace's rerun redoes it)."""
    store = open_store(target)
    _unfinished_create(store.root, "docs", NS_B)
    assert store.read_owner("docs") is None and store.read_owner("docs", recent=True) is None


def test_edge_delete_collection_says_whether_it_removed_a_collection(target):
    store = open_store(target)
    assert store.delete_collection("docs") is False  # nothing there
    path = _unfinished_create(store.root, "docs", NS_A)
    assert store.delete_collection("docs") is False and os.path.isdir(path)  # not a shard: left for its create
    shutil.rmtree(path)
    COLLECTIONS.create(checked(COLLECTIONS, collection(target, namespace_id=NS_A)))
    assert store.delete_collection("docs") is True
    assert store.read_collection("docs") is None and not os.path.exists(path)


def test_edge_refusals_name_the_collection_and_the_way_out(target):
    store = open_store(target)
    with pytest.raises(CollectionNotFound) as info:
        store.record_namespace("docs", NS_A)
    assert str(info.value) == f"collection 'docs' does not exist at {store.location}"
    os.makedirs(store.root, exist_ok=True)
    with open(os.path.join(store.root, "docs"), "w", encoding="utf-8") as fh:
        fh.write("not a shard")
    with pytest.raises(CollectionConflict) as info:
        store.check_claim("docs", NS_A)
    assert str(info.value) == (f"cannot create Qdrant collection 'docs' at {store.location}: "
                               f"{os.path.join(store.root, 'docs')} exists and is not a directory; choose another "
                               "collection name (infrastructure.qdrant_collection / collection_name) or another "
                               "target path, or move it away")


def test_edge_check_claim_of_another_namespaces_collection_names_it_its_place_and_its_owner(target):
    COLLECTIONS.create(checked(COLLECTIONS, collection(target, namespace_id=NS_B)))
    store = open_store(target)
    store.check_claim("docs", NS_B)  # its own: passes
    with pytest.raises(CollectionConflict) as info:
        store.check_claim("docs", NS_A)
    assert str(info.value).startswith(f"Qdrant collection 'docs' at {store.location} belongs to namespace {NS_B} "
                                      f"(created by another namespace, stack or process); refusing to adopt it for "
                                      f"namespace {NS_A}.")


# --- HeadSession._carries: which process environments prove a process the head's


@pytest.mark.parametrize("marker, missing_ok, carries", [
    ("rayhead-mine", False, True),
    ("rayhead-mine", True, True),
    ("", True, True),  # Ray's renamed processes overwrite their environment: proven by a proven parent
    ("", False, False),
    ("rayhead-other", True, False),  # another head's process is never this head's
    ("rayhead-other", False, False),
    (None, True, False),  # an environment this user cannot read (another user's process)
    (None, False, False),
])
def test_head_session_carries_only_its_own_id_or_none_where_allowed(monkeypatch, marker, missing_ok, carries):
    from mixpeek_infra.ray import _process

    monkeypatch.setattr(_process, "_marker", lambda pid: marker)
    monkeypatch.setattr(_process, "_linux", lambda: True)
    assert _process.HeadSession(4242, 1.0, "rayhead-mine")._carries(4243, missing_ok=missing_ok) is carries


def test_edge_check_claim_refusals_of_a_directory_say_why_and_how_to_proceed(target):
    """Each directory that is no collection of this namespace is refused with its reason and the way out."""
    from mixpeek_infra.qdrant.errors import EdgeCorrupt

    store = open_store(target)
    os.makedirs(os.path.join(store.root, "plain"))
    with pytest.raises(CollectionConflict) as info:
        store.check_claim("plain", NS_A)
    assert str(info.value).endswith(f"(it has no {MARKER_FILE}), so it is neither removed nor taken over. Choose "
                                    "another collection name (infrastructure.qdrant_collection / collection_name) "
                                    "or another target path, or move the directory away.")
    _unfinished_create(store.root, "theirs", NS_B)
    store.check_claim("theirs", NS_B)  # its own namespace's rerun redoes it
    with pytest.raises(CollectionConflict) as info:
        store.check_claim("theirs", NS_A)
    assert str(info.value).startswith(f"Qdrant collection 'theirs' at {store.location} belongs to namespace {NS_B} "
                                      f"(created by another namespace, stack or process); refusing to adopt it for "
                                      f"namespace {NS_A}.")
    path = _unfinished_create(store.root, "nobodys", None)
    with pytest.raises(CollectionConflict) as info:
        store.check_claim("nobodys", NS_A)
    assert str(info.value) == (f"refusing to create Qdrant collection 'nobodys' at {store.location}: {path} holds an "
                               f"unfinished collection that records no namespace, so it is not provably {NS_A}'s and "
                               "is left alone. Move the directory away (or remove it if its contents are expendable), "
                               "or choose another collection name.")
    path = _unfinished_create(store.root, "written", NS_A)
    with open(os.path.join(path, "segment.bin"), "wb") as fh:
        fh.write(b"points")
    with pytest.raises(EdgeCorrupt) as info:
        store.check_claim("written", NS_A)
    assert str(info.value).endswith("restore it from a snapshot or backup, or remove the directory if its data is "
                                    "expendable.")

