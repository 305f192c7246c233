"""The component from other Pulumi languages, with the real engine: a Pulumi YAML program, a
TypeScript program and a Go program declare the documented seed namespace through the
`mixpeek-infra` package (`provider/`, the SDK's component provider host), and `pulumi up`,
`preview` and `destroy` do what they do for the Python dev stack.

What runs: the Pulumi CLI from tools/pulumi/install (with Pulumi's own Python language host, built
from its source in shared/vendor, which runs the component provider plugin through `RunPlugin`),
the language hosts from tools/languages/install (Pulumi YAML's own from Go modules; Pulumi's own
Node.js and Go hosts from the same source archive), node and npm (TypeScript: `@pulumi/pulumi`
from npm), go (the Go SDK and program build against the module cache), and the
pulumi-kubernetes plugin from tools/k8s/install (the plugin's virtualenv holds pulumi-kubernetes,
so the engine installs its plugin before it runs the component provider).

The program's PATH holds no Python with Pulumi: the dynamic children's provider
(`pulumi-resource-pulumi-python`) finds the component's virtualenv only through the project's
`runtime.options.virtualenv`, as the README tells users to write it.

Like tests/test_pulumi_cli.py this tier is skipped with its reason when a tool is missing, and
fails instead where MIXPEEK_REQUIRE_PULUMI_CLI=1 (CI).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml
from conftest import require_or_skip

from mixpeek_infra.qdrant.store import forget_stores, open_store
from pulumicli import (LOCAL_HEAD, NS, SEED_VECTORS, FilesProject, assert_seed_outputs, cli_bin_dir, ops_by_name,
                       wait_dead)

cli = pytest.mark.pulumi_cli

ROOT = Path(__file__).resolve().parent.parent
# The Python dev stack's resources (tests/test_pulumi_cli.py): same names, same dynamic types.
INDEXES = ("namespace_id", "bucket_id", "internal_id", "collection_id", "document_id", "metadata.title",
           "metadata.description")
PYTHON_STACK_RESOURCES = {
    f"{NS}-collection": "pulumi-python:dynamic/mixpeek:QdrantCollection",
    **{f"{NS}-index-{field}": "pulumi-python:dynamic/mixpeek:QdrantPayloadIndex" for field in INDEXES},
    "shared-ray": "pulumi-python:dynamic/mixpeek:LocalRayHead",
}
LANGUAGE_HOSTS = ("pulumi-language-yaml", "pulumi-language-nodejs", "pulumi-language-go")


def test_package_schema_types_the_request_and_keeps_the_outputs():
    """The schema the component provider serves (no engine needed): token, typed inputs, outputs."""
    from mixpeek_infra.component_provider import GO_IMPORT_BASE_PATH, TYPE, provider

    schema = json.loads(provider().schema)
    assert schema["name"] == "mixpeek-infra" and TYPE == "mixpeek-infra:index:Namespace"
    component = schema["resources"][TYPE]
    assert component["isComponent"] is True
    assert component["requiredInputs"] == ["request"]
    inputs = component["inputProperties"]
    assert inputs["request"] == {**inputs["request"], "plain": True,
                                 "$ref": "#/types/mixpeek-infra:index:CreateNamespaceRequest"}
    assert {"qdrant", "ray", "deletionProtection", "namespaceId", "collectionSettings"} <= set(inputs)
    request = schema["types"]["mixpeek-infra:index:CreateNamespaceRequest"]
    assert request["required"] == ["namespaceName"]
    assert request["properties"]["featureExtractors"]["items"]["$ref"] == "#/types/mixpeek-infra:index:FeatureExtractor"
    assert request["properties"]["payloadIndexes"]["items"]["$ref"] == "#/types/mixpeek-infra:index:PayloadIndex"
    api_key = schema["types"]["mixpeek-infra:index:QdrantTargetSpec"]["properties"]["apiKey"]
    assert api_key["type"] == "string" and not api_key.get("plain"), "the API key must accept secrets"
    assert set(component["properties"]) == {"namespaceId", "vectorInferenceMap", "qdrantCollection", "rayHeadNodeUrl",
                                            "infrastructure", "payloadIndexes", "featureExtractors", "namespace"}
    assert schema["language"]["go"]["importBasePath"] == GO_IMPORT_BASE_PATH
    assert schema["language"]["nodejs"]["packageName"] == "@mixpeek/mixpeek-infra"


def _unavailable(reason: str) -> None:
    require_or_skip(reason, "MIXPEEK_REQUIRE_PULUMI_CLI")


def languages_bin_dir() -> Path:
    """tools/languages/install's bin dir: MIXPEEK_LANGUAGES_BIN_DIR, else the one on PATH."""
    candidates = [os.environ.get("MIXPEEK_LANGUAGES_BIN_DIR", "")]
    found = shutil.which("pulumi-language-yaml")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for candidate in filter(None, candidates):
        if all((Path(candidate) / name).exists() for name in LANGUAGE_HOSTS):
            return Path(candidate)
    _unavailable("the YAML, Node.js and Go language hosts are not built: run "
                 "`export MIXPEEK_LANGUAGES_BIN_DIR=\"$(tools/languages/install | tail -n 1)\"`")
    raise AssertionError("unreachable")


