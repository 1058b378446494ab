"""State operation rates as ratios to the commit floor of the same store.

Usage::

    PYTHONPATH=src python bench/state_ops.py [--store URL] [--seconds 2]

For each backend it measures, in one run: the commit floor (one row
inserted per write transaction, straight through the store), then ``get``,
``put``, ``update`` and an entity operation, uncontended (one process,
distinct keys) and contended (two processes on one key). It prints a table
and writes ``bench/results/state.json``. Not run by the tests.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).parent / "results" / "state.json"


class Tally:
    def __init__(self) -> None:
        self.count = 0

    def increment(self) -> int:
        self.count += 1
        return self.count


def _app(config: dict[str, Any]) -> Any:
    import stateshift as ss

    app = ss.App(**config)
    app.entity(name="Tally")(Tally)
    return app


def _rate(operation: Callable[[int], object], seconds: float) -> float:
    """Operations per second of ``operation(i)`` over about ``seconds``."""
    done = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        operation(done)
        done += 1
    return done / (time.perf_counter() - started)


def _commit_floor(app: Any, seconds: float) -> float:
    store = app.store
    with store.transaction() as tx:
        tx.execute("CREATE TABLE IF NOT EXISTS {p}bench_floor (k TEXT PRIMARY KEY)")
    run = uuid.uuid4().hex[:8]

    def commit(i: int) -> None:
        with store.transaction() as tx:
            tx.execute("INSERT INTO {p}bench_floor (k) VALUES (?)", (f"{run}-{i}",))

    rate = _rate(commit, seconds)
    with store.transaction() as tx:
        tx.execute("DROP TABLE {p}bench_floor")
    return rate


def _operations(
    app: Any, key: Callable[[int], str]
) -> dict[str, Callable[[int], object]]:
    ns = app.state("bench")
    return {
        "get": lambda i: ns.get(key(i)),
        "put": lambda i: ns.put(key(i), {"n": i}),
        "update": lambda i: ns.update(
            key(i), lambda v: {"n": (v or {"n": 0})["n"] + 1}
        ),
        "entity": lambda i: app.entity(Tally, key(i)).increment(),
    }


def _worker(config: dict[str, Any], name: str, seconds: float, queue: Any) -> None:
    app = _app(config)
    operation = _operations(app, lambda i: "hot")[name]
    queue.put(_rate(operation, seconds))
    app.close()


def _contended(config: dict[str, Any], name: str, seconds: float) -> float:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [
        context.Process(target=_worker, args=(config, name, seconds, queue))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    rates = [queue.get(timeout=seconds * 20 + 30) for _ in workers]
    for worker in workers:
        worker.join()
    return float(sum(rates))


def measure(config: dict[str, Any], seconds: float) -> dict[str, Any]:
    app = _app(config)
    ns = app.state("bench")
    for i in range(200):
        ns.put(f"k{i}", {"n": i})
    ns.put("hot", {"n": 0})
    floor = _commit_floor(app, seconds)
    results: dict[str, Any] = {"commit_floor_per_s": round(floor, 1), "ops": {}}
    for name, operation in _operations(app, lambda i: f"k{i % 200}").items():
        alone = _rate(operation, seconds)
        contended = _contended(config, name, seconds)
        results["ops"][name] = {
            "uncontended_per_s": round(alone, 1),
            "uncontended_ratio": round(alone / floor, 3),
            "contended_2proc_per_s": round(contended, 1),
            "contended_ratio": round(contended / floor, 3),
        }
    app.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--store", action="append", help="store URL (repeatable)")
    args = parser.parse_args()

    configs: dict[str, dict[str, Any]] = {}
    folder = tempfile.mkdtemp(prefix="stateshift-bench-")
    for url in args.store or [f"sqlite:///{folder}/bench.db", POSTGRES_URL]:
        if url.startswith("sqlite"):
            configs["sqlite"] = {"store": url}
        else:
            configs["postgresql"] = {"store": url, "schema": f"bench_{os.getpid()}"}

    report: dict[str, Any] = {"seconds_per_measure": args.seconds, "backends": {}}
    for backend, config in configs.items():
        try:
            report["backends"][backend] = measure(config, args.seconds)
        finally:
            if "schema" in config:
                import psycopg

                with psycopg.connect(config["store"], autocommit=True) as conn:
                    conn.execute(f'DROP SCHEMA IF EXISTS "{config["schema"]}" CASCADE')

    print(
        f"{'backend':<11}{'op':<8}{'alone/s':>10}{'x floor':>9}"
        f"{'2 proc/s':>10}{'x floor':>9}"
    )
    for backend, result in report["backends"].items():
        print(
            f"{backend:<11}{'commit':<8}{result['commit_floor_per_s']:>10.0f}{1:>9.2f}"
        )
        for name, row in result["ops"].items():
            print(
                f"{'':<11}{name:<8}{row['uncontended_per_s']:>10.0f}"
                f"{row['uncontended_ratio']:>9.2f}{row['contended_2proc_per_s']:>10.0f}"
                f"{row['contended_ratio']:>9.2f}"
            )
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
