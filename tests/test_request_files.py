"""Request bodies from files: the `file` and `files` entries of `mixpeek-infra:namespaces`.

One parser (`stackconfig.parse_stack_config`) reads them for the stack program, `validate` and `plan`;
every problem names the file and the field path. Moving an inline list to files changes no resource
(checked under mocks here, and with the real engine's no-change preview in the `pulumi_cli` tier), and
a stack too big for inline config (Linux caps one environment string at 128 KiB) works from files.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from mixpeek_infra.cli import main
from mixpeek_infra.stackconfig import parse_stack_config
from stackmocks import FakeMocks, run_program

ROOT = Path(__file__).resolve().parent.parent
SHARED = {"mode": "external", "shared_url": "ray://127.0.0.1:10001"}  # no Ray head is started
ARG_STRLEN = 128 * 1024  # Linux's MAX_ARG_STRLEN: the longest single environment string


def seed() -> dict:
    """The dev stack's documented body."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.dev.yaml").read_text())["config"]
    return config["mixpeek-infra:namespaces"][0]


def tenant(i: int, description: str = "") -> dict:
    body = copy.deepcopy(seed())
    body["namespace_name"] = f"tenant_{i:04d}"
    body["description"] = description or f"tenant {i}"
    return body


def project(tmp_path: Path) -> Path:
    """A project root (Pulumi.yaml, stacks/) in `tmp_path`."""
    (tmp_path / "stacks").mkdir(parents=True)
    shutil.copy(ROOT / "Pulumi.yaml", tmp_path / "Pulumi.yaml")
    return tmp_path


def write(root: Path, path: str, data, *, as_yaml: bool | None = None) -> None:
    target = root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    if as_yaml if as_yaml is not None else path.endswith((".yaml", ".yml")):
        target.write_text(yaml.safe_dump(data, sort_keys=False))
    else:
        target.write_text(data if isinstance(data, str) else json.dumps(data))


def parse(root: Path, namespaces, **values):
    return parse_stack_config({"namespaces": namespaces, "ray": SHARED, **values}, root=root)


def paths(config) -> dict[str, str]:
    return {p.path: p.message for p in config.problems}


# -- reading ------------------------------------------------------------------------------------------


def test_a_directory_reads_its_json_and_yaml_files_sorted_by_path(tmp_path):
    write(tmp_path, "requests/b.yaml", tenant(2))
    write(tmp_path, "requests/a.json", tenant(1))
    write(tmp_path, "requests/c.yml", tenant(3))
    write(tmp_path, "requests/README.md", "# not a request")
    config = parse(tmp_path, [{"files": "requests"}])
    assert config.problems == ()
    assert [(e.key, e.source, e.where, e.index) for e in config.namespaces] == [
        ("tenant_0001", "requests/a.json", "namespaces[0]", 0), ("tenant_0002", "requests/b.yaml", "namespaces[0]", 1),
        ("tenant_0003", "requests/c.yml", "namespaces[0]", 2)]


def test_globs_and_lists_of_them_mix_with_inline_bodies(tmp_path):
    write(tmp_path, "requests/eu/a.json", tenant(1))
    write(tmp_path, "requests/us/deep/b.json", tenant(2))
    config = parse(tmp_path, [tenant(0), {"files": ["requests/eu/*.json", "requests/us/**/*.json"]},
                              {"request": tenant(3), "key": "three"}])
    assert config.problems == ()
    assert [(e.key, e.label, e.index) for e in config.namespaces] == [
        ("tenant_0000", "namespaces[0]", 0), ("tenant_0001", "requests/eu/a.json", 1),
        ("tenant_0002", "requests/us/deep/b.json", 2), ("three", "namespaces[2]", 3)]


def test_a_files_entrys_settings_apply_to_each_and_a_file_entry_gives_one_its_own(tmp_path):
    for i in range(3):
        write(tmp_path, f"requests/{i}.json", tenant(i))
    config = parse(tmp_path, [{"files": "requests/", "deletion_protection": False},
                              {"file": "./requests/1.json", "key": "one", "protect": True}])
    assert config.problems == ()
    got = {e.source: (e.key, e.deletion_protection, e.protect, e.where) for e in config.namespaces}
    assert got == {"requests/0.json": ("tenant_0000", False, False, "namespaces[0]"),
                   "requests/2.json": ("tenant_0002", False, False, "namespaces[0]"),
                   "requests/1.json": ("one", True, True, "namespaces[1]")}  # the glob left it to its own entry


