"""Past one machine: a namespace sharded and replicated on a three-node Qdrant cluster (tiers `pulumi_cli` +
`qdrant_server`), and what `shard_number` / `replication_factor` mean where there is no cluster.

The cluster is `tests/qdrant_cluster.py`'s (three server processes on loopback, `--uri`/`--bootstrap`);
the stack is the prod stack's product_catalog namespace with `collection_settings` `shard_number: 3`,
`replication_factor: 2`, its Qdrant target the first node, through the real Pulumi engine. Shard placement
is the cluster's own answer (`GET /collections/<name>/cluster` on each node).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from pulumicli import PulumiProject, cli_bin_dir
from qdrant_client import QdrantClient
from qdrant_cluster import ClusterNode, QdrantCluster, qdrant_cluster  # noqa: F401 - fixture
from qdrant_server import READY_TIMEOUT, qdrant_server, wait_for  # noqa: F401 - fixture

from mixpeek_infra.plan import plan_namespace
from mixpeek_infra.qdrant.store import forget_stores
from mixpeek_infra.stackconfig import parse_stack_config

pytestmark = [pytest.mark.qdrant_server,
              pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection:UserWarning")]

ROOT = Path(__file__).resolve().parent.parent
STACK = "prod"
CATALOG = "product_catalog"
SHARDING = {"shard_number": 3, "replication_factor": 2}


def catalog_body() -> dict:
    """The prod stack's product_catalog request."""
    config = yaml.safe_load((ROOT / "stacks" / "Pulumi.prod.yaml").read_text())
    [body] = [e for e in config["config"]["mixpeek-infra:namespaces"] if e.get("namespace_name") == CATALOG]
    return body


def cluster_stack(url: str) -> dict:
    return {"config": {
        "mixpeek-infra:qdrant": {"url": url, "timeout": 30},
        "mixpeek-infra:ray": {"mode": "external", "shared_url": "ray://127.0.0.1:10001"},
        "mixpeek-infra:namespaces": [{"request": catalog_body(), "collection_settings": dict(SHARDING),
                                      "deletion_protection": False}],
    }}


def settled(cluster: QdrantCluster, name: str) -> dict[int, dict[int, str]] | None:
    """The placement once every shard has `replication_factor` Active replicas on distinct peers, else None."""
    try:
        found = cluster.placement(name)
    except Exception:  # noqa: BLE001 - a node still starting answers nothing useful yet
        return None
    good = (len(found) == SHARDING["shard_number"]
            and all(len(peers) == SHARDING["replication_factor"] and set(peers.values()) == {"Active"}
                    for peers in found.values()))
    return found if good else None


def local_counts(node: ClusterNode, name: str) -> dict[int, int]:
    """{shard id: points} of the replicas `node` holds itself."""
    info = node.get(f"/collections/{name}/cluster").json()["result"]
    return {shard["shard_id"]: shard["points_count"] for shard in info["local_shards"]}


def caught_up(cluster: QdrantCluster, name: str, node: ClusterNode, held: set[int]) -> bool:
    """`node` holds the shards `held`, each with as many points as the other replica of that shard."""
    mine = local_counts(node, name)
    others: dict[int, int] = {}
    for other in cluster.nodes:
        if other is not node:
            others.update(local_counts(other, name))
    return mine.keys() == held and all(mine[s] == others[s] for s in held)


