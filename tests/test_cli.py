"""The `mixpeek-infra` CLI contract: validate / plan / schema, exit codes, output shapes, errors
with field paths and no traceback, and a light import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from conftest import ROOT, SEED_PATH
from mixpeek_infra import cli, documents
from mixpeek_infra.cli import main

DATA = Path(__file__).parent / "data"
TWO = DATA / "two_namespaces.yaml"
EXTRACTORS = DATA / "custom_extractors.yaml"
CUSTOM = DATA / "custom_namespace.json"
SEED_MAP = {"multimodal_extractor_v1_multimodal_embedding": "vertex_multimodal_embedding",
            "multimodal_extractor_v1_transcription_embedding": "multilingual_e5_large_instruct_v1",
            "image_extractor_v1_embedding": "google_siglip_base_v1"}
HEAVY = ("ray", "qdrant_client", "qdrant_edge", "pulumi_kubernetes")


def run(*args: str, stdin: str | None = None, module: str = "mixpeek_infra.cli") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("MIXPEEK_INFRA_DEBUG", None)
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True, input=stdin,
                          env=env, cwd=ROOT, timeout=60)


def call(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write(tmp_path: Path, name: str, content) -> str:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def assert_no_traceback(*texts: str) -> None:
    for text in texts:
        assert "Traceback" not in text and "internal error" not in text


# --------------------------------------------------------------------------------------------
# Subprocess runs (the real entry points)


def test_validate_seed_subprocess():
    proc = run("validate", str(SEED_PATH))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"{SEED_PATH}: namespace[0] spotify_playlists_dev: ok (2 feature extractors, 3 vectors, 2 payload indexes + 5 system)"]
    assert proc.stderr == ""


def test_python_dash_m_mixpeek_infra():
    proc = run("plan", "--json", str(SEED_PATH), module="mixpeek_infra")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["vector_inference_map"] == SEED_MAP


def test_invalid_subprocess_exit_2_without_traceback(tmp_path):
    body = json.loads(SEED_PATH.read_text())
    body["feature_extractors"][1]["params"]["model"] = "clip"
    path = write(tmp_path, "bad.json", body)
    proc = run("validate", path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{path}: namespace[0]: feature_extractors[1].params.model: invalid value 'clip'; valid choices: 'siglip_base'"]
    assert_no_traceback(proc.stderr)


def test_stdin_subprocess():
    proc = run("validate", "-", stdin=SEED_PATH.read_text())
    assert proc.returncode == 0 and "spotify_playlists_dev: ok" in proc.stdout
    proc = run("validate", "-", stdin="namespace_name: [\n")
    assert proc.returncode == 2 and proc.stderr.startswith("-: invalid YAML")
    assert_no_traceback(proc.stderr)


def test_import_mixpeek_infra_is_light():
    code = ("import sys, mixpeek_infra, mixpeek_infra.cli, mixpeek_infra.plan\n"
            f"print([m for m in {HEAVY + ('pulumi',)!r} if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


# --------------------------------------------------------------------------------------------
# validate


def test_validate_yaml_list_of_bodies(capsys):
    code, out, err = call(capsys, "validate", str(TWO))
    assert code == 0, err
    assert out.splitlines() == [
        f"{TWO}: namespace[0] spotify_playlists_dev: ok (2 feature extractors, 3 vectors, 2 payload indexes + 5 system)",
        f"{TWO}: namespace[1] video_archive_prod: ok (1 feature extractor, 2 vectors, 1 payload index + 5 system)"]


def test_validate_several_files_and_documents(capsys, tmp_path):
    docs = write(tmp_path, "docs.yaml", "---\n" + yaml.safe_dump(json.loads(SEED_PATH.read_text())) +
                 "---\n- namespace_name: other\n  feature_extractors: [{feature_extractor_name: text_extractor, "
                 "version: v1}]\n")
    code, out, err = call(capsys, "validate", str(SEED_PATH), docs)
    assert code == 0, err
    assert len(out.splitlines()) == 3
    assert out.splitlines()[2].startswith(f"{docs}: namespace[1] other: ok")


def test_validate_reports_every_error_with_paths_and_choices(capsys, tmp_path):
    bad = json.loads(SEED_PATH.read_text())
    bad["namespace_name"] = "bad name"
    bad["feature_extractors"][1]["params"]["model"] = "clip"
    bad["payload_indexes"][0]["field_schema"]["tokenizer"] = "ngram"
    bad["payload_indexes"][1]["field_name"] = "internal_id"
    good = {"namespace_name": "fine", "feature_extractors": [{"feature_extractor_name": "text_extractor",
                                                              "version": "v1"}]}
    path = write(tmp_path, "mixed.yaml", yaml.safe_dump([good, bad]))
    code, out, err = call(capsys, "validate", path)
    assert code == 2
    assert out.splitlines() == [f"{path}: namespace[0] fine: ok (1 feature extractor, 1 vector, 0 payload indexes + 5 system)"]
    lines = err.splitlines()
    prefix = f"{path}: namespace[1]: "
    assert all(line.startswith(prefix) for line in lines)
    by_path = {line[len(prefix):].split(": ", 1)[0]: line for line in lines}
    assert set(by_path) == {"namespace_name", "feature_extractors[1].params.model",
                            "payload_indexes[0].field_schema.tokenizer", "payload_indexes[1].field_name"}
    assert "valid choices: 'siglip_base'" in by_path["feature_extractors[1].params.model"]
    assert "'word', 'whitespace', 'prefix' or 'multilingual'" in by_path["payload_indexes[0].field_schema.tokenizer"]
    assert_no_traceback(out, err)


def test_validate_unknown_field_lists_valid_fields(capsys, tmp_path):
    body = json.loads(SEED_PATH.read_text())
    body["payload_indexes"][0]["feild_schema"] = body["payload_indexes"][0].pop("field_schema")
    path = write(tmp_path, "typo.json", body)
    code, _, err = call(capsys, "validate", path)
    assert code == 2
    assert err.strip() == (f"{path}: namespace[0]: payload_indexes[0].feild_schema: unknown field (did you mean "
                           "'field_schema'?); valid fields: field_name, field_schema, is_protected, type")


def test_duplicate_namespace_names_in_one_file(capsys, tmp_path):
    body = json.loads(SEED_PATH.read_text())
    path = write(tmp_path, "dup.json", [body, body])
    code, out, err = call(capsys, "validate", path)
    assert code == 2
    assert err.strip() == (f"{path}: namespace[1]: namespace_name: duplicate namespace_name "
                           "'spotify_playlists_dev' (also namespace[0])")


def test_validate_stack_config_file(capsys, tmp_path):
    seed = json.loads(SEED_PATH.read_text())
    stack = {"config": {"mixpeek-infra:qdrant": {"path": ".mixpeek/qdrant"},
                        "mixpeek-infra:extractors": yaml.safe_load(EXTRACTORS.read_text()),
                        "mixpeek-infra:namespaces": [
                            seed, {"request": json.loads(CUSTOM.read_text()), "vectors_on_disk": True}]}}
    path = write(tmp_path, "Pulumi.dev.yaml", yaml.safe_dump(stack))
    code, out, err = call(capsys, "validate", path)
    assert code == 0, err
    assert [line.split(": ")[1] for line in out.splitlines()] == ["namespace[0] spotify_playlists_dev",
                                                                   "namespace[1] acme_products"]
    code, out, _ = call(capsys, "plan", "--json", path)
    assert code == 0 and all(v["on_disk"] for v in json.loads(out)[1]["vectors"])
    entry = stack["config"]["mixpeek-infra:namespaces"][1]
    entry.update(qdrnat={}, vectors_on_disk="yes", namespace_id="ns_XYZ")
    entry["request"]["feature_extractors"][0]["version"] = "v4"
    path = write(tmp_path, "Pulumi.bad.yaml", yaml.safe_dump(stack))
    code, _, err = call(capsys, "validate", path)
    assert code == 2
    assert [line.split(": ", 3)[2] for line in err.splitlines()] == [
        "qdrnat", "vectors_on_disk", "namespace_id", "request.feature_extractors[0].version"]
    assert f"{path}: namespace[1]: request.feature_extractors[0].version: unknown version 'v4' of acme_clip; " \
           "valid choices: v3" in err
    stack["config"]["mixpeek-infra:extractors"][0]["vectors"][0]["size"] = -1
    path = write(tmp_path, "Pulumi.bad2.yaml", yaml.safe_dump(stack))
    code, _, err = call(capsys, "validate", path)
    assert code == 2 and f"{path}: config.mixpeek-infra:extractors[0]: extractor 'acme_clip' 'v3'" in err


def test_yaml_anchors_and_merge_keys(capsys, tmp_path):
    path = write(tmp_path, "merge.yaml", "- &base\n  namespace_name: a\n  feature_extractors: "
                                         "[{feature_extractor_name: text_extractor, version: v1}]\n"
                                         "- <<: *base\n  namespace_name: b\n")
    code, out, err = call(capsys, "validate", path)
    assert code == 0, err
    assert [line.split(": ")[1] for line in out.splitlines()] == ["namespace[0] a", "namespace[1] b"]


def test_the_repository_dev_stack_validates(capsys):
    stack = ROOT / "stacks" / "Pulumi.dev.yaml"
    if not stack.exists():
        pytest.skip("stacks/Pulumi.dev.yaml is missing: restore it with `git checkout stacks/Pulumi.dev.yaml`")
    code, out, err = call(capsys, "validate", str(stack))
    assert code == 0, err
    assert "spotify_playlists_dev: ok" in out


# --------------------------------------------------------------------------------------------
# plan


def test_plan_json_shape(capsys):
    code, out, err = call(capsys, "plan", str(TWO), "--json")
    assert code == 0, err
    plans = json.loads(out)
    assert isinstance(plans, list) and len(plans) == 2
    seed_plan, video = plans
    for plan in plans:
        assert {"namespace_name", "vectors", "payload_indexes", "vector_inference_map", "infrastructure",
                "feature_extractors"} <= set(plan)
        assert all(set(v) == {"name", "size", "distance", "datatype", "on_disk"} for v in plan["vectors"])
        assert all(set(ix) == {"field_name", "type", "field_schema", "is_protected"} for ix in plan["payload_indexes"])
    assert seed_plan["vector_inference_map"] == SEED_MAP
    assert [v["size"] for v in seed_plan["vectors"]] == [1408, 1024, 768]
    assert [ix["field_name"] for ix in seed_plan["payload_indexes"]] == [
        "internal_id", "namespace_id", "collection_id", "document_id", "bucket_id", "metadata.title",
        "metadata.description"]
    assert video["vectors"][0] == {"name": "multimodal_extractor_v2_multimodal_embedding", "size": 1536,
                                   "distance": "cosine", "datatype": "float32", "on_disk": False}
    assert video["infrastructure"]["gpu_type"] == "A100" and video["infrastructure"]["gpus_per_worker"] == 2


def test_plan_json_equals_the_library_plan(capsys):
    from mixpeek_infra import plan_namespace

    code, out, _ = call(capsys, "plan", "--json", str(SEED_PATH))
    assert code == 0
    assert json.loads(out) == [plan_namespace(json.loads(SEED_PATH.read_text())).to_dict()]


def test_plan_human_tables(capsys):
    code, out, err = call(capsys, "plan", str(SEED_PATH))
    assert code == 0, err
    for heading in ("namespace spotify_playlists_dev", "  vectors", "  payload indexes", "  vector inference map",
                    "  infrastructure"):
        assert heading in out.splitlines()
    assert "NAME" in out and "SIZE" in out and "DISTANCE" in out and "INFERENCE SERVICE" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("image_extractor_v1_embedding"))
    assert row.split() == ["image_extractor_v1_embedding", "768", "cosine", "float32", "false", "-",
                           "google_siglip_base_v1"]
    assert "MULTIVECTOR" in out
    row = next(line for line in out.splitlines() if line.strip().startswith("metadata.title"))
    assert row.split() == ["metadata.title", "text", "no", "tokenizer=word", "min_token_len=2", "max_token_len=15",
                           "lowercase=true"]
    assert "    compute_tier         shared" in out


def test_plan_human_output_escapes_control_characters(capsys, tmp_path):
    body = json.loads(SEED_PATH.read_text())
    body["description"] = "evil\x1b[2J\rdescription\u202e"
    code, out, _ = call(capsys, "plan", write(tmp_path, "evil.json", body))
    assert code == 0
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out
    assert "evil\\x1b[2J\\rdescription\\u202e" in out


def test_plan_invalid_prints_nothing_on_stdout(capsys, tmp_path):
    path = write(tmp_path, "bad.yaml", "- namespace_name: x\n  feature_extractors: []\n")
    code, out, err = call(capsys, "plan", "--json", str(SEED_PATH), path)
    assert code == 2 and out == ""
    # v0.82: feature_extractors may be left out for a standalone namespace, so the message is the request's own.
    assert err.strip().startswith(f"{path}: namespace[0]: feature_extractors: required: at least 1 extractor")
    assert err.strip().count("\n") == 0


# --------------------------------------------------------------------------------------------
# --extractors


def test_custom_extractors(capsys):
    code, _, err = call(capsys, "validate", str(CUSTOM))
    assert code == 2 and "feature_extractors[0].feature_extractor_name: unknown extractor 'acme_clip'" in err
    code, out, err = call(capsys, "plan", "--json", "--extractors", str(EXTRACTORS), str(CUSTOM))
    assert code == 0, err
    plan, = json.loads(out)
    assert plan["vector_inference_map"] == {"acme_clip_v3_embedding": "acme_clip_service",
                                            "acme_clip_v3_text": "acme_text_service"}
    assert plan["vectors"][0] == {"name": "acme_clip_v3_embedding", "size": 512, "distance": "dot",
                                  "datatype": "float16", "on_disk": False}
    from mixpeek_infra.extractors import DEFAULT_CATALOGUE

    assert ("acme_clip", "v3") not in DEFAULT_CATALOGUE.entries


@pytest.mark.parametrize("content, message", [
    ("- name: acme\n  version: v1\n  vectors: [{output: e, size: 0, inference_service: s}]\n",
     "extractors[0]: extractor 'acme' 'v1': vector 'e' size must be an integer 1..65536"),
    ("- name: image_extractor\n  version: v1\n  vectors: [{output: embedding, size: 5, inference_service: s}]\n",
     "extractors[0]: extractor image_extractor_v1 is already registered"),
    ("- name: a\n  version: v1\n  dims: 3\n", "extractors[0]: extractor config: unknown keys ['dims']"),
    ("- 42\n", "extractors[0]: extractor config: expected a mapping"),
    ("just a string\n", "extractors: expected a list"),
    ("- [\n", "invalid YAML"),
])
def test_bad_extractors_file(capsys, tmp_path, content, message):
    path = write(tmp_path, "ext.yaml", content)
    code, out, err = call(capsys, "validate", "--extractors", path, str(SEED_PATH))
    assert code == 2 and out == ""
    assert err.startswith(f"{path}: ") and message in err
    assert_no_traceback(err)


# --------------------------------------------------------------------------------------------
# Unreadable and malformed files


@pytest.mark.parametrize("name, content, message", [
    ("empty.yaml", "", "empty file"),
    ("blank.json", "  \n", "empty file"),
    ("comment.yaml", "# nothing\n", "no namespace request found"),
    ("stack-without-namespaces.yaml", "config:\n  mixpeek-infra:qdrant: {path: x}\n",
     "config.mixpeek-infra:namespaces: required"),
    ("broken.yaml", "namespace_name: [x\n", "invalid YAML: "),
    ("tabs.yaml", "a:\n\t- b\n", "invalid YAML: "),
    ("broken.json", '{"namespace_name": ', "invalid JSON: "),
    ("trailing.json", '{"namespace_name": "x"} {}', "invalid JSON: Extra data (line 1, column 25)"),
    ("dupkey.yaml", "namespace_name: a\nnamespace_name: b\n", "invalid YAML: duplicate key 'namespace_name' (line 2"),
    ("dupkey.json", '{"namespace_name": "a", "namespace_name": "b"}', "invalid JSON: duplicate key 'namespace_name'"),
    ("latin1.yaml", b"namespace_name: caf\xe9\n", "not UTF-8 text"),
    ("unhashable.yaml", "? [a, b]\n: 1\n", "invalid YAML: found an unhashable key"),
    ("python.yaml", "!!python/object:os.system {}\n", "invalid YAML: "),
    ("bomb.yaml", "a: &a [1,2,3,4,5,6,7,8,9,10]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
                  "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
                  "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n", "too large"),
    ("selfref.yaml", "&a [*a]\n", "too large"),
    ("deep.json", "[" * 100_000, "invalid JSON: "),
    ("deep.yaml", "a: " + "[" * 100_000, "invalid YAML: "),
    ("hugeint.json", '{"namespace_name": ' + "9" * 5000 + "}", "invalid JSON: "),
])
def test_malformed_files(capsys, tmp_path, name, content, message):
    path = write(tmp_path, name, content)
    code, out, err = call(capsys, "validate", path)
    assert code == 2 and out == ""
    assert err.startswith(f"{path}: ") and message in err, err
    assert len(err.splitlines()) == 1
    assert_no_traceback(err)


def test_missing_file_and_directory(capsys, tmp_path):
    code, _, err = call(capsys, "validate", str(tmp_path / "nope.yaml"), str(tmp_path))
    assert code == 2
    assert err.splitlines() == [f"{tmp_path / 'nope.yaml'}: cannot read: no such file",
                                f"{tmp_path}: cannot read: is a directory"]


def test_unreadable_file(capsys, tmp_path, monkeypatch):
    path = write(tmp_path, "locked.json", json.loads(SEED_PATH.read_text()))

    def denied(*_a, **_k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(documents, "open", denied, raising=False)  # works as root too, unlike chmod 000
    code, _, err = call(capsys, "validate", path)
    assert code == 2 and err.strip() == f"{path}: cannot read: permission denied"


def test_too_large_file(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(documents, "MAX_FILE_BYTES", 100)
    code, _, err = call(capsys, "validate", str(SEED_PATH))
    assert code == 2 and "file too large" in err


def test_unknown_extension_reads_json_or_yaml(capsys, tmp_path):
    as_json = write(tmp_path, "body.txt", SEED_PATH.read_text())
    as_yaml = write(tmp_path, "body.conf", yaml.safe_dump(json.loads(SEED_PATH.read_text())))
    code, out, err = call(capsys, "validate", as_json, as_yaml)
    assert code == 0, err
    assert len(out.splitlines()) == 2


def test_yaml_scalars_that_are_not_strings(capsys, tmp_path):
    path = write(tmp_path, "types.yaml", "namespace_name: 2024-01-01\ndescription: yes\nfeature_extractors:\n"
                                         "  - {feature_extractor_name: text_extractor, version: 1.0}\n")
    code, _, err = call(capsys, "validate", path)
    assert code == 2
    paths = {line.split(": ")[2] for line in err.splitlines()}
    assert paths == {"namespace_name", "description", "feature_extractors[0].version"}


# --------------------------------------------------------------------------------------------
# Usage


def test_usage_errors_exit_2(capsys):
    for argv in ([], ["bogus"], ["plan"], ["validate"], ["plan", "--yaml", str(SEED_PATH)]):
        code, out, err = call(capsys, *argv)
        assert code == 2, argv
        assert "usage:" in err
        assert_no_traceback(err)


def test_help_and_version(capsys):
    code, out, _ = call(capsys, "--help")
    assert code == 0 and "validate" in out and "plan" in out and "schema" in out
    code, out, _ = call(capsys, "plan", "--help")
    assert code == 0 and "--json" in out and "--extractors" in out
    code, out, _ = call(capsys, "--version")
    assert code == 0 and out.startswith("mixpeek-infra ")


def test_internal_errors_are_reported_briefly(capsys, monkeypatch):
    def boom(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "process_file", boom)
    monkeypatch.delenv("MIXPEEK_INFRA_DEBUG", raising=False)
    code, _, err = call(capsys, "validate", str(SEED_PATH))
    assert code == 1 and err.strip().startswith("mixpeek-infra: internal error: RuntimeError: boom")


# --------------------------------------------------------------------------------------------
# schema


def test_schema_is_valid_json_schema(capsys):
    code, out, _ = call(capsys, "schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    seed = json.loads(SEED_PATH.read_text())
    assert list(validator.iter_errors(seed)) == []
    for doc in yaml.safe_load(TWO.read_text()):
        assert list(validator.iter_errors(doc)) == []
    # v0.82: extractors, or vector_configs alone (a standalone namespace).
    assert set(schema["required"]) == {"namespace_name"}
    assert [a["required"] for a in schema["anyOf"]] == [["feature_extractors"], ["vector_configs"]]


@pytest.mark.parametrize("mutate", [
    lambda b: b.update(namespac_name="x"),
    lambda b: b["feature_extractors"][0].update(parameters={}),
    lambda b: b["payload_indexes"][0]["field_schema"].update(lower_case=True),
    lambda b: b.update(infrastructure={"tier": "shared"}),
    lambda b: b.update(namespace_name="bad name"),
    lambda b: b.update(feature_extractors=[]),
    lambda b: b["feature_extractors"][0].update(feature_extractor_name="video_extractor"),
    lambda b: b["feature_extractors"][1].update(version="v2"),
    lambda b: b["feature_extractors"][1]["params"].update(model="clip"),
    lambda b: b["feature_extractors"][0].update(feature_extractor_id="image_extractor_v1"),
    lambda b: b["payload_indexes"][0]["field_schema"].update(type="keyword"),
    lambda b: b["payload_indexes"][0]["field_schema"].update(tokenizer="ngram"),
    lambda b: b["payload_indexes"][0]["field_schema"].update(min_token_len=0),
    lambda b: b["payload_indexes"][0].update(field_name="internal_id"),
    lambda b: b["payload_indexes"][0].update(field_name="a/b"),
    lambda b: b["payload_indexes"].append({"field_name": "n", "type": "integer",
                                           "field_schema": {"lookup": False, "range": False}}),
    lambda b: b.update(infrastructure={"compute_tier": "gpu"}),
    lambda b: b.update(infrastructure={"min_workers": -1}),
])
def test_schema_flags_what_the_model_refuses(mutate):
    from mixpeek_infra import InvalidRequest, parse_request

    schema = cli.request_json_schema()
    body = json.loads(SEED_PATH.read_text())
    mutate(body)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(body))
    with pytest.raises(InvalidRequest):
        parse_request(body)


def test_schema_accepts_field_schema_without_type():
    validator = jsonschema.Draft202012Validator(cli.request_json_schema())
    body = json.loads(SEED_PATH.read_text())
    del body["payload_indexes"][0]["field_schema"]["type"]
    body["payload_indexes"].append({"field_name": "metadata.year", "type": "integer"})
    assert list(validator.iter_errors(body)) == []


def test_schema_with_custom_extractors(capsys):
    code, out, _ = call(capsys, "schema", "--extractors", str(EXTRACTORS))
    assert code == 0
    validator = jsonschema.Draft202012Validator(json.loads(out))
    assert list(validator.iter_errors(json.loads(CUSTOM.read_text()))) == []
    assert list(jsonschema.Draft202012Validator(cli.request_json_schema()).iter_errors(json.loads(CUSTOM.read_text())))


def test_stack_config_schema(capsys):
    code, out, _ = call(capsys, "schema", "--stack-config")
    assert code == 0
    schema = json.loads(out)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    stack = {"config": {"mixpeek-infra:namespaces": [json.loads(SEED_PATH.read_text()),
                                                     {"request": json.loads(SEED_PATH.read_text()),
                                                      "deletion_protection": False}],
                        "mixpeek-infra:extractors": yaml.safe_load(EXTRACTORS.read_text()),
                        "aws:region": "eu-west-1"}}
    assert list(validator.iter_errors(stack)) == []
    stack["config"]["mixpeek-infra:namespaces"][1]["reqest"] = {}
    assert list(validator.iter_errors(stack))
    dev = ROOT / "stacks" / "Pulumi.dev.yaml"
    if dev.exists():
        assert list(validator.iter_errors(yaml.safe_load(dev.read_text()))) == []


# --------------------------------------------------------------------------------------------
# Any file content ends in a result, never an exception


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

YAML_BITS = st.sampled_from(["namespace_name: ", "feature_extractors:", "- ", "  ", "\n", "{", "}", "[", "]", ": ",
                             "&a ", "*a", "<<: ", "!!binary ", "!!set ", "? ", "---\n", "...", "'", '"', "#", "\t",
                             "config:", "mixpeek-infra:namespaces:", "request: ", "1e400", "NaN", ".nan", "~", "null",
                             "image_extractor", "v1", "%YAML 1.1\n", "!!python/name:os.system", "\x00", "\ufeff"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(YAML_BITS | st.text(max_size=5), max_size=30).map("".join), st.sampled_from([".yaml", ".json", ".txt"]))
def test_any_file_content_ends_in_a_result(tmp_path_factory, content, suffix):
    path = tmp_path_factory.mktemp("fuzz") / f"body{suffix}"
    path.write_text(content, encoding="utf-8", errors="surrogatepass")
    result = cli.process_file(str(path), cli.DEFAULT_CATALOGUE)
    problems = result.problems + [m for b in result.bodies for _, m in b.problems]
    assert result.ok == (not problems)
    assert all(isinstance(p, str) and p for p in problems)


# --------------------------------------------------------------------------------------------
# extractor params the client writes (issue 12)


def test_cli_plans_the_clients_extractor_params_and_refuses_a_credential_without_echoing_it(capsys, tmp_path):
    models = pytest.importorskip(
        "mixpeek.models", reason="the official Mixpeek client (mixpeek.models) is not installed: pip install -e '.[dev]'")
    params = models.ImageExtractorParams(enable_thumbnails=False).to_dict()
    doc = {"namespace_name": "client_params", "feature_extractors": [
        {"feature_extractor_name": "image_extractor", "version": "v1", "params": params},
        {"feature_extractor_name": "text_extractor", "version": "v1",
         "params": json.loads(json.dumps(models.TextExtractorParams(split_by="words", chunk_size=50).to_dict()))}]}
    path = write(tmp_path, "client.json", doc)
    code, out, err = call(capsys, "plan", "--json", path)
    assert code == 0, err
    planned = json.loads(out)[0]["feature_extractors"]
    assert planned[0]["params"] == {"model": "siglip_base", "enable_thumbnails": False, "use_cdn": False}
    assert planned[1]["params"]["split_by"] == "words" and planned[1]["params"]["chunk_size"] == 50
    code, out, err = call(capsys, "plan", path)
    assert code == 0 and "enable_thumbnails=false" in out and "split_by=words" in out
    doc["feature_extractors"][1]["params"]["llm_api_key"] = "sk-proj-NEVER-SHOWN"
    doc["feature_extractors"][0]["params"]["use_cnd"] = True
    path = write(tmp_path, "secret.json", doc)
    code, out, err = call(capsys, "validate", path)
    assert code == 2 and "sk-proj-NEVER-SHOWN" not in out + err
    assert "feature_extractors[1].params.llm_api_key: a credential must not be put in a request body" in err
    assert "feature_extractors[0].params.use_cnd: unknown param for image_extractor_v1 (did you mean 'use_cdn'?); " \
           "valid params: " \
           "enable_thumbnails, extractor_type, model, use_cdn" in err
