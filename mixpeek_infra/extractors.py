"""The feature extractor catalogue: documented extractors as data, plus user-registered ones.

Each entry is one extractor version with the named vectors it writes. Params that change a
vector's dimensions are declared with their valid values; any other param is an error.
Pure: imports nothing from Pulumi, Qdrant or Ray.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

DISTANCES = ("cosine", "dot", "euclid", "manhattan")
DATATYPES = ("float32", "float16", "uint8")
# Extractor names, versions and vector outputs become Qdrant vector names: keep them to a safe charset.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")


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

    @property
    def feature_extractor_id(self) -> str:
        return f"{self.name}_{self.version}"

    def resolve_params(self, params: Mapping[str, Any] | None) -> dict[str, Any]:
        """Documented defaults overlaid with `params` (assumed valid: see `param_errors`)."""
        resolved = {p.name: p.default for p in self.params}
        resolved.update(params or {})
        return resolved

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
        for key, value in (params or {}).items():
            spec = known.get(key)
            if spec is None:
                valid = ", ".join(sorted(known)) or "none (this extractor takes no params)"
                errors.append((f"{path}.{key}", f"unknown param for {self.feature_extractor_id}; valid params: {valid}"))
            elif isinstance(value, bool) or value not in spec.choices:
                choices = ", ".join(repr(c) for c in spec.choices)
                shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:80] + "..."
                errors.append((f"{path}.{key}", f"invalid value {shown}; valid choices: {choices}"))
        return errors


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

    def copy(self) -> "Catalogue":
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
            return None, [(f"{path}.feature_extractor_name", f"unknown extractor {name!r}; valid choices: {', '.join(self.names())}")]
        return None, [(f"{path}.version", f"unknown version {version!r} of {name}; valid choices: {', '.join(self.versions(name))}")]


def _check_entry(entry: ExtractorVersion) -> None:
    where = f"extractor {entry.name!r} {entry.version!r}"
    for label, value in (("name", entry.name), ("version", entry.version)):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise ValueError(f"{where}: {label} must be 1-64 characters of letters, digits, '_', '-' or '.', "
                             "starting with a letter or digit")
    for v in entry.vectors:
        if not isinstance(v.output, str) or not _NAME.fullmatch(v.output):
            raise ValueError(f"{where}: vector output {v.output!r} must be 1-64 characters of letters, digits, "
                             "'_', '-' or '.', starting with a letter or digit")
        if not isinstance(v.inference_service, str) or not v.inference_service.strip() or len(v.inference_service) > 256:
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


def extractor_from_config(item: Mapping[str, Any]) -> ExtractorVersion:
    """Build a user extractor from stack config: {name, version, vectors: [{output, size, inference_service,
    distance, datatype, multivector}]}."""
    if not isinstance(item, Mapping):
        raise ValueError(f"extractor config: expected a mapping {{name, version, vectors}}, got {type(item).__name__}")
    allowed = {"name", "version", "vectors"}
    unknown = set(item) - allowed
    if unknown:
        raise ValueError(f"extractor config: unknown keys {sorted(unknown, key=str)}; valid keys: {sorted(allowed)}")
    vec_keys = {"output", "size", "inference_service", "distance", "datatype", "multivector"}
    vectors = []
    if not isinstance(item.get("vectors") or [], list):
        raise ValueError("extractor config: vectors must be a list of {output, size, inference_service, ...}")
    for i, v in enumerate(item.get("vectors") or []):
        if not isinstance(v, Mapping):
            raise ValueError(f"extractor config vectors[{i}]: expected a mapping, got {type(v).__name__}")
        bad = set(v) - vec_keys
        if bad:
            raise ValueError(f"extractor config vectors[{i}]: unknown keys {sorted(bad, key=str)}; valid keys: {sorted(vec_keys)}")
        size = v.get("size")
        if isinstance(size, float) and size.is_integer():
            size = int(size)
        vectors.append(VectorSpec(output=v.get("output", ""), size=size, inference_service=v.get("inference_service", ""),
                                  distance=v.get("distance", "cosine"), datatype=v.get("datatype", "float32"),
                                  multivector=v.get("multivector", False)))
    entry = ExtractorVersion(name=item.get("name", ""), version=item.get("version", ""), vectors=tuple(vectors))
    _check_entry(entry)
    return entry


def _documented() -> Iterable[ExtractorVersion]:
    e5 = "multilingual_e5_large_instruct_v1"
    yield ExtractorVersion("image_extractor", "v1", (VectorSpec("embedding", 768, "google_siglip_base_v1"),),
                           (ParamSpec("model", ("siglip_base",), "siglip_base"),))
    yield ExtractorVersion("text_extractor", "v1", (VectorSpec("embedding", 1024, e5),))
    yield ExtractorVersion("multimodal_extractor", "v1", (
        VectorSpec("multimodal_embedding", 1408, "vertex_multimodal_embedding"),
        VectorSpec("transcription_embedding", 1024, e5)))
    yield ExtractorVersion("multimodal_extractor", "v2", (
        VectorSpec("multimodal_embedding", 3072, "gemini-embedding-2"),
        VectorSpec("transcription_embedding", 1024, e5)),
        (ParamSpec("output_dimensionality", (3072, 1536, 768), 3072, sets_size_of="multimodal_embedding"),))
    yield ExtractorVersion("face_identity_extractor", "v1", (VectorSpec("embedding", 512, "face_identity_arcface_r100_v1"),))
    yield ExtractorVersion("document_graph_extractor", "v1", (VectorSpec("text_embedding", 1024, e5),))
    yield ExtractorVersion("audio_fingerprint_extractor", "v1", (VectorSpec("embedding", 512, "laion__clap_htsat_tiny"),))
    yield ExtractorVersion("passthrough_extractor", "v1")


DEFAULT_CATALOGUE = Catalogue()
for _entry in _documented():
    DEFAULT_CATALOGUE.register(_entry)


def register_extractor(entry: ExtractorVersion, *, replace: bool = False) -> ExtractorVersion:
    """Register a user extractor version in the process-wide default catalogue."""
    return DEFAULT_CATALOGUE.register(entry, replace=replace)
