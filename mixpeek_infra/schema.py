"""Pydantic models of the documented Mixpeek Create Namespace request and namespace response.

Field names, defaults and constraints follow Mixpeek's OpenAPI (v0.81), and the v0.82 body the official
client (`mixpeek` on PyPI) writes: every v0.82 field is either mapped onto infrastructure, accepted as
a label, or refused with its reason (docs/api-v0.82.md). Request models are
strict (no type coercion) and reject unknown fields. Semantic checks that span fields (catalogue,
protected names, duplicates) run in `CreateNamespaceRequest`'s validator and report each problem
with its field path; `parse_request` turns any failure into `InvalidRequest`.
No message quotes a credential: models hide their input in errors, and quoted values have URL
`user:password@` redacted. Pure: imports nothing from Pulumi, Qdrant or Ray.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .extractors import DEFAULT_CATALOGUE, Catalogue
from .problems import InvalidInput, did_you_mean
from .redact import redact_url

ComputeTier = Literal["shared", "dedicated_cpu", "dedicated_gpu"]
PayloadSchemaType = Literal["keyword", "integer", "float", "bool", "geo", "datetime", "text", "uuid"]
TokenizerType = Literal["word", "whitespace", "prefix", "multilingual"]

SYSTEM_INDEXES: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("internal_id", "keyword", {"is_tenant": False}),
    ("namespace_id", "keyword", {"is_tenant": False}),
    ("collection_id", "keyword", {"is_tenant": True}),
    ("document_id", "keyword", {"is_tenant": False}),
    ("bucket_id", "keyword", {"is_tenant": False}),
)
PROTECTED_FIELDS = (
    "internal_id",
    "namespace_id",
    "collection_id",
    "document_id",
    "bucket_id",
    "object_id",
    "root_object_id",
    "root_bucket_id",
    "source_object_id",
    "created_at",
    "updated_at",
)

NAMESPACE_NAME_RULE = (
    "1-64 characters: ASCII letters, digits, '_', '-' or '.', and not '.' or '..' (the API "
    "allows 3-64 characters of any kind; spaces, slashes, control, invisible and non-ASCII "
    "look-alike characters are refused because the name is carried into Pulumi resource names, "
    "file paths, logs and previews; Kubernetes object names are derived from it with a stable hash)"
)
_NAMESPACE_NAME = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9_.\-]{1,64}$")
# v0.82 fields that are the hosted service's business, not infrastructure: refused, never dropped.
HOSTED_ONLY = "set this through the Mixpeek API; it is not infrastructure"
HOSTED_FIELDS = ("ttl_seconds", "tiering", "trusted_issuers", "spend_budget", "cost_cap_override")
HOSTED_INFRA_FIELDS = ("s3_vector_bucket", "authorization")
# The API's metric names (VectorConfigSpec.metric) and Qdrant's, onto the plan's distance names.
METRICS = {
    "cosine": "cosine",
    "euclidean": "euclid",
    "dot_product": "dot",
    "Cosine": "cosine",
    "Euclid": "euclid",
    "Dot": "dot",
    "Manhattan": "manhattan",
    "euclid": "euclid",
    "dot": "dot",
    "manhattan": "manhattan",
}
API_METRIC = {"cosine": "cosine", "euclid": "euclidean", "dot": "dot_product", "manhattan": "manhattan"}
_VECTOR_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_NAMESPACE_ID_RULE = re.compile(r"^ns_[0-9a-f]{10}$")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\[\])?(\.[A-Za-z0-9_\-]+(\[\])?)*$")
_RAY_URL = re.compile(r"^ray://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$")
_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]{1,253}(:[0-9]{1,5})?/?$")
_RAY_CLUSTER_ID = r"^ray_[a-zA-Z0-9_]{3,64}$"
_NO_CREDENTIALS = (
    "; credentials inside a URL are not accepted: pass them as secrets (infrastructure.qdrant_api_key, "
    "or the stack's qdrantApiKey / rayAuthToken)"
)


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, hide_input_in_errors=True)


class TextIndexParams(_Request):
    """Full-text index parameters."""

    type: Literal["text"] = "text"
    tokenizer: TokenizerType = "word"
    min_token_len: int = 2
    max_token_len: int = 15
    lowercase: bool = True


class KeywordIndexParams(_Request):
    """Keyword index parameters."""

    type: Literal["keyword"] = "keyword"
    is_tenant: bool = False


class IntegerIndexParams(_Request):
    """Integer index parameters."""

    type: Literal["integer"] = "integer"
    lookup: bool = True
    range: bool = True


class FloatIndexParams(_Request):
    """Float index parameters."""

    type: Literal["float"] = "float"


class BoolIndexParams(_Request):
    """Bool index parameters."""

    type: Literal["bool"] = "bool"


class GeoIndexParams(_Request):
    """Geo index parameters."""

    type: Literal["geo"] = "geo"


class DatetimeIndexParams(_Request):
    """Datetime index parameters."""

    type: Literal["datetime"] = "datetime"


class UuidIndexParams(_Request):
    """UUID index parameters."""

    type: Literal["uuid"] = "uuid"
    is_tenant: bool = False


FieldSchema = Annotated[
    Union[
        TextIndexParams,
        KeywordIndexParams,
        IntegerIndexParams,
        FloatIndexParams,
        BoolIndexParams,
        GeoIndexParams,
        DatetimeIndexParams,
        UuidIndexParams,
    ],
    Field(discriminator="type"),
]
_PARAMS_BY_TYPE: dict[str, type[_Request]] = {
    "text": TextIndexParams,
    "keyword": KeywordIndexParams,
    "integer": IntegerIndexParams,
    "float": FloatIndexParams,
    "bool": BoolIndexParams,
    "geo": GeoIndexParams,
    "datetime": DatetimeIndexParams,
    "uuid": UuidIndexParams,
}


class PayloadIndexConfig(_Request):
    """One payload index; `field_schema` defaults from `type` and its own `type` must equal it."""

    field_name: str = Field(min_length=1, max_length=255)
    type: PayloadSchemaType
    field_schema: FieldSchema | None = None
    is_protected: bool = False

    @model_validator(mode="before")
    @classmethod
    def _schema_type_from_type(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and isinstance(data.get("field_schema"), Mapping):
            schema = data["field_schema"]
            outer = data.get("type")
            if "type" not in schema and isinstance(outer, str):
                data = {**data, "field_schema": {**schema, "type": outer}}
            elif isinstance(outer, str) and outer in _PARAMS_BY_TYPE and schema.get("type") != outer:
                # (an unknown outer `type` is reported on `type` itself, with the valid choices)
                raise PydanticCustomError(
                    "field_schema_type",
                    "field_schema.type '{inner}' must equal type '{outer}'",
                    {"inner": schema.get("type"), "outer": outer, "path": "field_schema.type"},
                )
        return data

    def resolved_schema(self) -> dict[str, Any]:
        """The field schema with every default filled in."""
        params = self.field_schema or _PARAMS_BY_TYPE[self.type]()
        return params.model_dump()


class FeatureExtractor(_Request):
    """A feature extractor reference (BaseFeatureExtractorModel); the id is derived from name and version."""

    feature_extractor_name: str = Field(min_length=1, max_length=128)
    version: str = Field(min_length=1, max_length=32)
    params: dict[str, Any] | None = None
    feature_extractor_id: str | None = None

    @property
    def derived_id(self) -> str:
        return f"{self.feature_extractor_name}_{self.version}"


class NamespaceInfrastructure(_Request):
    """The request's optional infrastructure block (documented NamespaceInfrastructure).

    `qdrant_collection` is optional here: by default the collection is named after the namespace id.
    `qdrant_api_key` is held as a secret and never appears in the plan or outputs.
    """

    compute_tier: ComputeTier | None = None  # v0.81; removed in v0.82: see `resolved_tier`
    autoscaling_enabled: bool = True
    min_workers: int = Field(1, ge=0, le=100)
    max_workers: int = Field(10, ge=1, le=100)
    max_concurrent_jobs: int = Field(10, ge=1, le=1000)
    max_custom_models: int = Field(0, ge=0, le=50)
    max_custom_plugins: int = Field(0, ge=0, le=100)
    gpu_type: str | None = Field(None, min_length=1, max_length=64)
    gpus_per_worker: int = Field(1, ge=0, le=8)
    qdrant_collection: str | None = Field(None, min_length=3, max_length=128, pattern=r"^[A-Za-z0-9_\-]+$")
    qdrant_url: str | None = None
    qdrant_api_key: SecretStr | None = None
    ray_cluster_id: str | None = Field(None, pattern=_RAY_CLUSTER_ID)
    ray_head_node_url: str | None = None
    ray_dashboard_url: str | None = None
    s3_plugin_bucket: str = Field("mixpeek-plugins", min_length=1, max_length=255)
    s3_plugin_prefix: str | None = Field(None, max_length=1024)
    # v0.82 fields: refused with their reason in `request_problems` (see docs/api-v0.82.md).
    compute_profiles: dict[str, Any] | None = None
    s3_vector_bucket: Any = None
    authorization: Any = None

    def resolved_tier(self) -> ComputeTier:
        """The compute tier: an explicit `compute_tier` wins; without one (v0.82 removed the field) a GPU
        request (`gpu_type`) means `dedicated_gpu`, else `shared`."""
        if self.compute_tier is not None:
            return self.compute_tier
        return "dedicated_gpu" if self.gpu_type else "shared"

    @model_validator(mode="before")
    @classmethod
    def _secret_key(cls, data: Any) -> Any:
        # Strict mode would refuse a plain str for SecretStr; accept one and wrap it.
        if isinstance(data, Mapping) and isinstance(data.get("qdrant_api_key"), str):
            data = {**data, "qdrant_api_key": SecretStr(data["qdrant_api_key"])}
        return data


class VectorConfig(_Request):
    """A bring-your-own named vector (v0.82 VectorConfigSpec): name, dimension and metric.

    `metric` takes the API's names (cosine, euclidean, dot_product) or Qdrant's (Cosine, Euclid, Dot,
    Manhattan)."""

    name: str = Field(min_length=1, max_length=128)
    dimension: int = Field(ge=1, le=65536)
    metric: str = "cosine"

    @property
    def distance(self) -> str | None:
        """The plan's distance name (cosine, euclid, dot, manhattan); None for an unknown metric."""
        return METRICS.get(self.metric)