def test_moving_inline_bodies_to_files_keeps_keys_requests_plans_and_deployments(tmp_path):
    bodies = [tenant(i) for i in range(3)]
    for i, body in enumerate(bodies):
        write(tmp_path, f"requests/{body['namespace_name']}.{'yaml' if i % 2 else 'json'}", body)
    inline = parse(tmp_path, bodies)
    files = parse(tmp_path, [{"files": "requests"}])
    assert inline.problems == files.problems == ()
    assert [(e.key, e.request, e.plan) for e in inline.namespaces] == [(e.key, e.request, e.plan)
                                                                       for e in files.namespaces]
    assert [inline.deployment(e) for e in inline.namespaces] == [files.deployment(e) for e in files.namespaces]


def test_the_official_clients_model_dump_json_is_a_valid_file(tmp_path):
    models = pytest.importorskip(
        "mixpeek.models", reason="the official Mixpeek client (mixpeek.models) is not installed: pip install -e '.[dev]'")
    from mixpeek.models.field_schema import FieldSchema

    body = seed()
    request = models.CreateNamespaceRequest(
        namespace_name=body["namespace_name"], description=body["description"], auto_create_indexes=True,
        feature_extractors=[models.BaseFeatureExtractorModelInput(feature_extractor_name="multimodal_extractor",
                                                                  version="v1"),
                            models.BaseFeatureExtractorModelInput(feature_extractor_name="image_extractor",
                                                                  version="v1", params={"model": "siglip_base"})],
        payload_indexes=[
            models.PayloadIndexConfigInput(field_name="metadata.title", type="text", field_schema=FieldSchema(
                models.TextIndexParams(tokenizer="word", min_token_len=2, max_token_len=15, lowercase=True))),
            models.PayloadIndexConfigInput(field_name="metadata.description", type="keyword",
                                           field_schema=FieldSchema(models.KeywordIndexParams(is_tenant=True)))])
    dumped = request.model_dump_json()
    assert "actual_instance" in dumped  # the client's anyOf wrappers, as it writes them
    write(tmp_path, "requests/spotify.json", dumped)
    from_file = parse(tmp_path, [{"file": "requests/spotify.json"}])
    inline = parse(tmp_path, [body])
    assert from_file.problems == ()
    assert from_file.namespaces[0].plan == inline.namespaces[0].plan


# -- problems name the file and the field path ---------------------------------------------------------


def test_a_bad_body_in_a_file_names_the_file_and_the_field(tmp_path):
    bad = tenant(1)
    bad["feature_extractors"][0]["version"] = "v9"
    del bad["feature_extractors"][0]["feature_extractor_id"]
    write(tmp_path, "requests/a.json", tenant(0))
    write(tmp_path, "requests/b.yaml", bad)
    config = parse(tmp_path, [{"files": "requests"}])
    [(path, message)] = paths(config).items()
    assert path == "requests/b.yaml: feature_extractors[0].version" and "v1" in message
    assert [e.key for e in config.namespaces] == ["tenant_0000"]


@pytest.mark.parametrize("content, expected", [
    ('{"namespace_name": "tenant_0001",',
     "invalid JSON: Expecting property name enclosed in double quotes (line 1, column 34)"),
    ('{"namespace_name": "a", "namespace_name": "b"}', "invalid JSON: duplicate key 'namespace_name'"),
    ("", "empty file"),
    ("[]", "expected an object (the Create Namespace body), got list"),
])
def test_an_unreadable_json_file_names_the_file(tmp_path, content, expected):
    write(tmp_path, "requests/a.json", content)
    assert paths(parse(tmp_path, [{"file": "requests/a.json"}])) == {"requests/a.json": expected}


def test_a_yaml_file_holds_one_body(tmp_path):
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(tenant(1)) + "---\n" + yaml.safe_dump(tenant(2)))
    assert paths(parse(tmp_path, [{"file": "two.yaml"}])) == {
        "two.yaml": "expected one Create Namespace request body, found 2 YAML documents"}


@pytest.mark.parametrize("entry, path, fragment", [
    ({"file": "requests/missing.json"}, "requests/missing.json", "cannot read: no such file"),
    ({"file": "../outside.json"}, "namespaces[0].file", "is not inside the project root"),
    ({"file": "/etc/hostname"}, "namespaces[0].file", "is not inside the project root"),
    ({"file": 7}, "namespaces[0].file", "expected a path relative to the project root"),
    ({"files": "requests/*.yaml"}, "namespaces[0].files", "no file matches requests/*.yaml"),
    ({"files": "nowhere"}, "namespaces[0].files", "nowhere is not a directory"),
    ({"files": "../*.json"}, "namespaces[0].files", "is not inside the project root"),
    ({"files": []}, "namespaces[0].files", "expected a directory or glob"),
    ({"files": ["requests", "requests/*.json"]}, "namespaces[0].files[1]",
     "requests/a.json is also matched by namespaces[0].files[0]"),
    ({"files": "requests", "key": "k"}, "namespaces[0].key", "give that file its own entry"),
    ({"files": "requests", "namespace_id": "ns_0123456789"}, "namespaces[0].namespace_id", "names one namespace"),
    ({"file": "requests/a.json", "request": {}}, "namespaces[0]", "expected one of request, file, files"),
    ({"file": "requests/a.json", "protect": "yes"}, "namespaces[0].protect", "expected true or false"),
])
def test_entry_problems_name_the_entry_or_the_file(tmp_path, entry, path, fragment):
    write(tmp_path, "requests/a.json", tenant(0))
    problems = paths(parse(tmp_path, [entry]))
    assert path in problems and fragment in problems[path], problems