def kubernetes_plugin() -> tuple[str, Path]:
    """(version, binary) of the pulumi-kubernetes plugin this virtualenv's pulumi-kubernetes asks for."""
    import pulumi_kubernetes

    wanted = json.loads((Path(pulumi_kubernetes.__file__).parent / "pulumi-plugin.json").read_text())["version"]
    built = (ROOT / "tools" / "k8s" / "provider" / "version").read_text().strip()
    binary = Path(os.environ.get("MIXPEEK_K8S_BIN_DIR", "/nonexistent")) / "pulumi-resource-kubernetes"
    if not binary.exists():
        _unavailable("the component provider's virtualenv holds pulumi-kubernetes, whose plugin the engine installs "
                     "first: run `export MIXPEEK_K8S_BIN_DIR=\"$(tools/k8s/install | tail -n 1)\"`")
    if wanted != built:
        pytest.fail(f"this virtualenv's pulumi-kubernetes asks for plugin {wanted}, tools/k8s builds {built}: "
                    "reinstall the project (pip install -e '.[dev]' -c constraints.txt), constraints.txt pins "
                    "the matching version")
    return wanted, binary


def _tool(name: str) -> str:
    found = shutil.which(name)
    if not found:
        _unavailable(f"`{name}` is not on PATH: install it (Node.js for node and npm, Go for go) and put it on PATH")
    return found


class LanguageProject(FilesProject):
    """A program of another language in `root`, using the package from a copy of provider/."""

    def __init__(self, root: Path, bin_dir: Path, languages: Path, files: dict[str, str]):
        super().__init__(root, bin_dir, files)
        # No Python with Pulumi on PATH: only `runtime.options.virtualenv` can lead the engine's
        # dynamic provider plugin to the component's virtualenv.
        venv_bin = str(Path(sys.prefix) / "bin")
        rest = [p for p in os.environ.get("PATH", "").split(os.pathsep) if p and p != venv_bin]
        self.env["PATH"] = os.pathsep.join([str(bin_dir), str(languages), *rest])
        self.head_pids: set[int] = set()

    def heads(self, stack: str = "dev") -> list[int]:
        pids = [int(r["outputs"]["pid"]) for r in self.resources(stack)
                if r["type"] == LOCAL_HEAD and "pid" in r.get("outputs", {})]
        self.head_pids.update(pids)
        return pids

    def cleanup(self, stack: str = "dev") -> None:
        try:
            self.heads(stack)
        except Exception:  # noqa: BLE001 - state may be unreadable after a failure
            pass
        self.run("cancel", "--yes", "-s", stack, check=False, timeout=60)
        self.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", stack, check=False)
        for pid in self.head_pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        forget_stores()


def provider_copy(dest: Path) -> Path:
    """provider/ with a `venv` that sees this test virtualenv (no install, the code under test)."""
    shutil.copytree(ROOT / "provider", dest, ignore=shutil.ignore_patterns("venv", "__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", str(dest / "venv")], check=True, timeout=180)
    pyver = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = dest / "venv" / "lib" / pyver / "site-packages"
    (site / "mixpeek-infra-tests.pth").write_text(
        f"import site; site.addsitedir({sysconfig.get_paths()['purelib']!r})\n")
    # The local Ray head runs the `ray` script beside the interpreter, as in a real install.
    os.symlink(Path(sys.prefix) / "bin" / "ray", dest / "venv" / "bin" / "ray")
    return dest


@pytest.fixture
def toolchain(tmp_path):
    bin_dir = cli_bin_dir()
    languages = languages_bin_dir()
    version, plugin = kubernetes_plugin()
    return {"bin": bin_dir, "languages": languages, "k8s_version": version, "k8s_plugin": plugin,
            "provider": provider_copy(tmp_path / "provider")}


def _project(tmp_path: Path, tools: dict, files: dict[str, str]) -> LanguageProject:
    proj = LanguageProject(tmp_path / "proj", tools["bin"], tools["languages"], files)
    proj.run("plugin", "install", "resource", "kubernetes", f"v{tools['k8s_version']}", "--file",
             str(tools["k8s_plugin"]))
    proj.init("dev")
    return proj