class CreateNamespaceRequest(_Request):
    """The documented Create Namespace request body (v0.81, and v0.82 as the official client writes it)."""

    _checked_with: Any = PrivateAttr(None)  # the catalogue `parse_request` validated it against

    namespace_name: str
    feature_extractors: list[FeatureExtractor] | None = None
    description: str | None = Field(None, max_length=4096)
    payload_indexes: list[PayloadIndexConfig] | None = None
    auto_create_indexes: bool | None = False
    infrastructure: NamespaceInfrastructure | None = None
    # v0.82
    namespace_id: str | None = None
    mode: Literal["managed", "standalone"] | None = None
    vector_configs: list[VectorConfig] | None = None
    namespace_type: Literal["standard", "marketplace"] | None = None
    scope: Literal["org", "system"] | None = None
    adaptive_indexing: bool | None = None
    features: list[str] | None = None
    # v0.82, the hosted service's business: refused with their reason in `request_problems`.
    ttl_seconds: Any = None
    tiering: Any = None
    trusted_issuers: Any = None
    spend_budget: Any = None
    cost_cap_override: Any = None

    def resolved_mode(self) -> str:
        """`standalone` when asked, or when only `vector_configs` is given (no extractors, no features):
        the official client always writes `mode: managed`, so that default cannot ask for extractors."""
        if self.mode == "standalone":
            return "standalone"
        if not self.feature_extractors and not self.features and self.vector_configs:
            return "standalone"
        return "managed"

    @model_validator(mode="after")
    def _semantics(self, info: ValidationInfo) -> CreateNamespaceRequest:
        catalogue = (info.context or {}).get("catalogue") or DEFAULT_CATALOGUE
        problems = request_problems(self, catalogue)
        if problems:
            summary = "; ".join(f"{p}: {m}" for p, m in problems)
            raise PydanticCustomError("invalid_namespace", "{summary}", {"summary": summary, "problems": problems})
        return self


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (so a hostile input cannot flood a message), with URL credentials
    redacted, also from a URL the cut splits. Cuts before redacting, so a huge input stays cheap."""
    if len(text) > limit:
        head = text[:limit]
        # The cut may split `user:password@`: drop a trailing fragment that could hold one.
        tail = re.search(r"(?:://)?[^\s/@'\"]*$", head)
        if tail is not None and ":" in tail.group(0):
            head = head[: tail.start()]
        text = f"{head}... ({len(text) - limit} more characters)"
    return redact_url(text) if "@" in text else text


def _short(value: Any, limit: int = 80) -> str:
    """repr of a user value, clipped (see `clip`)."""
    return clip(repr(value), limit)


def request_problems(req: CreateNamespaceRequest, catalogue: Catalogue) -> list[tuple[str, str]]:
    """Every cross-field problem of a structurally valid request, as (field path, message).

    Parts set to None (a list item that failed structural validation) are skipped.
    """
    problems: list[tuple[str, str]] = []
    if isinstance(req.namespace_name, str) and not _NAMESPACE_NAME.fullmatch(req.namespace_name):
        problems.append(("namespace_name", f"invalid name {_short(req.namespace_name)}: {NAMESPACE_NAME_RULE}"))
    problems += _v082_problems(req)
    seen_ids: dict[str, int] = {}
    extractor_vectors: dict[str, str] = {}
    for i, fe in enumerate(req.feature_extractors or []):
        if fe is None:
            continue
        path = f"feature_extractors[{i}]"
        if fe.feature_extractor_id is not None and fe.feature_extractor_id != fe.derived_id:
            problems.append(
                (
                    f"{path}.feature_extractor_id",
                    f"{fe.feature_extractor_id!r} disagrees with name and version; expected {fe.derived_id!r}",
                )
            )
        if fe.derived_id in seen_ids:
            problems.append(
                (
                    f"{path}",
                    f"extractor {fe.derived_id} is already listed at feature_extractors[{seen_ids[fe.derived_id]}]",
                )
            )
        seen_ids.setdefault(fe.derived_id, i)
        entry, errors = catalogue.lookup(fe.feature_extractor_name, fe.version, path)
        problems += errors
        if entry is not None:
            problems += entry.param_errors(fe.params, f"{path}.params")
            extractor_vectors.update({f"{entry.feature_extractor_id}_{v.output}": fe.derived_id for v in entry.vectors})
    for i, vc in enumerate(req.vector_configs or []):
        if vc is not None and vc.name in extractor_vectors:
            problems.append(
                (
                    f"vector_configs[{i}].name",
                    f"{vc.name!r} is already a vector of extractor {extractor_vectors[vc.name]}; name it otherwise",
                )
            )
    seen_fields: dict[str, int] = {}
    for i, ix in enumerate(req.payload_indexes or []):
        if ix is None:
            continue
        path = f"payload_indexes[{i}]"
        if ix.field_name in PROTECTED_FIELDS:
            problems.append(
                (
                    f"{path}.field_name",
                    f"{ix.field_name!r} is a protected system field; protected fields: {', '.join(PROTECTED_FIELDS)}",
                )
            )
        elif not _FIELD_NAME.fullmatch(ix.field_name):
            problems.append(
                (
                    f"{path}.field_name",
                    f"invalid field name {ix.field_name!r}: use letters, digits, "
                    "'_' and '-', with '.' between path segments",
                )
            )
        if ix.is_protected:
            problems.append((f"{path}.is_protected", "user indexes cannot be protected; only system indexes are"))
        if ix.field_name in seen_fields:
            problems.append(
                (
                    f"{path}.field_name",
                    f"duplicate field_name {ix.field_name!r} (also at payload_indexes[{seen_fields[ix.field_name]}])",
                )
            )
        seen_fields.setdefault(ix.field_name, i)
        schema = ix.field_schema
        if isinstance(schema, TextIndexParams):
            for name in ("min_token_len", "max_token_len"):
                if not 1 <= getattr(schema, name) <= 1024:
                    problems.append((f"{path}.field_schema.{name}", "must be between 1 and 1024"))
            if schema.min_token_len > schema.max_token_len:
                problems.append(
                    (
                        f"{path}.field_schema.min_token_len",
                        f"min_token_len {schema.min_token_len} exceeds max_token_len {schema.max_token_len}",
                    )
                )
        if isinstance(schema, IntegerIndexParams) and not (schema.lookup or schema.range):
            problems.append((f"{path}.field_schema", "an integer index needs lookup or range (both are false)"))
    infra = req.infrastructure
    if infra is not None:
        for name in HOSTED_INFRA_FIELDS:
            if getattr(infra, name) is not None:
                problems.append((f"infrastructure.{name}", HOSTED_ONLY))
        if infra.compute_profiles:
            problems.append(
                (
                    "infrastructure.compute_profiles",
                    "per-extractor compute profiles are merged by Mixpeek's batch builder at job time and "
                    "size no cluster; this project runs no extractor jobs, so they would change nothing: "
                    "size the Ray workers with min_workers, max_workers, gpu_type and gpus_per_worker",
                )
            )
        if infra.compute_tier is None and not infra.gpu_type and infra.gpus_per_worker > 1:
            problems.append(
                (
                    "infrastructure.gpus_per_worker",
                    f"{infra.gpus_per_worker} GPUs per worker asks for GPU workers: set gpu_type (e.g. A100, "
                    "T4), which makes the tier dedicated_gpu",
                )
            )
        if infra.resolved_tier() == "dedicated_gpu":
            if not infra.gpu_type:
                problems.append(
                    ("infrastructure.gpu_type", "required for compute_tier 'dedicated_gpu' (e.g. A100, T4)")
                )
            if infra.gpus_per_worker < 1:
                problems.append(
                    (
                        "infrastructure.gpus_per_worker",
                        "must be at least 1 for compute_tier 'dedicated_gpu'"
                        + ("" if infra.compute_tier else " (gpu_type asks for GPU workers)"),
                    )
                )
        if infra.max_workers < infra.min_workers:
            problems.append(
                (
                    "infrastructure.max_workers",
                    f"max_workers {infra.max_workers} is below min_workers {infra.min_workers}",
                )
            )
        if infra.ray_head_node_url is not None and not _RAY_URL.fullmatch(infra.ray_head_node_url):
            problems.append(
                (
                    "infrastructure.ray_head_node_url",
                    f"{_short(infra.ray_head_node_url)} is not a "
                    f"ray://host:port URL{_NO_CREDENTIALS if '@' in infra.ray_head_node_url else ''}",
                )
            )
        for name in ("qdrant_url", "ray_dashboard_url"):
            value = getattr(infra, name)
            if value is not None and not _HTTP_URL.fullmatch(value):
                problems.append(
                    (
                        f"infrastructure.{name}",
                        f"{_short(value)} is not an http(s)://host[:port] URL{_NO_CREDENTIALS if '@' in value else ''}",
                    )
                )
        if infra.qdrant_api_key is not None and infra.qdrant_url is None:
            problems.append(("infrastructure.qdrant_api_key", "given without infrastructure.qdrant_url"))
    return problems


def _v082_problems(req: CreateNamespaceRequest) -> list[tuple[str, str]]:
    """Problems of the v0.82 fields: mode, vector_configs, namespace_id, features, hosted-only fields."""
    problems: list[tuple[str, str]] = []
    for name in HOSTED_FIELDS:
        if getattr(req, name, None) is not None:
            problems.append((name, HOSTED_ONLY))
    if req.namespace_id is not None and not _NAMESPACE_ID_RULE.fullmatch(req.namespace_id):
        problems.append(
            (
                "namespace_id",
                f"{_short(req.namespace_id)} is not 'ns_' followed by 10 lowercase hex "
                "characters (the collection is named after it)",
            )
        )
    if req.features:
        problems.append(
            (
                "features",
                "Mixpeek resolves feature keys to extractors server-side and documents no fixed "
                "mapping, so the vectors they create cannot be planned: list the extractors in "
                "feature_extractors instead",
            )
        )
    mode = req.resolved_mode()
    if mode == "standalone":
        if req.feature_extractors:
            problems.append(
                (
                    "feature_extractors",
                    "not used in mode 'standalone' (bring-your-own vectors): remove them, or use mode 'managed'",
                )
            )
        if not req.vector_configs:
            problems.append(
                (
                    "vector_configs",
                    "required in mode 'standalone': vectors created on first upsert "
                    "(schema-on-write) are the hosted service's; declare each named vector "
                    "with its name, dimension and metric",
                )
            )
    elif not req.feature_extractors and not req.features:
        problems.append(
            (
                "feature_extractors",
                "required: at least 1 extractor (Mixpeek's 'standard baseline' for "
                "a body without extractors is not documented), or only vector_configs "
                "for a standalone namespace",
            )
        )
    seen: dict[str, int] = {}
    for i, vc in enumerate(req.vector_configs or []):
        if vc is None:
            continue
        path = f"vector_configs[{i}]"
        if not _VECTOR_NAME.fullmatch(vc.name):
            problems.append(
                (
                    f"{path}.name",
                    f"invalid vector name {_short(vc.name)}: letters, digits, '_', '-' or "
                    "'.', starting with a letter or digit, at most 128",
                )
            )
        if vc.name in seen:
            problems.append(
                (f"{path}.name", f"duplicate vector name {vc.name!r} (also at vector_configs[{seen[vc.name]}])")
            )
        seen.setdefault(vc.name, i)
        if vc.distance is None:
            problems.append(
                (
                    f"{path}.metric",
                    f"unknown metric {_short(vc.metric)}; valid choices: cosine, euclidean, "
                    "dot_product (or Qdrant's Cosine, Euclid, Dot, Manhattan)",
                )
            )
    return problems


class NamespaceInfrastructureOut(BaseModel):
    """NamespaceInfrastructure as the response carries it (no API key)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    qdrant_collection: str
    compute_tier: ComputeTier | None = None  # v0.81; removed in v0.82: see `resolved_tier`
    autoscaling_enabled: bool = True
    min_workers: int = 1
    max_workers: int = 10
    max_concurrent_jobs: int = 10
    max_custom_models: int = 0
    max_custom_plugins: int = 0
    gpu_type: str | None = None
    gpus_per_worker: int = 1
    qdrant_url: str | None = None
    ray_cluster_id: str | None = None
    ray_head_node_url: str | None = None
    ray_dashboard_url: str | None = None
    s3_plugin_bucket: str = "mixpeek-plugins"
    s3_plugin_prefix: str | None = None


