"""JSON Schemas (draft 2020-12) for editors: of the Create Namespace request, and of a whole
`Pulumi.<stack>.yaml` of this project, so an editor flags the mistakes `mixpeek-infra validate`
refuses (every key, its type, bounds and choices). Pure: imports no Pulumi.
"""

from __future__ import annotations

from typing import Any

from .extractors import DEFAULT_CATALOGUE, DISCRIMINATOR, JSON_SCHEMA, PLAIN, Catalogue, ExtractorVersion
from .schema import (
    _FIELD_NAME,
    _NAMESPACE_NAME,
    HOSTED_FIELDS,
    HOSTED_INFRA_FIELDS,
    HOSTED_ONLY,
    NAMESPACE_NAME_RULE,
    PROTECTED_FIELDS,
    CreateNamespaceRequest,
)
from .settings import StackEntrySettings, settings_json_schema
from .stackconfig import ENTRY_KEYS, PER_NAMESPACE_KEYS, QDRANT_KEYS, SECRET_KEYS
from .vocabulary import DATATYPES, DISTANCES, STACK_PROJECT

DRAFT = "https://json-schema.org/draft/2020-12/schema"
PORT = "(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})"  # 1-65535


def request_json_schema(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of the Create Namespace request, from the pydantic model.

    On top of the model's own schema it states what the model checks in code, so an editor can
    flag it too: the namespace name rule, field name rule and protected names, `field_schema`
    tied to `type`, the extractor names, versions and params of `catalogue`.
    """
    catalogue = catalogue or DEFAULT_CATALOGUE
    schema = CreateNamespaceRequest.model_json_schema(mode="validation")
    defs = schema["$defs"]
    schema = {
        "$schema": DRAFT,
        "title": "Mixpeek Create Namespace request",
        **{k: v for k, v in schema.items() if k != "title"},
    }

    name = schema["properties"]["namespace_name"]
    name.update(minLength=1, maxLength=64, pattern=_NAMESPACE_NAME.pattern, description=NAMESPACE_NAME_RULE)
    # v0.82: extractors, or bring-your-own vector_configs alone (standalone); hosted-only fields are refused.
    props = schema["properties"]
    schema["anyOf"] = [
        {"required": ["feature_extractors"], "properties": {"feature_extractors": {"minItems": 1}}},
        {"required": ["vector_configs"], "properties": {"vector_configs": {"minItems": 1}}},
    ]
    for field in HOSTED_FIELDS:
        props[field] = {"type": "null", "default": None, "description": HOSTED_ONLY}
    props["features"] = {
        "anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}],
        "default": None,
        "description": "refused: list the extractors in feature_extractors",
    }
    infra_props = defs["NamespaceInfrastructure"]["properties"]
    for field in HOSTED_INFRA_FIELDS:
        infra_props[field] = {"type": "null", "default": None, "description": HOSTED_ONLY}
    infra_props["compute_profiles"] = {
        "anyOf": [{"type": "null"}, {"type": "object", "maxProperties": 0}],
        "default": None,
        "description": "refused: size workers with min_workers, max_workers, gpu_type, gpus_per_worker",
    }

    index = defs["PayloadIndexConfig"]
    index["properties"]["field_name"].update(
        pattern=_FIELD_NAME.pattern,
        **{"not": {"enum": list(PROTECTED_FIELDS)}},
        description="letters, digits, '_' and '-', with '.' between path segments; not a protected system field",
    )
    index["properties"]["is_protected"]["const"] = False
    variants = {
        "text": "TextIndexParams",
        "keyword": "KeywordIndexParams",
        "integer": "IntegerIndexParams",
        "float": "FloatIndexParams",
        "bool": "BoolIndexParams",
        "geo": "GeoIndexParams",
        "datetime": "DatetimeIndexParams",
        "uuid": "UuidIndexParams",
    }
    index["properties"]["field_schema"] = {
        "anyOf": [{"$ref": f"#/$defs/{d}"} for d in variants.values()] + [{"type": "null"}],
        "default": None,
        "title": "Field Schema",
        "description": "the index parameters; its `type` (defaulted from `type`) must equal `type`",
    }
    index["allOf"] = [
        {
            "if": {"properties": {"type": {"const": kind}}, "required": ["type"]},
            "then": {"properties": {"field_schema": {"anyOf": [{"$ref": f"#/$defs/{d}"}, {"type": "null"}]}}},
        }
        for kind, d in variants.items()
    ]
    for field in ("min_token_len", "max_token_len"):
        defs["TextIndexParams"]["properties"][field].update(minimum=1, maximum=1024)
    defs["IntegerIndexParams"]["not"] = {
        "properties": {"lookup": {"const": False}, "range": {"const": False}},
        "required": ["lookup", "range"],
    }

    fe = defs["FeatureExtractor"]
    names = catalogue.names()
    fe["properties"]["feature_extractor_name"]["enum"] = names
    fe["properties"]["version"]["enum"] = sorted({v for n in names for v in catalogue.versions(n)})
    rules: list[dict[str, Any]] = []
    for n in names:
        rules.append(
            {
                "if": {"properties": {"feature_extractor_name": {"const": n}}, "required": ["feature_extractor_name"]},
                "then": {"properties": {"version": {"enum": catalogue.versions(n)}}},
            }
        )
        for v in catalogue.versions(n):
            entry = catalogue.entries[(n, v)]
            params = {"type": "object", "additionalProperties": False, "properties": _param_schemas(entry)}
            rules.append(
                {
                    "if": {
                        "properties": {"feature_extractor_name": {"const": n}, "version": {"const": v}},
                        "required": ["feature_extractor_name", "version"],
                    },
                    "then": {
                        "properties": {
                            "params": {"anyOf": [params, {"type": "null"}]},
                            "feature_extractor_id": {
                                "anyOf": [{"const": entry.feature_extractor_id}, {"type": "null"}]
                            },
                        }
                    },
                }
            )
    fe["allOf"] = rules
    return schema


def _param_schemas(entry: ExtractorVersion) -> dict[str, Any]:
    """The `params` properties of one extractor version: documented and pinned params with their choices,
    inert params by their shape (plain values; generation_config with its own keys), the client's discriminator
    as its one value. Vector-changing and credential params are left out, so `additionalProperties: false`
    refuses them with every unknown one."""
    props: dict[str, Any] = {p.name: {"enum": list(p.choices), "default": p.default} for p in entry.params}
    for p in entry.pinned_params:
        props[p.name] = {
            "enum": list(p.choices),
            "default": p.default,
            "description": "other values would change the namespace's vectors: not supported",
        }
    shapes = dict(entry.inert_shapes)
    for name in sorted(entry.inert_params):
        props[name] = {
            **_shape_schema(shapes.get(name, PLAIN)),
            "description": "changes no vector: passed through unchanged (so published)",
        }
    if entry.client_model:
        props[DISCRIMINATOR] = {
            "const": entry.name,
            "description": f"the discriminator of the client's {entry.client_model}; dropped from the plan",
        }
    return props


def _shape_schema(shape: Any) -> dict[str, Any]:
    """The JSON Schema of a pass-through value's shape (`extractors._shape_problems` checks the same, and inside
    a JSON Schema value more than an editor's schema can say)."""
    scalar = {"type": ["string", "number", "boolean", "null"]}
    if shape == PLAIN:
        return {"anyOf": [scalar, {"type": "array", "items": scalar}]}
    if shape == JSON_SCHEMA:
        return {"type": ["object", "boolean", "null"]}
    return {
        "type": ["object", "null"],
        "additionalProperties": False,
        "properties": {key: _shape_schema(sub) for key, sub in shape},
    }


def stack_config_json_schema(catalogue: Catalogue | None = None) -> dict[str, Any]:
    """JSON Schema of a Pulumi stack config file (`Pulumi.<stack>.yaml`) of the mixpeek-infra project."""
    from .ray.spec import MODE_KEYS, KubernetesRayHead

    request = request_json_schema(catalogue)
    defs = request.pop("$defs")
    request.pop("$schema")
    defs["CreateNamespaceRequest"] = request
    vector = {
        "type": "object",
        "additionalProperties": False,
        "required": ["output", "size", "inference_service"],
        "properties": {
            "output": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "size": {"type": "integer", "minimum": 1, "maximum": 65536},
            "inference_service": {"type": "string", "minLength": 1, "maxLength": 256},
            "distance": {"enum": list(DISTANCES), "default": "cosine"},
            "datatype": {"enum": list(DATATYPES), "default": "float32"},
            "multivector": {
                "type": "boolean",
                "default": False,
                "description": "a list of vectors per point (late interaction, "
                "ColBERT/ColQwen style), compared with MaxSim",
            },
        },
    }
    defs["UserExtractor"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "version"],
        "properties": {
            "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "version": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
            "vectors": {"type": "array", "items": vector},
        },
    }
    seconds = {"type": "number", "exclusiveMinimum": 0}
    directory = {"type": "string", "minLength": 1, "pattern": "^[^\\u0000]*$"}
    defs["QdrantSettings"] = {
        "type": "object",
        "additionalProperties": False,
        "description": "a Qdrant server (url) or embedded Qdrant Edge (path; default .mixpeek/qdrant)",
        "properties": {
            "url": {
                "type": "string",
                "pattern": f"^https?://(\\[[0-9A-Fa-f:.]+\\]|[^\\s/?#@:\\[\\]]+)(:{PORT})?(/[^\\s?#]*)?$",
            },
            "path": directory,
            "timeout": seconds,
            "prefer_grpc": {"type": "boolean"},
            "final_snapshot": {
                **directory,
                "description": "a directory; each collection is snapshotted there before delete/replace",
            },
        },
        "not": {"required": ["url", "path"]},
        "dependentSchemas": {
            "prefer_grpc": {"anyOf": [{"required": ["url"]}, {"properties": {"prefer_grpc": {"const": False}}}]}
        },
    }
    assert tuple(defs["QdrantSettings"]["properties"]) == QDRANT_KEYS
    defs["KubernetesSettings"] = {
        "type": "object",
        "additionalProperties": False,
        "properties": settings_json_schema(KubernetesRayHead),
    }
    ray_url = {"type": "string", "pattern": f"^ray://[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?:{PORT}$"}
    heads: list[dict[str, Any]] = [
        {"properties": {"mode": {"const": "external"}, "url": ray_url}, "required": ["mode"]},
        {
            "properties": {
                "mode": {"const": "local"},
                "state_dir": directory,
                "num_cpus": {"type": "integer", "minimum": 0},
                "ready_timeout": seconds,
                "stop_timeout": seconds,
            },
            "required": ["mode"],
        },
        {
            "properties": {"mode": {"const": "kubernetes"}, "kubernetes": {"$ref": "#/$defs/KubernetesSettings"}},
            "required": ["mode"],
        },
    ]
    keys = {mode: list(names) for mode, names in MODE_KEYS.items()}
    defs["RayHead"] = {
        "type": "object",
        "required": ["mode"],
        "oneOf": [{**h, "propertyNames": {"enum": keys[h["properties"]["mode"]["const"]]}} for h in heads],
    }
    defs["StackRay"] = {
        "type": "object",
        "description": "the default Ray head, and shared_url: the shared cluster of shared-tier namespaces",
        "anyOf": [
            {"propertyNames": {"const": "shared_url"}},
            *({**h, "propertyNames": {"enum": keys[h["properties"]["mode"]["const"]] + ["shared_url"]}} for h in heads),
        ],
        "properties": {"shared_url": ray_url},
    }
    defs["Secret"] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["secure"],
        "properties": {"secure": {"type": "string"}},
        "description": "set with `pulumi config set --secret`; plain text is refused",
    }
    relative = {"type": "string", "minLength": 1, "pattern": "^(?!/)[^\\u0000]*$"}
    entry_props = {
        "request": {"$ref": "#/$defs/CreateNamespaceRequest"},
        "file": {
            **relative,
            "description": "a JSON or YAML file holding one Create Namespace request body, "
            "relative to the project root",
        },
        "files": {
            "anyOf": [relative, {"type": "array", "minItems": 1, "items": relative}],
            "description": "a directory (its *.json, *.yaml, *.yml files) or glob (`**` recurses), or a list "
            "of them, relative to the project root: one namespace per file, sorted by path; the "
            "entry's settings apply to each (files named by a `file` entry are left to it)",
        },
        **settings_json_schema(StackEntrySettings),  # every setting, from its one declaration
    }
    assert tuple(entry_props) == ENTRY_KEYS
    project = {
        f"{STACK_PROJECT}:namespaces": {
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [{"$ref": "#/$defs/CreateNamespaceRequest"}, {"$ref": "#/$defs/StackNamespaceEntry"}]},
        },
        f"{STACK_PROJECT}:extractors": {"type": "array", "items": {"$ref": "#/$defs/UserExtractor"}},
        f"{STACK_PROJECT}:qdrant": {"$ref": "#/$defs/QdrantSettings"},
        f"{STACK_PROJECT}:ray": {"$ref": "#/$defs/StackRay"},
        **{f"{STACK_PROJECT}:{k}": {"$ref": "#/$defs/Secret"} for k in SECRET_KEYS},
    }
    return {
        "$schema": DRAFT,
        "title": "mixpeek-infra Pulumi stack config",
        "type": "object",
        "properties": {
            "config": {
                "type": "object",
                "required": [f"{STACK_PROJECT}:namespaces"],
                "properties": project,
                "propertyNames": {"anyOf": [{"not": {"pattern": f"^{STACK_PROJECT}:"}}, {"enum": list(project)}]},
            }
        },
        "$defs": {
            **defs,
            "StackNamespaceEntry": {
                "type": "object",
                "additionalProperties": False,
                "properties": entry_props,
                "oneOf": [
                    {"required": ["request"]},
                    {"required": ["file"]},
                    {"required": ["files"], "not": {"anyOf": [{"required": [k]} for k in PER_NAMESPACE_KEYS]}},
                ],
            },
        },
    }
