"""Names that Pulumi state stores: type tokens, resource names, the paths of pickled providers.

Every stack that ever ran `pulumi up` holds these strings. Change one and the engine no longer matches
the state to the program: a type token or a resource name that differs previews a delete and a create
(the collection's points lost), and a provider class path that no longer imports breaks every later
`pulumi` command on that stack. They live here, and only here; `tests/test_state_names.py` lists
their values, so a refactor that changes one fails a test instead of an existing stack. A deliberate
rename keeps the old name reachable (an `Alias`, a re-export of the old module path).

Pure: no imports.
"""

from __future__ import annotations

#: the Python component's type token
NAMESPACE_TYPE = "mixpeek:index:Namespace"
#: the component provider package (`provider/`) and its token; aliased to NAMESPACE_TYPE
PACKAGE = "mixpeek-infra"
PACKAGE_NAMESPACE_TYPE = f"{PACKAGE}:index:Namespace"

#: dynamic resources: `pulumi-python:dynamic/<module>:<name>`
DYNAMIC_MODULE = "mixpeek"
COLLECTION_RESOURCE = "QdrantCollection"
PAYLOAD_INDEX_RESOURCE = "QdrantPayloadIndex"
LOCAL_RAY_HEAD_RESOURCE = "LocalRayHead"

#: module path -> classes pickled by reference into every dynamic resource's `__provider`
PICKLED_PROVIDERS = {
    "mixpeek_infra.qdrant.resources": ("CollectionProvider", "PayloadIndexProvider"),
    "mixpeek_infra.ray.local": ("LocalRayHeadProvider",),
}
#: where the Qdrant providers are pickled from (their `__module__`; the module re-exports them)
QDRANT_PROVIDERS_MODULE = "mixpeek_infra.qdrant.resources"

#: the stack's (and a program's) one shared Ray head
SHARED_RAY_NAME = "shared-ray"


def collection_name(namespace: str) -> str:
    """The resource name of a Namespace component's Qdrant collection."""
    return f"{namespace}-collection"


def payload_index_name(namespace: str, field_name: str) -> str:
    """The resource name of one payload index of a Namespace component."""
    return f"{namespace}-index-{field_name}"


def ray_head_name(namespace: str) -> str:
    """The name a Namespace component's Ray head resources start with."""
    return f"{namespace}-ray"


#: suffixes of a Kubernetes Ray head's resources (after its `ray_head_name`)
KUBERNETES_SUFFIXES = ("namespace", "auth", "head", "service", "cluster", "network-policy")


def kubernetes_name(head: str, part: str) -> str:
    """The resource name of one Kubernetes object of a head (`part` one of KUBERNETES_SUFFIXES)."""
    if part not in KUBERNETES_SUFFIXES:
        raise ValueError(f"unknown Kubernetes part {part!r}; one of {', '.join(KUBERNETES_SUFFIXES)}")
    return f"{head}-{part}"


__all__ = [
    "COLLECTION_RESOURCE",
    "DYNAMIC_MODULE",
    "KUBERNETES_SUFFIXES",
    "LOCAL_RAY_HEAD_RESOURCE",
    "NAMESPACE_TYPE",
    "PACKAGE",
    "PACKAGE_NAMESPACE_TYPE",
    "PAYLOAD_INDEX_RESOURCE",
    "PICKLED_PROVIDERS",
    "QDRANT_PROVIDERS_MODULE",
    "SHARED_RAY_NAME",
    "collection_name",
    "kubernetes_name",
    "payload_index_name",
    "ray_head_name",
]
