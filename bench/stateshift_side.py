"""The stateshift side of every workload, written against the public API.

Each workload first checks that the parts of ``ss.App`` it uses exist; a
missing one makes it report "not available" with the missing names rather
than a number. Every figure comes from the public API only: ``App.run``
for a workflow started and finished here, ``App.tick`` for timers,
``App.queue(...).enqueue`` for queues, a restarted worker with the same
``worker_id`` for crash recovery.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

from bench import harness
from bench.common import fresh_store_config, progress
from bench.harness import Job, NotAvailable, percentile, repeat, say, spawn, summarize


def require(*names: str) -> Any:
    """The ``stateshift`` module, if ``ss.App`` has every method named."""
    import stateshift as ss

    app_class = getattr(ss, "App", None)
    if app_class is None:
        raise NotAvailable("stateshift has no App on this branch yet")
    missing = [name for name in names if not hasattr(app_class, name)]
    if missing:
        raise NotAvailable(f"stateshift.App has no {', '.join(missing)} yet")
    return ss


@contextmanager
def fresh_app(backend: str, **settings: Any) -> Iterator[Any]:
    """An ``ss.App`` on an empty store of ``backend``, closed afterwards."""
    import stateshift as ss

    with fresh_store_config(backend) as config:
        app = ss.App(**config, **settings)
        try:
            yield app
        finally:
            app.close()


def build(app: Any, ss: Any, phase: int = 2, out: Any = None) -> SimpleNamespace:
    """Register the benchmark's steps and workflows on ``app``."""
    stalled = threading.Event()

    @app.step()
    def add_one(x: int) -> int:
        return x + 1

    @app.step()
    def stall(x: int) -> int:
        if phase == 1:
            if not stalled.is_set():
                stalled.set()
                say(out, "STALLED")
            time.sleep(3_600)  # until the kill -9
        return x

    @app.workflow()
    def one_step(x: int) -> int:
        return add_one(x)

    @app.workflow()
    def ten_steps(x: int) -> int:
        for _ in range(10):
            x = add_one(x)
        return x

    @app.workflow()
    def queued(x: int) -> int:
        # One step, then the line the runner counts (as DBOS's side does).
        result = add_one(x)
        say(out, "DONE")
        return result

    @app.workflow()
    def sleeper(seconds: float) -> int:
        ss.sleep(seconds)
        return add_one(1)

    @app.workflow()
    def crashing(x: int) -> int:
        return add_one(stall(add_one(x)))

    return SimpleNamespace(**locals())


def timed_ms(fn: Any, *args: Any) -> float:
    started = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - started) * 1000.0


# --- workflows in one process --------------------------------------------------


def w_one_step(job: Job) -> dict[str, Any]:
    ss = require("step", "workflow", "run")
    count = job.sizes["one_step"]
    with fresh_app(job.backend) as app:
        wf = build(app, ss)
        for i in range(20):
            app.run(wf.one_step, i)

        def run(_: int) -> dict[str, float]:
            samples = [timed_ms(app.run, wf.one_step, i) for i in range(count)]
            return {
                "p50_ms": percentile(samples, 0.5),
                "p99_ms": percentile(samples, 0.99),
            }

        return repeat(job, run)


def w_ten_step(job: Job) -> dict[str, Any]:
    ss = require("step", "workflow", "run")
    count = job.sizes["ten_step"]
    with fresh_app(job.backend) as app:
        wf = build(app, ss)
        for i in range(5):
            app.run(wf.ten_steps, i)

        def run(_: int) -> dict[str, float]:
            one, ten = [], []
            for i in range(count):
                one.append(timed_ms(app.run, wf.one_step, i))
                ten.append(timed_ms(app.run, wf.ten_steps, i))
            one_ms, ten_ms = percentile(one, 0.5), percentile(ten, 0.5)
            return {"workflow_ms": ten_ms, "per_step_ms": (ten_ms - one_ms) / 9.0}

        return repeat(job, run)


def w_timers(job: Job) -> dict[str, Any]:
    ss = require("step", "workflow", "run", "tick", "status")
    sizes, due = job.sizes, job.sizes["timers_due"]
    with fresh_app(job.backend) as app:
        wf = build(app, ss)
        waiting = 0
        metrics: dict[str, Any] = {}
        for label in ("small", "large"):
            progress(f"stateshift timers/{job.backend}: {sizes['timers_' + label]}")
            while waiting < sizes["timers_" + label]:
                app.run(wf.sleeper, 86_400)
                waiting += 1
            idle, wake = [], []
            for _ in range(job.repeats):
                idle.append(timed_ms(app.tick, 30.0))
                handles = [app.run(wf.sleeper, 1.0) for _ in range(due)]
                time.sleep(1.1)
                wake.append(timed_ms(app.tick, 30.0))
                check_succeeded(app, ss, [h.workflow_id for h in handles])
            metrics[f"idle_{label}_ms"] = summarize(idle)
            metrics[f"wake_{label}_ms"] = summarize(wake)
        return metrics


