"""Co-location: a workflow step on one shard against one that crosses shards.

A "step" here is what the engine's checkpoint commit does for a step that
touches one customer's data: read the entity and a state item, write the
state item and the step's checkpoint. Co-located, all four rows share the
customer's partition key, so the step is one transaction on one shard (and
atomic). Crossing shards, the entity and state live under another key on
another shard: the step needs a transaction on each, and is no longer
atomic. Rows go through the router (policy check, shard choice, forwarding
lookup) into the probe table, on two SQLite files or two PostgreSQL
databases.

Run: ``python -m bench.placement`` (add ``--steps N --repeats R``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import POSTGRES_URL, print_table, progress, timed_runs, write_results
from stateshift.config import load_settings
from stateshift.placement import Placement, ShardMap
from stateshift.placement.router import Routed

PAYLOAD = b"x" * 200


@contextmanager
def two_shards(backend: str) -> Iterator[list[str]]:
    """Two empty shards of one region, removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ss-bench-") as folder:
            yield [f"sqlite:///{folder}/a.db", f"sqlite:///{folder}/b.db"]
        return
    import psycopg

    names = [f"bench_{uuid.uuid4().hex[:8]}_{i}" for i in range(2)]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        for name in names:
            connection.execute(f'CREATE DATABASE "{name}"')
    try:
        parts = urlsplit(POSTGRES_URL)
        yield [urlunsplit(parts._replace(path=f"/{name}")) for name in names]
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            for name in names:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _touch(routed: Routed, key: str, item: str, write: bool) -> None:
    queries = routed.store.queries("placement")
    routed.tx.fetchone(queries["probe_get"], (key, item))
    if write:
        routed.tx.execute(queries["probe_put"], (key, item, "", PAYLOAD))


def co_located_ms(placement: Placement, key: str, steps: int) -> float:
    """One transaction per step: entity, state and checkpoint under one key."""
    started = time.perf_counter()
    for step in range(steps):
        with placement.transaction(key) as routed:
            _touch(routed, key, "entity", write=False)
            _touch(routed, key, "state", write=True)
            routed.tx.execute(
                routed.store.queries("placement")["probe_put"],
                (key, f"checkpoint-{step % 50}", "", PAYLOAD),
            )
    return (time.perf_counter() - started) * 1000.0 / steps


def cross_shard_ms(placement: Placement, key: str, other: str, steps: int) -> float:
    """Two transactions per step: the data lives under a key on another shard."""
    started = time.perf_counter()
    for step in range(steps):
        with placement.transaction(other) as routed:
            _touch(routed, other, "entity", write=False)
            _touch(routed, other, "state", write=True)
        with placement.transaction(key) as routed:
            routed.tx.execute(
                routed.store.queries("placement")["probe_put"],
                (key, f"checkpoint-{step % 50}", "", PAYLOAD),
            )
    return (time.perf_counter() - started) * 1000.0 / steps


def keys_on_two_shards(shard_map: ShardMap) -> tuple[str, str]:
    """A key on the first shard, and one on the second."""
    first = next(
        f"wf-{i}" for i in range(1000) if shard_map.shard_for(f"wf-{i}") == "s0"
    )
    second = next(
        f"cu-{i}" for i in range(1000) if shard_map.shard_for(f"cu-{i}") == "s1"
    )
    return first, second


def measure(placement: Placement, steps: int, repeats: int) -> dict[str, Any]:
    """Both kinds of step on one placement, warmed up first."""
    key, other = keys_on_two_shards(placement.maps["eu"])
    co_located_ms(placement, key, 20)
    cross_shard_ms(placement, key, other, 20)
    return {
        "co_located": timed_runs(lambda: co_located_ms(placement, key, steps), repeats),
        "cross_shard": timed_runs(
            lambda: cross_shard_ms(placement, key, other, steps), repeats
        ),
    }


def run(steps: int, repeats: int) -> dict[str, Any]:
    """Measure both kinds of step on both backends."""
    results: dict[str, Any] = {}
    for backend in ("sqlite", "postgresql"):
        progress(f"placement on {backend}: {repeats} runs of {steps} steps")
        with two_shards(backend) as urls:
            settings = load_settings({"store": urls[0]})
            placement = Placement(settings, regions={"eu": urls}, region="eu")
            try:
                results[backend] = measure(placement, steps, repeats)
            finally:
                placement.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    results = run(args.steps, args.repeats)
    rows = []
    for backend, figures in results.items():
        co, cross = figures["co_located"]["median"], figures["cross_shard"]["median"]
        rows.append([backend, co, cross, cross / co])
    print_table(
        "A step's commit: co-located (one shard) against crossing two shards",
        ["backend", "co-located ms", "cross-shard ms", "ratio"],
        rows,
    )
    path = write_results(
        "placement", {"steps_per_run": args.steps, "ms_per_step": results}
    )
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
