"""A local Ray head as a Pulumi dynamic resource: `LocalRayHead` and its provider.

Create starts `ray start --head --block` in a session of its own (`head_process.start_head`: free
ports, loopback only, a temp dir under the state directory, bounded retrying readiness); the head
outlives the provider host, which the engine stops when `pulumi up` ends. Read reports the head gone
once its session leader is dead. Delete stops that session only: SIGTERM to the `ray start` leader,
then SIGTERM/SIGKILL to leftovers of the same session; `ray stop` is never used.

The provider keeps no state on `self`. The type token `pulumi-python:dynamic/mixpeek:LocalRayHead`
and this module's import path `mixpeek_infra.ray.local.LocalRayHeadProvider` are pickled into every
stack's state (`__provider`): do not rename or move them.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any, Optional

import pulumi
import pulumi.dynamic as dynamic

from .. import hostwatch
from ..paths import state_path

# Re-exported for callers that imported them from here before (bench/ray_local.py, tests/test_program.py,
# tests/test_pulumi_cli.py); new code imports them from their homes.
from ..processes import process_info, process_table  # noqa: F401,E402
from ..state_names import DYNAMIC_MODULE, LOCAL_RAY_HEAD_RESOURCE
from ..vocabulary import DEFAULT_RAY_STATE_DIR, RAY_READY_TIMEOUT, RAY_STOP_TIMEOUT
from ._process import HeadSession, leader_alive, stop_session  # noqa: F401,E402
from .head_process import (  # noqa: F401,E402
    PENDING_FILE,
    PORT_FLAGS,
    RayHeadError,
    _clean_env,
    _probe_python,
    find_ray_executable,
    own_head_dir,
    remove_head_dirs,
    start_head,
    unlink_temp_link,
    wait_for_ray_client,
)
from .local_settings import normalize_local_head
from .ports import (
    free_ports,  # noqa: F401,E402
    port_is_free,
)

#: Inputs whose change restarts the head (replace); the others update in place.
REPLACE_KEYS = ("state_dir", "num_cpus", "num_gpus", "include_dashboard")
UPDATE_KEYS = ("namespace_id", "ready_timeout", "stop_timeout")
INPUT_KEYS = REPLACE_KEYS + UPDATE_KEYS + ("state_path",)
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"  # the engine's unknown-value sentinel


def _int(value: Any) -> Optional[int]:
    if value is None or value == UNKNOWN:
        return None
    return int(float(value))


def _normalized(inputs: dict[str, Any]) -> dict[str, Any]:
    """Checked inputs with the engine's floats turned back into whole numbers where Ray needs them."""
    settings, problems = normalize_local_head(inputs, prefix="")
    if problems:  # check refused these already; inputs reach create and update only through it
        raise RayHeadError("invalid local Ray head inputs: " + "; ".join(map(str, problems)))
    return {**inputs, **settings}


