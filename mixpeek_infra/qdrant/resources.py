"""Pulumi dynamic resources for a namespace's Qdrant collection and its payload indexes.

`Collection` and `PayloadIndex` are the resources; their providers' lifecycles are in
`mixpeek_infra.qdrant.providers`, their input checks in `mixpeek_infra.qdrant.inputs`.

This module is also the stable import path of the providers: Pulumi pickles the provider into every
resource's `__provider` by reference, as `mixpeek_infra.qdrant.resources.CollectionProvider` and
`mixpeek_infra.qdrant.resources.PayloadIndexProvider` (module and class names). Those names are
public: existing stacks' state holds them, so they stay importable from here (tests/data holds such
blobs, and a test loads them).

The API key is a secret end to end (see `mixpeek_infra.qdrant.keys`): an input key is wrapped in
`pulumi.Output.secret`, and the resources list it in `additional_secret_outputs`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import rpc

from ..state_names import COLLECTION_RESOURCE, DYNAMIC_MODULE, PAYLOAD_INDEX_RESOURCE
from .errors import DeletionProtected, FinalSnapshotFailed
from .inputs import normalize_collection_inputs, normalize_index_inputs
from .providers import CollectionProvider, PayloadIndexProvider
from .target import QdrantTarget


class Collection(pulumi.dynamic.Resource, module=DYNAMIC_MODULE, name=COLLECTION_RESOURCE):
    """A namespace's Qdrant collection: one named vector per vector index of its feature extractors.

    vectors: `{name: {"size", "distance", "datatype", "on_disk"[, "multivector": {"comparator": "max_sim"}]}}` as
        `NamespacePlan.vector_config()` gives.
    target: where it lives (`QdrantTarget`); default embedded Qdrant Edge at `.mixpeek/qdrant`.
    namespace_id: a fixed id (`ns_` + 10 hex); by default one is generated once, at creation.
    collection_name: a fixed collection name; by default the namespace id.
    settings: hnsw_config, quantization_config, on_disk_payload, shard_number, replication_factor.
    deletion_protection: refuse to delete or replace the collection while it holds points.
    final_snapshot: a directory; before the collection is deleted or replaced a restorable snapshot is
        written there (`restore_snapshot`), and the delete is refused when that fails.
    retain_previous: keep the collection a migration moved away from (`<name>-g<N>`) for rollback.

    Outputs: namespace_id, collection_name, vectors (as read back), settings (managed keys, as read
    back), points_count, created_at, updated_at, target, deletion_protection, final_snapshot,
    previous_collections (the generations kept by migrations, oldest first).
    """

    namespace_id: pulumi.Output[str]
    collection_name: pulumi.Output[str]
    vectors: pulumi.Output[dict]
    settings: pulumi.Output[dict]
    points_count: pulumi.Output[int]
    created_at: pulumi.Output[str]
    updated_at: pulumi.Output[str]
    target: pulumi.Output[dict]
    deletion_protection: pulumi.Output[bool]
    final_snapshot: pulumi.Output[str | None]
    previous_collections: pulumi.Output[list]

    def __init__(
        self,
        resource_name: str,
        *,
        vectors: Mapping[str, Mapping[str, Any]],
        target: QdrantTarget | None = None,
        namespace_id: pulumi.Input[str] | None = None,
        collection_name: str | None = None,
        settings: Mapping[str, Any] | None = None,
        deletion_protection: bool = True,
        final_snapshot: str | None = None,
        retain_previous: bool = True,
        opts: pulumi.ResourceOptions | None = None,
    ):
        target = target or QdrantTarget()
        props: dict[str, Any] = {
            "target": target.spec(),
            "vectors": {k: dict(v) for k, v in vectors.items()},
            "settings": dict(settings or {}),
            "namespace_id": namespace_id,
            "collection_name": collection_name,
            "deletion_protection": deletion_protection,
            "final_snapshot": final_snapshot,
            "retain_previous": retain_previous,
            "api_key": pulumi.Output.secret(target.api_key) if target.api_key is not None else None,
            "points_count": None,
            "previous_collections": None,
            "created_at": None,
            "updated_at": None,
        }
        # Fail in the program, naming the field, for everything already known.
        normalize_collection_inputs(
            {
                k: v
                for k, v in props.items()
                if v is not None
                and not isinstance(v, pulumi.Output)
                and k not in ("points_count", "created_at", "updated_at", "previous_collections")
            }
        )
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["api_key"]))
        super().__init__(CollectionProvider(), resource_name, props, opts)


class PayloadIndex(pulumi.dynamic.Resource, module=DYNAMIC_MODULE, name=PAYLOAD_INDEX_RESOURCE):
    """One payload index of a namespace's collection, with its full field schema.

    field_schema as the plan gives it, e.g. `{"type": "text", "tokenizer": "word", "min_token_len": 2,
    "max_token_len": 15, "lowercase": True}` or `{"type": "keyword", "is_tenant": True}`.
    namespace_id: the namespace owning the collection (`Collection.namespace_id`); every write and the delete
        refuse a collection recorded as another namespace's. Without it, the owner found at create is recorded.
    Give it `ResourceOptions(deleted_with=collection)` so a destroy leaves the index to the collection's delete
    (whose final snapshot then holds it), as the `Namespace` component does.
    Outputs: collection_name, field_name, field_type and field_schema as Qdrant reports them, namespace_id.
    """

    collection_name: pulumi.Output[str]
    field_name: pulumi.Output[str]
    field_type: pulumi.Output[str]
    field_schema: pulumi.Output[dict]
    target: pulumi.Output[dict]
    namespace_id: pulumi.Output[str | None]

    def __init__(
        self,
        resource_name: str,
        *,
        collection_name: pulumi.Input[str],
        field_name: str,
        field_type: str,
        field_schema: Mapping[str, Any] | None,
        target: QdrantTarget | None = None,
        namespace_id: pulumi.Input[str] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ):
        target = target or QdrantTarget()
        props: dict[str, Any] = {
            "target": target.spec(),
            "collection_name": collection_name,
            "field_name": field_name,
            "field_type": field_type,
            "field_schema": dict(field_schema) if field_schema is not None else None,
            "namespace_id": namespace_id,
            "api_key": pulumi.Output.secret(target.api_key) if target.api_key is not None else None,
        }
        check = {k: v for k, v in props.items() if v is not None and not isinstance(v, pulumi.Output)}
        check.setdefault("collection_name", rpc.UNKNOWN)
        normalize_index_inputs(check)
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["api_key"]))
        super().__init__(PayloadIndexProvider(), resource_name, props, opts)


__all__ = [
    "Collection",
    "CollectionProvider",
    "DeletionProtected",
    "FinalSnapshotFailed",
    "PayloadIndex",
    "PayloadIndexProvider",
    "normalize_collection_inputs",
    "normalize_index_inputs",
]