def _example(language: str, *names: str) -> dict[str, str]:
    """The example program's files, pointing at ../provider (the copy) instead of ../../provider."""
    return {name: (ROOT / "examples" / language / name).read_text().replace("../../provider", "../provider")
            for name in names}


def _assert_seed_namespace(proj: LanguageProject) -> str:
    """What tests/test_pulumi_cli.py asserts after the Python dev stack's `up`, for this program."""
    out = proj.outputs("dev")[NS]
    ns_id = assert_seed_outputs(out)
    model = out["namespace"]
    assert out["infrastructure"]["qdrant_collection"] == ns_id
    assert out["infrastructure"]["compute_tier"] == "shared"

    resources = {r["urn"].split("::")[-1]: r["type"] for r in proj.resources("dev")
                 if r["type"].startswith("pulumi-python:dynamic/")}
    assert resources == PYTHON_STACK_RESOURCES
    [component] = [r for r in proj.resources("dev") if r["type"] == "mixpeek-infra:index:Namespace"]
    assert component["urn"].endswith(f"::{NS}")

    store = open_store({"kind": "embedded", "path": str(proj.root / ".mixpeek" / "qdrant")})
    state = store.read_collection(ns_id)
    assert state is not None and state.points_count == 0
    assert {k: (v["size"], v["distance"]) for k, v in state.vectors.items()} == SEED_VECTORS
    indexes = store.read_payload_indexes(ns_id)
    assert indexes["metadata.title"] == {"type": "text", "tokenizer": "word", "min_token_len": 2,
                                         "max_token_len": 15, "lowercase": True}
    assert indexes["metadata.description"] == {"type": "keyword", "is_tenant": True}
    assert set(indexes) == set(INDEXES) == {ix["field_name"] for ix in model["payload_indexes"]}
    forget_stores()

    url = out["infrastructure"]["ray_head_node_url"]
    assert url.startswith("ray://127.0.0.1:")
    [pid] = proj.heads()
    assert _alive(pid), f"the Ray head {pid} is not running"
    return ns_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _changed(proj: LanguageProject) -> dict[str, str]:
    return {name: op for name, op in ops_by_name(proj.preview_steps("dev")).items() if op != "same"}


def _destroy_is_clean(proj: LanguageProject, ns_id: str) -> None:
    [pid] = proj.heads()
    proj.run("destroy", "--yes", "-s", "dev")
    assert not (proj.root / ".mixpeek" / "qdrant" / ns_id).exists()
    assert wait_dead(pid), "the Ray head survived pulumi destroy"
    assert proj.resources("dev") == []


