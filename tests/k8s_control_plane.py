"""A real Kubernetes control plane on loopback for the `kubernetes` tier.

`ControlPlane` starts, from the binaries `tools/k8s/install` builds (its bin directory in
`MIXPEEK_K8S_BIN_DIR`):

- etcd, client and peer URLs on 127.0.0.1 ports picked here, data in its own directory;
- kube-apiserver on 127.0.0.1 only, TLS with a CA made for this run, bearer-token auth
  (`--token-auth-file`), `--anonymous-auth=false`, RBAC;
- kube-controller-manager (namespaces finish deleting, Deployments get ReplicaSets and Pods,
  service account "default" exists, garbage collection) and kube-scheduler (pods get a node);
- KWOK with KWOK's own "fast" stages: fake nodes that are Ready and pods on them marked Running,
  so pulumi-kubernetes' readiness waits complete for real;
- the KubeRay RayCluster CRD (`../shared/reference/kuberay/ray.io_rayclusters.yaml`), so the API
  server validates RayCluster objects against its structural schema;
- on request (`start_kuberay_operator`), the KubeRay operator that `tools/k8s/kuberay/install`
  builds (its bin directory in `MIXPEEK_KUBERAY_BIN_DIR`), with its own release's RayJob and
  RayService CRDs, no leader election, no webhooks, no metrics listener, probes on loopback.

Everything lives under one directory, and `stop()` ends every process it started (by process
group) and removes that directory. Without the binaries (or the operator, for the tests that need
it) the tier skips, or fails where CI sets `MIXPEEK_REQUIRE_KUBERNETES=1`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

import conftest
from conftest import free_port, stop_group
import yaml

ROOT = Path(__file__).resolve().parent.parent
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "pulumi-resource-kubernetes")
CRD_PATH = ROOT.parent / "shared" / "reference" / "kuberay" / "ray.io_rayclusters.yaml"
KUBERAY_OPERATOR = "kuberay-operator"
#: The operator release's own CRDs its RayJob and RayService controllers watch (share/crds of its cache).
KUBERAY_EXTRA_CRDS = ("ray.io_rayjobs.yaml", "ray.io_rayservices.yaml")
SERVICE_CIDR = "10.96.0.0/16"
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml parses the 1 MB CRDs 4x faster
#: The fake nodes KWOK manages: a CPU node, and a GPU node labelled and tainted as GPU pools are.
FAKE_NODES = {
    "kwok-cpu-0": {"labels": {}, "taints": [], "capacity": {}},
    "kwok-gpu-t4-0": {"labels": {"nvidia.com/gpu.product": "T4"},
                      "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
                      "capacity": {"nvidia.com/gpu": "8"}},
}


def require_or_skip(reason: str) -> None:
    conftest.require_or_skip(reason, "MIXPEEK_REQUIRE_KUBERNETES")


def k8s_bin_dir() -> Path:
    """The directory `tools/k8s/install` printed; skips (or fails in CI) without it."""
    candidate = os.environ.get("MIXPEEK_K8S_BIN_DIR", "")
    if candidate and all((Path(candidate) / name).exists() for name in BINARIES):
        return Path(candidate)
    require_or_skip("the test control plane is not built: run "
                    "`export MIXPEEK_K8S_BIN_DIR=\"$(tools/k8s/install | tail -n 1)\"`")
    raise AssertionError("unreachable")


def kuberay_bin_dir() -> Path:
    """The directory `tools/k8s/kuberay/install` printed; skips (or fails in CI) without it."""
    candidate = os.environ.get("MIXPEEK_KUBERAY_BIN_DIR", "")
    if candidate and (Path(candidate) / KUBERAY_OPERATOR).exists() and all(
            (Path(candidate).parent / "share" / "crds" / crd).exists() for crd in KUBERAY_EXTRA_CRDS):
        return Path(candidate)
    require_or_skip("the KubeRay operator is not built: run "
                    "`export MIXPEEK_KUBERAY_BIN_DIR=\"$(tools/k8s/kuberay/install | tail -n 1)\"`")
    raise AssertionError("unreachable")


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        super().__init__(f"HTTP {status}: {body}")
        self.status, self.body = status, body


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + KWOK under `root`."""

    def __init__(self, bin_dir: Path, root: Path):
        self.bin_dir, self.root = bin_dir, root
        self.pki, self.logs = root / "pki", root / "logs"
        self.token = secrets.token_urlsafe(32)
        self.etcd_port, self.etcd_peer_port, self.port = free_port(), free_port(), free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.kubeconfig = root / "kubeconfig"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.timings: dict[str, float] = {}
        self._ssl: ssl.SSLContext | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> "ControlPlane":
        t0 = time.monotonic()
        for d in (self.pki, self.logs, self.root / "etcd"):
            d.mkdir(parents=True, exist_ok=True)
        self._make_pki()
        self._write_kubeconfig()
        self._spawn("etcd", [
            "--name=test", f"--data-dir={self.root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{self.etcd_peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{self.etcd_peer_port}",
            "--unsafe-no-fsync", "--log-level=warn"])
        self._wait(lambda: _http_ok(f"http://127.0.0.1:{self.etcd_port}/health"), 60, "etcd /health")
        self.timings["etcd"] = time.monotonic() - t0
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.port}",
            f"--cert-dir={self.pki}",
            f"--tls-cert-file={self.pki / 'apiserver.crt'}", f"--tls-private-key-file={self.pki / 'apiserver.key'}",
            f"--client-ca-file={self.pki / 'ca.crt'}",
            f"--token-auth-file={self.pki / 'tokens.csv'}", "--anonymous-auth=false",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={self.pki / 'sa.pub'}",
            f"--service-account-signing-key-file={self.pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--endpoint-reconciler-type=none", "--enable-priority-and-fairness=false", "--profiling=false"])
        self._wait(self._ready, 180, "kube-apiserver /readyz")
        self.timings["kube-apiserver"] = time.monotonic() - t0
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--secure-port=0",
            f"--service-account-private-key-file={self.pki / 'sa.key'}", f"--root-ca-file={self.pki / 'ca.crt'}",
            "--use-service-account-credentials=false", "--concurrent-gc-syncs=5",
            "--namespace-sync-period=10s"])
        self._spawn("kube-scheduler", [f"--kubeconfig={self.kubeconfig}", "--leader-elect=false", "--secure-port=0"])
        self._spawn("kwok", [
            f"--kubeconfig={self.kubeconfig}", f"--config={self.bin_dir.parent / 'share' / 'kwok-stages.yaml'}",
            "--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--cidr=10.244.0.1/24", "--node-ip=10.0.0.1", "--node-lease-duration-seconds=40"])
        for name, extra in FAKE_NODES.items():
            self.create("/api/v1/nodes", _fake_node(name, extra))
        self._wait(self._nodes_ready, 120, "KWOK marking the fake nodes Ready")
        self._wait(lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default") is not None, 120,
                   "kube-controller-manager creating the default service account")
        self.timings["controllers and nodes"] = time.monotonic() - t0
        self.install_kuberay_crd()
        self.timings["total"] = time.monotonic() - t0
        return self

    def stop(self) -> None:
        """End every process this control plane started (reverse order), then remove its directory."""
        for name in reversed(list(self.procs)):
            proc = self.procs[name]
            if proc.poll() is None:
                stop_group(proc, signal.SIGTERM, grace=15, kill_wait=10)
        self.procs.clear()
        shutil.rmtree(self.root, ignore_errors=True)

    def alive(self) -> dict[str, bool]:
        return {name: proc.poll() is None for name, proc in self.procs.items()}

    def log(self, name: str, tail: int = 4000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def _spawn(self, name: str, args: list[str], *, executable: Path | None = None,
               env: dict[str, str] | None = None) -> None:
        with open(self.logs / f"{name}.log", "wb") as out:
            self.procs[name] = subprocess.Popen([str(executable or self.bin_dir / name), *args], stdout=out,
                                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True, cwd=self.root,
                                                env=None if env is None else {**os.environ, **env})

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [n for n, p in self.procs.items() if p.poll() is not None]
            if dead:
                raise RuntimeError(f"{dead[0]} exited ({self.procs[dead[0]].returncode}) while waiting for {what}:\n"
                                   + self.log(dead[0]))
            try:
                if ready():
                    return
            except (OSError, ApiError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}\n"
                           + "\n".join(f"--- {n}\n{self.log(n, 1500)}" for n in self.procs))

    def _ready(self) -> bool:
        status, _ = self.request("GET", "/readyz", raw=True)
        return status == 200

    def _nodes_ready(self) -> bool:
        for name in FAKE_NODES:
            node = self.get(f"/api/v1/nodes/{name}") or {}
            conditions = {c["type"]: c["status"] for c in (node.get("status") or {}).get("conditions") or []}
            if conditions.get("Ready") != "True":
                return False
        return True

    # -- PKI and kubeconfig ----------------------------------------------------------------------

    def _make_pki(self) -> None:
        p = self.pki

        def openssl(*args: str) -> None:
            subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=p)

        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
                "-subj", "/CN=mixpeek-infra-test-ca", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "apiserver.key", "-out", "apiserver.csr",
                "-subj", "/CN=kube-apiserver")
        (p / "apiserver.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1\n"
            "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n")
        openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "apiserver.crt", "-days", "2", "-extfile", "apiserver.ext")
        openssl("genrsa", "-out", "sa.key", "2048")
        openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub")
        # One admin identity for the tests, pulumi-kubernetes and the controllers (token,user,uid,"groups").
        (p / "tokens.csv").write_text(f'{self.token},mixpeek-test-admin,mixpeek-test-admin,"system:masters"\n')
        for f in p.iterdir():
            f.chmod(0o600)

    def _write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "current-context": "mixpeek-test",
            "clusters": [{"name": "mixpeek-test", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64.b64encode((self.pki / "ca.crt").read_bytes()).decode()}}],
            "users": [{"name": "mixpeek-test-admin", "user": {"token": self.token}}],
            "contexts": [{"name": "mixpeek-test", "context": {"cluster": "mixpeek-test", "user": "mixpeek-test-admin"}}],
        }
        self.kubeconfig.write_text(yaml.safe_dump(config))
        self.kubeconfig.chmod(0o600)

    # -- REST --------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, token: str | None = "",
                content_type: str = "application/json", raw: bool = False, timeout: float = 30) -> tuple[int, Any]:
        """One API call; `token=None` sends no credentials, "" the admin token. Returns (status, body)."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if token is not None:
            req.add_header("Authorization", f"Bearer {token or self.token}")
        if data is not None:
            req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ssl, timeout=timeout) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        if raw:
            return status, payload
        try:
            return status, json.loads(payload) if payload else None
        except ValueError:
            return status, payload.decode(errors="replace")

    def call(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, payload = self.request(method, path, body, **kw)
        if status >= 400:
            raise ApiError(status, payload)
        return payload

    def get(self, path: str) -> dict[str, Any] | None:
        """The object at `path`, or None when it does not exist."""
        status, payload = self.request("GET", path)
        if status == 404:
            return None
        if status >= 400:
            raise ApiError(status, payload)
        return payload

    def create(self, path: str, obj: dict[str, Any]) -> dict[str, Any]:
        return self.call("POST", path, obj)

    def delete(self, path: str) -> Any:
        return self.call("DELETE", path)

    def merge_patch(self, path: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.call("PATCH", path, patch, content_type="application/merge-patch+json")

    def wait_for(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        self._wait(ready, timeout, what)

    # -- KubeRay CRD -------------------------------------------------------------------------------

    def install_kuberay_crd(self) -> None:
        if not CRD_PATH.exists():
            require_or_skip(f"the KubeRay CRD is not at {CRD_PATH}: put the project's shared/ folder (with "
                            "reference/kuberay) beside the checkout")
        self.install_crd(CRD_PATH)

    def install_crd(self, path: Path) -> None:
        """Create the CustomResourceDefinition in `path` and wait until it is Established and discoverable."""
        crd = next(d for d in yaml.load_all(path.read_text(), Loader=_YAML_LOADER) if d)
        self.create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)

        def established() -> bool:
            got = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}")
            conds = {c["type"]: c["status"] for c in ((got or {}).get("status") or {}).get("conditions") or []}
            return conds.get("Established") == "True"

        self._wait(established, 60, f"the {crd['spec']['names']['kind']} CRD to be Established")
        # Discovery of the new group can lag a moment behind Established.
        group, version = crd["spec"]["group"], crd["spec"]["versions"][0]["name"]
        plural = crd["spec"]["names"]["plural"]

        def discoverable() -> bool:
            found = self.get(f"/apis/{group}/{version}") or {}
            return any(r.get("name") == plural for r in found.get("resources") or [])

        self._wait(discoverable, 60, f"discovery of {plural}.{group}/{version}")

    # -- KubeRay operator --------------------------------------------------------------------------

    def start_kuberay_operator(self, bin_dir: Path) -> None:
        """Run the KubeRay operator against this API server, as the admin identity of the run.

        The RayCluster CRD stays the reference one; its release's RayJob and RayService CRDs are
        installed first, since their controllers start with the manager and wait for them. No leader
        election, no webhooks (ENABLE_WEBHOOKS=false), no metrics listener (`--metrics-addr=0`), the
        health probes on a loopback port, which is how readiness is awaited.
        """
        for crd in KUBERAY_EXTRA_CRDS:
            self.install_crd(bin_dir.parent / "share" / "crds" / crd)
        self.kuberay_probe_port = free_port()
        self._spawn(KUBERAY_OPERATOR, [
            "--enable-leader-election=false", "--metrics-addr=0",
            f"--health-probe-bind-address=127.0.0.1:{self.kuberay_probe_port}",
            "--log-stdout-encoder=json", "--zap-log-level=info"],
            executable=bin_dir / KUBERAY_OPERATOR,
            env={"KUBECONFIG": str(self.kubeconfig), "ENABLE_WEBHOOKS": "false"})
        self._wait(lambda: _http_ok(f"http://127.0.0.1:{self.kuberay_probe_port}/readyz"), 120,
                   "the KubeRay operator's /readyz")


def _fake_node(name: str, extra: dict[str, Any]) -> dict[str, Any]:
    capacity = {"cpu": "64", "memory": "512Gi", "pods": "110", "ephemeral-storage": "1Ti", **extra["capacity"]}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
                     "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                                "kubernetes.io/arch": "amd64", "type": "kwok", **extra["labels"]}},
        "spec": {"taints": extra["taints"]},
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def listening_sockets(pids: set[int]) -> set[tuple[str, int]]:
    """(host, port) of every TCP listener owned by `pids` (from /proc, IPv4 and IPv6)."""
    inodes: set[str] = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir() if fd_dir.exists() else ():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] != "0A" or cols[9] not in inodes:  # 0A: LISTEN
                continue
            addr, port = cols[1].split(":")
            found.add((_proc_addr(addr, width), int(port, 16)))
    return found


def _proc_addr(hexaddr: str, width: int) -> str:
    if width == 8:
        return ".".join(str(int(hexaddr[i:i + 2], 16)) for i in (6, 4, 2, 0))
    if hexaddr == "0" * 32:
        return "::"
    if hexaddr == "00000000000000000000000001000000":
        return "::1"
    if hexaddr.startswith("0000000000000000FFFF0000"):
        return _proc_addr(hexaddr[24:], 8)
    return hexaddr
