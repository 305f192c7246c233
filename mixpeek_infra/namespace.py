"""The `Namespace` component: a Create Namespace request rendered as Pulumi resources.

It plans the request (failing before any child is registered when the request is invalid),
then creates the Qdrant collection, one payload index per planned index, and the Ray head, and
exports what the documented Create Namespace response carries.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from .extractors import Catalogue
from .plan import NamespacePlan, namespace_id_problem, plan_request, ray_head_problem
from .qdrant.resources import Collection, PayloadIndex
from .qdrant.target import QdrantTarget
from .ray.deploy import deploy_ray_head
from .ray.spec import RayHead
from .redact import redact_url
from .schema import CreateNamespaceRequest, InvalidRequest, NamespaceModel, parse_request
from .settings import NamespaceSettings
from .state_names import NAMESPACE_TYPE, SHARED_RAY_NAME, collection_name, payload_index_name, ray_head_name


@dataclass
class NamespaceArgs(NamespaceSettings):
    """Arguments of a `Namespace`: its request, where it lives, and the settings every surface shares
    (`NamespaceSettings`, keywords only: deletion_protection, namespace_id, cluster_id, collection_settings,
    vectors_on_disk, ...).

    request: the Create Namespace body (model or plain dict).
    qdrant: where the collection lives; default embedded Qdrant Edge at `.mixpeek/qdrant`, or the
        request's `infrastructure.qdrant_url`/`qdrant_api_key` when given.
    ray: the Ray head; default a local head for dedicated tiers. The shared tier uses the shared
        cluster given (`infrastructure.ray_head_node_url` or `RayHead.external(url)`); without one, one
        local shared Ray head (`shared-ray`) per program, created once and reused by every shared-tier
        namespace of the program.
    final_snapshot: a directory; before the collection is deleted or replaced, a restorable snapshot is
        written there (`mixpeek_infra.qdrant.restore_snapshot`), and the delete is refused if that fails.
    catalogue: the extractor catalogue; default the process-wide one.
    namespace_id: as `NamespaceSettings.namespace_id`; the body's own `namespace_id` does the same (given
        both, they must agree).
    """

    request: CreateNamespaceRequest | Mapping[str, Any]
    qdrant: QdrantTarget | None = None
    ray: RayHead | None = None
    catalogue: Catalogue | None = None
    final_snapshot: str | None = None


def _qdrant_target(args: NamespaceArgs, request: CreateNamespaceRequest) -> QdrantTarget:
    infra = request.infrastructure
    if infra is not None and infra.qdrant_url is not None:
        if args.qdrant is not None:
            raise InvalidRequest(
                [("infrastructure.qdrant_url", "given both in the request and as NamespaceArgs.qdrant; use one")]
            )
        key = infra.qdrant_api_key.get_secret_value() if infra.qdrant_api_key else None
        return QdrantTarget(url=infra.qdrant_url, api_key=pulumi.Output.secret(key) if key else None)
    return args.qdrant or QdrantTarget()


# The program's default shared Ray head, keyed by the program's resource monitor (one per program run).
_SHARED_HEADS: dict[int, tuple[Any, Any]] = {}
# What each shared head a program runs is, by its URL Output's id (with the Output, so the id cannot be reused).
_SHARED_HEAD_TEXT: dict[int, tuple[Any, str]] = {}


def shared_head_url(name: str, spec: RayHead, owner: str) -> pulumi.Output[str]:
    """Run the shared Ray head `name` of the program (`owner`: "stack" or "program"); returns its URL, which
    shared-tier namespaces use as an external head and describe as this head."""
    from .ray.deploy import deploy_shared_ray_head

    url = deploy_shared_ray_head(name, spec).ray_head_node_url
    _SHARED_HEAD_TEXT[id(url)] = (url, f"the {owner}'s {spec.mode} shared head {name!r}")
    return url


def head_text(spec: RayHead) -> str:
    """What a namespace's Ray head is, in the words of `mixpeek-infra plan`: the stack's shared head, an
    external cluster at its URL, or the namespace's own local or Kubernetes head."""
    if spec.mode == "external":
        shared = _SHARED_HEAD_TEXT.get(id(spec.url))
        if shared is not None and shared[0] is spec.url:
            return shared[1]
        return f"external cluster at {redact_url(spec.url)}" if isinstance(spec.url, str) else "an external cluster"
    if spec.mode == "local":
        return f"its own local head (state in {spec.state_dir})"
    return f"its own Kubernetes head ({spec.k8s.mode})" if spec.k8s is not None else f"its own {spec.mode} head"


