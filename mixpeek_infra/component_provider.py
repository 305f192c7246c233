"""The `Namespace` component as a Pulumi package, for programs in YAML, TypeScript, Go, ...

`pulumi package add <this repo>/provider` (the plugin directory: `PulumiPlugin.yaml` and a
`__main__.py` calling `main()`) makes the engine run this module in a Python process of its own:
the SDK's component provider (`pulumi.provider.experimental`, what `component_provider_host`
serves) infers the package schema from the type annotations below and, on each `Construct`,
builds the same `mixpeek_infra.namespace.Namespace` a Python program builds: the Qdrant
collection, its payload indexes and the Ray head are the very same dynamic resources, whose
provider the engine runs in `pulumi-resource-pulumi-python` whatever the program's language.
That plugin runs the Python of the program's `runtime.options.virtualenv` (programs point it at
the component provider's virtualenv), else `PULUMI_PYTHON_CMD`, else `python3` from PATH; it must
be able to import `mixpeek_infra`.

Package name and type token: `mixpeek-infra:index:Namespace` (the PyPI project's name), not
`mixpeek:index:Namespace`, the token the Python component registers: the bare `mixpeek` name
would clash with an official Mixpeek Pulumi package, should one ever be published. The
packaged component carries an alias to the Python token, so a Python stack moved onto the
package keeps its resources (the children inherit the alias).

Schema property names are camelCase (`namespaceName`, `featureExtractors`, ...), the Pulumi
convention every generated SDK uses; free-form maps (`params`, `fieldSchema`,
`collectionSettings`) keep the documented snake_case keys of the Create Namespace body.
"""

# No `from __future__ import annotations`: the SDK's analyzer reads the annotations as real types.

import collections.abc
import types
import typing
from collections.abc import Mapping
from typing import Any, Optional, TypedDict

import pulumi

try:  # Python 3.11+
    from typing import NotRequired
except ImportError:  # pragma: no cover - Python 3.10
    from typing_extensions import NotRequired

# The public API only (the package's own modules are being reorganised underneath it).
from . import QdrantTarget, RayHead, __version__
from .namespace import Namespace as _Namespace
from .namespace import NamespaceArgs as _NamespaceArgs
from .settings import NamespaceSettings, setting_docs, setting_names
from .state_names import PACKAGE, PACKAGE_NAMESPACE_TYPE

PACKAGE_NAMESPACE = "mixpeek"
PACKAGE_VERSION = __version__
TYPE = PACKAGE_NAMESPACE_TYPE


class FeatureExtractor(TypedDict):
    """A feature extractor of the Create Namespace request."""

    feature_extractor_name: str
    """The extractor's name, e.g. `image_extractor`."""
    version: str
    """The extractor's version, e.g. `v1`."""
    params: NotRequired[dict[str, Any]]
    """The extractor's parameters, e.g. `{model: siglip_base}`."""
    feature_extractor_id: NotRequired[str]
    """`<name>_<version>`; checked against name and version when given."""


class PayloadIndex(TypedDict):
    """A payload index of the Create Namespace request."""

    field_name: str
    """The payload field, e.g. `metadata.title`."""
    type: str
    """keyword, integer, float, bool, geo, datetime, text or uuid."""
    field_schema: NotRequired[dict[str, Any]]
    """Qdrant index parameters in the documented snake_case, e.g. `{type: text, min_token_len: 2}`."""
    is_protected: NotRequired[bool]
    """Echoed in the namespace model."""


class NamespaceInfrastructure(TypedDict, total=False):
    """The request's `infrastructure` (all optional)."""

    compute_tier: str
    """shared, dedicated_cpu or dedicated_gpu (v0.81)."""
    autoscaling_enabled: bool
    min_workers: int
    max_workers: int
    max_concurrent_jobs: int
    max_custom_models: int
    max_custom_plugins: int
    gpu_type: str
    gpus_per_worker: int
    qdrant_collection: str
    """The collection's name; default the namespace id."""
    qdrant_url: str
    """A Qdrant server; the API key belongs in `qdrant.apiKey` (a secret), not here."""
    ray_cluster_id: str
    ray_head_node_url: str
    """An existing Ray cluster (`ray://host:port`): no head is created."""
    ray_dashboard_url: str
    compute_profiles: dict[str, Any]