class FeatureExtractorOut(BaseModel):
    """BaseFeatureExtractorModel as the response carries it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    feature_extractor_name: str
    version: str
    feature_extractor_id: str
    params: dict[str, Any] | None = None


class PayloadIndexOut(BaseModel):
    """PayloadIndexConfig as the response carries it."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    field_name: str
    type: PayloadSchemaType
    field_schema: dict[str, Any] | None = None
    is_protected: bool = False


class NamespaceModel(BaseModel):
    """The documented namespace response model."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    object: Literal["namespace"] = "namespace"
    namespace_id: str
    namespace_name: str
    mode: Literal["managed", "standalone"] = "managed"
    namespace_type: Literal["standard", "marketplace"] | None = None
    scope: Literal["org", "system"] | None = None
    adaptive_indexing: bool | None = None
    description: str | None = None
    feature_extractors: list[FeatureExtractorOut] = []
    payload_indexes: list[PayloadIndexOut] | None = None
    vector_inference_map: dict[str, str] | None = None
    vector_configs: list[dict[str, Any]] | None = None
    auto_create_indexes: bool = False
    infrastructure: NamespaceInfrastructureOut | None = None
    cluster_id: str | None = None
    payload_index_count: int | None = None
    namespace_ready: bool = False
    document_count: int | None = None
    document_count_complete: bool = True
    object_count: int | None = None
    collection_count: int | None = None
    bucket_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class InvalidRequest(InvalidInput):
    """A request failed validation; `problems` lists `Problem(path, message)`."""

    heading = "invalid namespace request"


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for i, part in enumerate(loc):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and loc[i - 1] == "field_schema" and part in _PARAMS_BY_TYPE:
            continue  # the discriminated union's tag (right after field_schema) is not a field
        else:
            out += f".{part}" if out else str(part)
    return out or "(body)"


def _valid_fields(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """The field names allowed at the parent of `loc`, walking the request models."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or current is None:
            continue
        if current is PayloadIndexConfig and part == "field_schema":
            current = "field_schema"
            continue
        if current == "field_schema":
            current = _PARAMS_BY_TYPE.get(part)
            continue
        field = current.model_fields.get(part)
        current = _model_in(field.annotation) if field else None
    return sorted(current.model_fields) if isinstance(current, type) and issubclass(current, BaseModel) else None


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def problems_from_validation_error(
    exc: ValidationError, model: type[BaseModel] = CreateNamespaceRequest, prefix: str = ""
) -> list[tuple[str, str]]:
    """Flatten a pydantic error into (field path, message) pairs, with valid choices where fixed."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        base = _format_loc(loc) if loc else ""
        if err["type"] == "invalid_namespace":
            problems += [(prefix + p, m) for p, m in ctx["problems"]]
            continue
        if err["type"] == "field_schema_type":
            problems.append((prefix + (f"{base}.{ctx['path']}" if base else ctx["path"]), err["msg"]))
            continue
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = _valid_fields(model, loc)
            message = "unknown field" + (
                f"{did_you_mean(loc[-1], valid)}; valid fields: {', '.join(valid)}" if valid else ""
            )
        elif err["type"] == "union_tag_invalid":
            tags = [t.strip(" '") for t in str(ctx.get("expected_tags", "")).split(",")]
            message = (
                f"unknown type {ctx.get('tag')!r}{did_you_mean(ctx.get('tag'), tags)}; "
                f"valid choices: {ctx.get('expected_tags')}"
            )
        elif err["type"] in ("literal_error", "enum"):
            message += did_you_mean(err.get("input"), re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        problems.append((prefix + (base or "(body)"), message))
    return problems


MAX_DEPTH = 32  # levels of nesting in a request body
MAX_TEXT_PROBLEMS = 20  # of `text_problems`, enough to show what is wrong without flooding
SURROGATE = (
    "holds a lone surrogate ({char}), which is not Unicode text (it cannot be written to the state, sent "
    "to the engine or shown): write the character itself, or remove it"
)


def key_text(key: Any) -> str:
    """A key as a field path names it: text that encodes anywhere (a lone surrogate as `\\ud800`)."""
    return str(key).encode("utf-8", "backslashreplace").decode("utf-8")


def _surrogate(text: str) -> str | None:
    """The first lone surrogate of `text`, escaped; None when `text` is Unicode text."""
    try:
        text.encode("utf-8")
        return None
    except UnicodeEncodeError as exc:
        return key_text(text[exc.start])


def text_problems(
    value: Any, path: str = "", *, max_depth: int = MAX_DEPTH, finite: bool = True
) -> list[tuple[str, str]]:
    """What no field may hold at any depth, as (field path, message): a lone surrogate in a key or a string,
    nesting deeper than `max_depth`, and (with `finite`) NaN or an infinity. Iterative, so no input is too deep
    for it; what it refuses would otherwise crash a parser, the engine's gRPC or the terminal."""
    problems: list[tuple[str, str]] = []
    stack: list[tuple[str, Any, int]] = [(path, value, 0)]
    while stack and len(problems) < MAX_TEXT_PROBLEMS:
        where, item, depth = stack.pop()
        if depth > max_depth:
            problems.append((where or "(body)", f"nested too deeply (more than {max_depth} levels)"))
        elif isinstance(item, str):
            if (char := _surrogate(item)) is not None:
                problems.append((where or "(body)", SURROGATE.format(char=char)))
        elif finite and isinstance(item, float) and not math.isfinite(item):
            problems.append((where or "(body)", f"{item} is not a finite number"))
        elif isinstance(item, Mapping):
            children = []
            for k, v in item.items():
                sub = f"{where}.{key_text(k)}" if where else key_text(k)
                if isinstance(k, str) and (char := _surrogate(k)) is not None:
                    problems.append((sub, "its key " + SURROGATE.format(char=char)))
                else:
                    children.append((sub, v, depth + 1))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([(f"{where}[{i}]", v, depth + 1) for i, v in enumerate(item)]))
    return problems