def settle(app: Any, ss: Any, workflow_ids: list[str], timeout_s: float) -> None:
    """Wait until every workflow has succeeded; fail if one has not in time."""
    deadline = time.monotonic() + timeout_s
    for workflow_id in workflow_ids:
        while app.status(workflow_id).status != "succeeded":
            if time.monotonic() > deadline:
                check_succeeded(app, ss, [workflow_id])
            time.sleep(0.01)


def check_succeeded(app: Any, ss: Any, workflow_ids: list[str]) -> None:
    for workflow_id in workflow_ids:
        status = app.status(workflow_id).status
        if status != "succeeded":  # a StrEnum compares equal to its value
            raise RuntimeError(f"{workflow_id} is {status}, not succeeded")


def w_idempotent(job: Job) -> dict[str, Any]:
    require("idempotent")
    count = job.sizes["calls"]
    with fresh_app(job.backend) as app:

        def plain(event: dict[str, Any]) -> int:
            return int(event["n"]) + 1

        handler = app.idempotent(key=lambda event: event["id"], ttl=3_600)(plain)

        def run(index: int) -> dict[str, float]:
            events = [{"id": f"r{index}-{i}", "n": i} for i in range(count)]
            calls = [timed_ms(plain, e) for e in events]
            first = [timed_ms(handler, e) for e in events]
            again = [timed_ms(handler, e) for e in events]
            return {
                "plain_us": percentile(calls, 0.5) * 1000.0,
                "first_ms": percentile(first, 0.5),
                "repeat_ms": percentile(again, 0.5),
            }

        return repeat(job, run)


def w_state(job: Job) -> dict[str, Any]:
    require("state")
    count = job.sizes["calls"]
    with fresh_app(job.backend) as app:
        carts = app.state("bench")

        def update(key: str) -> None:
            item = carts.get(key)
            carts.put(key, {"n": item.value["n"] + 1}, expected_version=item.version)

        def run(index: int) -> dict[str, float]:
            keys = [f"r{index}-{i}" for i in range(count)]
            put = [timed_ms(carts.put, key, {"n": 0}) for key in keys]
            get = [timed_ms(carts.get, key) for key in keys]
            upd = [timed_ms(update, key) for key in keys]
            return {
                "put_ms": percentile(put, 0.5),
                "get_ms": percentile(get, 0.5),
                "update_ms": percentile(upd, 0.5),
            }

        return repeat(job, run)


