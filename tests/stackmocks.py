"""Run the stack program under `pulumi.runtime.set_mocks`, in two ways.

`FakeMocks` answers every resource with plausible outputs (the resource graph, no side effects).
`ProviderMocks` hands each dynamic resource to its real provider, as the engine's provider host
would: it decodes `__provider` exactly as the host does (base64 + dill), then runs check and
create, or, given the previous run's state, diff and update. Kubernetes resources echo inputs.
`RecordingMonitor` keeps the raw serialized registrations for secret scans.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import dill
import pulumi
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

DYNAMIC = "pulumi-python:dynamic"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


def unwrap_secrets(value: Any) -> Any:
    """Plain values, as the engine hands them to a provider that does not accept secrets."""
    if isinstance(value, dict):
        if value.get("4dabf18193072939515e22adb298388d") == SECRET_SIG:
            return unwrap_secrets(value.get("value"))
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def decode_provider(serialized: str):
    """The provider object, decoded the way `python -m pulumi.dynamic` decodes it."""
    return dill.loads(base64.b64decode(serialized))


@dataclass
class Registered:
    """One resource the program registered, and what the mocks answered."""

    typ: str
    name: str
    inputs: dict[str, Any]
    id: str | None
    outputs: dict[str, Any]
    provider: Any = None
    diff: Any = None


class RecordingMonitor(MockMonitor):
    """A MockMonitor that also keeps each registration's serialized inputs and component outputs."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.raw: list[dict[str, Any]] = []

    def RegisterResource(self, request):
        self.raw.append({"type": request.type, "name": request.name, "parent": request.parent,
                         "object": json_format.MessageToDict(request.object)})
        response = super().RegisterResource(request)
        self.raw.append({"type": request.type, "name": request.name, "outputs":
                         json_format.MessageToDict(response.object)})
        return response

    def RegisterResourceOutputs(self, request):
        self.raw.append({"urn": request.urn, "outputs": json_format.MessageToDict(request.outputs)})
        return super().RegisterResourceOutputs(request)


def parents(monitor: RecordingMonitor) -> dict[str, str]:
    """Each registered resource's name -> its parent's name ('' for the stack)."""
    return {r["name"]: r["parent"].rsplit("::", 1)[-1] if r["parent"] else "" for r in monitor.raw
            if "object" in r}


class RecordingMocks(pulumi.runtime.Mocks):
    """Echo every resource's inputs as its outputs and keep the raw `MockResourceArgs`."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}


class FakeMocks(pulumi.runtime.Mocks):
    """Plausible outputs for every resource; records the graph."""

    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        outputs = dict(args.inputs)
        if args.typ.endswith(":QdrantCollection"):
            ns_id = args.inputs.get("namespace_id") or "ns_" + hashlib.sha256(args.name.encode()).hexdigest()[:10]
            outputs.update(namespace_id=ns_id, collection_name=args.inputs.get("collection_name") or ns_id,
                           points_count=0, created_at="2026-01-01T00:00:00Z", updated_at="2026-01-01T00:00:00Z")
        elif args.typ.endswith(":LocalRayHead"):
            outputs.update(ray_head_node_url="ray://127.0.0.1:10001", ray_dashboard_url="http://127.0.0.1:8265")
        self.resources.append(Registered(args.typ, args.name, dict(args.inputs), f"{args.name}-id", outputs))
        return f"{args.name}-id", outputs

    def call(self, args):
        return {}


class ProviderMocks(pulumi.runtime.Mocks):
    """Dynamic resources go to their real providers; `previous` (a prior run's resources) turns
    creates into diffs and updates, recording each diff, as `pulumi up` would."""

    def __init__(self, previous: list[Registered] | None = None, apply_updates: bool = True) -> None:
        self.resources: list[Registered] = []
        self.previous = {r.name: r for r in previous or []}
        self.apply_updates = apply_updates

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        inputs = unwrap_secrets(dict(args.inputs))
        if not args.typ.startswith(DYNAMIC):
            self.resources.append(Registered(args.typ, args.name, inputs, f"{args.name}-id", inputs))
            return f"{args.name}-id", inputs
        provider = decode_provider(inputs["__provider"])
        old = self.previous.get(args.name)
        checked = provider.check(old.inputs if old else {}, inputs)
        assert not checked.failures, checked.failures
        news = dict(checked.inputs)
        if old is None:
            result = provider.create(news)
            rec = Registered(args.typ, args.name, news, result.id, dict(result.outs or {}), provider)
        else:
            diff = provider.diff(old.id, old.outputs, news)
            outs = old.outputs
            if diff.changes and not diff.replaces and self.apply_updates:
                outs = dict(provider.update(old.id, old.outputs, news).outs or {})
            rec = Registered(args.typ, args.name, news, old.id, outs, provider, diff)
        self.resources.append(rec)
        return rec.id, rec.outputs

    def call(self, args):
        return {}

    def destroy(self) -> None:
        """Delete every dynamic resource, children before parents (reverse creation order)."""
        for rec in reversed(self.resources):
            if rec.provider is not None:
                rec.provider.delete(rec.id, rec.outputs)


def set_stack_config(config: dict[str, Any], project: str = "mixpeek-infra", secret_keys: Any = None) -> None:
    """Stack config as the engine passes it: `project:key` -> string (objects JSON-encoded).
    `secret_keys` (unprefixed) were set with `--secret`; default: every `*ApiKey` and `*Token` key."""
    values = {f"{project}:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    secret = [k for k in config if k.endswith(("ApiKey", "Token"))] if secret_keys is None else list(secret_keys)
    pulumi.runtime.set_all_config(values, [f"{project}:{k}" for k in secret])


def run_program(config: dict[str, Any], mocks: pulumi.runtime.Mocks, *, stack: str = "dev",
                preview: bool = False, logger: Any = None,
                secret_keys: Any = None) -> tuple[dict[str, Any], RecordingMonitor]:
    """Run `mixpeek_infra.program.run` under `mocks`; returns each namespace's resolved outputs."""
    from mixpeek_infra.program import run

    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="mixpeek-infra", stack=stack, preview=preview, monitor=monitor,
                             logger=logger)
    set_stack_config(config, secret_keys=secret_keys)
    resolved: dict[str, Any] = {}

    @pulumi.runtime.test
    def program():
        namespaces = run()
        outputs = {name: pulumi.Output.all(
            namespace_id=ns.namespace_id, vector_inference_map=ns.vector_inference_map,
            infrastructure=ns.infrastructure, namespace=ns.namespace, qdrant_collection=ns.qdrant_collection,
            ray_head_node_url=ns.ray_head_node_url) for name, ns in namespaces.items()}
        return pulumi.Output.all(**outputs).apply(resolved.update) if outputs else None

    program()
    return resolved, monitor