def _salvaged_problems(data: Mapping[str, Any], catalogue: Catalogue) -> list[tuple[str, str]]:
    """The cross-field problems of the parts of a body that are valid on their own, so a structural
    error elsewhere does not hide them (every problem is reported at once)."""

    def part(model: type[BaseModel], value: Any) -> Any:
        try:
            return model.model_validate(value)
        except (ValidationError, RecursionError):
            return None

    name, fes, ixs, infra = (
        data.get(k) for k in ("namespace_name", "feature_extractors", "payload_indexes", "infrastructure")
    )
    vcs = data.get("vector_configs")
    extra = {k: data.get(k) for k in HOSTED_FIELDS}
    partial = CreateNamespaceRequest.model_construct(
        vector_configs=[part(VectorConfig, x) for x in vcs] if isinstance(vcs, list) else None,
        mode=data.get("mode") if data.get("mode") in ("managed", "standalone") else None,
        features=data.get("features") if isinstance(data.get("features"), list) else None,
        namespace_id=data.get("namespace_id") if isinstance(data.get("namespace_id"), str) else None,
        **extra,
        namespace_name=name if isinstance(name, str) else None,  # type: ignore[arg-type]  # unvalidated by design
        feature_extractors=[part(FeatureExtractor, x) for x in fes] if isinstance(fes, list) else None,
        payload_indexes=[part(PayloadIndexConfig, x) for x in ixs] if isinstance(ixs, list) else None,
        infrastructure=part(NamespaceInfrastructure, infra) if isinstance(infra, Mapping) else None,
    )
    return request_problems(partial, catalogue)