class Counter:
    """The benchmark's entity: one integer attribute."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, amount: int) -> int:
        self.count += amount
        return self.count


def entity_ops(app: Any, key: str, count: int) -> float:
    """Milliseconds per ``Counter.add`` on ``key``, over ``count`` operations."""
    started = time.perf_counter()
    for _ in range(count):
        app.entity(Counter, key).add(1)
    return (time.perf_counter() - started) * 1000.0 / count


def w_entity(job: Job) -> dict[str, Any]:
    require("entity")
    count = job.sizes["calls"]

    def run(index: int) -> dict[str, float]:
        with fresh_store_config(job.backend) as config:
            import stateshift as ss

            app = ss.App(**config)
            app.entity(Counter)
            alone = entity_ops(app, f"alone-{index}", count)

            # Two processes on one key: every operation may meet a conflict.
            args = ["_entity", *store_args(config), "--count", str(count)]
            callers = [spawn("bench.stateshift_side", *args) for _ in range(2)]
            for caller in callers:
                harness.expect(caller, "READY")
            for caller in callers:
                say(caller.stdin, "GO")
            per_op = [float(harness.expect(c, "DONE").split()[1]) for c in callers]
            for caller in callers:
                harness.stop(caller)
            final = app.entity(Counter, "hot").get().count
            app.close()
            if final != 2 * count:
                raise RuntimeError(f"the hot counter ended at {final}, not {2 * count}")
            return {"uncontended_ms": alone, "contended_ms": max(per_op)}

    return repeat(job, run)


def entity_caller(config: dict[str, Any], count: int) -> None:
    import stateshift as ss

    app = ss.App(**config)
    app.entity(Counter)
    app.entity(Counter, "warm").add(1)
    say(sys.stdout, "READY")
    sys.stdin.readline()
    say(sys.stdout, f"DONE {entity_ops(app, 'hot', count):.6f}")
    app.close()


# --- queue: one or two worker processes ------------------------------------------


def w_queue(job: Job) -> dict[str, Any]:
    ss = require("step", "workflow", "queue", "run_until_idle", "status")
    count = job.sizes["queue"]
    metrics: dict[str, Any] = {}
    for workers in (1, 2):
        runs = []
        for index in range(job.repeats):
            with fresh_store_config(job.backend) as config:
                runs.append(count / queue_run(ss, config, workers, count))
            progress(f"stateshift queue/{job.backend} {workers}w run {index + 1}")
        metrics[f"wf_per_s_{workers}w"] = summarize(runs)
    return metrics


def store_args(config: dict[str, Any]) -> list[str]:
    return ["--store", config["store"], "--schema", config.get("schema", "")]


def queue_run(ss: Any, config: dict[str, Any], workers: int, count: int) -> float:
    """Seconds from the first enqueue until ``count`` workflows are done."""
    app = ss.App(**config)
    wf = build(app, ss)
    app.store.ensure_schema()  # before two workers race to create it
    processes = []
    for k in range(workers):
        args = ["_worker", *store_args(config), "--id", f"q{k}"]
        process = spawn("bench.stateshift_side", *args)
        harness.expect(process, "READY")
        processes.append(process)
    try:
        done = harness.count_lines(processes, "DONE")
        queue = app.queue("bench")
        started = time.perf_counter()
        # A message that starts a workflow starts it as "queue-<message id>".
        ids = [f"queue-{queue.enqueue(wf.queued, i)}" for i in range(count)]
        harness.wait_count(done, count, timeout_s=120)
        # Timed to the last DONE line, as DBOS's side is; the finishing
        # commit of the last workflows may land just after it.
        elapsed = time.perf_counter() - started
        settle(app, ss, ids, timeout_s=30)
        return elapsed
    finally:
        for process in processes:
            harness.stop(process)
        app.close()


def worker(config: dict[str, Any], worker_id: str) -> None:
    """A queue worker: run due work until the runner closes our stdin."""
    import stateshift as ss

    app = ss.App(**config, worker_id=worker_id)
    wf = build(app, ss, out=sys.stdout)
    app.queue("bench")  # a tick runs the messages of the queues declared
    # A process learns the task that starts an enqueued workflow only when it
    # enqueues one itself; a worker that never enqueues dead-letters the
    # messages ("no task named 'workflow:...'"). Until the engine registers it
    # with the workflow, the worker registers it the way enqueue does.
    from stateshift.events.queues import _task_for

    _task_for(app, wf.queued)
    closed = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        closed.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    say(sys.stdout, "READY")
    while not closed.is_set():
        app.run_until_idle()
        closed.wait(0.002)
    app.close()


# --- crash recovery ---------------------------------------------------------------


def w_crash(job: Job) -> dict[str, Any]:
    require("step", "workflow", "start", "run_until_idle", "status")
    count = job.sizes["crash"]

    def run(_: int) -> dict[str, float]:
        with fresh_store_config(job.backend) as config:
            args = ["_crasher", *store_args(config), "--count", str(count)]
            victim = spawn("bench.stateshift_side", *args, "--phase", "1")
            harness.expect(victim, "STALLED")
            victim.kill()  # SIGKILL: no clean-up runs
            victim.wait()

            started = time.perf_counter()
            survivor = spawn("bench.stateshift_side", *args, "--phase", "2")
            line = harness.expect(survivor, "DONE", timeout_s=600)
            elapsed = time.perf_counter() - started
            harness.stop(survivor)
            return {"recovery_s": elapsed, "in_process_s": float(line.split()[1])}

    return repeat(job, run)


def crasher(config: dict[str, Any], count: int, phase: int) -> None:
    import stateshift as ss

    started = time.perf_counter()
    app = ss.App(**config, worker_id="crash-worker")
    wf = build(app, ss, phase=phase, out=sys.stdout)
    ids = [f"crash-{i}" for i in range(count)]
    if phase == 1:
        for workflow_id in ids:
            app.start(wf.crashing, 1, workflow_id=workflow_id)
    # The restarted worker has the same id, so it reclaims its leases at once.
    app.run_until_idle()
    check_succeeded(app, ss, ids)
    say(sys.stdout, f"DONE {time.perf_counter() - started:.6f}")
    app.close()


WORKLOADS = {
    "one_step": w_one_step,
    "ten_step": w_ten_step,
    "queue": w_queue,
    "timers": w_timers,
    "crash": w_crash,
    "idempotent": w_idempotent,
    "state": w_state,
    "entity": w_entity,
}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1].startswith("_"):
        parser = argparse.ArgumentParser()
        parser.add_argument("role")
        parser.add_argument("--store", required=True)
        parser.add_argument("--schema", default="")
        parser.add_argument("--id", default="worker")
        parser.add_argument("--count", type=int, default=0)
        parser.add_argument("--phase", type=int, default=2)
        args = parser.parse_args()
        config: dict[str, Any] = {"store": args.store}
        if args.schema:
            config["schema"] = args.schema
        if args.role == "_worker":
            worker(config, args.id)
        elif args.role == "_entity":
            entity_caller(config, args.count)
        else:
            crasher(config, args.count, args.phase)
        os._exit(0)
    harness.child_main("stateshift", WORKLOADS)


if __name__ == "__main__":
    main()
