"""Run every benchmark, each in a fresh interpreter, and print one summary table.

    python -m bench            # all benches, default repetitions
    python -m bench --quick    # fewer repetitions (a smoke run)
    python -m bench --only provisioning import_cost
    python -m bench --markdown docs-table.md

Each bench is also a standalone script (`python bench/provisioning.py`, `python -m bench.provisioning`)
with a `main(argv)` that prints its own figures. To add one, write `bench/<name>.py` with a
`main(argv) -> list[Row]` that accepts `--quick` and `--json PATH` (see `bench/_common.py`), and list
it in `BENCHES`; a listed module that does not exist yet is reported as "not present" and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Row, machine, rows_table, table

# (module under bench/, what it measures). Order: cheap first.
BENCHES: list[tuple[str, str]] = [
    ("import_cost", "program import <= 1.3x and provider-host unpickle import <= 1.1x `import pulumi`"),
    ("state_size", "__provider bytes (goal <= 256) and state bytes per namespace"),
    ("preview_cost", "check + diff for 500 namespaces, no change (goal < 2 ms per resource)"),
    ("provisioning", "seed namespace through the providers vs direct calls (goal <= 1.2x)"),
    ("snapshot_size", "Edge final snapshot at 0/3/10,000 points vs the same points as JSON (goal: < 1 MB; <= 1.0x)"),
    # Hooks for benches added later (skipped until the module exists):
    ("program_scale", "stack program with 10/100/500 namespaces under mocks (goal: flat per namespace, < 20 ms)"),
    ("ray_local", "local Ray head ready through the provider vs bare `ray start --head --block` (goal <= 1.1x)"),
    # The Qdrant server tools/qdrant/install builds (MIXPEEK_QDRANT_BIN_DIR); reported "not available" without it.
    ("qdrant_server", "seed namespace on a real Qdrant server: requests, providers vs direct qdrant-client (goal <= 1.25x)"),
    # The real Pulumi CLI (tools/pulumi/install, on PATH); reported "not available" without it.
    ("engine_preview", "no-change `pulumi preview`, 1/10/50/100 namespaces vs do-nothing dynamic resources (goal <= 1.5x)"),
    ("engine_up", "`pulumi up` of the dev stack vs empty-program up + direct Edge + bare ray start (goal <= 1.5x)"),
    ("engine_scale", "`pulumi up` and no-change preview of 100/300 namespaces from request files vs do-nothing "
                     "dynamic resources (goal <= 1.3x), peak memory, state per namespace"),
]


#: Benches that need longer than the default --timeout (seconds).
LONG: dict[str, float] = {"engine_preview": 2700, "engine_up": 2700, "engine_scale": 5400}


def run_bench(name: str, extra: list[str], timeout: float) -> tuple[list[Row], str]:
    """Run `python -m bench.<name> --json ...`; returns its rows (or a failure row) and its output.

    On timeout the bench gets SIGTERM first (the engine benches then destroy what they created: Ray heads,
    stacks) and its process group SIGKILL a minute later.
    """
    if not (ROOT / "bench" / f"{name}.py").exists():
        return [Row(name, "not present", None, "", "", None, f"bench/{name}.py does not exist yet")], ""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as fh:
        out_path = Path(fh.name)
    proc = subprocess.Popen([sys.executable, "-m", f"bench.{name}", "--json", str(out_path), *extra], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
        output = stdout + (stderr if proc.returncode else "")
        if proc.returncode != 0:
            last = (stderr.strip().splitlines() or ["?"])[-1]
            return [Row(name, "FAILED", None, "", "", False, last[:160])], output
        rows = [Row(**r) for r in json.loads(out_path.read_text())]
        return rows, output
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            stdout, _ = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
        return [Row(name, "TIMED OUT", None, "", "", False, f"after {timeout:.0f} s")], stdout or ""
    finally:
        out_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions in every bench")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benches")
    parser.add_argument("--quiet", action="store_true", help="print only the summary, not each bench's output")
    parser.add_argument("--markdown", metavar="PATH", help="also write the machine and summary as Markdown")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per bench (default 900)")
    args = parser.parse_args(argv)
    names = [n for n, _ in BENCHES]
    if args.only:
        unknown = sorted(set(args.only) - set(names))
        if unknown:
            parser.error(f"unknown bench(es) {unknown}; known: {names}")
        names = [n for n in names if n in args.only]
    extra = ["--quick"] if args.quick else []

    info = machine()
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    rows: list[Row] = []
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        print(f"\n=== bench/{name}.py ({dict(BENCHES)[name]})", flush=True)
        bench_rows, output = run_bench(name, extra, max(args.timeout, LONG.get(name, 0)))
        if not args.quiet and output:
            print(output.rstrip())
        print(f"--- {name}: {time.monotonic() - t0:.1f} s", flush=True)
        rows += bench_rows
    summary = rows_table(rows)
    print(f"\n=== summary ({time.monotonic() - started:.0f} s)\n{summary}")
    if args.markdown:
        machine_table = table([[k, v] for k, v in info.items()], ["machine", ""])
        Path(args.markdown).write_text(f"{machine_table}\n\n{summary}\n")
    failed = [r for r in rows if r.metric in ("FAILED", "TIMED OUT")]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
