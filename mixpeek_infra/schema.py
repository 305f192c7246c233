"""Pydantic models of the documented Mixpeek Create Namespace request and namespace response.

Field names, defaults and constraints follow Mixpeek's OpenAPI (v0.81). Request models are
strict (no type coercion) and reject unknown fields. Semantic checks that span fields (catalogue,
protected names, duplicates) run in `CreateNamespaceRequest`'s validator and report each problem
with its field path; `parse_request` turns any failure into `InvalidRequest`.
No message quotes a credential: models hide their input in errors, and quoted values have URL
`user:password@` redacted. Pure: imports nothing from Pulumi, Qdrant or Ray.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Any, Literal, Mapping, Union

from pydantic import (BaseModel, ConfigDict, Field, SecretStr, ValidationError, ValidationInfo,
                      model_validator)
from pydantic_core import PydanticCustomError

from .extractors import DEFAULT_CATALOGUE, Catalogue
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
PROTECTED_FIELDS = ("internal_id", "namespace_id", "collection_id", "document_id", "bucket_id", "object_id",
                    "root_object_id", "root_bucket_id", "source_object_id", "created_at", "updated_at")

NAMESPACE_NAME_RULE = ("1-63 characters: letters, digits, '_', '-' or '.', starting and ending with a letter or "
                       "digit (a valid Kubernetes label value)")
_NAMESPACE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?$")
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_\-]+(\[\])?(\.[A-Za-z0-9_\-]+(\[\])?)*$")
_RAY_URL = re.compile(r"^ray://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}$")
_HTTP_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]{1,253}(:[0-9]{1,5})?/?$")
_RAY_CLUSTER_ID = r"^ray_[a-zA-Z0-9_]{3,64}$"
_NO_CREDENTIALS = ("; credentials inside a URL are not accepted: pass them as secrets (infrastructure.qdrant_api_key, "
                   "or the stack's qdrantApiKey / rayAuthToken)")


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
    Union[TextIndexParams, KeywordIndexParams, IntegerIndexParams, FloatIndexParams, BoolIndexParams,
          GeoIndexParams, DatetimeIndexParams, UuidIndexParams],
    Field(discriminator="type"),
]
_PARAMS_BY_TYPE: dict[str, type[_Request]] = {
    "text": TextIndexParams, "keyword": KeywordIndexParams, "integer": IntegerIndexParams,
    "float": FloatIndexParams, "bool": BoolIndexParams, "geo": GeoIndexParams,
    "datetime": DatetimeIndexParams, "uuid": UuidIndexParams,
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
                    "field_schema_type", "field_schema.type '{inner}' must equal type '{outer}'",
                    {"inner": schema.get("type"), "outer": outer, "path": "field_schema.type"})
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

    compute_tier: ComputeTier = "shared"
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

    @model_validator(mode="before")
    @classmethod
    def _secret_key(cls, data: Any) -> Any:
        # Strict mode would refuse a plain str for SecretStr; accept one and wrap it.
        if isinstance(data, Mapping) and isinstance(data.get("qdrant_api_key"), str):
            data = {**data, "qdrant_api_key": SecretStr(data["qdrant_api_key"])}
        return data


class CreateNamespaceRequest(_Request):
    """The documented Create Namespace request body."""

    namespace_name: str
    feature_extractors: list[FeatureExtractor] = Field(min_length=1)
    description: str | None = Field(None, max_length=4096)
    payload_indexes: list[PayloadIndexConfig] | None = None
    auto_create_indexes: bool | None = False
    infrastructure: NamespaceInfrastructure | None = None

    @model_validator(mode="after")
    def _semantics(self, info: ValidationInfo) -> "CreateNamespaceRequest":
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
            head = head[:tail.start()]
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
    seen_ids: dict[str, int] = {}
    for i, fe in enumerate(req.feature_extractors or []):
        if fe is None:
            continue
        path = f"feature_extractors[{i}]"
        if fe.feature_extractor_id is not None and fe.feature_extractor_id != fe.derived_id:
            problems.append((f"{path}.feature_extractor_id",
                             f"{fe.feature_extractor_id!r} disagrees with name and version; expected {fe.derived_id!r}"))
        if fe.derived_id in seen_ids:
            problems.append((f"{path}", f"extractor {fe.derived_id} is already listed at "
                                        f"feature_extractors[{seen_ids[fe.derived_id]}]"))
        seen_ids.setdefault(fe.derived_id, i)
        entry, errors = catalogue.lookup(fe.feature_extractor_name, fe.version, path)
        problems += errors
        if entry is not None:
            problems += entry.param_errors(fe.params, f"{path}.params")
    seen_fields: dict[str, int] = {}
    for i, ix in enumerate(req.payload_indexes or []):
        if ix is None:
            continue
        path = f"payload_indexes[{i}]"
        if ix.field_name in PROTECTED_FIELDS:
            problems.append((f"{path}.field_name", f"{ix.field_name!r} is a protected system field; protected "
                                                   f"fields: {', '.join(PROTECTED_FIELDS)}"))
        elif not _FIELD_NAME.fullmatch(ix.field_name):
            problems.append((f"{path}.field_name", f"invalid field name {ix.field_name!r}: use letters, digits, "
                                                   "'_' and '-', with '.' between path segments"))
        if ix.is_protected:
            problems.append((f"{path}.is_protected", "user indexes cannot be protected; only system indexes are"))
        if ix.field_name in seen_fields:
            problems.append((f"{path}.field_name", f"duplicate field_name {ix.field_name!r} (also at "
                                                   f"payload_indexes[{seen_fields[ix.field_name]}])"))
        seen_fields.setdefault(ix.field_name, i)
        schema = ix.field_schema
        if isinstance(schema, TextIndexParams):
            for name in ("min_token_len", "max_token_len"):
                if not 1 <= getattr(schema, name) <= 1024:
                    problems.append((f"{path}.field_schema.{name}", "must be between 1 and 1024"))
            if schema.min_token_len > schema.max_token_len:
                problems.append((f"{path}.field_schema.min_token_len",
                                 f"min_token_len {schema.min_token_len} exceeds max_token_len {schema.max_token_len}"))
        if isinstance(schema, IntegerIndexParams) and not (schema.lookup or schema.range):
            problems.append((f"{path}.field_schema", "an integer index needs lookup or range (both are false)"))
    infra = req.infrastructure
    if infra is not None:
        if infra.compute_tier == "dedicated_gpu":
            if not infra.gpu_type:
                problems.append(("infrastructure.gpu_type", "required for compute_tier 'dedicated_gpu' (e.g. A100, T4)"))
            if infra.gpus_per_worker < 1:
                problems.append(("infrastructure.gpus_per_worker", "must be at least 1 for compute_tier 'dedicated_gpu'"))
        if infra.max_workers < infra.min_workers:
            problems.append(("infrastructure.max_workers",
                             f"max_workers {infra.max_workers} is below min_workers {infra.min_workers}"))
        if infra.ray_head_node_url is not None and not _RAY_URL.fullmatch(infra.ray_head_node_url):
            problems.append(("infrastructure.ray_head_node_url", f"{_short(infra.ray_head_node_url)} is not a "
                             f"ray://host:port URL{_NO_CREDENTIALS if '@' in infra.ray_head_node_url else ''}"))
        for name in ("qdrant_url", "ray_dashboard_url"):
            value = getattr(infra, name)
            if value is not None and not _HTTP_URL.fullmatch(value):
                problems.append((f"infrastructure.{name}", f"{_short(value)} is not an http(s)://host[:port] URL"
                                                           f"{_NO_CREDENTIALS if '@' in value else ''}"))
        if infra.qdrant_api_key is not None and infra.qdrant_url is None:
            problems.append(("infrastructure.qdrant_api_key", "given without infrastructure.qdrant_url"))
    return problems


class NamespaceInfrastructureOut(BaseModel):
    """NamespaceInfrastructure as the response carries it (no API key)."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    qdrant_collection: str
    compute_tier: ComputeTier = "shared"
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

    namespace_id: str
    namespace_name: str
    description: str | None = None
    feature_extractors: list[FeatureExtractorOut] = []
    payload_indexes: list[PayloadIndexOut] | None = None
    vector_inference_map: dict[str, str] | None = None
    auto_create_indexes: bool = False
    infrastructure: NamespaceInfrastructureOut | None = None
    cluster_id: str | None = None
    document_count: int | None = None
    object_count: int | None = None
    collection_count: int | None = None
    bucket_count: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class InvalidRequest(ValueError):
    """A request failed validation; `problems` holds (field path, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(where + "invalid namespace request:\n" + "\n".join(f"  {p}: {m}" for p, m in problems))


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


def problems_from_validation_error(exc: ValidationError, model: type[BaseModel] = CreateNamespaceRequest,
                                   prefix: str = "") -> list[tuple[str, str]]:
    """Flatten a pydantic error into (field path, message) pairs, with valid choices where fixed."""
    problems: list[tuple[str, str]] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        ctx = err.get("ctx") or {}
        base = _format_loc(loc) if loc else ""
        join = (lambda p: f"{base}.{p}" if base else p)
        if err["type"] == "invalid_namespace":
            problems += [(prefix + p, m) for p, m in ctx["problems"]]
            continue
        if err["type"] == "field_schema_type":
            problems.append((prefix + join(ctx["path"]), err["msg"]))
            continue
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            valid = _valid_fields(model, loc)
            message = "unknown field" + (f"; valid fields: {', '.join(valid)}" if valid else "")
        elif err["type"] == "union_tag_invalid":
            message = f"unknown type {ctx.get('tag')!r}; valid choices: {ctx.get('expected_tags')}"
        problems.append((prefix + (base or "(body)"), message))
    return problems


def _reject_non_finite(value: Any, path: str, problems: list[tuple[str, str]], depth: int = 0) -> None:
    if depth > 32:
        problems.append((path or "(body)", "nested too deeply"))
    elif isinstance(value, float) and not math.isfinite(value):
        problems.append((path or "(body)", f"{value} is not a finite number"))
    elif isinstance(value, Mapping):
        for k, v in value.items():
            _reject_non_finite(v, f"{path}.{k}" if path else str(k), problems, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _reject_non_finite(v, f"{path}[{i}]", problems, depth + 1)


def _salvaged_problems(data: Mapping[str, Any], catalogue: Catalogue) -> list[tuple[str, str]]:
    """The cross-field problems of the parts of a body that are valid on their own, so a structural
    error elsewhere does not hide them (every problem is reported at once)."""
    def part(model: type[BaseModel], value: Any) -> Any:
        try:
            return model.model_validate(value)
        except (ValidationError, RecursionError):
            return None

    name, fes, ixs, infra = (data.get(k) for k in ("namespace_name", "feature_extractors", "payload_indexes",
                                                    "infrastructure"))
    partial = CreateNamespaceRequest.model_construct(
        namespace_name=name if isinstance(name, str) else None,
        feature_extractors=[part(FeatureExtractor, x) for x in fes] if isinstance(fes, list) else None,
        payload_indexes=[part(PayloadIndexConfig, x) for x in ixs] if isinstance(ixs, list) else None,
        infrastructure=part(NamespaceInfrastructure, infra) if isinstance(infra, Mapping) else None)
    return request_problems(partial, catalogue)


def parse_request(data: Any, *, catalogue: Catalogue | None = None, source: str | None = None) -> CreateNamespaceRequest:
    """Validate a request body (dict or model); raise `InvalidRequest` listing every problem."""
    if isinstance(data, CreateNamespaceRequest):
        data = data.model_dump(exclude_unset=True)
        infra = data.get("infrastructure")
        if infra and infra.get("qdrant_api_key") is not None:
            infra["qdrant_api_key"] = infra["qdrant_api_key"].get_secret_value()
    if not isinstance(data, Mapping):
        raise InvalidRequest([("(body)", f"expected an object (the Create Namespace body), got {type(data).__name__}")],
                             source)
    problems: list[tuple[str, str]] = []
    _reject_non_finite(data, "", problems)
    if problems:
        raise InvalidRequest(problems, source)
    try:
        return CreateNamespaceRequest.model_validate(data, context={"catalogue": catalogue or DEFAULT_CATALOGUE})
    except ValidationError as exc:
        problems = problems_from_validation_error(exc)
        known = set(problems)
        problems += [p for p in _salvaged_problems(data, catalogue or DEFAULT_CATALOGUE) if p not in known]
        raise InvalidRequest(problems, source) from None
    except RecursionError:
        raise InvalidRequest([("(body)", "nested too deeply")], source) from None
