"""Leave with the engine: a dynamic provider host whose Pulumi engine died exits too.

Pulumi starts each provider plugin in a process group of its own, so an engine killed mid-update
(SIGKILL, a crashed CI runner) leaves the SDK's `python -m pulumi.dynamic` host running forever,
orphaned, holding open Qdrant Edge shards and their create locks. The providers call `watch()`;
inside such a host it starts one daemon thread that exits the process once the host's lineage
(host, plugin script, engine) is broken.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from .processes import lineage, lineage_alive

_started = False
_lock = threading.Lock()


def _in_dynamic_host() -> bool:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    return getattr(spec, "name", "") == "pulumi.dynamic.__main__"


def watch(interval: float = 1.0) -> None:
    """In a dynamic provider host, exit once the engine that started it is gone (idempotent)."""
    global _started
    with _lock:
        if _started or not _in_dynamic_host():
            return
        _started = True
    chain = lineage(os.getpid())

    def run() -> None:
        while lineage_alive(chain):
            time.sleep(interval)
        try:  # the engine's end of stderr is usually closed by now
            sys.stderr.write("mixpeek-infra: the Pulumi engine is gone; this provider host exits\n")
            sys.stderr.flush()
        except OSError:
            pass
        os._exit(1)

    threading.Thread(target=run, name="mixpeek-infra-hostwatch", daemon=True).start()
