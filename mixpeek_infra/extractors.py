"""The feature extractor catalogue: documented extractors as data, plus user-registered ones.

Each entry is one extractor version with the named vectors it writes, and how each param of the
official client's params model for it (`client_model`, e.g. `ImageExtractorParams`) is treated:

- `params`: documented params that choose a vector (valid values, default filled into the plan);
- `pinned_params`: client params that would add or remove a vector, accepted only at the values that
  keep the catalogue's vector set (passed through as given; no default is filled in);
- `inert_params`: processing knobs that change no vector; they pass through unchanged, so they are
  published (plan, outputs, state). What may pass is a structure, not a name list: a plain value
  (string, number, true/false, null, or a list of them), or, for the params `inert_shapes` names
  (`generation_config`), an object with only the keys the client's model declares, where a
  JSON Schema (`response_schema`) holds only JSON Schema keywords and names of its own only
  name sub-schemas. A name no one listed (`openaiApiKey`, `headers.Authorization`) is refused;
- `vector_params`: params that change the vectors in ways Mixpeek does not document: refused;
- credentials (`*_api_key`, ...): refused for every extractor, their value never quoted;
- `extractor_type`, the client's discriminator: accepted only equal to the extractor's name, and
  dropped from the plan (it repeats `feature_extractor_name`).

Any other param is an error naming the valid ones. Pure: imports nothing from Pulumi, Qdrant or Ray.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .problems import did_you_mean

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
DATATYPES = ("float32", "float16", "uint8")
# Extractor names, versions and vector outputs become Qdrant vector names: keep them to a safe charset.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
# A param (or a key inside a param's value) that reads as a credential, once camelCase and '-' are
# turned into '_': only to word the refusal; what is refused is anything not declared (see `_shape_problems`).
_CREDENTIAL = re.compile(
    r"(^|_)(api_?key|secret|secret_key|secret_access_key|password|passwd|passphrase|credentials?|"
    r"token|access_token|auth_token|bearer|bearer_token|private_key|authorization|cookie)$"
)
_WORD_BREAK = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
DISCRIMINATOR = "extractor_type"
VECTOR_CHANGE = "changes the namespace's vectors; Mixpeek does not document how, so it is not supported here"
CREDENTIAL_REFUSAL = (
    "a credential must not be put in a request body (it would land in the state and outputs): "
    "set it through the Mixpeek API"
)


def is_credential(name: Any) -> bool:
    """Whether a param name (or a key inside a param value) reads as a credential (`llm_api_key`,
    `openaiApiKey`, `X-Api-Key`, `hf_token`, ...)."""
    if not isinstance(name, str) or len(name) > 256:
        return False
    words = re.sub(r"[^A-Za-z0-9]+", "_", _WORD_BREAK.sub("_", name)).strip("_").lower()
    return bool(_CREDENTIAL.search(words))


# The shapes of a pass-through value (`ExtractorVersion.inert_shapes`): PLAIN, JSON_SCHEMA, or an object
# as ((key, shape), ...): only those keys, each of its shape.
PLAIN = "plain"  # a string, number, true/false or null, or a list of them
JSON_SCHEMA = "json_schema"  # a JSON Schema (the OpenAPI subset Gemini's response_schema takes)
MAX_SHAPE_PROBLEMS = 20  # listed per param: a value with thousands of unknown keys must not flood the output
PLAIN_RULE = (
    "must be a plain JSON value (a string, number, true/false or null, or a list of them): what passes "
    "through is published in the plan, the outputs and the state"
)
# JSON Schema keywords: those holding names of your own (each naming a sub-schema), a sub-schema, a list of
# them, or a plain value.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_ONE = frozenset(
    {
        "items",
        "additionalProperties",
        "not",
        "if",
        "then",
        "else",
        "contains",
        "propertyNames",
        "unevaluatedProperties",
        "unevaluatedItems",
        "additionalItems",
    }
)
_SCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_PLAIN = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "const",
        "default",
        "examples",
        "required",
        "propertyOrdering",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "uniqueItems",
        "minProperties",
        "maxProperties",
        "$ref",
        "$id",
        "$schema",
        "$comment",
        "$anchor",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentMediaType",
        "contentEncoding",
    }
)
_SCHEMA_RULE = (
    "is not a JSON Schema keyword: a JSON Schema passed through holds only its keywords, and names of "
    "your own only under properties (or $defs), each naming a sub-schema"
)


def _key_path(path: str, key: Any) -> str:
    """`path.key`, the key cut short and made text that encodes anywhere."""
    text = key if isinstance(key, str) else repr(key)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return f"{path}.{text if len(text) <= 64 else text[:64] + '...'}"


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, str)) or (isinstance(value, float) and math.isfinite(value))


def _plain_problem(value: Any, path: str) -> list[tuple[str, str]]:
    if _is_scalar(value) or (isinstance(value, (list, tuple)) and all(_is_scalar(v) for v in value)):
        return []
    return [(path, PLAIN_RULE)]


def _unknown_key(path: str, key: Any, why: str) -> tuple[str, str]:
    return (_key_path(path, key), CREDENTIAL_REFUSAL if is_credential(key) else why)


def _shape_problems(value: Any, shape: Any, path: str, depth: int = 0) -> list[tuple[str, str]]:
    """Where a pass-through `value` departs from `shape`, as (field path, message); no message quotes a value."""
    if depth > 32:
        return [(path, "nested too deeply (more than 32 levels)")]
    if shape == PLAIN:
        return _plain_problem(value, path)
    if shape == JSON_SCHEMA:
        return _schema_problems(value, path, depth)
    if value is None:
        return []
    fields = dict(shape)
    if not isinstance(value, Mapping):
        return [(path, f"expected an object with the keys {', '.join(fields)}, or null")]
    problems: list[tuple[str, str]] = []
    for key, item in value.items():
        if key in fields:
            problems += _shape_problems(item, fields[key], _key_path(path, key), depth + 1)
        else:
            problems.append(
                _unknown_key(
                    path,
                    key,
                    f"unknown key{did_you_mean(key, fields)}; valid keys: "
                    f"{', '.join(fields)} (only what the client's model declares "
                    "passes through: it is published)",
                )
            )
    return problems


def _schema_problems(value: Any, path: str, depth: int) -> list[tuple[str, str]]:
    """A JSON Schema (or a boolean sub-schema): keywords only; names of your own only name sub-schemas."""
    if depth > 32:
        return [(path, "nested too deeply (more than 32 levels)")]
    if value is None or isinstance(value, bool):
        return []
    if not isinstance(value, Mapping):
        return [(path, "expected a JSON Schema (an object, or true/false)")]
    problems: list[tuple[str, str]] = []
    for key, item in value.items():
        where = _key_path(path, key)
        if key in _SCHEMA_PLAIN:
            problems += _plain_problem(item, where)
        elif key in _SCHEMA_ONE and not (key == "items" and isinstance(item, list)):
            problems += _schema_problems(item, where, depth + 1)
        elif key in _SCHEMA_LIST or key == "items":
            if not isinstance(item, list):
                problems.append((where, "expected a list of JSON Schemas"))
                continue
            for i, sub in enumerate(item):
                problems += _schema_problems(sub, f"{where}[{i}]", depth + 1)
        elif key in _SCHEMA_MAPS:
            if not isinstance(item, Mapping):
                problems.append((where, "expected an object: each name of your own with its JSON Schema"))
                continue
            for name, sub in item.items():
                if isinstance(sub, (Mapping, bool)):
                    problems += _schema_problems(sub, _key_path(where, name), depth + 1)
                else:
                    problems.append(
                        (
                            _key_path(where, name),
                            "expected a JSON Schema (an object, or true/false): a "
                            "name of your own here only names a sub-schema",
                        )
                    )
        else:
            problems.append(_unknown_key(path, key, _SCHEMA_RULE))
    return problems


def plain_json(value: Any) -> Any:
    """A deep copy of a JSON value with subclasses made plain (the client's str enums become str)."""
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {str.__str__(k) if isinstance(k, str) else k: plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    return value


@dataclass(frozen=True)
class VectorSpec:
    """One named vector an extractor writes: `{extractor}_{version}_{output}`.

    `multivector`: each point holds a list of `size`-dimensional vectors under this name (late
    interaction, ColBERT/ColQwen style), compared with MaxSim (Qdrant `multivector_config`)."""

    output: str
    size: int
    inference_service: str
    distance: str = "cosine"
    datatype: str = "float32"
    multivector: bool = False


@dataclass(frozen=True)
class ParamSpec:
    """A documented extractor param: its valid values, its default, and which vector's size it sets."""

    name: str
    choices: tuple[Any, ...]
    default: Any
    sets_size_of: str | None = None


@dataclass(frozen=True)
class ExtractorVersion:
    """One catalogue entry: an extractor at one version."""

    name: str
    version: str
    vectors: tuple[VectorSpec, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    # The official client's params model for this extractor (documentation; `extractor_type` is accepted
    # only when there is one), and how its other fields are treated (see the module docstring).
    client_model: str | None = None
    pinned_params: tuple[ParamSpec, ...] = ()
    inert_params: frozenset[str] = frozenset()
    inert_shapes: tuple[tuple[str, Any], ...] = ()  # (inert param, its shape) where not PLAIN
    vector_params: tuple[tuple[str, str], ...] = ()  # (param, why it changes the vectors)

    @property
    def feature_extractor_id(self) -> str:
        return f"{self.name}_{self.version}"

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Documented defaults overlaid with `params` (assumed valid: see `param_errors`)."""
        resolved = {p.name: p.default for p in self.params}
        resolved.update({key: plain_json(value) for key, value in (params or {}).items()})
        if self.client_model:
            resolved.pop(DISCRIMINATOR, None)  # repeats feature_extractor_name
        return resolved

    def valid_param_names(self) -> list[str]:
        """Every param this extractor accepts."""
        names = {p.name for p in self.params + self.pinned_params} | set(self.inert_params)
        return sorted(names | ({DISCRIMINATOR} if self.client_model else set()))

    def vector_sizes(self, params: Mapping[str, Any]) -> dict[str, int]:
        """Size of each output vector once `params` (resolved) are applied."""
        sizes = {v.output: v.size for v in self.vectors}
        for p in self.params:
            if p.sets_size_of:
                sizes[p.sets_size_of] = int(params[p.name])
        return sizes

    def param_errors(self, params: Mapping[str, Any] | None, path: str) -> list[tuple[str, str]]:
        """(field path, message) for each unknown param or invalid value."""
        errors: list[tuple[str, str]] = []
        known = {p.name: p for p in self.params}
        pinned = {p.name: p for p in self.pinned_params}
        vector = dict(self.vector_params)
        for key, value in (params or {}).items():
            where = f"{path}.{key}"
            if is_credential(key):  # before anything that could quote the value
                errors.append((where, CREDENTIAL_REFUSAL))
            elif key in known or key in pinned:
                spec = known.get(key) or pinned[key]
                if not _is_choice(value, spec.choices):
                    choices = ", ".join(repr(c) for c in spec.choices)
                    value = plain_json(value)
                    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
                    why = f": {key}={shown} {VECTOR_CHANGE}" if key in pinned else ""
                    errors.append((where, f"invalid value {shown}{why}; valid choices: {choices}"))
            elif key in self.inert_params:
                found = _shape_problems(value, dict(self.inert_shapes).get(key, PLAIN), where)
                errors += found[:MAX_SHAPE_PROBLEMS] + (
                    [(where, f"{len(found) - MAX_SHAPE_PROBLEMS} more problems like the ones above")]
                    if len(found) > MAX_SHAPE_PROBLEMS
                    else []
                )
            elif key == DISCRIMINATOR and self.client_model:
                if value != self.name or not isinstance(value, str):
                    shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
                    errors.append(
                        (
                            where,
                            f"invalid value {shown}: the client's discriminator of {self.client_model} "
                            f"must be {self.name!r} (or left out)",
                        )
                    )
            elif key in vector:
                errors.append((where, f"{key} {VECTOR_CHANGE} ({vector[key]})"))
            else:
                valid = ", ".join(self.valid_param_names()) or "none (this extractor takes no params)"
                shown = key if isinstance(key, str) and len(key) <= 64 else repr(key)[:64] + "..."
                errors.append(
                    (
                        f"{path}.{shown}",
                        f"unknown param for {self.feature_extractor_id}"
                        f"{did_you_mean(key, self.valid_param_names())}; valid params: {valid}",
                    )
                )
        return errors


def _is_choice(value: Any, choices: tuple[Any, ...]) -> bool:
    """`value` is one of `choices`; a bool only matches a bool (True is not 1)."""
    return any(isinstance(value, bool) == isinstance(c, bool) and value == c for c in choices)


@dataclass
class Catalogue:
    """The extractors a namespace may use, keyed by (name, version)."""

    entries: dict[tuple[str, str], ExtractorVersion] = field(default_factory=dict)

    def register(self, entry: ExtractorVersion, *, replace: bool = False) -> ExtractorVersion:
        """Add an extractor version; refuses to shadow an existing one unless `replace`."""
        _check_entry(entry)
        key = (entry.name, entry.version)
        if key in self.entries and not replace and self.entries[key] != entry:
            raise ValueError(f"extractor {entry.feature_extractor_id} is already registered")
        self.entries[key] = entry
        return entry

    def copy(self) -> Catalogue:
        return Catalogue(dict(self.entries))

    def names(self) -> list[str]:
        return sorted({name for name, _ in self.entries})

    def versions(self, name: str) -> list[str]:
        return sorted(v for n, v in self.entries if n == name)

    def lookup(self, name: str, version: str, path: str) -> tuple[ExtractorVersion | None, list[tuple[str, str]]]:
        """The entry, or the errors naming the field and the valid choices."""
        entry = self.entries.get((name, version))
        if entry is not None:
            return entry, []
        if name not in self.names():
            return None, [
                (
                    f"{path}.feature_extractor_name",
                    f"unknown extractor {name!r}{did_you_mean(name, self.names())}; "
                    f"valid choices: {', '.join(self.names())}",
                )
            ]
        return None, [
            (
                f"{path}.version",
                f"unknown version {version!r} of {name}{did_you_mean(version, self.versions(name))}; "
                f"valid choices: {', '.join(self.versions(name))}",
            )
        ]


def _check_entry(entry: ExtractorVersion) -> None:
    where = f"extractor {entry.name!r} {entry.version!r}"
    for label, value in (("name", entry.name), ("version", entry.version)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ValueError(
                f"{where}: {label} must be 1-64 characters of letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
    for v in entry.vectors:
        if not isinstance(v.output, str) or not _NAME.fullmatch(v.output):
            raise ValueError(
                f"{where}: vector output {v.output!r} must be 1-64 characters of letters, digits, "
                "'_', '-' or '.', starting with a letter or digit"
            )
        if (
            not isinstance(v.inference_service, str)
            or not v.inference_service.strip()
            or len(v.inference_service) > 256
        ):
            raise ValueError(f"{where}: vector {v.output!r} needs an inference_service (a non-empty string)")
        if isinstance(v.size, bool) or not isinstance(v.size, int) or not 1 <= v.size <= 65536:
            raise ValueError(f"{where}: vector {v.output!r} size must be an integer 1..65536, got {v.size!r}")
        if v.distance not in DISTANCES:
            raise ValueError(f"{where}: vector {v.output!r} distance must be one of {', '.join(DISTANCES)}")
        if v.datatype not in DATATYPES:
            raise ValueError(f"{where}: vector {v.output!r} datatype must be one of {', '.join(DATATYPES)}")
        if not isinstance(v.multivector, bool):
            raise ValueError(f"{where}: vector {v.output!r} multivector must be true or false, got {v.multivector!r}")
    outputs = [v.output for v in entry.vectors]
    if len(set(outputs)) != len(outputs):
        raise ValueError(f"{where}: vector outputs must be unique, got {outputs}")
    groups = [
        [p.name for p in entry.params],
        [p.name for p in entry.pinned_params],
        sorted(entry.inert_params),
        [name for name, _ in entry.vector_params],
    ]
    names = [n for g in groups for n in g]
    if len(set(names)) != len(names) or DISCRIMINATOR in names or any(is_credential(n) for n in names):
        raise ValueError(f"{where}: a param is listed twice, or is {DISCRIMINATOR!r} or a credential: {sorted(names)}")
    shaped = [name for name, _ in entry.inert_shapes]
    if not set(shaped) <= set(entry.inert_params) or any(is_credential(k) for k in _shape_keys(entry.inert_shapes)):
        raise ValueError(f"{where}: inert_shapes must shape inert params, with no credential among their keys")
    for p in entry.params + entry.pinned_params:
        if not _is_choice(p.default, p.choices):
            raise ValueError(f"{where}: param {p.name!r} default {p.default!r} is not one of its choices")


def _shape_keys(shape: Any) -> list[Any]:
    """Every key an object shape declares, nested ones included."""
    if not isinstance(shape, tuple):
        return []
    return [k for key, sub in shape for k in (key, *_shape_keys(sub))]


def extractor_from_config(item: Mapping[str, Any]) -> ExtractorVersion:
    """Build a user extractor from stack config: {name, version, vectors: [{output, size, inference_service,
    distance, datatype, multivector}]}."""
    if not isinstance(item, Mapping):
        raise ValueError(f"extractor config: expected a mapping {{name, version, vectors}}, got {type(item).__name__}")
    allowed = {"name", "version", "vectors"}
    unknown = set(item) - allowed
    if unknown:
        hints = "".join(did_you_mean(k, allowed) for k in sorted(unknown, key=str))
        raise ValueError(
            f"extractor config: unknown keys {sorted(unknown, key=str)}{hints}; valid keys: {sorted(allowed)}"
        )
    vec_keys = {"output", "size", "inference_service", "distance", "datatype", "multivector"}
    vectors = []
    if not isinstance(item.get("vectors") or [], list):
        raise ValueError("extractor config: vectors must be a list of {output, size, inference_service, ...}")
    for i, v in enumerate(item.get("vectors") or []):
        if not isinstance(v, Mapping):
            raise ValueError(f"extractor config vectors[{i}]: expected a mapping, got {type(v).__name__}")
        bad = set(v) - vec_keys
        if bad:
            hints = "".join(did_you_mean(k, vec_keys) for k in sorted(bad, key=str))
            raise ValueError(
                f"extractor config vectors[{i}]: unknown keys {sorted(bad, key=str)}{hints}; "
                f"valid keys: {sorted(vec_keys)}"
            )
        size: Any = v.get("size")  # VectorSpec checks it
        if isinstance(size, float) and size.is_integer():
            size = int(size)
        vectors.append(
            VectorSpec(
                output=v.get("output", ""),
                size=size,
                inference_service=v.get("inference_service", ""),
                distance=v.get("distance", "cosine"),
                datatype=v.get("datatype", "float32"),
                multivector=v.get("multivector", False),
            )
        )
    entry = ExtractorVersion(name=item.get("name", ""), version=item.get("version", ""), vectors=tuple(vectors))
    _check_entry(entry)
    return entry


# Reasons a client param is refused as changing the vectors (see `ExtractorVersion.vector_params`).
_SHAPE = (
    "structured LLM extraction: whether and how its fields are embedded, and under which vector names, "
    "is not documented"
)


def _documented() -> Iterable[ExtractorVersion]:
    e5 = "multilingual_e5_large_instruct_v1"
    yield ExtractorVersion(
        "image_extractor",
        "v1",
        (VectorSpec("embedding", 768, "google_siglip_base_v1"),),
        (ParamSpec("model", ("siglip_base",), "siglip_base"),),
        client_model="ImageExtractorParams",
        inert_params=frozenset({"enable_thumbnails", "use_cdn"}),
    )
    yield ExtractorVersion(
        "text_extractor",
        "v1",
        (VectorSpec("embedding", 1024, e5),),
        client_model="TextExtractorParams",
        # the catalogue's own model: any other one has a dimension not documented here
        pinned_params=(ParamSpec("embedding_model", (e5,), e5),),
        inert_params=frozenset(
            {
                "source_type",
                "split_by",
                "chunk_size",
                "chunk_overlap",
                "segment_length_seconds",
                "language",
                "extract_captions",
                "llm_provider",
                "llm_model",
                "embedding_task",
            }
        ),
        vector_params=(("response_shape", _SHAPE),),
    )
    multimodal_pinned = (
        ParamSpec("run_multimodal_embedding", (True,), True),  # False drops multimodal_embedding
        # False leaves the catalogue's transcription_embedding vector unfilled, True fills it: either way
        # the collection's vectors are the same
        ParamSpec("run_transcription_embedding", (False, True), False),
        ParamSpec("run_ocr_embedding", (False,), False),  # True adds an OCR vector of undocumented name
        ParamSpec("run_description_embedding", (False,), False),
    )  # True adds a description vector, same
    # The client's GenerationConfig (video descriptions); response_schema is a JSON Schema.
    generation_config = (
        ("candidate_count", PLAIN),
        ("max_output_tokens", PLAIN),
        ("temperature", PLAIN),
        ("top_p", PLAIN),
        ("video_fps", PLAIN),
        ("response_mime_type", PLAIN),
        ("response_schema", JSON_SCHEMA),
    )
    multimodal_shapes = (("generation_config", generation_config),)
    multimodal_inert = frozenset(
        {
            "split_method",
            "description_prompt",
            "time_split_interval",
            "silence_db_threshold",
            "scene_detection_threshold",
            "run_transcription",
            "transcription_language",
            "run_video_description",
            "run_ocr",
            "max_segment_duration",
            "sensitivity",
            "enable_thumbnails",
            "use_cdn",
            "generation_config",
            "task_type",
            "embedding_task",
        }
    )
    yield ExtractorVersion(
        "multimodal_extractor",
        "v1",
        (
            VectorSpec("multimodal_embedding", 1408, "vertex_multimodal_embedding"),
            VectorSpec("transcription_embedding", 1024, e5),
        ),
        client_model="MultimodalExtractorParams",
        pinned_params=multimodal_pinned,
        inert_params=multimodal_inert,
        inert_shapes=multimodal_shapes,
        vector_params=(
            ("response_shape", _SHAPE),
            (
                "output_dimensionality",
                "v1 writes a 1408-dimensional vertex_multimodal_embedding; the "
                "client's output_dimensionality (3072, 1536, 768) is v2's: leave it "
                "out, or use version v2",
            ),
        ),
    )
    yield ExtractorVersion(
        "multimodal_extractor",
        "v2",
        (
            VectorSpec("multimodal_embedding", 3072, "gemini-embedding-2"),
            VectorSpec("transcription_embedding", 1024, e5),
        ),
        (ParamSpec("output_dimensionality", (3072, 1536, 768), 3072, sets_size_of="multimodal_embedding"),),
        client_model="MultimodalExtractorParams",
        pinned_params=multimodal_pinned,
        inert_params=multimodal_inert,
        inert_shapes=multimodal_shapes,
        vector_params=(("response_shape", _SHAPE),),
    )
    yield ExtractorVersion(
        "face_identity_extractor",
        "v1",
        (VectorSpec("embedding", 512, "face_identity_arcface_r100_v1"),),
        client_model="FaceIdentityExtractorParams",
        # per_image: "one doc per image with faces array": how its faces are embedded is
        # not documented
        pinned_params=(ParamSpec("output_mode", ("per_face",), "per_face"),),
        # normalize_embeddings: the collection's distance is cosine, which normalizes anyway
        inert_params=frozenset(
            {
                "detection_model",
                "min_face_size",
                "detection_threshold",
                "max_faces_per_image",
                "normalize_embeddings",
                "enable_quality_scoring",
                "quality_threshold",
                "max_video_length",
                "video_sampling_fps",
                "video_deduplication",
                "video_deduplication_threshold",
                "include_face_crops",
                "include_source_frame_thumbnail",
                "store_detection_metadata",
            }
        ),
    )
    yield ExtractorVersion(
        "document_graph_extractor",
        "v1",
        (VectorSpec("text_embedding", 1024, e5),),
        client_model="DocumentGraphExtractorParams",
        pinned_params=(ParamSpec("run_text_embedding", (True,), True),),  # False: no vector
        inert_params=frozenset(
            {
                "use_layout_detection",
                "layout_detector",
                "vertical_threshold",
                "horizontal_threshold",
                "min_text_length",
                "base_confidence",
                "min_confidence_for_vlm",
                "use_vlm_correction",
                "fast_mode",
                "vlm_provider",
                "vlm_model",
                "render_dpi",
                "generate_thumbnails",
                "thumbnail_mode",
                "thumbnail_dpi",
            }
        ),
    )
    yield ExtractorVersion(
        "audio_fingerprint_extractor",
        "v1",
        (VectorSpec("embedding", 512, "laion__clap_htsat_tiny"),),
        client_model="AudioFingerprintExtractorParams",
        inert_params=frozenset(
            {"segment_duration_sec", "segment_hop_sec", "sample_rate", "normalize_embeddings", "max_audio_length_sec"}
        ),
    )
    yield ExtractorVersion(
        "passthrough_extractor",
        "v1",
        client_model="PassthroughExtractorParams",
        inert_params=frozenset({"preserve_metadata", "row_format"}),
        vector_params=(
            (
                "vector_fields",
                "each listed field becomes a vector index of the namespace: declare such vectors as vector_configs",
            ),
        ),
    )


DEFAULT_CATALOGUE = Catalogue()
for _entry in _documented():
    DEFAULT_CATALOGUE.register(_entry)


def register_extractor(entry: ExtractorVersion, *, replace: bool = False) -> ExtractorVersion:
    """Register a user extractor version in the process-wide default catalogue."""
    return DEFAULT_CATALOGUE.register(entry, replace=replace)
