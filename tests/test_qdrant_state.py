"""What existing stacks hold must keep working: the pickled providers, and the module layout behind them.

`tests/data/provider_collection.b64` and `tests/data/provider_payload_index.b64` are the `__provider`
values Pulumi's SDK wrote (`pulumi.dynamic.dynamic.serialize_provider`: dill, recurse=True, base64) for
`CollectionProvider()` and `PayloadIndexProvider()` before `mixpeek_infra.qdrant.resources` was split
into modules. Every stack created before holds them; the provider host loads them with
`dill.loads(base64.b64decode(...))` and calls the provider's methods.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from enginehost import from_struct, to_struct
from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
from mixpeek_infra.qdrant.store import forget_stores
from mixpeek_infra.qdrant.store.edge import close_all_shards

DATA = Path(__file__).parent / "data"
BLOBS = {"provider_collection.b64": CollectionProvider, "provider_payload_index.b64": PayloadIndexProvider}
VECTORS = {"image": {"size": 4, "distance": "Cosine"}, "text": {"size": 8.0, "distance": "dot", "on_disk": True}}


def wire(props: dict) -> dict:
    return from_struct(to_struct(props))


def stored(name: str) -> str:
    return (DATA / name).read_text().strip()


def load(name: str):
    """What the SDK's provider host does with `__provider` (pulumi/dynamic/__main__.py `get_provider`)."""
    return dill.loads(base64.b64decode(stored(name)))


@pytest.fixture(autouse=True)
def _clean():
    yield
    close_all_shards()
    forget_stores()


@pytest.mark.parametrize("name, cls", list(BLOBS.items()))
def test_state_written_before_the_split_loads_as_the_same_provider(name, cls):
    raw = base64.b64decode(stored(name))
    assert b"mixpeek_infra.qdrant.resources" in raw and cls.__name__.encode() in raw
    provider = load(name)
    assert type(provider) is cls
    assert vars(provider) == {}  # no attributes, so no key could have been pickled


@pytest.mark.parametrize("name, cls", list(BLOBS.items()))
def test_providers_pickle_exactly_as_before_the_split(name, cls):
    """The same bytes: no stack sees its `__provider` change (nor a diff) after upgrading."""
    assert serialize_provider(cls()) == stored(name)


def test_loaded_collection_provider_checks_and_diffs(tmp_path):
    provider = load("provider_collection.b64")
    target = {"kind": "embedded", "path": str(tmp_path / "q"), "timeout": 10.0}
    news = {"target": target, "vectors": VECTORS, "settings": {"hnsw_config": {"m": 32.0}},
            "namespace_id": "ns_0123456789", "deletion_protection": True}
    result = provider.check({}, wire(news))
    assert result.failures == []
    inputs = wire(result.inputs)
    assert inputs["vectors"]["image"] == {"size": 4, "distance": "cosine", "datatype": "float32", "on_disk": False}
    assert inputs["settings"]["hnsw_config"] == {"m": 32, "ef_construct": 100, "full_scan_threshold": 10000}

    olds = {**inputs, "collection_name": "ns_0123456789", "points_count": 0}
    assert provider.diff("ns_0123456789", olds, wire(news)).changes is False
    changed = provider.diff("ns_0123456789", olds, wire({**news, "deletion_protection": False}))
    assert changed.changes is True and not changed.replaces

    bad = provider.check({}, wire({**news, "vectors": {"image": {"size": 0, "distance": "cosine"}}}))
    assert [(f.property, f.reason) for f in bad.failures] == [("vectors.image.size", "0 is below the minimum 1")]


def test_loaded_payload_index_provider_checks_and_diffs(tmp_path):
    provider = load("provider_payload_index.b64")
    target = {"kind": "embedded", "path": str(tmp_path / "q"), "timeout": 10.0}
    news = {"target": target, "collection_name": "ns_0123456789", "field_name": "metadata.title",
            "field_type": "text", "field_schema": {"type": "text", "max_token_len": 20.0}}
    result = provider.check({}, wire(news))
    assert result.failures == []
    inputs = wire(result.inputs)
    assert inputs["field_schema"] == {"type": "text", "tokenizer": "word", "min_token_len": 2, "max_token_len": 20,
                                      "lowercase": True}
    assert provider.diff("ns_0123456789/metadata.title", inputs, wire(news)).changes is False
    moved = provider.diff("ns_0123456789/metadata.title", inputs, wire({**news, "field_name": "metadata.name"}))
    assert moved.replaces == ["field_name"]

    bad = provider.check({}, wire({**news, "target": {"kind": "cloud"}}))
    assert [f.property for f in bad.failures] == ["target.kind"]


def test_a_fresh_provider_host_loads_both(tmp_path):
    """As the SDK's provider host does: a new interpreter with nothing of ours imported beforehand."""
    code = ("import base64, sys, dill\n"
            "for path in sys.argv[1:]:\n"
            "    p = dill.loads(base64.b64decode(open(path).read().strip()))\n"
            "    print(type(p).__module__, type(p).__name__)\n")
    out = subprocess.run([sys.executable, "-c", code, *(str(DATA / n) for n in BLOBS)], capture_output=True,
                         text=True, check=True, cwd=str(tmp_path)).stdout.split("\n")
    assert out[:2] == ["mixpeek_infra.qdrant.resources CollectionProvider",
                       "mixpeek_infra.qdrant.resources PayloadIndexProvider"]


# ---------------------------------------------------------------------------------------------
# The packages' lazy maps (import circles: tests/test_architecture.py)


def test_the_packages_import_none_of_their_modules():
    """`mixpeek_infra.qdrant` and `.store` name their modules' contents lazily (strings); a child module
    importing its package then never closes a circle through the package's own imports."""
    code = ("import sys, mixpeek_infra.qdrant, mixpeek_infra.qdrant.store\n"
            "print(sorted(m for m in sys.modules if m.startswith('mixpeek_infra.qdrant.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}).stdout.strip()
    assert out == "['mixpeek_infra.qdrant.store']"
