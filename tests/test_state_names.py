"""The names Pulumi state stores, listed by value: a refactor that changes one fails here, not in a user's stack.

Changing a value below is a breaking change for every existing stack: keep the old name reachable (an
`Alias`, a re-export of the old module path) and say so in CHANGELOG.md before touching this list.
"""

from __future__ import annotations

import base64
import importlib
from pathlib import Path

import dill

from mixpeek_infra import state_names as N

DATA = Path(__file__).parent / "data"


def test_the_frozen_names_by_value():
    assert N.NAMESPACE_TYPE == "mixpeek:index:Namespace"
    assert N.PACKAGE_NAMESPACE_TYPE == "mixpeek-infra:index:Namespace"
    assert (N.DYNAMIC_MODULE, N.COLLECTION_RESOURCE, N.PAYLOAD_INDEX_RESOURCE, N.LOCAL_RAY_HEAD_RESOURCE) == (
        "mixpeek", "QdrantCollection", "QdrantPayloadIndex", "LocalRayHead")
    assert N.PICKLED_PROVIDERS == {
        "mixpeek_infra.qdrant.resources": ("CollectionProvider", "PayloadIndexProvider"),
        "mixpeek_infra.ray.local": ("LocalRayHeadProvider",),
    }
    assert N.SHARED_RAY_NAME == "shared-ray"
    assert (N.collection_name("ns"), N.payload_index_name("ns", "metadata.title"), N.ray_head_name("ns")) == (
        "ns-collection", "ns-index-metadata.title", "ns-ray")
    assert [N.kubernetes_name("ns-ray", part) for part in N.KUBERNETES_SUFFIXES] == [
        "ns-ray-namespace", "ns-ray-auth", "ns-ray-head", "ns-ray-service", "ns-ray-cluster", "ns-ray-network-policy"]


def test_the_resources_register_the_frozen_type_tokens():
    from mixpeek_infra.component_provider import TYPE
    from mixpeek_infra.namespace import NAMESPACE_TYPE
    from mixpeek_infra.qdrant.resources import Collection, PayloadIndex
    from mixpeek_infra.ray.local import LocalRayHead

    assert TYPE == "mixpeek-infra:index:Namespace" and NAMESPACE_TYPE == "mixpeek:index:Namespace"
    assert [r._resource_type_name for r in (Collection, PayloadIndex, LocalRayHead)] == [
        "dynamic/mixpeek:QdrantCollection", "dynamic/mixpeek:QdrantPayloadIndex", "dynamic/mixpeek:LocalRayHead"]


def test_pickled_providers_import_from_their_frozen_paths_and_pickle_by_them():
    for module, classes in N.PICKLED_PROVIDERS.items():
        loaded = importlib.import_module(module)
        for name in classes:
            cls = getattr(loaded, name)
            assert (cls.__module__, cls.__qualname__) == (module, name)
            assert module.encode() in dill.dumps(cls()) and name.encode() in dill.dumps(cls())


def test_every_stored_provider_blob_names_a_frozen_path():
    blobs = sorted(DATA.glob("provider_*.b64"))
    assert len(blobs) == 3
    frozen = {(m, c) for m, cs in N.PICKLED_PROVIDERS.items() for c in cs}
    for blob in blobs:
        provider = dill.loads(base64.b64decode(blob.read_text().strip()))
        assert (type(provider).__module__, type(provider).__qualname__) in frozen, blob.name