@cli
def test_python_host_takes_the_runtime_flags_of_older_engines():
    """The one difference from Pulumi's Python host (tools/pulumi/python-host): pulumi-language-yaml
    v1.25.0's engine (pulumi v3.206) starts the component provider's Python host with the plugin's
    runtime options and root as flags. Pulumi's host at the vendored commit exits 2 on them."""
    host = cli_bin_dir() / "pulumi-language-python"
    done = subprocess.run([str(host), "-toolchain=pip", "-virtualenv=venv", "-typechecker=mypy", "-root=/tmp",
                           "-version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Pulumi's host, built from the archive: the version names the archive's commit.
    assert re.fullmatch(r"v3\.\d+\.\d+\+[0-9a-f]{10}", done.stdout.strip()), done.stdout


@cli
def test_yaml_program_up_preview_destroy(toolchain, tmp_path):
    proj = _project(tmp_path, toolchain, _example("yaml", "Pulumi.yaml"))
    try:
        # `package add` gets the schema from the component provider and generates the YAML "SDK";
        # pulumi-yaml v1.25.0 (the one the module proxy serves) then has no Link.
        added = proj.run("package", "add", "../provider", check=False)
        if added.returncode != 0:
            assert "linking package: method Link not implemented" in added.stdout + added.stderr, added.stderr
        assert yaml.safe_load((proj.root / "Pulumi.yaml").read_text())["packages"] == {"mixpeek-infra": "../provider"}

        proj.run("up", "--yes", "-s", "dev")
        ns_id = _assert_seed_namespace(proj)
        proj.run("preview", "--expect-no-changes", "-s", "dev")

        # A change previews as the Python stack's does: one payload index more is one create.
        program = (proj.root / "Pulumi.yaml").read_text()
        (proj.root / "Pulumi.yaml").write_text(program.replace(
            "            fieldSchema: { type: keyword, is_tenant: true }\n",
            "            fieldSchema: { type: keyword, is_tenant: true }\n"
            "          - fieldName: metadata.year\n            type: integer\n"))
        assert _changed(proj) == {f"{NS}-index-metadata.year": "create"}
        (proj.root / "Pulumi.yaml").write_text(program)

        _destroy_is_clean(proj, ns_id)
    finally:
        proj.cleanup()


@cli
def test_yaml_program_without_the_virtualenv_option_fails_in_the_dynamic_provider(toolchain, tmp_path):
    """The real error behind the README's old claim: the engine starts the Python dynamic provider
    plugin whatever the program's language, with `python3` from PATH unless told otherwise."""
    files = _example("yaml", "Pulumi.yaml")
    files["Pulumi.yaml"] = re.sub(r"runtime:\n  name: yaml\n  options:\n    virtualenv: \S+\n", "runtime: yaml\n",
                                  files["Pulumi.yaml"])
    assert "virtualenv:" not in files["Pulumi.yaml"]
    proj = _project(tmp_path, toolchain, files)
    try:
        bare = shutil.which("python3", path=proj.env["PATH"])
        probe = subprocess.run([bare or "python3", "-c", "import pulumi"], capture_output=True, env=proj.env)
        if probe.returncode == 0:
            pytest.skip(f"the python3 on PATH ({bare}) has the Pulumi SDK, so nothing is missing to report: run it with "
                        "a python3 on PATH without the Pulumi SDK")
        failed = proj.run("preview", "-s", "dev", check=False)
        said = failed.stdout + failed.stderr
        assert failed.returncode != 0
        assert "No module named 'pulumi'" in said, said
        assert "pulumi-resource-pulumi-python" in said, said
        assert not (proj.root / ".mixpeek" / "qdrant").exists() or not any((proj.root / ".mixpeek" / "qdrant").iterdir())
    finally:
        proj.cleanup()


@pytest.fixture
def node_project(toolchain, tmp_path):
    _tool("node"), _tool("npm")
    files = _example("typescript", "Pulumi.yaml", "package.json", "tsconfig.json", "index.ts")
    proj = _project(tmp_path, toolchain, files)
    npm = subprocess.run(["npm", "install", "--no-audit", "--no-fund"], cwd=proj.root, env=proj.env,
                         capture_output=True, text=True, timeout=600)
    assert npm.returncode == 0, npm.stdout + npm.stderr
    yield proj
    proj.cleanup()


@cli
def test_typescript_program_up_preview_destroy(node_project):
    proj = node_project
    # The SDK: Pulumi's TypeScript generator (through tools/languages' Node.js host), linked into
    # package.json and compiled by its postinstall; the program then type-checks against it (ts-node).
    proj.run("package", "add", "../provider")
    manifest = json.loads((proj.root / "package.json").read_text())
    assert manifest["dependencies"]["@mixpeek/mixpeek-infra"].startswith("file:sdks/")
    assert (proj.root / "node_modules" / "@mixpeek" / "mixpeek-infra" / "bin" / "index.js").exists()

    proj.run("up", "--yes", "-s", "dev")
    ns_id = _assert_seed_namespace(proj)
    proj.run("preview", "--expect-no-changes", "-s", "dev")

    program = (proj.root / "index.ts").read_text()
    (proj.root / "index.ts").write_text(program.replace(
        '                fieldSchema: { type: "keyword", is_tenant: true },\n            },\n',
        '                fieldSchema: { type: "keyword", is_tenant: true },\n            },\n'
        '            { fieldName: "metadata.year", type: "integer" },\n'))
    assert _changed(proj) == {f"{NS}-index-metadata.year": "create"}
    (proj.root / "index.ts").write_text(program)

    _destroy_is_clean(proj, ns_id)


@cli
def test_go_sdk_compiles_and_the_go_program_runs(toolchain, tmp_path):
    _tool("go")
    files = _example("go", "Pulumi.yaml", "main.go", "go.mod")
    proj = _project(tmp_path, toolchain, files)
    try:
        # The SDK: Pulumi's Go generator (through tools/languages' Go host) into sdks/, go.mod replaced.
        proj.run("package", "add", "../provider")
        gomod = (proj.root / "go.mod").read_text()
        assert "github.com/mixpeek/pulumi-mixpeek-infra/sdk/go =>" in gomod, gomod
        env = {**proj.env, "GOFLAGS": "-mod=mod"}
        for step in (["go", "mod", "tidy"], ["go", "build", "-o", os.devnull, "."]):
            done = subprocess.run(step, cwd=proj.root, env=env, capture_output=True, text=True, timeout=900)
            assert done.returncode == 0, f"{' '.join(step)}:\n{done.stdout}{done.stderr}"

        proj.run("up", "--yes", "-s", "dev")
        ns_id = _assert_seed_namespace(proj)
        proj.run("preview", "--expect-no-changes", "-s", "dev")
        _destroy_is_clean(proj, ns_id)
    finally:
        proj.cleanup()
