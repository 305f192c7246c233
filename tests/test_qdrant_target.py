"""QdrantTarget: validation naming the field, the plain-data spec (never the key), round trips."""

from __future__ import annotations

import subprocess
import sys

import pulumi
import pytest

from mixpeek_infra.problems import InvalidInput, Problem
from mixpeek_infra.qdrant.errors import InvalidSpec, QdrantError
from mixpeek_infra.qdrant.inputs import normalize_collection_inputs
from mixpeek_infra.qdrant.normalize import normalize_vectors
from mixpeek_infra.qdrant.resources import CollectionProvider
from mixpeek_infra.qdrant.target import DEFAULT_EMBEDDED_PATH, InvalidTarget, QdrantTarget, normalize_spec


def test_default_is_embedded_at_dot_mixpeek():
    target = QdrantTarget()
    assert target.kind == "embedded"
    assert target.path == DEFAULT_EMBEDDED_PATH == ".mixpeek/qdrant"
    assert target.spec() == {"kind": "embedded", "path": ".mixpeek/qdrant", "timeout": 10.0}
    assert QdrantTarget.embedded() == target


def test_server_spec_never_holds_the_key():
    target = QdrantTarget.server("https://qdrant.example.com:6333", api_key="s3cr3t-key", timeout=3)
    assert target.kind == "server"
    spec = target.spec()
    assert spec == {"kind": "server", "url": "https://qdrant.example.com:6333", "timeout": 3.0, "prefer_grpc": False}
    assert "s3cr3t-key" not in repr(target)
    assert "s3cr3t-key" not in str(spec) and "s3cr3t-key" not in target.describe()
    assert QdrantTarget.from_spec(spec, api_key="k").api_key == "k"
    assert QdrantTarget.from_spec(spec).spec() == spec


def test_api_key_may_be_an_output():
    target = QdrantTarget(url="http://localhost:6333", api_key=pulumi.Output.secret("x"))
    assert isinstance(target.api_key, pulumi.Output)


def test_relative_path_is_stored_as_given():
    assert QdrantTarget(path="state/qdrant").spec()["path"] == "state/qdrant"


@pytest.mark.parametrize("kwargs, field", [
    ({"url": "http://a:6333", "path": "x"}, "QdrantTarget.url"),
    ({"url": "ftp://a"}, "QdrantTarget.url"),
    ({"url": "http://user:pw@a:6333"}, "QdrantTarget.url"),
    ({"path": ""}, "QdrantTarget.path"),
    ({"path": "x", "api_key": "k"}, "QdrantTarget.api_key"),
    ({"path": "x", "prefer_grpc": True}, "QdrantTarget.prefer_grpc"),
    ({"url": "http://a", "timeout": 0}, "QdrantTarget.timeout"),
    ({"url": "http://a", "timeout": float("nan")}, "QdrantTarget.timeout"),
    ({"url": "http://a", "prefer_grpc": "yes"}, "QdrantTarget.prefer_grpc"),
])
def test_invalid_targets_name_the_field(kwargs, field):
    with pytest.raises(InvalidTarget) as info:
        QdrantTarget(**kwargs)
    assert str(info.value).startswith(field)
    assert isinstance(info.value, InvalidInput) and isinstance(info.value, ValueError)
    [problem] = info.value.problems
    assert problem.path == field and str(info.value) == f"{field}: {problem.message}"


def test_every_invalid_input_error_carries_its_paths_as_problems():
    """`InvalidTarget` and `InvalidSpec` are `InvalidInput`s: the path is in `problems`, never parsed from text."""
    with pytest.raises(InvalidTarget) as info:
        normalize_spec({"kind": "server", "url": "nope"}, "namespaces[0].qdrant")
    assert info.value.problems == [Problem("namespaces[0].qdrant.url", "'nope' is not an "
                                                                        "http(s)://host[:port][/prefix] URL")]
    with pytest.raises(InvalidSpec) as spec_info:
        normalize_vectors({"img": {"size": 4, "distance": "cosine", "sparse": True}})
    error = spec_info.value
    assert isinstance(error, InvalidInput) and isinstance(error, QdrantError) and isinstance(error, ValueError)
    assert error.problems == [Problem("vectors.img.sparse", "unknown field; valid fields: size, distance, datatype, "
                                                            "on_disk, multivector")]
    assert (error.path, error.reason) == error.problems[0] and str(error) == str(error.problems[0])

    # A check failure takes its property from the problem, even where the message holds ": " itself.
    result = CollectionProvider().check({}, {"target": {"kind": "server", "url": "http://a:6333", "bogus": 1},
                                             "vectors": {"img": {"size": 4, "distance": "cosine"}}})
    assert [(f.property, f.reason) for f in result.failures] == [
        ("target.bogus", "unknown field; valid fields: kind, url, path, timeout, prefer_grpc")]
    with pytest.raises(InvalidSpec) as collection_info:
        normalize_collection_inputs({"target": {"kind": "embedded", "url": "http://a"}, "vectors": {}})
    assert collection_info.value.problems == [Problem("target.url", "an embedded target has a path, not a url")]


def test_normalize_spec_coerces_and_names_fields():
    assert normalize_spec({"kind": "embedded", "path": "q", "timeout": 5}) == {"kind": "embedded", "path": "q",
                                                                               "timeout": 5.0}
    with pytest.raises(InvalidTarget, match=r"^target\.kind"):
        normalize_spec({"kind": "cloud"})
    with pytest.raises(InvalidTarget, match=r"^target\.url"):
        normalize_spec({"kind": "server", "url": "nope"})
    with pytest.raises(InvalidTarget, match=r"^target\.bogus"):
        normalize_spec({"kind": "server", "url": "http://a", "bogus": 1})


def test_importing_the_package_loads_no_qdrant_library():
    code = ("import sys, mixpeek_infra, mixpeek_infra.qdrant, mixpeek_infra.qdrant.resources; "
            "print(sorted(m for m in ('qdrant_client', 'qdrant_edge') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
