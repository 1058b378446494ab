"""Helpers shared by the benchmarks: fresh stores, timing, tables, results.

Benchmarks compare ratios measured side by side in one run (the machines
are shared and noisy), print a table, and write JSON under bench/results/
that docs/benchmarks.md quotes.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
POSTGRES_URL = os.environ.get(
    "STATESHIFT_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)


@contextmanager
def fresh_store_config(backend: str) -> Iterator[dict[str, Any]]:
    """Settings for an empty store of ``backend``, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ss-bench-") as folder:
            yield {"store": f"sqlite:///{folder}/bench.db"}
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        yield {"store": POSTGRES_URL, "schema": schema}
    finally:
        import psycopg

        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def timed_runs(run: Callable[[], float], repeats: int) -> dict[str, float]:
    """Call ``run`` (which returns one figure) ``repeats`` times; summarize."""
    figures = [run() for _ in range(repeats)]
    return {
        "median": statistics.median(figures),
        "min": min(figures),
        "max": max(figures),
        "runs": len(figures),
    }


def per_call_ms(fn: Callable[[], object], count: int) -> float:
    """Milliseconds per call of ``fn`` over ``count`` calls."""
    started = time.perf_counter()
    for _ in range(count):
        fn()
    return (time.perf_counter() - started) * 1000.0 / count


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import sqlite3

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "sqlite": sqlite3.sqlite_version,
        "measured_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load average at start (1, 5, 15 min)": load_average(),
    }


def load_average() -> str:
    """The machine's load averages, which other users' work drives up."""
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


def print_table(title: str, header: list[str], rows: list[list[Any]]) -> None:
    """Print an aligned table to standard output."""
    cells = [header] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(str(row[i])) for row in cells) for i in range(len(header))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(str(c).rjust(w) for c, w in zip(row, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 100 else f"{value:.0f}"
    return str(value)


def write_results(name: str, payload: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` with the machine details."""
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2) + "\n")
    return path


def progress(message: str) -> None:
    """One line of progress on standard error."""
    print(f"  .. {message}", file=sys.stderr, flush=True)