def _default_shared_head() -> RayHead:
    """The program's local shared Ray head (created on first use), as an external head of its URL."""
    monitor = pulumi.runtime.settings.get_monitor()
    found = _SHARED_HEADS.get(id(monitor))
    if found is None or found[0] is not monitor:
        spec = RayHead.local()
        url = shared_head_url(SHARED_RAY_NAME, spec, "program")
        pulumi.log.info(
            f"shared-tier namespaces of this program use one local shared Ray head ({SHARED_RAY_NAME!r}, "
            f"state in {spec.state_dir}): no shared cluster was given (set "
            "infrastructure.ray_head_node_url or NamespaceArgs.ray=RayHead.external(url) for one)"
        )
        found = _SHARED_HEADS[id(monitor)] = (monitor, url)
    return RayHead.external(found[1])


def _ray_head(args: NamespaceArgs, plan: NamespacePlan) -> RayHead | None:
    """The namespace's head; None for a shared-tier namespace with no cluster given (the program's default)."""
    infra = plan.infrastructure
    if (problem := ray_head_problem(infra, args.ray.mode if args.ray is not None else None)) is not None:
        raise InvalidRequest([problem])
    if infra.ray_head_node_url:
        return RayHead.external(infra.ray_head_node_url)
    if infra.compute_tier == "shared":
        return args.ray
    return args.ray or RayHead.local()


