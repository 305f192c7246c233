"""State size: bytes of `__provider` per dynamic resource type, and of state per namespace.

- `__provider`: the SDK's own serializer (`pulumi.dynamic.dynamic.serialize_provider`, what
  `pulumi.dynamic.Resource` stores as the `__provider` input and output) on a fresh provider of
  each dynamic resource type. Goal (docs/performance.md, Goals): <= 256 bytes each.
- Per namespace: the seed namespace (collection + 7 payload indexes) taken through the SDK's real
  dynamic provider host (`python -u -m pulumi.dynamic`, driven over gRPC by tests/enginehost.py)
  on an embedded Qdrant Edge target: the bytes of each resource's checked inputs plus its outputs
  as the engine would record them (compact JSON; Pulumi's checkpoint adds indentation), with and
  without the two copies of `__provider`. A `LocalRayHead` (when mixpeek_infra.ray.local provides
  one and Ray works here) is created through the same host and counted separately.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, load_seed, table

sys.path.insert(0, str(ROOT / "tests"))  # enginehost: the engine's side of the provider protocol

GOAL = 256


def provider_types() -> dict[str, Any]:
    """Every dynamic provider class of the project that can be imported here."""
    from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider

    found: dict[str, Any] = {"Collection (CollectionProvider)": CollectionProvider,
                             "PayloadIndex (PayloadIndexProvider)": PayloadIndexProvider}
    try:
        from mixpeek_infra.ray.local import LocalRayHeadProvider

        found["LocalRayHead (LocalRayHeadProvider)"] = LocalRayHeadProvider
    except Exception as exc:  # noqa: BLE001 - being written by others; report, do not fail
        print(f"note: mixpeek_infra.ray.local.LocalRayHeadProvider not importable: {exc}")
    return found


def json_bytes(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":"), sort_keys=True, default=str).encode())


def resource_bytes(state: dict[str, Any]) -> tuple[int, int]:
    """(inputs + outputs, the same without `__provider`) of one resource's state."""
    ins, outs = state["inputs"], state["outputs"]
    total = json_bytes(ins) + json_bytes(outs)
    bare = json_bytes({k: v for k, v in ins.items() if k != "__provider"}) + \
        json_bytes({k: v for k, v in outs.items() if k != "__provider"})
    return total, bare


def namespace_state(with_ray: bool) -> tuple[list[list[Any]], dict[str, int], str]:
    from enginehost import EngineHost, dynamic_type, serialize_provider, with_provider

    from mixpeek_infra.plan import plan_namespace
    from mixpeek_infra.qdrant.resources import (Collection, CollectionProvider, PayloadIndex,
                                                PayloadIndexProvider)

    plan = plan_namespace(load_seed())
    target = {"kind": "embedded", "path": ".mixpeek/qdrant", "timeout": 10.0}
    cp, ip = serialize_provider(CollectionProvider()), serialize_provider(PayloadIndexProvider())
    lines: list[list[Any]] = []
    totals = {"qdrant": 0, "qdrant_bare": 0, "ray": 0, "ray_bare": 0}
    ray_note = ""
    with tempfile.TemporaryDirectory(prefix="bench-state-") as project, \
            EngineHost(cwd=project, env={"MIXPEEK_EDGE_IDLE_CLOSE": "0.05"}) as host:
        host.configure({})
        coll = host.step(dynamic_type(Collection), "ns-collection", with_provider(cp, {
            "target": target, "vectors": plan.vector_config(), "settings": {}, "deletion_protection": True}))
        total, bare = resource_bytes(coll["state"])
        lines.append(["Collection", total, bare])
        totals["qdrant"] += total
        totals["qdrant_bare"] += bare
        name = coll["state"]["outputs"]["collection_name"]
        for ix in plan.payload_indexes:
            step = host.step(dynamic_type(PayloadIndex), f"ns-index-{ix.field_name}", with_provider(ip, {
                "target": target, "collection_name": name, "field_name": ix.field_name, "field_type": ix.type,
                "field_schema": dict(ix.field_schema)}))
            total, bare = resource_bytes(step["state"])
            lines.append([f"PayloadIndex {ix.field_name} ({ix.type})", total, bare])
            totals["qdrant"] += total
            totals["qdrant_bare"] += bare
        if with_ray:
            ray_note = ray_head_state(host, project, lines, totals)
    return lines, totals, ray_note


