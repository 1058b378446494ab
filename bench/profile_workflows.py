"""Where a workflow's time goes: statements, transactions and time per workflow.

Counts every statement and transaction the store runs (by wrapping the
``Tx`` methods and ``Store._begin`` / ``execute_alone``) for four
workloads, and divides wall time by the commit floor measured first:

* ``one_step``: ``app.run`` of a one-step workflow;
* ``ten_step``: ``app.run`` of a ten-step workflow;
* ``wake``: a tick that wakes 100 of N sleeping workflows;
* ``recovery``: 200 workflows left pending (one of them running) by a
  worker that stopped, run by a worker with the same id and by another.

Run: ``PYTHONPATH=src python -m bench.profile_workflows [--backend sqlite]
[--sleepers 10000] [--profile]`` (``--profile`` prints the cProfile top).

Statements per workflow (transactions add BEGIN and COMMIT round trips on
PostgreSQL), before and after the claim was folded into one statement that
returns the placement and start and finish became lone statements:

==========================  =====================  =====================
workload                    before                 after
==========================  =====================  =====================
one step                    3 (2 transactions)     3 (no transaction)
ten steps                   12 (2 transactions)    12 (no transaction)
woken sleeper               6.03 (2.02 trans.)     4.02 (1.02 trans.)
recovery, 3 steps           7.8 (2.02 trans.)      6.04 (1.02 trans.)
==========================  =====================  =====================

Every workload is then bound by its commits (one per step, one for the
claim, one for the end), which cProfile shows as time inside sqlite3's
``fetchall`` or psycopg's ``execute``.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench import floor
from bench.common import fresh_store_config
from stateshift.store import base, postgres, sqlite


class Counts:
    """Statements by name and transactions, while counting is on."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        self.alone = 0
        self.names: dict[str, str] = {}

    def name(self, sql: str) -> str:
        found = self.names.get(sql)
        if found is None:
            found = " ".join(sql.split())[:60]
        return found

    def reset(self) -> None:
        self.statements.clear()
        self.transactions = self.alone = 0


COUNTS = Counts()


def _wrap_tx(cls: type[base.Tx]) -> None:
    for method in ("execute", "executemany", "fetchone", "fetchall"):
        original = getattr(cls, method)

        def wrapper(self: Any, sql: str, *args: Any, _o: Any = original) -> Any:
            COUNTS.statements[COUNTS.name(sql)] += 1
            return _o(self, sql, *args)

        setattr(cls, method, wrapper)


def _wrap_store(cls: type[base.Store]) -> None:
    begin = cls._begin  # type: ignore[attr-defined]
    alone = cls.execute_alone

    @contextmanager
    def counted_begin(self: Any, *, write: bool) -> Iterator[Any]:
        COUNTS.transactions += 1
        with begin(self, write=write) as tx:
            yield tx

    def counted_alone(self: Any, sql: str, params: Any = ()) -> Any:
        COUNTS.alone += 1
        COUNTS.statements["(alone) " + COUNTS.name(sql)] += 1
        return alone(self, sql, params)

    cls._begin = counted_begin  # type: ignore[attr-defined]
    cls.execute_alone = counted_alone  # type: ignore[method-assign]


def install() -> None:
    """Count statements and transactions from now on."""
    _wrap_tx(sqlite.SQLiteTx)
    _wrap_tx(postgres.PostgresTx)
    _wrap_store(sqlite.SQLiteStore)
    _wrap_store(postgres.PostgresStore)


def learn_names(app: Any) -> None:
    """Name statements after the named queries they come from."""
    for concept in ("workflows",):
        for name, sql in app.store.queries(concept).items():
            COUNTS.names[sql] = name


def report(label: str, seconds: float, per: int, floor_ms: float) -> None:
    ms = seconds * 1000.0 / per
    print(
        f"\n== {label}: {ms:.3f} ms per workflow = {ms / floor_ms:.2f}x floor; "
        f"{COUNTS.transactions / per:.2f} transactions + "
        f"{COUNTS.alone / per:.2f} lone statements per workflow"
    )
    total = sum(COUNTS.statements.values())
    print(f"   statements per workflow: {total / per:.2f}")
    for name, count in COUNTS.statements.most_common(14):
        print(f"   {count / per:8.2f}  {name}")


