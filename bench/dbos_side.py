"""The DBOS Transact side of every workload, on its own system database.

Run by the suite in a fresh process per workload and backend (DBOS is a
process-wide singleton). DBOS runs as it ships, with its defaults, except
where a default would only measure a sleep: queues poll every
:data:`QUEUE_POLL_S` seconds instead of once a second.

Timers: a sleeping DBOS workflow (``DBOS.sleep``) holds a thread in a live
process, so it has no tick to measure. The DBOS feature that keeps a
waiting workflow as a row until it is due is a delayed enqueue; its queue
poll is the counterpart of a stateshift tick, and the timer workload drives
that poll by hand (DBOS's own claim and dispatch calls, as its queue thread
makes them).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from dbos import DBOS, DBOSClient, SetEnqueueOptions, SetWorkflowID

from bench import harness
from bench.common import POSTGRES_URL, progress
from bench.harness import Job, percentile, repeat, say, spawn, summarize

QUEUE_POLL_S = 0.05
APP_NAME = "ssbench"


# --- the workflows -----------------------------------------------------------


@DBOS.step()
def add_one(x: int) -> int:
    return x + 1


@DBOS.workflow()
def one_step(x: int) -> int:
    return add_one(x)


@DBOS.workflow()
def ten_steps(x: int) -> int:
    for _ in range(10):
        x = add_one(x)
    return x


@DBOS.workflow()
def no_steps(x: int) -> int:
    return x


_done_lock = threading.Lock()


@DBOS.workflow()
def queued(x: int) -> int:
    result = add_one(x)
    with _done_lock:
        say(sys.stdout, "DONE")
    return result


_stalled = {"count": 0, "target": 0, "phase": 2}
_stall_lock = threading.Lock()


@DBOS.step()
def stall(x: int) -> int:
    if _stalled["phase"] == 1:
        with _stall_lock:
            _stalled["count"] += 1
            if _stalled["count"] == _stalled["target"]:
                say(sys.stdout, "STALLED")
        time.sleep(3_600)  # until the kill -9
    return x


@DBOS.workflow()
def crashing(x: int) -> int:
    return add_one(stall(add_one(x)))


# --- databases and launch -------------------------------------------------------


@contextmanager
def system_database(backend: str) -> Iterator[str]:
    """The URL of an empty DBOS system database, dropped afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="dbos-bench-") as folder:
            yield f"sqlite:///{folder}/dbos.sqlite"
        return
    import psycopg

    name = f"bench_dbos_{uuid.uuid4().hex[:10]}"
    base, _, _ = POSTGRES_URL.rpartition("/")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def launch(url: str, executor_id: str | None = None) -> DBOS:
    config: dict[str, Any] = {
        "name": APP_NAME,
        "system_database_url": url,
        "log_level": "WARNING",
        "application_version": "bench",
    }
    if executor_id is not None:
        config["executor_id"] = executor_id
    dbos = DBOS(config=config)  # type: ignore[arg-type]
    DBOS.launch()
    return dbos


@contextmanager
def launched(backend: str) -> Iterator[tuple[DBOS, str]]:
    with system_database(backend) as url:
        dbos = launch(url)
        try:
            yield dbos, url
        finally:
            DBOS.destroy()


# --- single-process workloads --------------------------------------------------