def test_a_symlink_out_of_the_project_is_refused(tmp_path):
    root = tmp_path / "proj"
    write(tmp_path, "elsewhere/a.json", tenant(0))
    (root / "requests").mkdir(parents=True)
    (root / "requests" / "a.json").symlink_to(tmp_path / "elsewhere" / "a.json")
    assert "is not inside the project root" in paths(parse(root, [{"files": "requests"}]))["namespaces[0].files"]


def test_names_used_twice_name_both_files(tmp_path):
    write(tmp_path, "requests/a.json", tenant(1))
    write(tmp_path, "requests/b.json", tenant(1))
    assert paths(parse(tmp_path, [{"files": "requests"}])) == {
        "requests/b.json: namespace_name": "'tenant_0001' is already used by requests/a.json"}


# -- validate and plan read the same files ------------------------------------------------------------


def stack_file(root: Path, namespaces, name: str = "files") -> Path:
    path = root / "stacks" / f"Pulumi.{name}.yaml"
    path.write_text(yaml.safe_dump({"config": {"mixpeek-infra:ray": SHARED,
                                               "mixpeek-infra:namespaces": namespaces}}, sort_keys=False))
    return path


def cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_validate_and_plan_read_request_files_relative_to_the_project_root(tmp_path, monkeypatch):
    root = project(tmp_path / "proj")
    for i in range(2):
        write(root, f"requests/{i}.yaml", tenant(i))
    files = stack_file(root, [{"files": "requests"}])
    inline = stack_file(root, [tenant(0), tenant(1)], "inline")
    monkeypatch.chdir(tmp_path)  # not the project root: files resolve against the stack file's project
    code, out, err = cli("validate", str(files))
    assert (code, err) == (0, "")
    assert [line.split(": ok")[0] for line in out.splitlines()] == [
        f"{files}: namespace[0] tenant_0000", f"{files}: namespace[1] tenant_0001"]
    assert cli("plan", "--json", str(files))[1] == cli("plan", "--json", str(inline))[1]


def test_validate_names_the_file_and_field_of_a_bad_body(tmp_path):
    root = project(tmp_path)
    bad = tenant(1)
    bad["payload_indexes"][0]["type"] = "txt"
    write(root, "requests/0.json", tenant(0))
    write(root, "requests/1.json", bad)
    files = stack_file(root, [{"files": "requests"}, {"file": "requests/missing.yaml"}])
    code, out, err = cli("validate", str(files))
    assert code == 2
    assert f"{files}: namespace[0] tenant_0000: ok" in out
    lines = err.splitlines()
    assert any(line.startswith(f"{files}: namespace[1]: requests/1.json: payload_indexes[0].type: ")
               for line in lines), lines
    assert f"{files}: namespace[2]: requests/missing.yaml: cannot read: no such file" in lines


def test_the_stack_file_json_schema_knows_file_and_files():
    import jsonschema

    code, out, _ = cli("schema", "--stack-config")
    validator = jsonschema.Draft202012Validator(json.loads(out))
    ok = {"config": {"mixpeek-infra:namespaces": [{"files": "requests"}, {"files": ["a/*.json", "b/**/*.yaml"],
                                                                           "deletion_protection": False},
                                                  {"file": "requests/x.json", "key": "x", "protect": True}]}}
    assert code == 0 and list(validator.iter_errors(ok)) == []
    for bad in ({"files": "requests", "key": "x"}, {"file": "/etc/x.json"}, {"file": "a.json", "files": "b"},
                {"files": []}):
        assert list(validator.iter_errors({"config": {"mixpeek-infra:namespaces": [bad]}})), bad


# -- the program ----------------------------------------------------------------------------------------


def test_the_program_registers_the_same_resources_from_files_as_inline(tmp_path, monkeypatch):
    root = project(tmp_path)
    bodies = [tenant(i) for i in range(3)]
    for body in bodies:
        write(root, f"requests/{body['namespace_name']}.json", body)
    monkeypatch.chdir(root)  # the engine runs the program in the project root
    inline, files = FakeMocks(), FakeMocks()
    inline_out, _ = run_program({"ray": SHARED, "namespaces": bodies}, inline)
    files_out, _ = run_program({"ray": SHARED, "namespaces": [{"files": "requests/*.json"}]}, files)
    assert sorted((r.typ, r.name) for r in files.resources) == sorted((r.typ, r.name) for r in inline.resources)
    assert files_out == inline_out