class VectorConfig(TypedDict):
    """A bring-your-own named vector (API v0.82)."""

    name: str
    dimension: int
    metric: NotRequired[str]
    """cosine (default), euclidean, dot_product."""


class CreateNamespaceRequest(TypedDict):
    """The documented Mixpeek Create Namespace request body."""

    namespace_name: str
    feature_extractors: NotRequired[list[FeatureExtractor]]
    description: NotRequired[str]
    payload_indexes: NotRequired[list[PayloadIndex]]
    auto_create_indexes: NotRequired[bool]
    infrastructure: NotRequired[NamespaceInfrastructure]
    namespace_id: NotRequired[str]
    mode: NotRequired[str]
    """managed (default) or standalone (API v0.82)."""
    vector_configs: NotRequired[list[VectorConfig]]


class QdrantTargetSpec(TypedDict, total=False):
    """Where the collection lives: a Qdrant server (`url`, `apiKey`) or embedded Qdrant Edge (`path`)."""

    url: str
    """`http(s)://host[:port][/prefix]` of a Qdrant server."""
    path: str
    """An embedded Qdrant Edge directory, relative to the project root (default `.mixpeek/qdrant`)."""
    api_key: pulumi.Input[str]
    """The server's API key; kept a secret end to end."""
    timeout: float
    prefer_grpc: bool


class RayHeadSpec(TypedDict):
    """The namespace's Ray head."""

    mode: str
    """external (an existing cluster's `url`), local (a `ray start --head` process) or kubernetes."""
    url: NotRequired[pulumi.Input[str]]
    """external: the cluster's `ray://host:port`."""
    state_dir: NotRequired[str]
    """local: the head's directory, relative to the project root (default `.mixpeek/ray`)."""
    num_cpus: NotRequired[int]
    ready_timeout: NotRequired[float]
    stop_timeout: NotRequired[float]
    kubernetes: NotRequired[dict[str, Any]]
    """kubernetes: the keyword arguments of `RayHead.kubernetes` (mode, namespace, image, ...)."""


def _package_type(tp: Any) -> Any:
    """A setting's type as the SDK's analyzer reads it: optional ones plain (every input is optional), mappings
    as `dict`."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and len(args) == 1:
        tp = args[0]
    if typing.get_origin(tp) is collections.abc.Mapping:
        return dict[str, Any]
    return tp


# The settings every surface shares, derived from their one declaration (`NamespaceSettings`); their
# descriptions are its docstrings (`provider` adds them: the analyzer reads docstrings from this file only).
_NamespaceSettings = TypedDict(  # type: ignore[misc]
    "_NamespaceSettings",
    {name: NotRequired[_package_type(tp)] for name, tp in typing.get_type_hints(NamespaceSettings).items()},
)


class NamespaceArgs(_NamespaceSettings):
    """The inputs of a `Namespace`."""

    request: CreateNamespaceRequest
    """The Create Namespace request body. Plain (known at preview): the plan is made from it."""
    qdrant: NotRequired[QdrantTargetSpec]
    """The Qdrant target; default embedded Qdrant Edge at `.mixpeek/qdrant`."""
    ray: NotRequired[RayHeadSpec]
    """The Ray head; default a local head for dedicated tiers, the program's shared head for the shared tier."""
    final_snapshot: NotRequired[str]
    """A directory: a restorable snapshot is written there before the collection is deleted or replaced."""


class _PackageToken(pulumi.ComponentResource):
    """Registers the component under the package's token, aliased to the Python component's token."""

    def __init__(
        self,
        t: str,
        name: str,
        props: Optional[pulumi.Inputs] = None,
        opts: Optional[pulumi.ResourceOptions] = None,
        remote: bool = False,
    ) -> None:
        alias = pulumi.ResourceOptions(aliases=[pulumi.Alias(type_=t)])
        super().__init__(TYPE, name, props, pulumi.ResourceOptions.merge(opts, alias), remote)