def timed_ms(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000.0


def w_one_step(job: Job) -> dict[str, Any]:
    count = job.sizes["one_step"]
    with launched(job.backend):
        for i in range(20):
            one_step(i)

        def run(_: int) -> dict[str, float]:
            samples = [timed_ms(one_step, i) for i in range(count)]
            return {
                "p50_ms": percentile(samples, 0.5),
                "p99_ms": percentile(samples, 0.99),
            }

        return repeat(job, run)


def w_ten_step(job: Job) -> dict[str, Any]:
    count = job.sizes["ten_step"]
    with launched(job.backend):
        for i in range(5):
            ten_steps(i)

        def run(_: int) -> dict[str, float]:
            # Interleaved, so a noisy neighbour slows both alike.
            one, ten = [], []
            for i in range(count):
                one.append(timed_ms(one_step, i))
                ten.append(timed_ms(ten_steps, i))
            one_ms, ten_ms = percentile(one, 0.5), percentile(ten, 0.5)
            return {
                "workflow_ms": ten_ms,
                "per_step_ms": (ten_ms - one_ms) / 9.0,
            }

        return repeat(job, run)


def w_idempotent(job: Job) -> dict[str, Any]:
    # DBOS's idempotency is a workflow id: a second call with the same id
    # returns the recorded result without running the function again.
    count = job.sizes["calls"]
    with launched(job.backend):

        def keyed(key: str) -> None:
            with SetWorkflowID(key):
                no_steps(1)

        def run(index: int) -> dict[str, float]:
            keys = [f"r{index}-{i}" for i in range(count)]
            plain = [timed_ms(add_one, i) for i in range(count)]
            first = [timed_ms(keyed, key) for key in keys]
            again = [timed_ms(keyed, key) for key in keys]
            return {
                "plain_us": percentile(plain, 0.5) * 1000.0,
                "first_ms": percentile(first, 0.5),
                "repeat_ms": percentile(again, 0.5),
            }

        return repeat(job, run)


# --- timers: delayed workflows and a hand-driven poll ------------------------------


def poll(dbos: DBOS, queue: Any) -> int:
    """One tick: make due delayed workflows runnable, claim, run, wait for them.

    These are the calls DBOS's background-jobs thread and its queue thread
    make, one after the other.
    """
    from dbos._core import execute_dequeued_workflow
    from dbos._utils import GlobalParams, generate_uuid

    dbos._sys_db.transition_delayed_workflows()
    owner = generate_uuid()
    ids, _ = dbos._sys_db.start_queued_workflows(
        queue,
        GlobalParams.executor_id,
        GlobalParams.app_version,
        None,
        0,
        owner_xid=owner,
    )
    if not ids:
        return 0
    statuses = dbos._sys_db.get_workflow_statuses(ids)
    handles = [execute_dequeued_workflow(dbos, s, owner) for s in statuses]
    for handle in handles:
        handle.get_result()
    return len(ids)


def top_up(dbos: DBOS, waiting: int, target: int) -> int:
    """Enqueue workflows delayed by a day until ``target`` are waiting.

    Setting up is not what is measured, so it goes in large transactions.
    """
    client = DBOSClient(
        system_database_engine=dbos._sys_db.engine, application_name=APP_NAME
    )
    options: Any = {
        "queue_name": "timers",
        "workflow_name": one_step.dbos_function_name,  # type: ignore[attr-defined]
        "app_version": "bench",
        "delay_seconds": 86_400,
    }
    while waiting < target:
        batch = min(1_000, target - waiting)
        with dbos._sys_db.engine.begin() as connection:
            for i in range(waiting, waiting + batch):
                client.enqueue_in_transaction(connection, options, i)
        waiting += batch
    return waiting


def w_timers(job: Job) -> dict[str, Any]:
    sizes, due = job.sizes, job.sizes["timers_due"]
    with launched(job.backend) as (dbos, _):
        # The queue thread must not poll behind our back: a day between polls.
        queue = DBOS.register_queue("timers", polling_interval_sec=86_400)
        dbos._background_jobs_stop_event.set()
        waiting = 0
        metrics: dict[str, Any] = {}
        for label in ("small", "large"):
            progress(f"dbos timers/{job.backend}: {sizes['timers_' + label]} waiting")
            waiting = top_up(dbos, waiting, sizes["timers_" + label])
            idle, wake = [], []
            for _ in range(job.repeats):
                idle.append(timed_ms(poll, dbos, queue))
                with SetEnqueueOptions(delay_seconds=1.0):
                    for i in range(due):
                        queue.enqueue(one_step, i)
                time.sleep(1.1)
                started = time.perf_counter()
                woken = poll(dbos, queue)
                wake.append((time.perf_counter() - started) * 1000.0)
                if woken != due:
                    raise RuntimeError(f"a poll woke {woken}, expected {due}")
            metrics[f"idle_{label}_ms"] = summarize(idle)
            metrics[f"wake_{label}_ms"] = summarize(wake)
        return metrics


# --- queue: one or two worker processes ------------------------------------------


def w_queue(job: Job) -> dict[str, Any]:
    count = job.sizes["queue"]
    metrics: dict[str, Any] = {}
    for workers in (1, 2):
        runs = []
        for index in range(job.repeats):
            with system_database(job.backend) as url:
                runs.append(count / queue_run(url, workers, count))
            progress(f"dbos queue/{job.backend} {workers} worker(s) run {index + 1}")
        metrics[f"wf_per_s_{workers}w"] = summarize(runs)
    return metrics


def queue_run(url: str, workers: int, count: int) -> float:
    """Seconds from the first enqueue until ``count`` workflows are done."""
    processes = []
    for k in range(workers):
        # One at a time: the first one creates the schema.
        process = spawn("bench.dbos_side", "_worker", "--url", url, "--id", f"q{k}")
        harness.expect(process, "READY")
        processes.append(process)
    try:
        done = harness.count_lines(processes, "DONE")
        client = DBOSClient(system_database_url=url, application_name=APP_NAME)
        options = {
            "queue_name": "bench",
            "workflow_name": "queued",
            "app_version": "bench",
        }
        started = time.perf_counter()
        for i in range(count):
            client.enqueue(options, i)  # type: ignore[arg-type]
        harness.wait_count(done, count, timeout_s=120)
        elapsed = time.perf_counter() - started
        client.destroy()
        return elapsed
    finally:
        for process in processes:
            harness.stop(process)


# --- crash recovery -------------------------------------------------------------


def w_crash(job: Job) -> dict[str, Any]:
    count = job.sizes["crash"]

    def run(_: int) -> dict[str, float]:
        with system_database(job.backend) as url:
            args = ("_crasher", "--url", url, "--count", str(count))
            victim = spawn("bench.dbos_side", *args, "--phase", "1")
            harness.expect(victim, "STALLED")
            victim.kill()  # SIGKILL: no clean-up runs
            victim.wait()

            started = time.perf_counter()
            survivor = spawn("bench.dbos_side", *args, "--phase", "2")
            line = harness.expect(survivor, "DONE", timeout_s=600)
            elapsed = time.perf_counter() - started
            harness.stop(survivor)
            return {"recovery_s": elapsed, "in_process_s": float(line.split()[1])}

    return repeat(job, run)


def crasher(url: str, count: int, phase: int) -> None:
    _stalled.update(phase=phase, target=count)
    started = time.perf_counter()
    launch(url, executor_id="crash-worker")
    if phase == 1:
        for i in range(count):
            with SetWorkflowID(f"crash-{i}"):
                DBOS.start_workflow(crashing, i)
        time.sleep(3_600)
    # DBOS recovers this executor's pending workflows by itself at launch.
    for i in range(count):
        DBOS.retrieve_workflow(f"crash-{i}").get_result()
    say(sys.stdout, f"DONE {time.perf_counter() - started:.6f}")
    DBOS.destroy()


def worker(url: str, executor_id: str) -> None:
    launch(url, executor_id=executor_id)
    DBOS.register_queue("bench", polling_interval_sec=QUEUE_POLL_S)
    say(sys.stdout, "READY")
    sys.stdin.read()  # until the runner closes our stdin
    DBOS.destroy()


WORKLOADS = {
    "one_step": w_one_step,
    "ten_step": w_ten_step,
    "queue": w_queue,
    "timers": w_timers,
    "crash": w_crash,
    "idempotent": w_idempotent,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        parser = argparse.ArgumentParser()
        parser.add_argument("role")
        parser.add_argument("--url", required=True)
        parser.add_argument("--id", default="local")
        parser.add_argument("--count", type=int, default=0)
        parser.add_argument("--phase", type=int, default=2)
        args = parser.parse_args()
        if args.role == "_worker":
            worker(args.url, args.id)
        else:
            crasher(args.url, args.count, args.phase)
        os._exit(0)
    harness.child_main("dbos", WORKLOADS)


if __name__ == "__main__":
    main()
