"""Preview cost: the providers' `check` and `diff` for 500 namespaces with no change.

500 namespaces = 500 collections + 3500 payload indexes. Their old state is one real create of the
seed namespace on Qdrant Edge (collection and 7 indexes through the providers), copied 500 times
with distinct namespace ids; everything passes through the Pulumi wire format first (numbers as
floats), as the engine sends it. A no-change preview calls, per resource, `check(old inputs, new
inputs)` then `diff(old outputs, checked inputs)`; neither touches Qdrant when nothing changed.

Goal (docs/performance.md, Goals): under 2 ms per resource. Printed as an absolute figure and as ratios
to two baselines over the same inputs, interleaved: a plain `==` of the new and old input dicts,
and a JSON round trip of the new inputs. For context, a sample of resources also goes through
the SDK's real provider host over gRPC (tests/enginehost.py), which adds the engine protocol's
(de)serialization and the host's own work.
"""

from __future__ import annotations

import copy
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, arg_parser, finish, fmt_s, interleave, load_seed, median, paired_ratios, table

sys.path.insert(0, str(ROOT / "tests"))

GOAL_MS = 2.0
NAMESPACES = 500


def build_state(workdir: str, n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """[(kind, old inputs, old outputs)] for n namespaces, in wire form, from one real create on Edge."""
    from enginehost import from_struct, to_struct

    from mixpeek_infra.plan import plan_namespace
    from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider
    from mixpeek_infra.qdrant.store import forget_stores
    from mixpeek_infra.qdrant.store.edge import close_all_shards

    wire = lambda props: from_struct(to_struct(props))  # noqa: E731
    plan = plan_namespace(load_seed())
    target = {"kind": "embedded", "path": os.path.join(workdir, "qdrant"), "timeout": 10.0}
    cp, ip = CollectionProvider(), PayloadIndexProvider()
    coll_in = wire(cp.check({}, wire({"target": target, "vectors": plan.vector_config(), "settings": {},
                                      "deletion_protection": True})).inputs)
    coll_out = wire(cp.create(coll_in).outs)
    templates = [("collection", coll_in, coll_out)]
    for ix in plan.payload_indexes:
        ins = wire(ip.check({}, wire({"target": target, "collection_name": coll_out["collection_name"],
                                      "field_name": ix.field_name, "field_type": ix.type,
                                      "field_schema": dict(ix.field_schema)})).inputs)
        templates.append(("index", ins, wire(ip.create(ins).outs)))
    close_all_shards()
    forget_stores()
    state = []
    for i in range(n):
        name = f"ns_{i:010x}"
        for kind, ins, outs in templates:
            ins, outs = copy.deepcopy(ins), copy.deepcopy(outs)
            if kind == "collection":
                outs.update(namespace_id=name, collection_name=name)
            else:
                ins["collection_name"] = outs["collection_name"] = name
            state.append((kind, ins, outs))
    return state


def main(argv: list[str] | None = None) -> list[Row]:
    parser = arg_parser(__doc__.splitlines()[0], default_reps=7)
    parser.add_argument("--namespaces", type=int, default=NAMESPACES)
    parser.add_argument("--host-sample", type=int, default=80, help="resources sent through the real host (0: skip)")
    args = parser.parse_args(argv)
    reps = 3 if args.quick else args.reps
    from mixpeek_infra.qdrant.resources import CollectionProvider, PayloadIndexProvider

    providers = {"collection": CollectionProvider(), "index": PayloadIndexProvider()}
    with tempfile.TemporaryDirectory(prefix="bench-preview-") as workdir:
        state = build_state(workdir, args.namespaces)
        # What the program sends this time: the same inputs (fresh objects, as deserialised each run).
        news = [copy.deepcopy(ins) for _, ins, _ in state]
        resources = len(state)
        changed = []

        def providers_run() -> None:
            for (kind, old_in, old_out), new in zip(state, news):
                p = providers[kind]
                checked = p.check(old_in, new)
                if checked.failures:
                    raise AssertionError(checked.failures)
                d = p.diff("id", old_out, checked.inputs)
                if d.changes:
                    changed.append(kind)

        def dict_eq() -> None:
            for (_, old_in, _), new in zip(state, news):
                if new != old_in:
                    changed.append("eq")

        def json_round_trip() -> None:
            for new in news:
                json.loads(json.dumps(new))

        print(f"{args.namespaces} namespaces = {resources} resources; {reps} interleaved rounds (+1 warm-up)")
        times = interleave({"providers": providers_run, "dict ==": dict_eq, "json round trip": json_round_trip}, reps)
        if changed:
            raise AssertionError(f"no-change preview found changes: {sorted(set(changed))}")

        per_resource_ms = median(times["providers"]) / resources * 1e3
        r_eq = median(paired_ratios(times, "providers", "dict =="))
        r_json = median(paired_ratios(times, "providers", "json round trip"))
        host_ms, floor_ms = host_sample(state, args.host_sample) if args.host_sample else (None, None)

    lines = [[name, fmt_s(median(t)), f"{median(t) / resources * 1e6:.1f} us",
              "1.00x" if name == "providers" else f"{median(paired_ratios(times, 'providers', name)):.1f}x"]
             for name, t in times.items()]
    print()
    print(table(lines, ["variant", f"all {resources} resources (median)", "per resource",
                        "providers / this"]))
    if host_ms is not None:
        print(f"\nthrough the real provider host over gRPC (Check + Diff, {args.host_sample} resources, harness "
              f"included): providers {host_ms:.3f} ms per resource; a do-nothing provider {floor_ms:.3f} ms "
              f"(the SDK host's and protocol's floor); difference {host_ms - floor_ms:+.3f} ms (host noise is larger "
              f"than the providers' own {median(times['providers']) / resources * 1e3:.3f} ms)")
    rows = [
        Row("preview", f"check + diff per resource, no change ({resources} resources)", per_resource_ms, "ms",
            f"< {GOAL_MS} ms", per_resource_ms < GOAL_MS, f"{fmt_s(median(times['providers']))} for all"),
        Row("preview", "check + diff / dict == of the inputs", r_eq, "x", "", None, "baseline: plain comparison"),
        Row("preview", "check + diff / JSON round trip of the inputs", r_json, "x", "", None,
            "baseline: serialisation"),
    ]
    if host_ms is not None:
        rows.append(Row("preview", "Check + Diff per resource through the real host (gRPC)", host_ms, "ms", "", None,
                        f"do-nothing provider: {floor_ms:.3f} ms ({host_ms / floor_ms:.2f}x); sample of "
                        f"{args.host_sample}"))
    return finish(rows, args.json)


def host_sample(state: list[tuple[str, dict[str, Any], dict[str, Any]]], count: int) -> tuple[float, float]:
    """ms per resource of Check + Diff through `python -m pulumi.dynamic`: the providers, and a do-nothing
    provider on the same inputs (the host's and protocol's own floor); median of interleaved passes."""
    from enginehost import EngineHost, dynamic_type, serialize_provider

    from bench._trivial_provider import TrivialProvider
    from mixpeek_infra.qdrant.resources import Collection, CollectionProvider, PayloadIndex, PayloadIndexProvider

    blobs = {"collection": serialize_provider(CollectionProvider()), "index": serialize_provider(PayloadIndexProvider())}
    types = {"collection": dynamic_type(Collection), "index": dynamic_type(PayloadIndex)}
    trivial = serialize_provider(TrivialProvider())
    sample = state[:count]
    env = {"PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    with tempfile.TemporaryDirectory(prefix="bench-preview-host-") as cwd, EngineHost(cwd=cwd, env=env) as host:
        host.configure({})

        def one_pass(use_trivial: bool) -> float:
            start = time.perf_counter()
            for i, (kind, ins, outs) in enumerate(sample):
                blob = trivial if use_trivial else blobs[kind]
                ins = {**ins, "__provider": blob}
                outs = {**outs, "__provider": blob}
                checked = host.check(types[kind], f"r{i}", ins, ins)
                d = host.diff(types[kind], f"r{i}", "id", outs, checked["inputs"], ins)
                if d["changes"] != "none":
                    raise AssertionError(d)
            return time.perf_counter() - start

        times = interleave({"providers": lambda: one_pass(False), "trivial": lambda: one_pass(True)}, 5)
    return median(times["providers"]) / len(sample) * 1e3, median(times["trivial"]) / len(sample) * 1e3


if __name__ == "__main__":
    main()