class LocalRayHeadProvider(dynamic.ResourceProvider):
    """Dynamic provider of `LocalRayHead`. Holds no state: everything it needs is in the resource's outputs."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> dynamic.CheckResult:
        settings, problems = normalize_local_head(news, prefix="", unknown=UNKNOWN)
        inputs = {**news, **{k: v for k, v in settings.items() if k in news or v is not None}}
        failures = [dynamic.CheckFailure(p.path, p.message) for p in problems]
        if os.name == "nt":
            failures.append(
                dynamic.CheckFailure(
                    "state_dir",
                    "local Ray heads need a POSIX system (Linux or macOS); "
                    "use RayHead.kubernetes or RayHead.external on Windows",
                )
            )
        return dynamic.CheckResult(inputs, failures)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.DiffResult:
        changed, replaces = [], []
        for key in REPLACE_KEYS + UPDATE_KEYS:
            old, new = olds.get(key), news.get(key)
            if key in ("num_cpus", "num_gpus"):
                old, new = (_int(old) if old != UNKNOWN else old), (_int(new) if new != UNKNOWN else new)
            elif key in ("ready_timeout", "stop_timeout"):
                old = float(old) if isinstance(old, (int, float)) else old
                new = float(new) if isinstance(new, (int, float)) else new
            if new == UNKNOWN or old != new:
                changed.append(key)
                if key in REPLACE_KEYS:
                    replaces.append(key)
        return dynamic.DiffResult(changes=bool(changed), replaces=replaces, stables=[], delete_before_replace=False)

    def create(self, props: dict[str, Any]) -> dynamic.CreateResult:
        hostwatch.watch()
        head_id = f"rayhead-{secrets.token_hex(6)}"
        inputs = _normalized({k: props.get(k) for k in INPUT_KEYS})
        outs = start_head(inputs, head_id)
        (Path(outs["head_dir"]) / PENDING_FILE).unlink(missing_ok=True)
        return dynamic.CreateResult(head_id, {**inputs, **outs})

    def read(self, id_: str, props: dict[str, Any]) -> dynamic.ReadResult:
        session = HeadSession.recorded(props.get("pid"), props.get("start_time"), id_, props.get("boot_id"))
        if session is None:
            return dynamic.ReadResult("", {})
        if session.leader_alive():
            outs = {k: v for k, v in props.items() if k != "__provider"}
            return dynamic.ReadResult(id_, outs)
        # The leader is dead: sweep what is left of its session (Ray's agents can outlive it and hold
        # ports), then report the head gone so the next `pulumi up` starts a new one. Logs stay in head_dir.
        session.stop(timeout=0.0)
        head_dir = own_head_dir(props.get("head_dir"), props.get("state_path"), id_)
        if head_dir is not None:
            unlink_temp_link(props.get("temp_dir"), head_dir)
        return dynamic.ReadResult("", {})

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> dynamic.UpdateResult:
        outs = {k: v for k, v in olds.items() if k != "__provider"}
        fresh = _normalized(news)
        for key in UPDATE_KEYS:
            outs[key] = fresh.get(key)
        outs["state_path"] = olds.get("state_path")
        return dynamic.UpdateResult(outs)

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        session = HeadSession.recorded(props.get("pid"), props.get("start_time"), _id, props.get("boot_id"))
        if session is not None:
            left = session.stop(timeout=float(props.get("stop_timeout") or RAY_STOP_TIMEOUT))
            if left:
                raise RayHeadError(f"processes {left} of the Ray head session {session.pid} survived SIGKILL")
            ports = [int(float(p)) for p in (props.get("ports") or {}).values()]
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and not all(port_is_free(p) for p in ports):
                time.sleep(0.1)
        remove_head_dirs(props, _id)


class LocalRayHead(dynamic.Resource, module=DYNAMIC_MODULE, name=LOCAL_RAY_HEAD_RESOURCE):
    """A Ray head process on this machine, created by `pulumi up` and stopped by `pulumi destroy`.

    Outputs: `ray_head_node_url` (`ray://127.0.0.1:PORT`), `ray_dashboard_url` (set when its own dashboard listens),
    `pid` / `pgid` / `sid` of the `ray start` session leader, `start_time`, `ports` (every Ray
    component's port), `client_port`, `dashboard_port`, `gcs_address`, `temp_dir` (Ray's `--temp-dir`),
    `head_dir` (under `state_dir`), `log_file`, `ray_version`, `boot_id` and `ready_seconds` (start to
    ready; `probe_seconds` of it spent waiting for a client to connect).
    """

    ray_head_node_url: pulumi.Output[str]
    ray_dashboard_url: pulumi.Output[Optional[str]]
    gcs_address: pulumi.Output[str]
    client_port: pulumi.Output[int]
    dashboard_port: pulumi.Output[int]
    ports: pulumi.Output[dict]
    pid: pulumi.Output[int]
    pgid: pulumi.Output[int]
    sid: pulumi.Output[int]
    start_time: pulumi.Output[float]
    temp_dir: pulumi.Output[str]
    head_dir: pulumi.Output[str]
    log_file: pulumi.Output[str]
    ray_version: pulumi.Output[str]
    ready_seconds: pulumi.Output[float]

    def __init__(
        self,
        name: str,
        *,
        state_dir: str = DEFAULT_RAY_STATE_DIR,
        namespace_id: pulumi.Input[str] | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        include_dashboard: bool = True,
        ready_timeout: float = RAY_READY_TIMEOUT,
        stop_timeout: float = RAY_STOP_TIMEOUT,
        opts: pulumi.ResourceOptions | None = None,
    ):
        props: dict[str, Any] = {
            "state_dir": state_dir,
            # Resolved against the project root; not diffed, so moving the checkout changes nothing.
            "state_path": state_path(state_dir),
            "namespace_id": namespace_id,
            "num_cpus": num_cpus,
            "num_gpus": num_gpus,
            "include_dashboard": include_dashboard,
            "ready_timeout": float(ready_timeout),
            "stop_timeout": float(stop_timeout),
        }
        for out in (
            "ray_head_node_url",
            "ray_dashboard_url",
            "gcs_address",
            "client_port",
            "dashboard_port",
            "ports",
            "pid",
            "pgid",
            "sid",
            "start_time",
            "boot_id",
            "temp_dir",
            "head_dir",
            "log_file",
            "ray_version",
            "ready_seconds",
            "probe_seconds",
        ):
            props[out] = None
        super().__init__(LocalRayHeadProvider(), name, props, opts)