def test_the_program_refuses_a_bad_file_naming_it_before_registering_anything(tmp_path, monkeypatch):
    root = project(tmp_path)
    write(root, "requests/a.json", '{"namespace_name": ')
    monkeypatch.chdir(root)
    mocks = FakeMocks()
    with pytest.raises(Exception) as info:
        run_program({"ray": SHARED, "namespaces": [{"files": "requests"}]}, mocks)
    assert "requests/a.json: invalid JSON" in str(info.value)
    assert mocks.resources == []


# -- the real engine (pulumi_cli tier) ------------------------------------------------------------------


def engine_project(tmp_path: Path, namespaces) -> "PulumiProject":  # noqa: F821 - imported lazily
    """A copy of the project with stack `files`: embedded Qdrant Edge and the shared tier on an external Ray
    URL, so no Ray head starts."""
    from pulumicli import PulumiProject, cli_bin_dir

    proj = PulumiProject(tmp_path / "proj", cli_bin_dir())
    set_namespaces(proj, namespaces)
    proj.init("files")
    return proj


def set_namespaces(proj, namespaces) -> None:
    proj.write_stack("files", {"config": {"mixpeek-infra:qdrant": {"path": ".mixpeek/qdrant"},
                                          "mixpeek-infra:ray": SHARED, "mixpeek-infra:namespaces": namespaces}})


def small(i: int, description: str = "") -> dict:
    """A body with one extractor and no custom index: a collection and its 5 system indexes."""
    return {"namespace_name": f"tenant_{i:04d}", "description": description or f"tenant {i}",
            "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}]}


@pytest.mark.pulumi_cli
def test_moving_an_inline_list_to_files_previews_no_change(tmp_path):
    """The README's move: a plain body goes into a `files` directory, an entry with settings becomes a `file`
    entry with the same settings; the real engine's preview then changes nothing."""
    plain, kept = tenant(1), tenant(2)
    proj = engine_project(tmp_path, [plain, {"request": kept, "key": "kept", "deletion_protection": False}])
    proj.run("up", "--yes", "--skip-preview", "-s", "files")
    before = proj.outputs("files")
    write(proj.root, "requests/tenant_0001.json", plain)
    write(proj.root, "special/kept.yaml", kept)
    set_namespaces(proj, [{"files": "requests"}, {"file": "special/kept.yaml", "key": "kept",
                                                  "deletion_protection": False}])
    steps = proj.preview_steps("files", "--expect-no-changes", "--show-sames")
    assert len(steps) == 2 * (1 + 1 + 5 + 2) + 1  # per namespace: component, collection, 5 system + 2 indexes
    assert {step["op"] for step in steps} == {"same"}, [(s["urn"], s["op"]) for s in steps if s["op"] != "same"]
    assert proj.outputs("files") == before


@pytest.mark.pulumi_cli
def test_a_stack_too_big_for_inline_config_goes_up_from_files(tmp_path):
    """Linux caps one environment string at 128 KiB and the engine hands the program its whole config in one:
    inline, these bodies stop `pulumi` before the program starts; from files they go up."""
    count = 32
    bodies = [small(i, description=f"tenant {i}: " + "catalogue of playlists and their tracks; " * 97)
              for i in range(count)]
    assert len(json.dumps(bodies)) > ARG_STRLEN
    proj = engine_project(tmp_path, bodies)
    inline = proj.run("preview", "-s", "files", check=False)
    assert inline.returncode != 0 and "argument list too long" in inline.stdout + inline.stderr
    for body in bodies:
        write(proj.root, f"requests/{body['namespace_name']}.json", body)
    set_namespaces(proj, [{"files": "requests", "deletion_protection": False}])
    assert len(proj.stack_file("files").read_text()) < 300  # the config stays small whatever the count
    proj.run("up", "--yes", "--skip-preview", "-s", "files")
    outputs = proj.outputs("files")
    assert sorted(outputs) == [b["namespace_name"] for b in bodies]
    assert all(out["namespace"]["description"] == body["description"] for out, body in zip(
        (outputs[b["namespace_name"]] for b in bodies), bodies))
    types = [r["type"] for r in proj.resources("files")]
    assert types.count("pulumi-python:dynamic/mixpeek:QdrantCollection") == count
    assert types.count("pulumi-python:dynamic/mixpeek:QdrantPayloadIndex") == 5 * count