def ray_head_state(host: Any, project: str, lines: list[list[Any]], totals: dict[str, int]) -> str:
    """Create (and delete) one LocalRayHead through the host; returns a note when that is not possible."""
    from enginehost import ProviderError, dynamic_type, serialize_provider, with_provider

    try:
        from mixpeek_infra.ray.local import LocalRayHead, LocalRayHeadProvider
    except Exception as exc:  # noqa: BLE001
        return f"LocalRayHead not measured: mixpeek_infra.ray.local not importable ({exc})"
    inputs = with_provider(serialize_provider(LocalRayHeadProvider()), {
        "state_dir": ".mixpeek/ray", "namespace_id": "ns_0123456789", "include_dashboard": False, "num_cpus": 1,
        "ready_timeout": 120.0})
    token = dynamic_type(LocalRayHead)
    try:
        step = host.step(token, "ns-ray-head", inputs)
    except ProviderError as exc:
        return f"LocalRayHead not measured: create failed: {exc.details.strip().splitlines()[-1][:200]}"
    try:
        total, bare = resource_bytes(step["state"])
        lines.append(["LocalRayHead", total, bare])
        totals["ray"], totals["ray_bare"] = total, bare
    finally:
        host.delete(token, "ns-ray-head", step["state"]["id"], step["state"]["outputs"], step["state"]["inputs"])
    return ""


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=1)
    parser.add_argument("--no-ray", action="store_true", help="do not start a local Ray head")
    args = parser.parse_args(argv)
    from pulumi.dynamic.dynamic import serialize_provider

    rows: list[Row] = []
    sizes = []
    for label, cls in provider_types().items():
        blob = serialize_provider(cls())
        sizes.append([label, len(blob), f"{cls.__module__}.{cls.__name__}"])
        rows.append(Row("state", f"__provider bytes, {label.split(' ')[0]}", float(len(blob)), "B",
                        f"<= {GOAL} B", len(blob) <= GOAL))
    print(table(sizes, ["resource", "__provider bytes", "pickled by reference to"]))

    lines, totals, ray_note = namespace_state(with_ray=not args.no_ray)
    print()
    summary = [["namespace total (Qdrant: collection + indexes)", totals["qdrant"], totals["qdrant_bare"]]]
    if totals["ray"]:
        summary.append(["namespace total with a local Ray head", totals["qdrant"] + totals["ray"],
                        totals["qdrant_bare"] + totals["ray_bare"]])
    print(table(lines + summary,
                ["resource (seed namespace, via the real provider host)", "inputs + outputs bytes",
                 "without __provider"]))
    if args.no_ray:
        ray_note = "LocalRayHead not measured (--no-ray)"
    if ray_note:
        print(ray_note)
    rows.append(Row("state", "state bytes per namespace (collection + 7 indexes, inputs + outputs)",
                    float(totals["qdrant"]), "B", "", None, f"{totals['qdrant_bare']} B without __provider"))
    if totals["ray"]:
        rows.append(Row("state", "state bytes of a LocalRayHead (inputs + outputs)", float(totals["ray"]), "B", "",
                        None, f"{totals['ray_bare']} B without __provider"))
        rows.append(Row("state", "state bytes per namespace with a local Ray head", float(totals["qdrant"] + totals["ray"]),
                        "B", "", None, f"{totals['qdrant_bare'] + totals['ray_bare']} B without __provider"))
    else:
        rows.append(Row("state", "state bytes of a LocalRayHead", None, "B", "", None, ray_note))
    return finish(rows, args.json)


if __name__ == "__main__":
    main()
