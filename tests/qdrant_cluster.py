"""A three-node Qdrant cluster on loopback for the `qdrant_server` tier ("past one machine").

Each node is a `QdrantServer` (tests/qdrant_server.py) with cluster mode on: its own HTTP, gRPC and
peer-to-peer ports (all on 127.0.0.1), its own storage directory, the one API key of the cluster.
The first node starts a new deployment (`QDRANT_URI`, Qdrant's env form of `--uri`); the others
join it (`QDRANT_BOOTSTRAP`, the env form of `--bootstrap`) and give their own URI, so no address is
guessed. `start()` waits until every node's cluster API reports all peers and one leader (bounded,
no fixed sleeps). A node `kill()`ed (SIGKILL) restarts with `start()` on the same ports and storage.

Fixture: `qdrant_cluster`, one per test (a cluster is cheap to start and each test kills nodes).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import free_port
from qdrant_server import READY_TIMEOUT, QdrantServer, qdrant_binary, wait_for

NODES = 3


class ClusterNode(QdrantServer):
    """One peer: a `QdrantServer` with cluster mode on and a peer-to-peer port of its own."""

    def __init__(self, binary: Path, root: Path, *, api_key: str, bootstrap: ClusterNode | None = None):
        super().__init__(binary, root, api_key=api_key)
        self.p2p_port = free_port()
        self.uri = f"http://127.0.0.1:{self.p2p_port}"
        self.bootstrap = bootstrap

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update({"QDRANT__CLUSTER__ENABLED": "true", "QDRANT__CLUSTER__P2P__PORT": str(self.p2p_port),
                    "QDRANT_URI": self.uri})
        if self.bootstrap is not None:
            env["QDRANT_BOOTSTRAP"] = self.bootstrap.uri
        return env

    def cluster(self) -> dict[str, Any]:
        """GET /cluster: this node's view of the peers and the Raft leader."""
        return self.get("/cluster").json()["result"]

    def peer_id(self) -> int:
        return int(self.cluster()["peer_id"])


class QdrantCluster:
    """`NODES` cluster nodes under `root`; `nodes[0]` is the one the others bootstrap from."""

    def __init__(self, binary: Path, root: Path, nodes: int = NODES):
        key = f"qk-test-{secrets.token_hex(12)}"
        self.nodes: list[ClusterNode] = []
        for i in range(nodes):
            self.nodes.append(ClusterNode(binary, root / f"node{i}", api_key=key,
                                          bootstrap=self.nodes[0] if self.nodes else None))
        self.api_key = key

    def start(self) -> QdrantCluster:
        for node in self.nodes:  # one at a time: a node joins through consensus the earlier ones hold
            node.start()
        self.wait_formed()
        return self

    def wait_formed(self, timeout: float = READY_TIMEOUT) -> dict[int, dict[str, Any]]:
        """Wait until every running node sees every node as a peer and one agreed leader; their views."""
        def formed() -> dict[int, dict[str, Any]] | None:
            views = {}
            for node in self.nodes:
                if not node.running:
                    continue
                try:
                    view = node.cluster()
                except (httpx.HTTPError, KeyError, ValueError):
                    return None
                raft = view.get("raft_info", {})
                if len(view.get("peers", {})) != len(self.nodes) or not raft.get("leader"):
                    return None
                views[int(view["peer_id"])] = view
            leaders = {v["raft_info"]["leader"] for v in views.values()}
            return views if len(leaders) == 1 else None

        return wait_for(formed, timeout, f"a {len(self.nodes)}-node Qdrant cluster with one leader", poll=0.5)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop()

    def placement(self, collection: str, node: ClusterNode | None = None) -> dict[int, dict[int, str]]:
        """{shard id: {peer id: replica state}} from the collection's cluster API on each running node (or `node`):
        each node reports its local shards and the remote ones it knows of."""
        found: dict[int, dict[int, str]] = {}
        for n in [node] if node else [n for n in self.nodes if n.running]:
            info = n.get(f"/collections/{collection}/cluster").json()["result"]
            for shard in info["local_shards"]:
                found.setdefault(shard["shard_id"], {})[int(info["peer_id"])] = shard["state"]
            for shard in info["remote_shards"]:
                found.setdefault(shard["shard_id"], {}).setdefault(int(shard["peer_id"]), shard["state"])
        return found


@pytest.fixture
def qdrant_cluster(tmp_path) -> Iterator[QdrantCluster]:
    """A three-node cluster of the test's own, with an API key; stopped at the end."""
    cluster = QdrantCluster(qdrant_binary(), tmp_path / "cluster")
    try:
        yield cluster.start()
    finally:
        cluster.stop()
