"""Cost of the events patterns, next to the store's own commit floor.

Measures, on each backend asked for:

* the raw commit floor: one small row inserted per commit, in a loop;
* an idempotent call over a plain call (new keys, and replayed duplicates);
* queue throughput: enqueue rate, and messages run per second by one worker;
* outbox-to-broker latency: from ``app.publish`` until a NATS subscriber
  has the message, through ``app.relay_outbox(NatsJetStreamSink)``.

Usage::

    PYTHONPATH=src python bench/events_ops.py [--backends sqlite,postgresql]
        [--n 500] [--postgres postgresql://postgres@127.0.0.1:5432/test]

Prints a table and writes ``bench/results/events.json``. Not run in tests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import stateshift as ss
from stateshift.events.brokers import NatsJetStreamSink

RESULTS = Path(__file__).resolve().parent / "results" / "events.json"
NATS_URL = "nats://127.0.0.1:4222"


def _config(backend: str, postgres: str, folder: Path) -> dict[str, Any]:
    if backend == "sqlite":
        return {"store": f"sqlite:///{folder / 'bench.db'}"}
    return {"store": postgres, "schema": f"bench_{uuid.uuid4().hex[:8]}"}


def _drop(config: dict[str, Any]) -> None:
    if "schema" in config:
        import psycopg

        with psycopg.connect(config["store"], autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{config["schema"]}" CASCADE')


def _per_op_ms(started: float, n: int) -> float:
    return (time.perf_counter() - started) * 1000.0 / n


def commit_floor(app: ss.App, n: int) -> float:
    with app.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}bench_floor (k TEXT PRIMARY KEY, v INTEGER)")
    started = time.perf_counter()
    for i in range(n):
        with app.store.transaction() as tx:
            tx.execute("INSERT INTO {p}bench_floor (k, v) VALUES (?, ?)", (str(i), i))
    return _per_op_ms(started, n)


def idempotency(app: ss.App, n: int) -> dict[str, float]:
    def plain(event: dict[str, Any]) -> dict[str, Any]:
        return {"ok": event["id"]}

    wrapped = app.idempotent(key="id", name="bench")(plain)
    events = [{"id": f"e{i}", "amount": i} for i in range(n)]

    started = time.perf_counter()
    for event in events:
        plain(event)
    plain_ms = _per_op_ms(started, n)

    started = time.perf_counter()
    for event in events:
        wrapped(event)
    first_ms = _per_op_ms(started, n)

    started = time.perf_counter()
    for event in events:
        wrapped(event)
    replay_ms = _per_op_ms(started, n)
    return {
        "plain_call_ms": plain_ms,
        "idempotent_first_call_ms": first_ms,
        "idempotent_duplicate_call_ms": replay_ms,
        "overhead_first_call_ms": first_ms - plain_ms,
    }


def queue_throughput(app: ss.App, n: int) -> dict[str, float]:
    q = app.queue("bench")

    @q.task
    def task(i: int) -> None:
        pass

    started = time.perf_counter()
    for i in range(n):
        q.enqueue(task, i)
    enqueue_seconds = time.perf_counter() - started

    started = time.perf_counter()
    ran = 0
    while ran < n:
        ran += q.work(60, batch_size=50)
    run_seconds = time.perf_counter() - started
    return {
        "enqueue_per_second": n / enqueue_seconds,
        "run_per_second": n / run_seconds,
    }


def outbox_to_nats(app: ss.App, n: int) -> dict[str, float] | None:
    try:
        import nats
    except ModuleNotFoundError:
        return None
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    stream = prefix.rstrip(".").upper()
    received: dict[str, float] = {}
    arrived = threading.Event()
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def setup() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2)
        await nc.jetstream().add_stream(name=stream, subjects=[prefix + ">"])

        async def on_message(msg: Any) -> None:
            received[msg.headers["Nats-Msg-Id"]] = time.perf_counter()
            arrived.set()

        await nc.subscribe(prefix + ">", cb=on_message)
        state["nc"] = nc

    def run_loop() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(setup())
        except Exception as exc:
            state["error"] = exc
        ready.set()
        if "error" not in state:
            loop.run_forever()

    thread = threading.Thread(target=run_loop, daemon=True)
    thread.start()
    ready.wait(10)
    if "error" in state:
        return None
    sink = NatsJetStreamSink(NATS_URL, subject_prefix=prefix)
    latencies = []
    try:
        for i in range(n):
            arrived.clear()
            started = time.perf_counter()
            message_id = app.publish("orders", {"n": i})
            app.relay_outbox(sink)
            arrived.wait(5)
            latencies.append((received[message_id] - started) * 1000.0)
    finally:
        sink.close()

        async def teardown() -> None:
            await state["nc"].jetstream().delete_stream(stream)
            await state["nc"].close()

        asyncio.run_coroutine_threadsafe(teardown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p95_ms": latencies[int(len(latencies) * 0.95) - 1],
    }


def run_backend(backend: str, n: int, postgres: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        config = _config(backend, postgres, Path(folder))
        app = ss.App(**config)
        try:
            return {
                "commit_floor_ms": commit_floor(app, n),
                "idempotency": idempotency(app, n),
                "queue": queue_throughput(app, n),
                "outbox_to_nats": outbox_to_nats(app, min(n, 200)),
            }
        finally:
            app.close()
            _drop(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument(
        "--postgres", default="postgresql://postgres@127.0.0.1:5432/test"
    )
    args = parser.parse_args()
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "n": args.n,
        "backends": {},
    }
    for backend in args.backends.split(","):
        results["backends"][backend] = run_backend(backend, args.n, args.postgres)

    print(f"{'measure':<38}" + "".join(f"{b:>14}" for b in results["backends"]))
    rows = [
        ("raw commit floor (ms/commit)", lambda r: r["commit_floor_ms"]),
        ("plain call (ms)", lambda r: r["idempotency"]["plain_call_ms"]),
        (
            "idempotent call, new key (ms)",
            lambda r: r["idempotency"]["idempotent_first_call_ms"],
        ),
        (
            "idempotent call, duplicate (ms)",
            lambda r: r["idempotency"]["idempotent_duplicate_call_ms"],
        ),
        ("queue enqueue (msg/s)", lambda r: r["queue"]["enqueue_per_second"]),
        ("queue run, one worker (msg/s)", lambda r: r["queue"]["run_per_second"]),
        (
            "outbox -> NATS p50 (ms)",
            lambda r: (r["outbox_to_nats"] or {}).get("p50_ms"),
        ),
        (
            "outbox -> NATS p95 (ms)",
            lambda r: (r["outbox_to_nats"] or {}).get("p95_ms"),
        ),
    ]
    for label, pick in rows:
        cells = []
        for result in results["backends"].values():
            value = pick(result)
            cells.append(f"{value:>14.3f}" if value is not None else f"{'n/a':>14}")
        print(f"{label:<38}" + "".join(cells))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
