"""SS2xx, orchestration: work that outlives the request that started it.

A serverless platform freezes or kills the process as soon as the reply
is sent, so threads, schedulers, fire-and-forget tasks and long waits do
not get to run, or run only while someone pays for idle compute.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from stateshift.analyze._context import ModuleContext
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule

_WORKERS = {
    "threading.Thread": "thread",
    "threading.Timer": "timer thread",
    "multiprocessing.Process": "process",
    "multiprocessing.Pool": "process pool",
    "multiprocessing.pool.ThreadPool": "thread pool",
    "concurrent.futures.ThreadPoolExecutor": "thread pool",
    "concurrent.futures.ProcessPoolExecutor": "process pool",
    "os.fork": "forked process",
    "_thread.start_new_thread": "thread",
}
_SCHEDULER_PREFIXES = (
    "apscheduler.schedulers.",
    "sched.scheduler",
    "schedule.every",
    "crontab.CronTab",
)


class BackgroundWork(Rule):
    """SS201: a thread, process or pool that outlives the request."""

    info = RuleInfo(
        rule_id="SS201",
        name="background-worker",
        title="Background thread, process or pool",
        severity=Severity.ERROR,
        why=(
            "After the response the platform freezes or stops the instance: a "
            "background thread stops mid-task, its in-memory work list is lost "
            "when the instance is recycled, and nothing retries it."
        ),
        fix=(
            "Hand the work to a durable queue (`app.queue(...)`) or start a "
            "workflow (`app.start(...)`); it is claimed by the next invocation "
            "and retried after a crash."
        ),
        example=(
            "@app.workflow()\n"
            "def process_order(order_id: str) -> None:\n"
            "    reserve_stock(order_id)   # an @app.step\n\n"
            'app.start(process_order, order_id, workflow_id=f"order-{order_id}")'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call):
                continue
            name = ctx.call_name(call) or ""
            kind = _WORKERS.get(name)
            if kind is None or _waited_for(ctx, call):
                continue
            yield Hit(call, f"`{name}` starts a {kind} that outlives the request")


def _waited_for(ctx: ModuleContext, call: ast.Call) -> bool:
    """True when the work is finished before the function returns: used in
    ``with`` (executors, pools), or the function joins it."""
    parent = ctx.parent(call)
    if isinstance(parent, ast.withitem):
        return True
    func = ctx.enclosing_function(call)
    if func is None:
        return False
    for other in ctx.calls_in(func):
        target = other.func
        if isinstance(target, ast.Attribute) and target.attr in ("join", "wait"):
            if _is_thread_join(other):
                return True
        if isinstance(target, ast.Attribute) and target.attr in ("result", "shutdown"):
            return True
        if (ctx.call_name(other) or "") in (
            "concurrent.futures.wait",
            "concurrent.futures.as_completed",
        ):
            return True
    return False


def _is_thread_join(call: ast.Call) -> bool:
    """``t.join()`` or ``t.join(5)``, not ``", ".join(parts)``."""
    assert isinstance(call.func, ast.Attribute)
    if isinstance(call.func.value, ast.Constant):
        return False
    if not call.args:
        return True
    return (
        len(call.args) == 1
        and isinstance(call.args[0], ast.Constant)
        and (isinstance(call.args[0].value, (int, float)))
    )


class Scheduler(Rule):
    """SS202: an in-process scheduler or cron."""

    info = RuleInfo(
        rule_id="SS202",
        name="in-process-scheduler",
        title="In-process scheduler",
        severity=Severity.ERROR,
        why=(
            "A scheduler inside the process only fires while an instance "
            "happens to be running: with no traffic there is no instance, and "
            "with ten instances every job runs ten times."
        ),
        fix=(
            "Let the platform's scheduler call `app.tick(budget=...)`, and "
            "express the recurring job as a workflow that waits with "
            "`ss.sleep(...)`, a durable timer that holds no compute."
        ),
        example=(
            "@app.workflow()\n"
            "def nightly_report() -> None:\n"
            "    while True:\n"
            "        build_report()          # an @app.step\n"
            "        ss.sleep(86_400)\n\n"
            "def on_schedule(event, context):    # every minute, from the platform\n"
            "    app.tick(budget=50.0)"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call):
                continue
            name = ctx.call_name(call) or ""
            if name.startswith(_SCHEDULER_PREFIXES):
                # ``schedule.every(10).minutes.do(job)``: report the outermost
                # piece only once, at ``every``.
                yield Hit(call, f"`{name}` runs jobs inside this process")


_SPAWNERS = {
    "asyncio.create_task",
    "asyncio.ensure_future",
    "create_task",
    "ensure_future",
}
_SPAWN_METHODS = {"create_task", "submit", "run_in_executor", "add_task", "apply_async"}


class FireAndForget(Rule):
    """SS203: a task started and never awaited."""

    info = RuleInfo(
        rule_id="SS203",
        name="fire-and-forget",
        title="Fire-and-forget task",
        severity=Severity.ERROR,
        why=(
            "A task whose result nobody awaits keeps running after the reply, "
            "when the platform has already frozen the instance: it silently "
            "never finishes, and its errors are never seen."
        ),
        fix=(
            "Publish an event through the outbox (`app.publish`) or put a "
            "message on `app.queue(...)`; delivery survives the instance and "
            "is retried until a handler succeeds."
        ),
        example=(
            "def on_signup(user_id: str) -> None:\n"
            '    app.publish("user-signed-up", {"user_id": user_id})\n'
            "# a handler subscribed to the topic sends the welcome mail"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for stmt in ast.walk(ctx.tree):
            if not isinstance(stmt, ast.Expr) or not isinstance(stmt.value, ast.Call):
                continue
            call = stmt.value
            name = ctx.call_name(call) or ""
            method = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            if name in _SPAWNERS or method in _SPAWN_METHODS:
                if ctx.enclosing_function(call) is None:
                    continue
                if method == "submit" and _pool_waited(ctx, call):
                    continue
                shown = name or method
                yield Hit(call, f"`{shown}(...)` starts work nobody waits for")


def _pool_waited(ctx: ModuleContext, call: ast.Call) -> bool:
    """``pool.submit(...)`` inside ``with Executor() as pool`` is waited for
    when the block ends."""
    for ancestor in ctx.ancestors(call):
        if isinstance(ancestor, (ast.With, ast.AsyncWith)):
            return True
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
    return False