class Namespace(pulumi.ComponentResource):
    """A Mixpeek namespace: its Qdrant collection, payload indexes and Ray head.

    Outputs: `namespace_id`, `vector_inference_map`, `qdrant_collection`, `ray_head_node_url`,
    `infrastructure`, `payload_indexes`, `feature_extractors` and `namespace` (the documented
    NamespaceModel). `plan` holds the pure plan the resources were rendered from.
    """

    namespace_id: pulumi.Output[str]
    vector_inference_map: pulumi.Output[dict]
    qdrant_collection: pulumi.Output[str]
    ray_head_node_url: pulumi.Output[str]
    infrastructure: pulumi.Output[dict]
    payload_indexes: pulumi.Output[list]
    feature_extractors: pulumi.Output[list]
    namespace: pulumi.Output[dict]

    def __init__(self, name: str, args: NamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        # Everything that can be wrong with the input is found here, before any resource exists.
        request = parse_request(args.request, catalogue=args.catalogue)
        plan = plan_request(request, catalogue=args.catalogue, vectors_on_disk=args.vectors_on_disk)
        if (problem := namespace_id_problem(plan, args.namespace_id)) is not None:
            raise InvalidRequest([problem])
        namespace_id = args.namespace_id or plan.namespace_id
        target = _qdrant_target(args, request)
        ray_spec = _ray_head(args, plan)
        super().__init__(NAMESPACE_TYPE, name, None, opts)
        for path, message in plan.warnings:
            pulumi.log.warn(f"namespace {plan.namespace_name}: {path}: {message}", resource=self)
        if ray_spec is None:
            ray_spec = _default_shared_head()
        self.plan = plan
        child = pulumi.ResourceOptions(parent=self)

        collection = Collection(
            collection_name(name),
            vectors=plan.vector_config(),
            target=target,
            namespace_id=namespace_id,
            collection_name=plan.infrastructure.qdrant_collection,
            settings=dict(args.collection_settings) if args.collection_settings else None,
            deletion_protection=args.deletion_protection,
            final_snapshot=args.final_snapshot,
            retain_previous=args.retain_previous,
            opts=child,
        )
        self.collection = collection
        self.indexes = [
            PayloadIndex(
                payload_index_name(name, ix.field_name),
                # The id (the collection's name) stays known while the collection is updated; its outputs
                # do not (the dynamic provider has no preview of an update), which would replace every index.
                collection_name=collection.id,
                field_name=ix.field_name,
                field_type=ix.type,
                field_schema=dict(ix.field_schema),
                target=target,
                namespace_id=collection.namespace_id,
                # deleted_with: a destroy keeps the indexes until the collection goes (its final snapshot holds them)
                opts=pulumi.ResourceOptions(
                    parent=collection,
                    deleted_with=collection,
                    aliases=_earlier_index_names(name, opts, ix.field_name) or None,
                ),
            )
            for ix in plan.payload_indexes
        ]
        head_namespace_id = _preview_stable_namespace_id(collection, namespace_id, plan)
        ray = deploy_ray_head(ray_head_name(name), ray_spec, plan, head_namespace_id, parent=self)
        self.ray_resources = ray.resources

        self.namespace_id = collection.namespace_id
        self.qdrant_collection = collection.collection_name
        self.ray_head_node_url = ray.ray_head_node_url
        # Known values as one Output each: from_input would wrap every nested item in its own Output.
        self.vector_inference_map = _known(dict(plan.vector_inference_map))
        self.payload_indexes = _known([dict(ix.__dict__) for ix in plan.payload_indexes])
        self.feature_extractors = _known([dict(fe) for fe in plan.feature_extractors])
        qdrant_url = target.url
        self.infrastructure = pulumi.Output.all(
            collection.collection_name, ray.ray_head_node_url, ray.ray_dashboard_url
        ).apply(lambda xs: _infrastructure(plan, xs[0], xs[1], xs[2], qdrant_url))
        # Output.all only over plain values: it turns each item of a dict-valued Output (infrastructure, an
        # index's field_schema) into an Output of its own, hundreds a namespace that the SDK then waits on.
        self.namespace = pulumi.Output.all(
            collection.namespace_id, collection.points_count, collection.created_at, collection.updated_at
        ).apply(
            lambda xs: _values([self.infrastructure, *[ix.field_schema for ix in self.indexes]]).apply(
                lambda ds: _namespace_model(plan, args.cluster_id, xs[0], ds[0], xs[1], xs[2], xs[3], ds[1:])
            )
        )
        pulumi.log.info(
            f"namespace {plan.namespace_name}: {len(plan.vectors)} vectors, "
            f"{len(plan.payload_indexes)} payload indexes, Ray head: {head_text(ray_spec)}",
            resource=self,
        )
        self.register_outputs(
            {
                "namespace_id": self.namespace_id,
                "vector_inference_map": self.vector_inference_map,
                "qdrant_collection": self.qdrant_collection,
                "ray_head_node_url": self.ray_head_node_url,
                "infrastructure": self.infrastructure,
                "payload_indexes": self.payload_indexes,
                "feature_extractors": self.feature_extractors,
                "namespace": self.namespace,
            }
        )


def _earlier_index_names(name: str, opts: pulumi.ResourceOptions | None, field_name: str) -> list[pulumi.Alias]:
    """An index's aliases under the namespace's earlier names (`aliases=[Alias(name=old)]`, e.g. the stack's
    `renamed_from`). The engine derives a child's alias only when the child's name starts with its parent's;
    an index's (`<name>-index-<field>`) does not start with its collection's, so they are given here."""
    if opts is None:
        return []
    earlier = [a.name for a in (opts.aliases or []) if isinstance(a, pulumi.Alias) and isinstance(a.name, str)]
    collection_type = f"pulumi-python:{Collection._resource_type_name}"
    return [
        pulumi.Alias(
            name=payload_index_name(old, field_name),
            parent=pulumi.resource.create_urn(
                collection_name(old),
                collection_type,
                parent=pulumi.resource.create_urn(old, NAMESPACE_TYPE, parent=opts.parent),
            ),
        )
        for old in earlier
    ]


def _ints(value: Any) -> Any:
    """Integral floats (how the engine hands back numbers) as ints, so integer fields stay integers."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _preview_stable_namespace_id(
    collection: Collection, namespace_id: str | None, plan: NamespacePlan
) -> pulumi.Input[str]:
    """The namespace id for the Ray head, known at preview whenever it cannot change.

    The collection's outputs are unknown while a preview shows it updated (the dynamic provider has no
    preview of an update), so its `namespace_id` made every update of the collection preview an update
    of the head. A fixed id is known here; a generated one is the collection's name unless
    `qdrant_collection` is fixed, and the collection's id stays known unless it is created or replaced.
    All three are the same value once the collection exists.
    """
    if namespace_id:
        return namespace_id
    if plan.infrastructure.qdrant_collection is None:
        return collection.id
    return collection.namespace_id  # a fixed collection name with a generated id: unknown while updated


def _values(outputs: list[pulumi.Output[Any]]) -> pulumi.Output[list[Any]]:
    """The values of `outputs` as one Output of a list, each value as it is: `Output.all` would convert every
    item of a dict or list value into an Output. Unknown, secret and dependencies carry over as with `all`."""

    def then(output: pulumi.Output[Any]) -> Callable[[list[Any]], pulumi.Output[list[Any]]]:
        return lambda done: output.apply(lambda value: [*done, value])

    combined: pulumi.Output[list[Any]] = _known([])
    for output in outputs:
        combined = combined.apply(then(output))
    return combined


def _known(value: Any) -> pulumi.Output[Any]:
    """A value known at preview, as a single Output."""
    return pulumi.Output.from_input(None).apply(lambda _: value)


def _infrastructure(
    plan: NamespacePlan, collection: str, ray_url: str | None, dashboard: str | None, qdrant_url: str | None
) -> dict[str, Any]:
    """The documented NamespaceInfrastructure of the namespace (never the API key)."""
    infra = plan.infrastructure.to_dict()
    infra.update(
        qdrant_collection=collection,
        ray_head_node_url=ray_url,
        ray_dashboard_url=dashboard or infra["ray_dashboard_url"],
        qdrant_url=qdrant_url,
    )
    return infra


def _namespace_model(
    plan: NamespacePlan,
    cluster_id: str | None,
    namespace_id: str,
    infrastructure: dict,
    points: Any,
    created_at: str | None,
    updated_at: str | None,
    index_schemas: list[Any],
) -> dict[str, Any]:
    """The documented NamespaceModel; payload index schemas are the ones Qdrant reports."""
    indexes = []
    for ix, real in zip(plan.payload_indexes, index_schemas):
        indexes.append(
            {
                "field_name": ix.field_name,
                "type": ix.type,
                "field_schema": _ints(dict(real)) if real else dict(ix.field_schema),
                "is_protected": ix.is_protected,
            }
        )
    model = NamespaceModel(
        namespace_id=namespace_id,
        namespace_name=plan.namespace_name,
        mode=plan.mode,
        **plan.labels,
        description=plan.description,
        feature_extractors=[dict(fe) for fe in plan.feature_extractors],
        payload_indexes=indexes,
        payload_index_count=sum(1 for ix in plan.payload_indexes if not ix.is_protected),
        # Bring-your-own vectors have no inference service: they are in vector_configs, not in this map.
        vector_inference_map={k: v for k, v in plan.vector_inference_map.items() if v is not None},
        vector_configs=[dict(vc) for vc in plan.vector_configs] or None,
        auto_create_indexes=plan.auto_create_indexes,
        infrastructure=infrastructure,
        cluster_id=cluster_id,
        # The collection exists (this model is built from its outputs) and its count was read.
        namespace_ready=points is not None,
        document_count=int(points) if points is not None else None,
        document_count_complete=points is not None,
        created_at=created_at,
        updated_at=updated_at,
    )
    return model.model_dump(mode="json")
