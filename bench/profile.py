"""Where the time goes: the stateshift side of one workload under cProfile.

Run: ``python -m bench.profile WORKLOAD --backend B --scale S``. The runner
starts it, in a fresh process, for every workload with an unmet target, and
the docs print one line from its answer. Each profile is the workload's
stateshift work done in this one process (no worker processes, smaller
sizes): the top functions by their own time, and how many SQL statements
and transactions each operation (a workflow, a woken workflow, a call)
cost. cProfile slows Python code down, so its milliseconds are higher than
the workload's; the shares and the counts are what to read.

The last line of standard output is one JSON object, as for the workloads.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench.common import fresh_store_config
from bench.harness import SCALES

# Operations profiled per workload and scale; small, the profile is a sample.
SIZES = {
    "quick": {"workflows": 50, "calls": 200, "waiting": 200, "due": 50},
    "full": {"workflows": 200, "calls": 500, "waiting": 1_000, "due": 100},
}
TOP = 5
TRANSACTION_METHODS = ("transaction", "read", "raw_transaction")
SRC = str(Path(__file__).resolve().parent.parent / "src")


class Counts:
    """Store transactions opened while counting is on."""

    def __init__(self) -> None:
        self.on = False
        self.transactions = 0


@contextmanager
def counting() -> Iterator[Counts]:
    """Count the store's transactions (this process only).

    Statements are counted from the profile itself: the calls of the
    database driver's ``execute`` (BEGIN and COMMIT included).
    """
    from stateshift.store.base import Store

    counts = Counts()
    patched: list[tuple[type, str, Any]] = []

    def wrap(cls: type, name: str) -> None:
        original = cls.__dict__[name]

        def counted(*args: Any, **kwargs: Any) -> Any:
            if counts.on:
                counts.transactions += 1
            return original(*args, **kwargs)

        patched.append((cls, name, original))
        setattr(cls, name, counted)

    for store_class in [Store, *_subclasses(Store)]:
        for name in TRANSACTION_METHODS:
            if name in store_class.__dict__:
                wrap(store_class, name)
    try:
        yield counts
    finally:
        for cls, name, original in reversed(patched):
            setattr(cls, name, original)


def _subclasses(cls: type) -> list[type]:
    # Importing both backends registers their classes as subclasses.
    import stateshift.store.postgres  # noqa: F401
    import stateshift.store.sqlite  # noqa: F401

    found: list[type] = []
    todo: list[type] = list(cls.__subclasses__())
    while todo:
        sub = todo.pop()
        found.append(sub)
        todo += sub.__subclasses__()
    return found


def measure(
    work: Callable[[], object], operations: int, counts: Counts
) -> dict[str, Any]:
    """Profile ``work`` (``operations`` operations); the top and the counts."""
    profiler = cProfile.Profile()
    counts.on = True
    started = time.perf_counter()
    profiler.enable()
    try:
        work()
    finally:
        profiler.disable()
        counts.on = False
    elapsed = time.perf_counter() - started
    stats = pstats.Stats(profiler, stream=io.StringIO())
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    rows = sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda item: item[1][2],
        reverse=True,
    )
    statements = sum(calls for key, (_, calls, _, _, _) in rows if is_statement(key))
    driver = sum(own for key, (_, _, own, _, _) in rows if in_driver(key))
    top = [
        {"function": describe(key), "share": own / total if total else 0.0}
        for key, (_, _, own, _, _) in rows[:TOP]
    ]
    return {
        "operations": operations,
        "ms_per_op": elapsed * 1000.0 / operations,
        "statements_per_op": statements / operations,
        "transactions_per_op": counts.transactions / operations,
        "driver_share": driver / total if total else 0.0,
        "top": top,
    }


def is_statement(key: tuple[str, int, str]) -> bool:
    """A call that sends one statement to the database (sqlite3, psycopg)."""
    filename, _, name = key
    if filename == "~":
        return name.startswith(("<method 'execute", "<method 'executemany")) and (
            "'sqlite3." in name
        )
    return filename.endswith("psycopg/cursor.py") and name in (
        "execute",
        "executemany",
    )


def in_driver(key: tuple[str, int, str]) -> bool:
    """Own time spent in the database driver (and so, mostly, the database)."""
    filename, _, name = key
    if filename == "~":
        return "'sqlite3." in name
    return "/psycopg/" in filename or "/psycopg_pool/" in filename


def describe(key: tuple[str, int, str]) -> str:
    """``stateshift/workflows/_runner.py:run_due`` or ``sqlite3 execute``."""
    filename, _, name = key
    if filename == "~":  # a built-in: "<method 'execute' of 'sqlite3...' objects>"
        return name.strip("<>{}").replace("method ", "").replace(" objects", "")
    if filename.startswith(SRC):
        filename = filename[len(SRC) + 1 :]
    else:
        filename = "/".join(filename.rsplit("/", 2)[-2:])
    return f"{filename}:{name}"


# --- one function per workload: set up, then measure the stateshift work --------


def p_one_step(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    n = sizes["workflows"]
    for i in range(10):
        app.run(wf.one_step, i)
    with counting() as counts:
        return measure(lambda: [app.run(wf.one_step, i) for i in range(n)], n, counts)


def p_ten_step(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    n = max(sizes["workflows"] // 4, 10)
    for i in range(5):
        app.run(wf.ten_steps, i)
    with counting() as counts:
        answer = measure(
            lambda: [app.run(wf.ten_steps, i) for i in range(n)], n, counts
        )
    answer["unit"] = "ten-step workflow"
    return answer


def p_queue(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    n = sizes["workflows"]
    queue = app.queue("bench")
    for i in range(5):  # imports and caches on first use stay out of the profile
        queue.enqueue(wf.queued, i)
    app.run_until_idle()

    def work() -> None:
        for i in range(n):
            queue.enqueue(wf.queued, i)
        summary = app.run_until_idle()
        if summary.finished < n:
            raise RuntimeError(f"only {summary.finished} of {n} workflows finished")

    with counting() as counts:
        answer = measure(work, n, counts)
    answer["unit"] = "workflow, enqueued and run by the same process"
    return answer


def p_timers(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    for _ in range(sizes["waiting"]):
        app.run(wf.sleeper, 86_400)
    due = sizes["due"]
    for _ in range(due):
        app.run(wf.sleeper, 1.0)
    time.sleep(1.1)
    with counting() as counts:
        answer = measure(lambda: app.tick(30.0), due, counts)
    answer["unit"] = f"woken workflow, one tick, {sizes['waiting']:,} others waiting"
    return answer


def p_crash(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    # What the restarted worker does, minus its interpreter start: run the
    # pending three-step workflows to the end.
    n = sizes["workflows"]
    app.run(wf.crashing, 0)
    for i in range(n):
        app.start(wf.crashing, i, workflow_id=f"crash-{i}")
    with counting() as counts:
        answer = measure(app.run_until_idle, n, counts)
    answer["unit"] = "pending workflow run to the end (no process start)"
    return answer


def p_idempotent(app: Any, ss: Any, wf: Any, sizes: dict[str, int]) -> dict[str, Any]:
    n = sizes["calls"]
    handler = app.idempotent(key=lambda event: event["id"], ttl=3_600)(
        lambda event: int(event["n"]) + 1
    )
    for i in range(5):
        handler({"id": f"warm-{i}", "n": i})
    events = [{"id": f"p-{i}", "n": i} for i in range(n)]
    with counting() as counts:
        answer = measure(lambda: [handler(e) for e in events], n, counts)
    answer["unit"] = "call with a new key"
    return answer


def p_cold_start(scale: str) -> dict[str, Any]:
    """Import times of a cold start (``-X importtime``), in a fresh interpreter."""
    import subprocess
    import tempfile

    from bench.cold import STATESHIFT_READY
    from bench.harness import child_env

    with tempfile.TemporaryDirectory(prefix="ss-cold-") as folder:
        script = STATESHIFT_READY.format(url=f"sqlite:///{folder}/cold.db")
        command = [sys.executable, "-X", "importtime", "-c", script]
        subprocess.run(command, capture_output=True, env=child_env(), check=True)
        started = time.perf_counter()
        done = subprocess.run(
            command, capture_output=True, text=True, env=child_env(), check=True
        )
        elapsed_ms = (time.perf_counter() - started) * 1000.0
    modules: list[tuple[int, int, str]] = []  # self µs, cumulative µs, name
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        own, total, name = (part.strip() for part in line[12:].split("|"))
        modules.append((int(own), int(total), name))
    own_total = sum(m[0] for m in modules)
    ours = [m for m in modules if m[2].split(".")[0] == "stateshift"]
    top = sorted(modules, reverse=True)[:TOP]
    return {
        "kind": "imports",
        "unit": "cold start (import + app + first handler ready)",
        "operations": 1,
        "ms_per_op": elapsed_ms,
        "modules": len(modules),
        "stateshift_modules": len(ours),
        "import_ms": own_total / 1000.0,
        "stateshift_import_ms": sum(m[0] for m in ours) / 1000.0,
        "top": [
            {"function": name, "ms": own / 1000.0, "share": own / own_total}
            for own, _, name in top
        ],
    }


PROFILES = {
    "one_step": p_one_step,
    "ten_step": p_ten_step,
    "queue": p_queue,
    "timers": p_timers,
    "crash": p_crash,
    "idempotent": p_idempotent,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile")
    parser.add_argument("workload", choices=sorted([*PROFILES, "cold_start"]))
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--scale", choices=sorted(SCALES), default="full")
    args = parser.parse_args()
    try:
        if args.workload == "cold_start":
            answer = p_cold_start(args.scale)
            answer["available"] = True
            sys.stdout.write(json.dumps(answer) + "\n")
            return
        import stateshift as ss
        from bench.stateshift_side import build

        with fresh_store_config(args.backend) as config:
            app = ss.App(**config)
            try:
                wf = build(app, ss, out=io.StringIO())
                answer = PROFILES[args.workload](app, ss, wf, SIZES[args.scale])
            finally:
                app.close()
        answer.setdefault("unit", "workflow")
        answer["available"] = True
    except Exception as error:  # the docs say so instead of the run failing
        traceback.print_exc()
        answer = {"available": False, "reason": f"failed: {error!r}"[:300]}
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