@pytest.mark.pulumi_cli
def test_sharded_namespace_on_a_three_node_cluster_survives_a_killed_node(tmp_path, qdrant_cluster):
    cluster = qdrant_cluster
    target, _, victim = cluster.nodes
    for node in cluster.nodes:  # every port of every node on loopback, the key enforced
        assert node.listening() == {("127.0.0.1", p) for p in (node.http_port, node.grpc_port, node.p2p_port)}
        assert node.get("/collections", api_key="").status_code == 401
    proj = PulumiProject(tmp_path / "proj", cli_bin_dir(), {STACK: cluster_stack(target.url)})
    proj.init(STACK)
    proj.run("config", "set", "--secret", "qdrantApiKey", cluster.api_key, "-s", STACK)
    store = target.store()
    try:
        proj.run("up", "--yes", "--skip-preview", "-s", STACK)
        ns_id = proj.outputs(STACK)[CATALOG]["namespace_id"]
        plan = plan_namespace(catalog_body())
        state = store.read_collection(ns_id)
        assert state.settings["shard_number"] == 3 and state.settings["replication_factor"] == 2
        assert state.vectors == plan.vector_config() and state.namespace_id == ns_id
        assert state.payload_schema == {ix.field_name: ix.field_schema for ix in plan.payload_indexes}

        # The cluster's own placement: 3 shards x 2 Active replicas, on 2 distinct peers each, all 3 peers used
        # and each holding 2 replicas (every node answers alike).
        placement = wait_for(lambda: settled(cluster, ns_id), READY_TIMEOUT, "3 shards x 2 Active replicas")
        peers = {node.peer_id() for node in cluster.nodes}
        assert Counter(p for replicas in placement.values() for p in replicas) == {p: 2 for p in peers}, placement
        for node in cluster.nodes:
            assert cluster.placement(ns_id, node).keys() == placement.keys()

        points = [{"id": i, "vector": {"image_extractor_v1_embedding": [0.01 * i + 0.1] * 768},
                   "payload": {"metadata": {"sku": f"sku-{i}", "price": float(i)}}} for i in range(1, 31)]
        store.upsert(ns_id, points)
        assert store.count_points(ns_id) == 30

        # One node dies (SIGKILL): every shard still has a replica, so reads through the target still answer.
        victim_id = victim.peer_id()
        victim.kill()
        client = QdrantClient(url=target.url, api_key=cluster.api_key, timeout=30, check_compatibility=False)
        try:
            assert client.count(ns_id, exact=True).count == 30
            scrolled, _ = client.scroll(ns_id, limit=100, with_payload=True)
            assert sorted(p.id for p in scrolled) == list(range(1, 31))
            assert store.count_points(ns_id, [{"key": "metadata.sku", "value": "sku-7"}]) == 1
        finally:
            client.close()

        # `refresh` through the target sees the collection, its 30 points and every index: nothing changed.
        refreshed = proj.run("refresh", "--yes", "--skip-preview", "-s", STACK)
        assert "10 unchanged" in refreshed.stdout, refreshed.stdout
        [coll] = [r for r in proj.resources(STACK) if r["type"].endswith("QdrantCollection")]
        assert coll["outputs"]["points_count"] == 30 and coll["outputs"]["settings"]["replication_factor"] == 2

        # Writes while the node is down land on the replicas left; the cluster marks the dead peer's replicas Dead.
        store.upsert(ns_id, [{"id": i, "vector": {"image_extractor_v1_embedding": [0.5] * 768}, "payload": {}}
                             for i in range(31, 61)])
        held = {shard for shard, replicas in placement.items() if victim_id in replicas}
        wait_for(lambda: {shard for shard, replicas in cluster.placement(ns_id, target).items()
                          if replicas.get(victim_id) == "Dead"} == held, READY_TIMEOUT, "the dead peer's replicas marked Dead")
        assert store.count_points(ns_id) == 60

        # The node is back: its replicas recover, and the next `up` converges with nothing left to change.
        victim.start()
        assert victim.peer_id() == victim_id
        cluster.wait_formed()
        wait_for(lambda: settled(cluster, ns_id), READY_TIMEOUT, "every replica Active again after the restart")
        # The restarted node's own replicas caught up: each holds the points the other replica of its shard holds.
        wait_for(lambda: caught_up(cluster, ns_id, victim, held), READY_TIMEOUT, "the restarted replicas caught up")
        proj.run("up", "--yes", "--skip-preview", "-s", STACK)
        proj.run("preview", "--expect-no-changes", "-s", STACK)
        assert store.count_points(ns_id) == 60
        assert store.read_collection(ns_id).settings["replication_factor"] == 2

        proj.run("destroy", "--yes", "--skip-preview", "-s", STACK)
        assert store.read_collection(ns_id) is None
    finally:
        store.close()
        proj.run("destroy", "--yes", "--skip-preview", "--continue-on-error", "-s", STACK, check=False)
        forget_stores()


def test_sharding_without_a_cluster_edge_refuses_it_at_check_a_single_node_accepts_it(qdrant_server):
    """Edge is one local shard: shard_number / replication_factor other than 1 are refused at check (stack
    validation, what `preview` runs first), naming the field. A server target is accepted at check without a
    warning (check does not ask the server how many peers it has); a single node stores both settings and
    reports them back, but holds every shard itself, one replica each."""
    def problems(qdrant: dict | None, settings: dict) -> dict[str, str]:
        values = {"namespaces": [{"request": catalog_body(), "collection_settings": settings}],
                  **({"qdrant": qdrant} if qdrant else {})}
        return {p.path: p.message for p in parse_stack_config(values, root=ROOT).problems}

    refusal = ("an embedded Qdrant Edge collection is a single local shard; only 1 is possible "
               "(use a server target for more)")
    for key in SHARDING:
        assert problems(None, {key: SHARDING[key]}) == {f"namespaces[0].collection_settings.{key}": refusal}
    assert problems(None, {"shard_number": 1, "replication_factor": 1}) == {}
    assert problems({"url": qdrant_server.url}, dict(SHARDING)) == {}

    store = qdrant_server.store()
    try:
        plan = plan_namespace(catalog_body())
        store.create_collection("single_node_sharded", plan.vector_config(), dict(SHARDING), "ns_0123456789")
        assert {k: store.read_collection("single_node_sharded").settings[k] for k in SHARDING} == SHARDING
        info = qdrant_server.get("/collections/single_node_sharded/cluster").json()["result"]
        assert sorted(s["shard_id"] for s in info["local_shards"]) == [0, 1, 2] and info["remote_shards"] == []
        assert qdrant_server.get("/cluster").json()["result"]["status"] == "disabled"
    finally:
        store.delete_collection("single_node_sharded")
        store.close()