def parse_request(
    data: Any, *, catalogue: Catalogue | None = None, source: str | None = None
) -> CreateNamespaceRequest:
    """Validate a request body (dict or model); raise `InvalidRequest` listing every problem. A model this
    function already validated against the same catalogue is returned as is (parsed once)."""
    catalogue = catalogue or DEFAULT_CATALOGUE
    if isinstance(data, CreateNamespaceRequest) and data._checked_with is catalogue:
        return data
    if isinstance(data, CreateNamespaceRequest):
        data = data.model_dump(exclude_unset=True)
        infra = data.get("infrastructure")
        if infra and infra.get("qdrant_api_key") is not None:
            infra["qdrant_api_key"] = infra["qdrant_api_key"].get_secret_value()
    if not isinstance(data, Mapping):
        raise InvalidRequest(
            [("(body)", f"expected an object (the Create Namespace body), got {type(data).__name__}")], source
        )
    problems = text_problems(data)
    if problems:
        raise InvalidRequest(problems, source)
    try:
        request = CreateNamespaceRequest.model_validate(data, context={"catalogue": catalogue})
        request._checked_with = catalogue
        return request
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        known = set(problems)
        problems += [p for p in _salvaged_problems(data, catalogue) if p not in known]
        raise InvalidRequest(problems, source) from None
    except RecursionError:
        raise InvalidRequest([("(body)", "nested too deeply")], source) from None
