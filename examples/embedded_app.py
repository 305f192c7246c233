"""An application using the embedded collection `pulumi up` created: write points, then query them.

    pulumi up --yes                                    # the dev stack: Qdrant Edge under .mixpeek/qdrant
    python examples/embedded_app.py                    # the collection from `pulumi stack output --json`
    python examples/embedded_app.py --collection ns_0123456789 --path .mixpeek/qdrant

The collection is a Qdrant Edge shard directory, `<path>/<qdrant_collection>`, opened in process with
`qdrant-edge` (installed with this package). A shard is used by one process at a time: close it before
the next `pulumi up` (which otherwise waits, then says which shard is locked). Run from the project root.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess

import qdrant_edge as qe

VECTOR = "image_extractor_v1_embedding"  # a named vector of the dev stack's namespace (768 dims, cosine)
SIZE = 768


def collection_from_stack(namespace: str | None) -> str:
    """The namespace's `infrastructure.qdrant_collection` from `pulumi stack output --json`."""
    outputs = json.loads(subprocess.run(["pulumi", "stack", "output", "--json"], capture_output=True, text=True,
                                        check=True).stdout)
    name = namespace or next(iter(outputs))
    return outputs[name]["infrastructure"]["qdrant_collection"]


def one_hot(i: int) -> list[float]:
    """A stand-in embedding; an application writes its extractor's vectors here."""
    vector = [0.0] * SIZE
    vector[i] = 1.0
    return vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--collection", help="the collection name (default: from the stack's outputs)")
    parser.add_argument("--namespace", help="which namespace of the stack's outputs (default: the first)")
    parser.add_argument("--path", default=".mixpeek/qdrant", help="the stack's embedded Qdrant directory")
    args = parser.parse_args()
    collection = args.collection or collection_from_stack(args.namespace)

    shard = qe.EdgeShard.load(os.path.join(args.path, collection))
    try:
        titles = ["Summer Hits 2024", "Winter chill", "summer road trip"]
        shard.update(qe.UpdateOperation.upsert_points([
            qe.Point(i + 1, {VECTOR: one_hot(i)}, {"metadata": {"title": title}}) for i, title in enumerate(titles)]))
        shard.flush()
        # Nearest to the third point's vector, among titles matching "summer" (the stack's text index).
        hits = shard.query(qe.QueryRequest(
            query=qe.Query.Nearest(one_hot(2), using=VECTOR), limit=3, with_payload=True,
            filter=qe.Filter(must=[qe.FieldCondition(key="metadata.title", match=qe.MatchText("summer"))])))
        for hit in hits:
            print(f"{hit.id} {hit.score:.3f} {hit.payload['metadata']['title']}")
    finally:
        shard.close()


if __name__ == "__main__":
    main()