def _plain(value: Any) -> Any:
    """Engine values as plain Python: integral floats as ints (numbers cross the wire as doubles)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _qdrant(args: Mapping[str, Any]) -> Optional[QdrantTarget]:
    given = args.get("qdrant")
    if not given:
        return None
    kwargs = {k: v for k, v in given.items() if v is not None}
    for key in ("timeout",):
        if key in kwargs:
            kwargs[key] = float(kwargs[key])
    return QdrantTarget(**kwargs)


def _ray(args: Mapping[str, Any]) -> Optional[RayHead]:
    given = args.get("ray")
    if not given:
        return None
    mode = given.get("mode")
    if mode == "external":
        return RayHead.external(given.get("url"))
    if mode == "local":
        kwargs = {
            k: given[k] for k in ("state_dir", "num_cpus", "ready_timeout", "stop_timeout") if given.get(k) is not None
        }
        if "num_cpus" in kwargs:
            kwargs["num_cpus"] = int(kwargs["num_cpus"])
        return RayHead.local(**kwargs)
    if mode == "kubernetes":
        return RayHead.kubernetes(**_plain(dict(given.get("kubernetes") or {})))
    return RayHead(mode=mode)  # validates, naming the valid modes


class Namespace(_Namespace, _PackageToken):
    """A Mixpeek namespace (the documented Create Namespace request): its Qdrant collection, payload
    indexes and Ray head, with what the Create Namespace response carries as outputs."""

    namespace_id: pulumi.Output[str]
    """`ns_` + 10 hex, generated once at creation."""
    vector_inference_map: pulumi.Output[dict[str, Any]]
    """Named vector -> inference service (known at preview)."""
    qdrant_collection: pulumi.Output[str]
    """The Qdrant collection's name."""
    ray_head_node_url: pulumi.Output[str]
    """The namespace's Ray head (`ray://host:port`)."""
    infrastructure: pulumi.Output[dict[str, Any]]
    """The documented NamespaceInfrastructure (never the API key)."""
    payload_indexes: pulumi.Output[list[dict[str, Any]]]
    """The planned payload indexes (system and custom)."""
    feature_extractors: pulumi.Output[list[dict[str, Any]]]
    """The feature extractors, with their ids."""
    namespace: pulumi.Output[dict[str, Any]]
    """The whole documented NamespaceModel, with `document_count` from Qdrant."""

    def __init__(self, name: str, args: NamespaceArgs, opts: Optional[pulumi.ResourceOptions] = None) -> None:
        given: dict[str, Any] = dict(args)
        options = {k: _plain(given[k]) for k in (*setting_names(), "final_snapshot") if given.get(k) is not None}
        super().__init__(
            name,
            _NamespaceArgs(request=_plain(dict(given["request"])), qdrant=_qdrant(given), ray=_ray(given), **options),
            opts,
        )


# Where the generated Go SDK says it lives. Without it the SDK generator derives the import path from
# the package name (`.../sdk/go/mixpeek-infra`) while writing the package to `go/mixpeekinfra`, and
# the generated SDK does not compile.
GO_IMPORT_BASE_PATH = "github.com/mixpeek/pulumi-mixpeek-infra/sdk/go/mixpeekinfra"


def provider() -> Any:
    """The SDK's component provider for `Namespace`, its inferred schema completed with SDK settings."""
    import json

    from pulumi.provider.experimental.component import ComponentProvider

    served = ComponentProvider([Namespace], PACKAGE, PACKAGE_NAMESPACE, PACKAGE_VERSION)
    schema = json.loads(served.schema or "{}")
    inputs = schema["resources"][TYPE]["inputProperties"]
    for name, doc in setting_docs(NamespaceSettings).items():
        inputs[_camel(name)].setdefault("description", doc)
    schema.setdefault("language", {}).setdefault("go", {}).update(
        importBasePath=GO_IMPORT_BASE_PATH, generateResourceContainerTypes=True
    )
    schema["language"].setdefault("nodejs", {}).update(packageName=f"@{PACKAGE_NAMESPACE}/{PACKAGE}")
    # The Go generator writes go.mod (module .../sdk/go) only for packages that support packing.
    schema["supportPack"] = True
    served.schema = json.dumps(schema)
    return served


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def main() -> None:
    """Serve the package (what the plugin directory's `__main__.py` runs): what the SDK's
    `component_provider_host([Namespace], "mixpeek-infra", ...)` does, with the schema of `provider()`."""
    import sys

    from pulumi.provider import main as serve

    serve(provider(), sys.argv[1:])
