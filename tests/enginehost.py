"""A stand-in for the Pulumi engine: drives the SDK's own dynamic provider host over gRPC.

A fast stand-in for unit-level tests (the real CLI drives the same host in the `pulumi_cli` tier,
tests/pulumicli.py): tests take the path `pulumi up` takes through a dynamic provider: start `python -u -m pulumi.dynamic` (the host the engine launches for `pulumi-python`
dynamic resources; it prints its gRPC port on the first line of stdout), build `__provider` with
the SDK's own serializer, and call `pulumirpc.ResourceProvider` (Configure, Check, Diff, Create,
Read, Update, Delete) with property maps marshalled by the SDK's own `rpc.serialize_properties`.

What the engine does and this harness mimics:
- Configure is sent first with the stack config (`{"project:key": "value"}`); the dynamic host answers
  `acceptSecrets: false`, so the engine strips secret markers from every property map it sends
  afterwards (`EngineHost.strip_secrets_for_provider`), and marks an output secret when the input of
  the same name was secret (`annotate_secrets`, applied by `EngineHost.step`).
- Unknown values (preview) travel as the `UNKNOWN` sentinel string; numbers travel as floats.
- Diff receives the old *outputs* as `olds` (and old inputs separately); Create/Update are never
  called during a preview.
- Provider errors come back as gRPC `UNKNOWN` with the Python traceback (`ProviderError`).

Everything takes and returns plain Python dicts; secrets in responses stay wrapped in the SDK's
secret marker (`{SECRET_SIG_KEY: SECRET_SIG, "value": ...}`) so tests can tell secret from plaintext.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
from typing import Any, Mapping

import grpc
from pulumi.dynamic.dynamic import serialize_provider as _sdk_serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

UNKNOWN = rpc.UNKNOWN
SECRET_SIG_KEY = rpc._special_sig_key  # noqa: SLF001 - the wire format's marker, fixed by the protocol
SECRET_SIG = rpc._special_secret_sig  # noqa: SLF001
PROVIDER_KEY = "__provider"
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository root
_CHANGES = {provider_pb2.DiffResponse.DIFF_UNKNOWN: "unknown", provider_pb2.DiffResponse.DIFF_NONE: "none",
            provider_pb2.DiffResponse.DIFF_SOME: "some"}


# ---------------------------------------------------------------------------------------------
# Plain-data helpers


def serialize_provider(provider: Any) -> str:
    """`__provider` exactly as `pulumi.dynamic.Resource` builds it (the SDK's dill-based serializer)."""
    return _sdk_serialize_provider(provider)


def with_provider(provider: Any, props: Mapping[str, Any]) -> dict[str, Any]:
    """`props` plus the serialized `provider` under `__provider` (a str is taken as already serialized)."""
    return {**props, PROVIDER_KEY: provider if isinstance(provider, str) else serialize_provider(provider)}


def secret(value: Any) -> dict[str, Any]:
    """`value` marked secret, as the engine sends a secret."""
    return rpc.wrap_rpc_secret(value)


def is_secret(value: Any) -> bool:
    """Whether `value` carries the secret marker."""
    return rpc.is_rpc_secret(value)


def contains_secrets(value: Any) -> bool:
    """Whether any part of `value` is marked secret."""
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(contains_secrets(v) for v in value.values())
    if isinstance(value, list):
        return any(contains_secrets(v) for v in value)
    return False


def strip_secrets(value: Any) -> Any:
    """`value` with every secret marker removed (the plain values kept)."""
    value = rpc.unwrap_rpc_secret(value)
    if isinstance(value, Mapping):
        return {k: strip_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [strip_secrets(v) for v in value]
    return value


def without_secrets(value: Any) -> Any:
    """`value` with every secret-marked part replaced by `"[secret]"` (what a reader of the state sees)."""
    if is_secret(value):
        return "[secret]"
    if isinstance(value, Mapping):
        return {k: without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def plaintext_contains(value: Any, needle: str) -> bool:
    """Whether `needle` appears anywhere in `value` outside secret-marked parts."""
    return needle in json.dumps(without_secrets(value), default=str)


def annotate_secrets(outs: dict[str, Any], ins: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's rule for providers that do not accept secrets: an output whose same-named input
    contains a secret becomes secret (objects recurse)."""
    out = dict(outs)
    for key, in_value in ins.items():
        if key not in out:
            continue
        if isinstance(out[key], Mapping) and not is_secret(out[key]) and isinstance(in_value, Mapping) \
                and not is_secret(in_value):
            out[key] = annotate_secrets(dict(out[key]), in_value)
        elif not is_secret(out[key]) and contains_secrets(in_value):
            out[key] = secret(out[key])
    return out


def urn(type_token: str, name: str, *, stack: str = "test", project: str = "mixpeek-infra") -> str:
    """A resource URN as the engine builds it."""
    return f"urn:pulumi:{stack}::{project}::{type_token}::{name}"


def dynamic_type(resource_class: type) -> str:
    """The type token of a `pulumi.dynamic.Resource` subclass (e.g. `pulumi-python:dynamic/mixpeek:X`)."""
    return f"pulumi-python:{resource_class._resource_type_name}"  # noqa: SLF001


def _plain_unknowns(value: Any) -> Any:
    from pulumi.output import Unknown

    if isinstance(value, Unknown):
        return UNKNOWN
    if isinstance(value, Mapping):
        return {k: _plain_unknowns(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_unknowns(v) for v in value]
    return value


def to_struct(props: Mapping[str, Any]) -> Any:
    """A property map marshalled with the SDK's own serializer (ints become floats, as on the wire)."""
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(dict(props), {}))
    finally:
        loop.close()


def from_struct(struct: Any) -> dict[str, Any]:
    """A property map unmarshalled with the SDK (secrets stay marked, unknowns become `UNKNOWN`)."""
    return _plain_unknowns(rpc.deserialize_properties(struct, keep_unknowns=True))


# ---------------------------------------------------------------------------------------------


class ProviderError(Exception):
    """A gRPC error from the provider host; `code` is the status name, `details` the message/traceback."""

    def __init__(self, code: str, details: str):
        self.code = code
        self.details = details
        super().__init__(f"{code}: {details}")


class EngineHost:
    """One `python -u -m pulumi.dynamic` process and a client speaking the engine's side of the protocol.

    Use as a context manager. `cwd` is where the host runs (a Pulumi program's project directory);
    `env` adds environment variables. `site_hook` is Python source run in the host at interpreter
    start (as a `sitecustomize` module on `PYTHONPATH`), before the host imports anything: tests use
    it to prepare the host process (e.g. install a store) while the command line stays exactly the
    engine's. Each call takes and returns plain dicts.
    """

    def __init__(self, *, cwd: str | None = None, env: Mapping[str, str] | None = None,
                 python: str = sys.executable, start_timeout: float = 60.0, site_hook: str | None = None):
        self.cwd = cwd
        self.env = {**os.environ, **(env or {})}
        # The host imports the checkout under test first, whatever the virtualenv's install points at.
        self.env["PYTHONPATH"] = os.pathsep.join(p for p in (_CHECKOUT, self.env.get("PYTHONPATH")) if p)
        self._hook_dir: tempfile.TemporaryDirectory | None = None
        if site_hook is not None:
            self._hook_dir = tempfile.TemporaryDirectory(prefix="enginehost-")
            with open(os.path.join(self._hook_dir.name, "sitecustomize.py"), "w", encoding="utf-8") as fh:
                fh.write(site_hook)
            self.env["PYTHONPATH"] = os.pathsep.join(p for p in (self._hook_dir.name, self.env.get("PYTHONPATH"))
                                                     if p)
        self.python = python
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen | None = None
        self.channel: grpc.Channel | None = None
        self.stub: provider_pb2_grpc.ResourceProviderStub | None = None
        self.port: int | None = None
        self.provider_accepts_secrets = False
        self._stderr = tempfile.TemporaryFile()

    # -- process ----------------------------------------------------------------------------------

    def start(self) -> "EngineHost":
        """Start the host and connect; raises with its stderr when it does not come up."""
        self.proc = subprocess.Popen([self.python, "-u", "-m", "pulumi.dynamic"], cwd=self.cwd, env=self.env,
                                     stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL)
        line: list[bytes] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()), daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not line or not line[0].strip().isdigit():
            self.close()
            raise RuntimeError(f"dynamic provider host did not print its port: {line!r}\n{self.stderr_text()}")
        self.port = int(line[0])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.port}")
        grpc.channel_ready_future(self.channel).result(timeout=self.start_timeout)
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)
        return self

    def close(self) -> None:
        """Disconnect and stop the host process."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
        if self._hook_dir is not None:
            self._hook_dir.cleanup()
            self._hook_dir = None

    def stderr_text(self) -> str:
        """What the host wrote to stderr so far."""
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def __enter__(self) -> "EngineHost":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- marshalling ------------------------------------------------------------------------------

    def _send(self, props: Mapping[str, Any] | None) -> Any:
        props = dict(props or {})
        if not self.provider_accepts_secrets:
            props = strip_secrets(props)
        return to_struct(props)

    def _call(self, method: str, request: Any) -> Any:
        try:
            return getattr(self.stub, method)(request, timeout=120)
        except grpc.RpcError as exc:
            raise ProviderError(exc.code().name, exc.details() or "") from None

    # -- the protocol -----------------------------------------------------------------------------

    def configure(self, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Send the stack config (`{"ns:key": value}`; secret values stay marked, as the engine sends them)."""
        response = self._call("Configure", provider_pb2.ConfigureRequest(
            args=to_struct(dict(config or {})), acceptSecrets=True, acceptResources=True))
        self.provider_accepts_secrets = bool(response.acceptSecrets)
        return {"accept_secrets": response.acceptSecrets, "supports_preview": response.supportsPreview,
                "accept_resources": response.acceptResources, "accept_outputs": response.acceptOutputs}

    def check(self, type_token: str, name: str, news: Mapping[str, Any],
              olds: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Check: the normalised inputs and the failures (`[{"property", "reason"}]`)."""
        response = self._call("Check", provider_pb2.CheckRequest(
            urn=urn(type_token, name), name=name, type=type_token, olds=self._send(olds), news=self._send(news)))
        return {"inputs": from_struct(response.inputs),
                "failures": [{"property": f.property, "reason": f.reason} for f in response.failures]}

    def diff(self, type_token: str, name: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any],
             old_inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Diff old outputs against new inputs: `{"changes": none|some|unknown, "replaces", "delete_before_replace"}`."""
        response = self._call("Diff", provider_pb2.DiffRequest(
            id=id_, urn=urn(type_token, name), name=name, type=type_token, olds=self._send(olds),
            news=self._send(news), old_inputs=self._send(old_inputs or {})))
        return {"changes": _CHANGES[response.changes], "replaces": list(response.replaces),
                "delete_before_replace": response.deleteBeforeReplace, "stables": list(response.stables),
                "diffs": list(response.diffs)}

    def create(self, type_token: str, name: str, props: Mapping[str, Any], *, preview: bool = False) -> dict[str, Any]:
        """Create: `{"id", "properties"}` (the outputs, `__provider` included)."""
        response = self._call("Create", provider_pb2.CreateRequest(
            urn=urn(type_token, name), name=name, type=type_token, properties=self._send(props), preview=preview))
        return {"id": response.id, "properties": from_struct(response.properties)}

    def read(self, type_token: str, name: str, id_: str, props: Mapping[str, Any] | None = None,
             inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Read (refresh with `props` = last outputs; import with only `inputs`): `{"id", "properties", "inputs"}`."""
        response = self._call("Read", provider_pb2.ReadRequest(
            id=id_, urn=urn(type_token, name), name=name, type=type_token, properties=self._send(props),
            inputs=self._send(inputs)))
        return {"id": response.id, "properties": from_struct(response.properties),
                "inputs": from_struct(response.inputs) if response.HasField("inputs") else None}

    def update(self, type_token: str, name: str, id_: str, olds: Mapping[str, Any], news: Mapping[str, Any], *,
               old_inputs: Mapping[str, Any] | None = None, preview: bool = False) -> dict[str, Any]:
        """Update: `{"properties"}` (all outputs)."""
        response = self._call("Update", provider_pb2.UpdateRequest(
            id=id_, urn=urn(type_token, name), name=name, type=type_token, olds=self._send(olds),
            news=self._send(news), old_inputs=self._send(old_inputs or {}), preview=preview))
        return {"properties": from_struct(response.properties)}

    def delete(self, type_token: str, name: str, id_: str, props: Mapping[str, Any],
               old_inputs: Mapping[str, Any] | None = None) -> None:
        """Delete the resource with `props` = its last outputs."""
        self._call("Delete", provider_pb2.DeleteRequest(
            id=id_, urn=urn(type_token, name), name=name, type=type_token, properties=self._send(props),
            old_inputs=self._send(old_inputs or {})))

    # -- one resource step, as `pulumi up` / `pulumi preview` --------------------------------------

    def step(self, type_token: str, name: str, inputs: Mapping[str, Any], state: Mapping[str, Any] | None = None,
             *, preview: bool = False) -> dict[str, Any]:
        """Register one resource the way the engine does.

        `inputs` are the program's inputs (with `__provider`); `state` is the resource's previous
        `{"id", "inputs", "outputs"}` or None. Returns `{"op": create|same|update|replace, "diff",
        "state"}`; during a preview nothing is created or updated and outputs of changed resources
        are `UNKNOWN`. A replacement creates the new resource first unless the provider asks for
        delete-before-replace; the old one is deleted either way.
        """
        checked = self.check(type_token, name, inputs, state["inputs"] if state else None)
        if checked["failures"]:
            raise ProviderError("CHECK_FAILED", json.dumps(checked["failures"]))
        news = checked["inputs"]
        if state is None:
            if preview:
                return {"op": "create", "diff": None, "state": None}
            created = self.create(type_token, name, news)
            outputs = annotate_secrets(created["properties"], inputs)
            return {"op": "create", "diff": None,
                    "state": {"id": created["id"], "inputs": news, "outputs": outputs}}
        diff = self.diff(type_token, name, state["id"], state["outputs"], news, state["inputs"])
        if diff["changes"] == "none":
            return {"op": "same", "diff": diff, "state": dict(state)}
        op = "replace" if diff["replaces"] else "update"
        if preview:
            return {"op": op, "diff": diff, "state": dict(state)}
        if op == "update":
            updated = self.update(type_token, name, state["id"], state["outputs"], news, old_inputs=state["inputs"])
            outputs = annotate_secrets(updated["properties"], inputs)
            return {"op": op, "diff": diff, "state": {"id": state["id"], "inputs": news, "outputs": outputs}}
        if diff["delete_before_replace"]:
            self.delete(type_token, name, state["id"], state["outputs"], state["inputs"])
            created = self.create(type_token, name, news)
        else:
            created = self.create(type_token, name, news)
            self.delete(type_token, name, state["id"], state["outputs"], state["inputs"])
        outputs = annotate_secrets(created["properties"], inputs)
        return {"op": op, "diff": diff, "state": {"id": created["id"], "inputs": news, "outputs": outputs}}
