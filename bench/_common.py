"""Shared helpers for the benchmarks: interleaved timing, medians, result rows, tables, machine info.

Every bench is a standalone script with a `main(argv) -> list[Row]` that prints its own figures;
`python -m bench` runs them all (each in a fresh interpreter) and prints a summary table.

Rules the benches follow (the machines are small and noisy):
- a figure is a RATIO against a baseline measured in the same run, with repetitions of the two
  interleaved (A B, B A, A B, ...) so drift hits both alike, and the median taken;
- absolute times are printed alongside for context, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
SEED_PATH = ROOT / "tests" / "data" / "seed.json"
#: Where the benches' Python processes cache bytecode (outside the repository).
PYCACHE = Path(tempfile.gettempdir()) / "mixpeek-bench-pycache"


@dataclass
class Row:
    """One figure of a bench, as the summary table shows it."""

    bench: str
    metric: str
    value: float | None
    unit: str
    goal: str = ""
    met: bool | None = None  # None: informational, no goal
    note: str = ""

    def status(self) -> str:
        return {True: "met", False: "MISSED", None: "-"}[self.met]


def load_seed() -> dict[str, Any]:
    return json.loads(SEED_PATH.read_text())


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def interleave(variants: dict[str, Callable[[], float | None]], reps: int, *, warmup: int = 1) -> dict[str, list[float]]:
    """Run each variant `reps` times, interleaved, alternating the order every round.

    A variant returns its own measured seconds (so setup/teardown stay outside the timing), or
    None to have the whole call timed. Warm-up rounds are run and discarded.
    """
    names = list(variants)
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(warmup + reps):
        order = names if i % 2 == 0 else names[::-1]
        for name in order:
            start = time.perf_counter()
            measured = variants[name]()
            elapsed = time.perf_counter() - start if measured is None else measured
            if i >= warmup:
                times[name].append(elapsed)
    return times


def paired_ratios(times: dict[str, list[float]], num: str, den: str) -> list[float]:
    """Per-round ratios num/den (rounds are adjacent in time, so noise mostly cancels)."""
    return [a / b for a, b in zip(times[num], times[den]) if b > 0]


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} us"


def table(rows: Iterable[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain-text table (also valid Markdown)."""
    rows = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)


def rows_table(rows: Sequence[Row]) -> str:
    def value(r: Row) -> str:
        if r.value is None:
            return "n/a"
        if r.unit == "x":
            return f"{r.value:.2f}x"
        if r.unit == "ms":
            return f"{r.value:.3f} ms"
        if r.unit == "B":
            return f"{r.value:.0f} B"
        return f"{r.value:g} {r.unit}".strip()

    return table([[r.bench, r.metric, value(r), r.goal, r.status(), r.note] for r in rows],
                 ["bench", "metric", "value", "goal", "status", "note"])


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    from importlib import metadata

    for dist in ("pulumi", "qdrant-client", "qdrant-edge-py", "grpcio", "dill", "ray"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = "not installed"
    return info


def arg_parser(description: str, default_reps: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--reps", type=int, default=default_reps, help=f"repetitions (default {default_reps})")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    parser.add_argument("--json", metavar="PATH", help="also write the result rows as JSON to PATH")
    return parser


def finish(rows: list[Row], json_path: str | None) -> list[Row]:
    """Print the bench's rows and write them as JSON when asked."""
    print()
    print(rows_table(rows))
    if json_path:
        Path(json_path).write_text(json.dumps([asdict(r) for r in rows], indent=1))
    return rows


def python() -> str:
    return sys.executable


def bytecode_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """`base` (default os.environ) with bytecode caching on, into PYCACHE.

    A Python start-up normally reads our modules' cached bytecode; with PYTHONDONTWRITEBYTECODE=1 (set on
    some development machines) no cache is ever written and every process compiles them from source
    again. The benches measure the usual case: caching on, into a directory outside the repository.
    """
    env = dict(os.environ if base is None else base)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    return env


def use_bytecode_cache(warm: str = "") -> None:
    """Turn bytecode caching on (bytecode_env) for every process this one starts from now on, and run
    `warm` (Python statements) once so the cache holds what they import before anything is timed."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    if warm:
        subprocess.run([sys.executable, "-c", warm], check=False, cwd=ROOT, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
