"""The first hour of a new user (issue 21 part 3): errors that say what was meant and what to do, the
shared head named as what it is, restoring a final snapshot from the command line, and the embedded
collection used from an application."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

from mixpeek_infra.cli import main
from mixpeek_infra.problems import did_you_mean
from mixpeek_infra.schema import InvalidRequest, parse_request
from mixpeek_infra.stackconfig import parse_stack_config

ROOT = Path(__file__).resolve().parent.parent


def body(**changes) -> dict:
    request = {"namespace_name": "catalog",
               "feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v1"}]}
    return {**request, **changes}


def problems_of(request: dict) -> dict[str, str]:
    with pytest.raises(InvalidRequest) as info:
        parse_request(request)
    return {p.path: p.message for p in info.value.problems}


def stack_problems(values: dict) -> dict[str, str]:
    return {p.path: p.message for p in parse_stack_config(values, root=ROOT).problems}


# -- "did you mean" ---------------------------------------------------------------------------


def test_did_you_mean_names_the_closest_choices_only():
    assert did_you_mean("image_extracter", ["image_extractor", "text_extractor"]) == " (did you mean 'image_extractor'?)"
    assert did_you_mean("V1", ["v1", "v2"]) == " (did you mean 'v1'?)"
    assert did_you_mean("image", ["image_extractor", "text_extractor"]) == " (did you mean 'image_extractor'?)"
    assert did_you_mean("zzz", ["image_extractor"]) == ""
    assert did_you_mean(3, ["v1"]) == ""


def test_an_unknown_extractor_name_or_version_gets_a_did_you_mean_and_the_choices():
    found = problems_of(body(feature_extractors=[{"feature_extractor_name": "image_extracter", "version": "v1"}]))
    message = found["feature_extractors[0].feature_extractor_name"]
    assert message.startswith("unknown extractor 'image_extracter' (did you mean 'image_extractor'?); valid choices: ")
    assert "text_extractor" in message
    found = problems_of(body(feature_extractors=[{"feature_extractor_name": "image_extractor", "version": "V1"}]))
    assert found["feature_extractors[0].version"] == ("unknown version 'V1' of image_extractor (did you mean 'v1'?); "
                                                      "valid choices: v1")


def test_an_unknown_request_field_param_or_type_gets_a_did_you_mean():
    found = problems_of(body(infrastructure={"compute_tier": "dedicated_cpu", "max_workrs": 2},
                             feature_extractors=[{"feature_extractor_name": "image_extractor", "version": "v1",
                                                  "params": {"modle": "siglip_base"}}],
                             payload_indexes=[{"field_name": "a", "type": "keywrd"}]))
    assert found["infrastructure.max_workrs"].startswith("unknown field (did you mean 'max_workers'?); valid fields: ")
    assert found["feature_extractors[0].params.modle"].startswith(
        "unknown param for image_extractor_v1 (did you mean 'model'?); valid params: ")
    assert found["payload_indexes[0].type"].endswith("(did you mean 'keyword'?)")


def test_unknown_stack_config_keys_get_a_did_you_mean():
    found = stack_problems({
        "namespace": [body()],  # a typo of `namespaces`: no second error saying namespaces is missing
        "ray": {"mode": "locl"},
        "extractors": [{"name": "mine", "version": "v1", "vector": []}]})
    assert found["namespace"].startswith("unknown key (did you mean 'namespaces'?); valid keys: ")
    assert "namespaces" not in found
    assert "(did you mean 'local'?)" in found["ray.mode"]
    assert "(did you mean 'vectors'?)" in found["extractors[0]"]
    found = stack_problems({"namespaces": [{"request": body(), "deletion_protectoin": False,
                                            "qdrant": {"path": ".mixpeek/qdrant", "final_snapshots": "snaps"}}],
                            "ray": {"mode": "local", "state_dri": ".mixpeek/ray"}})
    assert found["namespaces[0].deletion_protectoin"].startswith(
        "unknown key (did you mean 'deletion_protection'?); valid keys: ")
    assert found["namespaces[0].qdrant.final_snapshots"].startswith(
        "unknown key (did you mean 'final_snapshot'?); valid keys: ")
    assert "(did you mean 'state_dir'?)" in found["ray.state_dri"]


# -- qdrant.api_key in a stack file -----------------------------------------------------------


def test_qdrant_api_key_in_a_stack_file_points_to_the_secret_and_adds_no_follow_on_error(tmp_path):
    key = "k-5f0c2e9a71"
    values = {"qdrant": {"url": "https://qdrant.example:6333", "api_key": key},
              "namespaces": [{"request": body(), "collection_settings": {"shard_number": 2, "replication_factor": 2}}]}
    found = stack_problems(values)
    assert list(found) == ["qdrant.api_key"], found  # nothing about an embedded target it never asked for
    assert "pulumi config set --secret qdrantApiKey <key>" in found["qdrant.api_key"]
    assert key not in found["qdrant.api_key"]

    stack = tmp_path / "Pulumi.dev.yaml"
    stack.write_text(yaml.safe_dump({"config": {f"mixpeek-infra:{k}": v for k, v in values.items()}}))
    (tmp_path / "Pulumi.yaml").write_text("name: mixpeek-infra\nruntime: python\n")
    code = main(["validate", str(stack)])
    assert code == 2

    own = stack_problems({"namespaces": [{"request": body(), "qdrant": {"url": "https://q.example:6333",
                                                                         "apiKey": key}}]})
    assert "pulumi config set --secret qdrantApiKey <key>" in own["namespaces[0].qdrant.apiKey"]
    assert key not in json.dumps(own)


# -- a tab in YAML ----------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "namespace_name: x\nfeature_extractors:\n\t- {feature_extractor_name: image_extractor, version: v1}\n",
    "namespace_name: x\n\tdescription: y\n",
])
def test_a_tab_in_yaml_is_called_a_tab(tmp_path, capsys, text):
    path = tmp_path / "request.yaml"
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "invalid YAML: a tab character (line" in err and "replace the tab with spaces" in err, err


# -- the Ray head a namespace uses, as `plan` says it ------------------------------------------


def _logged_run(stack: str, config: dict) -> list[str]:
    import logging

    from stackmocks import FakeMocks, run_program

    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger(f"mixpeek-test-first-hour-{stack}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    run_program(config, FakeMocks(), stack=stack, logger=logger)
    return records


def _stack_values(stack: str) -> dict:
    raw = yaml.safe_load((ROOT / "stacks" / f"Pulumi.{stack}.yaml").read_text())["config"]
    return {key.split(":", 1)[1]: value for key, value in raw.items()}


def test_the_dev_stack_preview_names_the_local_shared_head_as_plan_does(capsys):
    records = _logged_run("dev", _stack_values("dev"))
    [line] = [r for r in records if r.startswith("namespace spotify_playlists_dev:")]
    assert line.endswith("Ray head: the stack's local shared head 'shared-ray'"), line
    assert "external" not in line
    main(["plan", str(ROOT / "stacks" / "Pulumi.dev.yaml")])
    said = capsys.readouterr().out
    assert "mode       local" in said and "head       shared-ray" in said  # what plan says of the same head


def test_a_shared_url_and_a_dedicated_kubernetes_head_are_named_as_what_they_are():
    values = {**_stack_values("prod"), "qdrantApiKey": "k", "rayAuthToken": "t"}
    records = _logged_run("prod", values)
    lines = {r.split(":", 1)[0]: r for r in records if r.startswith("namespace ")}
    assert lines["namespace product_catalog"].endswith(
        "Ray head: external cluster at ray://ray-shared-head-svc.mixpeek-shared.svc.cluster.local:10001")
    assert lines["namespace video_moderation"].endswith("Ray head: its own Kubernetes head (kuberay)")


# -- `mixpeek-infra restore` ------------------------------------------------------------------


def _restore(*args: str, env: dict | None = None):
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k not in ("QDRANT_URL", "QDRANT_API_KEY")}
    return subprocess.run([sys.executable, "-m", "mixpeek_infra.cli", "restore", *args], capture_output=True,
                          check=False, text=True, env={**environ, "PYTHONPATH": str(ROOT), **(env or {})}, cwd=ROOT,
                          timeout=120)


def test_restore_command_brings_a_final_snapshot_back_and_refuses_clearly(tmp_path, seed):
    """A real final snapshot (Qdrant Edge, written by the provider's delete) restored through the CLI as a
    subprocess: points, vectors and payload indexes are back; refusals are one line and exit 2."""
    import os

    from test_final_snapshot import COLLECTIONS, assert_restored, deploy

    from mixpeek_infra.plan import plan_namespace
    from mixpeek_infra.qdrant.store import forget_stores
    from mixpeek_infra.qdrant.store.edge import close_all_shards

    root, snaps = str(tmp_path / "qdrant"), str(tmp_path / "snapshots")
    plan = plan_namespace(seed)
    coll = deploy(plan, {"kind": "embedded", "path": root, "timeout": 10.0}, deletion_protection=False,
                  final_snapshot=snaps)
    name, namespace_id = coll["id"], coll["outputs"]["namespace_id"]
    COLLECTIONS.delete(name, coll["outputs"])
    close_all_shards()
    forget_stores()
    [archive] = [os.path.join(snaps, f) for f in os.listdir(snaps)]

    done = _restore(archive, "--path", root)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"restored {archive} as Qdrant collection {name!r} (3 point(s), namespace {namespace_id}); "
                           f"to manage it again, declare the namespace with namespace_id: {namespace_id}\n")
    assert_restored(root, name, plan)

    again = _restore(archive, "--path", root)
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.startswith("mixpeek-infra restore: cannot restore ") and "exists" in again.stderr
    assert "Traceback" not in again.stderr and len(again.stderr.splitlines()) == 1

    copy = _restore(archive, "--path", root, "--collection-name", "restored_copy")
    assert copy.returncode == 0, copy.stderr
    assert_restored(root, "restored_copy", plan)

    wrong_kind = _restore(archive, "--url", "https://qdrant.example:6333")
    assert wrong_kind.returncode == 2 and "restore it into an embedded path with --path DIR" in wrong_kind.stderr
    missing = _restore(str(tmp_path / "ns_0123456789-20260101T000000.000000Z.tar.gz"), "--path", root)
    assert missing.returncode == 2 and "no such snapshot file" in missing.stderr

    key = "restore-key-8d2f41"
    server_archive = tmp_path / "ns_0123456789-20260101T000000.000000Z.snapshot"
    server_archive.write_bytes(b"not a snapshot")
    refused = _restore(str(server_archive), "--url", "http://qdrant.example:6333", "--api-key-env", "MY_KEY",
                       env={"MY_KEY": key})
    assert refused.returncode == 2 and "plain http" in refused.stderr, refused.stderr
    assert key not in refused.stdout + refused.stderr
    unset = _restore(str(server_archive), "--url", "https://qdrant.example:6333", "--api-key-env", "MY_KEY")
    assert unset.returncode == 2 and "environment variable MY_KEY is not set" in unset.stderr


# -- the embedded collection from an application ----------------------------------------------


def test_the_embedded_app_example_writes_and_queries_the_collection_the_providers_created(tmp_path, seed):
    """examples/embedded_app.py against a collection and payload indexes created by the real providers (Qdrant
    Edge); its collection name comes from `pulumi stack output --json` (a stand-in `pulumi` printing the outputs)."""
    import os
    import subprocess
    import sys

    from test_faults_qdrant import collection_inputs, create
    from test_final_snapshot import COLLECTIONS, INDEXES

    from mixpeek_infra.plan import plan_namespace
    from mixpeek_infra.qdrant.store import forget_stores, open_store
    from mixpeek_infra.qdrant.store.edge import close_all_shards

    root = tmp_path / "project" / ".mixpeek" / "qdrant"
    target = {"kind": "embedded", "path": str(root), "timeout": 10.0}
    plan = plan_namespace(seed)
    coll = create(COLLECTIONS, collection_inputs(plan, target))
    for ix in plan.payload_indexes:
        create(INDEXES, {"target": target, "collection_name": coll["id"], "field_name": ix.field_name,
                         "field_type": ix.type, "field_schema": dict(ix.field_schema)})
    close_all_shards()
    forget_stores()

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    outputs = {seed["namespace_name"]: {"infrastructure": {"qdrant_collection": coll["id"]}}}
    (bin_dir / "pulumi").write_text(f"#!/bin/sh\ncat <<'EOF'\n{json.dumps(outputs)}\nEOF\n")
    (bin_dir / "pulumi").chmod(0o755)
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "embedded_app.py")], capture_output=True, check=False,
                          text=True, cwd=tmp_path / "project", timeout=120,
                          env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["3 1.000 summer road trip", "1 0.000 Summer Hits 2024"]
    store = open_store(target)
    assert store.count_points(coll["id"]) == 3  # written to the collection Pulumi manages, indexes in effect
    assert store.count_points(coll["id"], [{"key": "metadata.title", "text": "summer"}]) == 2
    close_all_shards()
    forget_stores()


# -- skip reasons say what to do --------------------------------------------------------------

SKIPPERS = {"skip", "skipif", "importorskip", "require_or_skip", "_unavailable"}
WHAT_TO_DO = re.compile(r": .*\b(run|install|set|put|restore)\b")


def _text(node: ast.AST) -> str | None:
    """A literal reason's text (an f-string's fixed parts, `{}` for the rest); None when not a literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _text(node.left), _text(node.right)
        return None if left is None or right is None else left + right
    return None


def skip_reasons() -> list[tuple[str, int, str | None]]:
    """(file, line, reason) of every skip in the tests: pytest.skip/skipif/importorskip and the tiers' helpers."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if name not in SKIPPERS:
                continue
            given = {k.arg: k.value for k in node.keywords}
            if name in ("skipif", "importorskip"):
                reason = given.get("reason")
                found.append((path.name, node.lineno, _text(reason) if reason is not None else None))
            elif node.args and (text := _text(node.args[0])) is not None:
                found.append((path.name, node.lineno, text))
    return found


def test_every_skip_reason_says_what_to_do():
    reasons = skip_reasons()
    assert len(reasons) >= 10  # the scan finds the tiers' skips
    vague = [(f, line, reason) for f, line, reason in reasons if reason is None or not WHAT_TO_DO.search(reason)]
    assert vague == [], "a skip reason must say what to do (': run ...', ': pip install ...', ': set ...'): " \
                        f"{vague}"
