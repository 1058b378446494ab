"""The commit floor: how fast each backend makes one small row durable.

Every other benchmark reports its cost as a ratio to this figure. SQLite
runs with the settings stateshift ships (WAL, ``synchronous=FULL``,
``BEGIN IMMEDIATE``); PostgreSQL over the store's pooled connection. Each
transaction inserts one row of about 100 bytes and commits.

Run: ``python -m bench.floor`` (add ``--commits N --repeats R``).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from bench.common import (
    fresh_store_config,
    print_table,
    progress,
    timed_runs,
    write_results,
)
from stateshift.config import load_settings
from stateshift.store import Store, open_store

PAYLOAD = b"x" * 100


def prepare(store: Store) -> None:
    """Create the benchmark's own table."""
    blob = "BLOB" if store.dialect == "sqlite" else "BYTEA"
    with store.transaction() as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS {p}bench_floor"
            f" (id INTEGER PRIMARY KEY, payload {blob} NOT NULL)"
        )


def commit_ms(store: Store, commits: int, start_id: int = 0) -> float:
    """Milliseconds per one-row transaction, over ``commits`` transactions."""
    started = time.perf_counter()
    for index in range(start_id, start_id + commits):
        with store.transaction() as tx:
            tx.execute(
                "INSERT INTO {p}bench_floor (id, payload) VALUES (?, ?)",
                (index, PAYLOAD),
            )
    return (time.perf_counter() - started) * 1000.0 / commits


def measure_floor(
    store: Store, commits: int = 500, repeats: int = 5
) -> dict[str, float]:
    """Median, min and max milliseconds per commit on an open store."""
    prepare(store)
    counter = iter(range(0, 10**9, commits))
    commit_ms(store, 50, start_id=-1000)  # warm the connection and the file
    return timed_runs(lambda: commit_ms(store, commits, next(counter)), repeats)


def run(commits: int, repeats: int) -> dict[str, Any]:
    """Measure the floor of both backends; return the results."""
    results: dict[str, Any] = {}
    for backend in ("sqlite", "postgresql"):
        progress(f"floor on {backend}: {repeats} runs of {commits} commits")
        with fresh_store_config(backend) as config:
            store = open_store(load_settings(config))
            try:
                results[backend] = measure_floor(store, commits, repeats)
            finally:
                store.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    results = run(args.commits, args.repeats)
    rows = [
        [
            backend,
            figures["median"],
            figures["min"],
            figures["max"],
            1000.0 / figures["median"],
        ]
        for backend, figures in results.items()
    ]
    print_table(
        "Commit floor (one ~100-byte row per transaction)",
        ["backend", "ms median", "ms min", "ms max", "commits/s"],
        rows,
    )
    path = write_results(
        "floor", {"commits_per_run": args.commits, "ms_per_commit": results}
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
