"""mixpeek-infra from a user's side, with the real engine and Pulumi's own Python language host.

Not this repository's stacks: projects a platform engineer writes themselves.

- A first project: a `Pulumi.yaml`, a `__main__.py` using `Namespace` the README's bare-minimum
  way, and a new stack with no config at all. (A host that hands the SDK `PULUMI_CONFIG=null` for
  such a stack fails before the program runs; Pulumi's own host sends nothing.)
- An infra repo of their own, outside this checkout: it installs mixpeek-infra into its own
  virtualenv as the README says (`pip install '<checkout>[local]'`), and its program declares
  namespaces next to its own resources (a component of its own as their parent, and a dynamic
  resource of its own). Its PATH holds no Python with this project on it: everything the engine
  runs comes from that virtualenv.

Both use embedded Qdrant Edge and local or external Ray heads, so no server is needed. Marker
`pulumi_cli`: skipped with its reason without the CLI of tools/pulumi/install, failed instead where
MIXPEEK_REQUIRE_PULUMI_CLI=1 (CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mixpeek_infra.qdrant.store import forget_stores, open_store
from pulumicli import LOCAL_HEAD, FilesProject, cli_bin_dir, ops_by_name, ray_sessions, wait_dead

pytestmark = pytest.mark.pulumi_cli

ROOT = Path(__file__).resolve().parent.parent


def _changed(proj: FilesProject, stack: str) -> dict[str, str]:
    return {name: op for name, op in ops_by_name(proj.preview_steps(stack)).items() if op != "same"}


def _head_pids(proj: FilesProject, stack: str) -> list[int]:
    return [int(r["outputs"]["pid"]) for r in proj.resources(stack)
            if r["type"] == LOCAL_HEAD and "pid" in r.get("outputs", {})]


def _cleanup(proj: FilesProject, stack: str, pids: set[int]) -> None:
    """Leave nothing behind whatever the test did: destroy, then kill any head still running."""
    try:
        pids |= set(_head_pids(proj, stack))
    except Exception:  # noqa: BLE001 - state may be unreadable after a failure
        pass
    proj.run("cancel", "--yes", "-s", stack, check=False, timeout=60)
    proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", stack, check=False)
    for pid in pids | ray_sessions(proj):
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    forget_stores()


# --- a first project, a stack without config --------------------------------------------------

FIRST_PROGRAM = '''\
import json
from pathlib import Path

import pulumi
from mixpeek_infra import Namespace, NamespaceArgs

ns = Namespace("first_ns", NamespaceArgs(request=json.loads(Path("body.json").read_text())))
pulumi.export("namespace_id", ns.namespace_id)
pulumi.export("ray_head_node_url", ns.ray_head_node_url)
'''

FIRST_BODY = {"namespace_name": "first_ns",
              "feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v1"}]}


@pytest.fixture
def first_project(tmp_path):
    bin_dir = cli_bin_dir()
    files = {
        "Pulumi.yaml": yaml.safe_dump({"name": "first-project", "runtime": {
            "name": "python", "options": {"toolchain": "pip", "virtualenv": ".venv"}}}),
        "__main__.py": FIRST_PROGRAM,
        "body.json": json.dumps(FIRST_BODY),
    }
    proj = FilesProject(tmp_path / "first-project", bin_dir, files)
    # The test virtualenv, which holds this checkout, serves as the project's .venv.
    (proj.root / ".venv").symlink_to(Path(sys.prefix))
    proj.init("dev")
    pids: set[int] = set()
    yield proj, pids
    _cleanup(proj, "dev", pids)


def test_a_stack_with_no_config_goes_up_changes_one_index_and_is_destroyed(first_project):
    proj, pids = first_project
    stack_file = proj.root / "Pulumi.dev.yaml"
    # `stack init` may write the passphrase's salt; there is no config of any kind.
    assert "config" not in ((yaml.safe_load(stack_file.read_text()) or {}) if stack_file.exists() else {})

    preview = _changed(proj, "dev")
    assert preview == {"first_ns-collection": "create", "shared-ray": "create",
                       **{f"first_ns-index-{f}": "create" for f in
                          ("internal_id", "namespace_id", "collection_id", "document_id", "bucket_id")}}

    proj.run("up", "--yes", "-s", "dev")
    out = proj.outputs("dev")
    ns_id = out["namespace_id"]
    assert out["ray_head_node_url"].startswith("ray://127.0.0.1:")
    pids.update(_head_pids(proj, "dev"))
    store = open_store({"kind": "embedded", "path": str(proj.root / ".mixpeek" / "qdrant")})
    assert store.read_collection(ns_id) is not None
    forget_stores()
    proj.run("preview", "--expect-no-changes", "-s", "dev")

    # The user adds an index: the preview is that one create, and `up` makes it.
    body = {**FIRST_BODY, "payload_indexes": [{"field_name": "metadata.sku", "type": "keyword"}]}
    (proj.root / "body.json").write_text(json.dumps(body))
    assert _changed(proj, "dev") == {"first_ns-index-metadata.sku": "create"}
    proj.run("up", "--yes", "-s", "dev")
    store = open_store({"kind": "embedded", "path": str(proj.root / ".mixpeek" / "qdrant")})
    assert store.read_payload_indexes(ns_id)["metadata.sku"]["type"] == "keyword"
    forget_stores()
    assert proj.outputs("dev")["namespace_id"] == ns_id

    [pid] = _head_pids(proj, "dev")
    proj.run("destroy", "--yes", "-s", "dev")
    assert proj.resources("dev") == []
    assert not (proj.root / ".mixpeek" / "qdrant" / ns_id).exists()
    assert wait_dead(pid), "the Ray head survived pulumi destroy"


# --- an infra repo of the user's own, with mixpeek-infra installed as a library ------------------

ACME_PROGRAM = '''\
"""Acme's platform: its own resources, and Mixpeek namespaces from the mixpeek-infra library."""
import json
from pathlib import Path