@contextmanager
def measured(label: str, per: int, floor_ms: float, profile: bool) -> Iterator[None]:
    profiler = cProfile.Profile() if profile else None
    COUNTS.reset()
    started = time.perf_counter()
    if profiler is not None:
        profiler.enable()
    try:
        yield
    finally:
        if profiler is not None:
            profiler.disable()
        report(label, time.perf_counter() - started, per, floor_ms)
        if profiler is not None:
            out = io.StringIO()
            stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
            stats.print_stats(22)
            print(out.getvalue())


def build(app: Any, ss: Any) -> Any:
    @app.step()
    def add_one(x: int) -> int:
        return x + 1

    @app.workflow()
    def one_step(x: int) -> int:
        return add_one(x)

    @app.workflow()
    def ten_steps(x: int) -> int:
        for _ in range(10):
            x = add_one(x)
        return x

    @app.workflow()
    def sleeper(seconds: float) -> int:
        ss.sleep(seconds)
        return add_one(1)

    @app.workflow()
    def three(x: int) -> int:
        return add_one(add_one(add_one(x)))

    return locals()


def runs(backend: str, count: int, floor_ms: float, profile: bool) -> None:
    import stateshift as ss

    with fresh_store_config(backend) as config:
        app = ss.App(**config)
        wf = build(app, ss)
        learn_names(app)
        for i in range(20):
            app.run(wf["ten_steps"], i)
        with measured("one_step via app.run", count, floor_ms, profile):
            for i in range(count):
                app.run(wf["one_step"], i)
        with measured("ten_step via app.run", count, floor_ms, profile):
            for i in range(count):
                app.run(wf["ten_steps"], i)
        app.close()


def wake(backend: str, sleepers: int, floor_ms: float, profile: bool) -> None:
    import stateshift as ss
    from stateshift.testing import ManualClock

    with fresh_store_config(backend) as config:
        clock = ManualClock()
        app = ss.App(**config, clock=clock)
        wf = build(app, ss)
        learn_names(app)
        started = time.perf_counter()
        for _ in range(sleepers):
            app.run(wf["sleeper"], 86_400)
        print(f"\n({sleepers} sleepers in {time.perf_counter() - started:.1f} s)")
        with measured("idle tick", 1, floor_ms, profile):
            app.run_until_idle()
        for _ in range(100):
            app.run(wf["sleeper"], 1.0)
        clock.advance(2.0)
        with measured(f"tick waking 100 of {sleepers}", 100, floor_ms, profile):
            summary = app.run_until_idle()
        assert summary.finished == 100, summary
        app.close()


def recovery(backend: str, count: int, floor_ms: float, profile: bool) -> None:
    import stateshift as ss

    for worker in ("same", "other"):
        with fresh_store_config(backend) as config:
            first = ss.App(**config, worker_id="w1", lease_seconds=0.5)
            wf = build(first, ss)
            ids = [f"r-{i}" for i in range(count)]
            for workflow_id in ids:
                first.start(wf["three"], 1, workflow_id=workflow_id)
            # Leave some of them running under w1's lease, as a kill would.
            engine = first._workflow_engine
            for _ in range(count // 4):
                engine.claim_next()
            first.close()
            if worker == "other":
                time.sleep(0.6)
            second = ss.App(**config, worker_id="w1" if worker == "same" else "w2")
            wf2 = build(second, ss)
            del wf2
            learn_names(second)
            label = f"recovery of {count} ({worker} worker id)"
            with measured(label, count, floor_ms, profile):
                summary = second.run_until_idle()
            assert summary.finished == count, summary
            second.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--sleepers", type=int, default=10_000)
    parser.add_argument("--only", default="runs,wake,recovery")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    floor_ms = floor_figure(args.backend)
    print(f"commit floor on {args.backend}: {floor_ms:.3f} ms")
    install()
    todo: dict[str, Callable[[], None]] = {
        "runs": lambda: runs(args.backend, args.count, floor_ms, args.profile),
        "wake": lambda: wake(args.backend, args.sleepers, floor_ms, args.profile),
        "recovery": lambda: recovery(args.backend, args.count, floor_ms, args.profile),
    }
    for name in args.only.split(","):
        todo[name]()


def floor_figure(backend: str) -> float:
    from stateshift.config import load_settings
    from stateshift.store import open_store

    with fresh_store_config(backend) as config:
        store = open_store(load_settings(config))
        try:
            floor.prepare(store)
            floor.commit_ms(store, 50)
            return floor.commit_ms(store, 300, start_id=1000)
        finally:
            store.close()


if __name__ == "__main__":
    main()