import pulumi
from pulumi.dynamic import CreateResult, Resource, ResourceProvider

from mixpeek_infra import Namespace, NamespaceArgs, QdrantTarget, RayHead


class RunbookProvider(ResourceProvider):
    def create(self, props):
        path = Path(props["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(props["text"])
        return CreateResult(props["path"], props)

    def delete(self, id, props):
        Path(props["path"]).unlink(missing_ok=True)


class Runbook(Resource):
    def __init__(self, name, path, text, opts=None):
        super().__init__(RunbookProvider(), name, {"path": path, "text": text}, opts)


class Platform(pulumi.ComponentResource):
    def __init__(self, name, opts=None):
        super().__init__("acme:platform:Platform", name, None, opts)
        self.register_outputs({})


platform = Platform("acme")
runbook = Runbook("runbook", str(Path.cwd() / "notes" / "runbook.txt"),
                  "Mixpeek collections live in .acme/qdrant\\n", pulumi.ResourceOptions(parent=platform))
qdrant = QdrantTarget.embedded(".acme/qdrant")
for body in json.loads(Path("namespaces.json").read_text()):
    tier = body.get("infrastructure", {}).get("compute_tier", "shared")
    ray = (RayHead.external("ray://ray.acme.internal:10001") if tier == "shared"
           else RayHead.local(state_dir=".acme/ray", num_cpus=1))
    ns = Namespace(body["namespace_name"], NamespaceArgs(request=body, qdrant=qdrant, ray=ray),
                   pulumi.ResourceOptions(parent=platform))
    pulumi.export(body["namespace_name"], {"namespace_id": ns.namespace_id, "ray_head_node_url": ns.ray_head_node_url,
                                           "vector_inference_map": ns.vector_inference_map})
pulumi.export("runbook", runbook.id)
'''

CATALOG = {"namespace_name": "catalog",
           "feature_extractors": [{"feature_extractor_name": "image_extractor", "version": "v1"}],
           "payload_indexes": [{"field_name": "metadata.sku", "type": "keyword"}]}
REVIEWS = {"namespace_name": "reviews",
           "feature_extractors": [{"feature_extractor_name": "text_extractor", "version": "v1"}],
           "infrastructure": {"compute_tier": "dedicated_cpu", "max_workers": 2}}
SYSTEM_INDEXES = ("internal_id", "namespace_id", "collection_id", "document_id", "bucket_id")


@pytest.fixture
def acme(tmp_path):
    bin_dir = cli_bin_dir()
    root = tmp_path / "acme-infra"
    assert ROOT not in root.parents
    files = {
        "Pulumi.yaml": yaml.safe_dump({"name": "acme-infra", "runtime": {
            "name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}}),
        "__main__.py": ACME_PROGRAM,
        "namespaces.json": json.dumps([CATALOG, REVIEWS]),
    }
    proj = FilesProject(root, bin_dir, files)
    # As the README says: install the checkout, with the `local` extra, into the repo's own venv.
    venv = root / "venv"
    for step in ([sys.executable, "-m", "venv", str(venv)],
                 [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", f"{ROOT}[local]"]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, f"{' '.join(step)}:\n{done.stdout}{done.stderr}"
    # Nothing of the test virtualenv on PATH: the engine finds Python only through `virtualenv: venv`.
    test_bin = str(Path(sys.prefix) / "bin")
    proj.env["PATH"] = os.pathsep.join(p for p in proj.env["PATH"].split(os.pathsep) if p and p != test_bin)
    proj.init("prod")
    pids: set[int] = set()
    yield proj, pids
    _cleanup(proj, "prod", pids)


def test_an_infra_repo_of_its_own_installs_the_library_and_lives_with_it(acme):
    proj, pids = acme
    venv_python = proj.root / "venv" / "bin" / "python"
    where = subprocess.run([str(venv_python), "-c", "import mixpeek_infra; print(mixpeek_infra.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=proj.root)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(proj.root / "venv"), where.stdout

    def store():
        return open_store({"kind": "embedded", "path": str(proj.root / ".acme" / "qdrant")})

    # up: the user's component and resource, and both namespaces under the component.
    proj.run("up", "--yes", "-s", "prod")
    out = proj.outputs("prod")
    catalog_id, reviews_id = out["catalog"]["namespace_id"], out["reviews"]["namespace_id"]
    assert out["catalog"]["ray_head_node_url"] == "ray://ray.acme.internal:10001"
    assert out["reviews"]["ray_head_node_url"].startswith("ray://127.0.0.1:")
    assert out["catalog"]["vector_inference_map"] == {"image_extractor_v1_embedding": "google_siglip_base_v1"}
    runbook = proj.root / "notes" / "runbook.txt"
    assert out["runbook"] == str(runbook) and runbook.read_text().startswith("Mixpeek collections")
    types = {r["urn"].split("::")[-1]: r["type"] for r in proj.resources("prod")}
    assert types["acme"] == "acme:platform:Platform"
    assert types["catalog"] == types["reviews"] == "mixpeek:index:Namespace"
    parents = {r["urn"].split("::")[-1]: r.get("parent", "") for r in proj.resources("prod")}
    assert parents["catalog"].endswith("::acme") and parents["reviews"].endswith("::acme")
    [reviews_head] = _head_pids(proj, "prod")
    pids.add(reviews_head)
    s = store()
    assert set(s.read_payload_indexes(catalog_id)) == {*SYSTEM_INDEXES, "metadata.sku"}
    assert s.read_collection(reviews_id) is not None
    forget_stores()

    # A change: one more index on catalog previews as that one create; `up` makes it.
    catalog = {**CATALOG, "payload_indexes": [*CATALOG["payload_indexes"],
                                               {"field_name": "metadata.price", "type": "float"}]}
    (proj.root / "namespaces.json").write_text(json.dumps([catalog, REVIEWS]))
    assert _changed(proj, "prod") == {"catalog-index-metadata.price": "create"}
    proj.run("up", "--yes", "-s", "prod")

    # No change: the engine's own check.
    proj.run("preview", "--expect-no-changes", "-s", "prod")

    # Remove one namespace: exactly its collection, indexes and Ray head are deleted.
    (proj.root / "namespaces.json").write_text(json.dumps([catalog]))
    steps = proj.preview_steps("prod")
    assert {name: op for name, op in ops_by_name(steps).items() if op != "same"} == {
        "reviews-collection": "delete", "reviews-ray": "delete",
        **{f"reviews-index-{f}": "delete" for f in SYSTEM_INDEXES}}
    components = {s["urn"].split("::")[-1]: s["op"] for s in steps
                  if s["urn"].split("::")[2].endswith("Namespace") and s["op"] != "same"}
    assert components == {"reviews": "delete"}
    proj.run("up", "--yes", "-s", "prod")
    assert wait_dead(reviews_head), "the removed namespace's Ray head is still running"
    s = store()
    assert s.read_collection(reviews_id) is None
    assert set(s.read_payload_indexes(catalog_id)) == {*SYSTEM_INDEXES, "metadata.sku", "metadata.price"}
    forget_stores()
    assert runbook.exists()
    out = proj.outputs("prod")
    assert "reviews" not in out and out["catalog"]["namespace_id"] == catalog_id

    # destroy: nothing of either namespace, nor of the user's own resources, is left.
    proj.run("destroy", "--yes", "-s", "prod")
    assert proj.resources("prod") == []
    assert not runbook.exists()
    s = store()
    assert s.read_collection(catalog_id) is None
    forget_stores()
