"""SS204 and SS205: waiting by holding compute.

A sleeping or polling function pays for an idle instance, runs into the
platform's time limit (15 minutes on Lambda), and forgets what it was
waiting for when the instance is recycled.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from stateshift.analyze._context import ModuleContext, constant_seconds, walk_own
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule

SLEEPS = frozenset(
    {
        "time.sleep",
        "asyncio.sleep",
        "gevent.sleep",
        "eventlet.sleep",
        "trio.sleep",
        "anyio.sleep",
    }
)
_POLL_MIN_SECONDS = 1.0


def _sleep_seconds(ctx: ModuleContext, call: ast.Call) -> float | None:
    node = call.args[0] if call.args else None
    for kw in call.keywords:
        if kw.arg in ("secs", "seconds", "delay"):
            node = kw.value
    return constant_seconds(node, ctx) if node is not None else None


def _format_seconds(seconds: float) -> str:
    if seconds >= 3_600:
        return f"{seconds / 3_600:g} h"
    if seconds >= 60:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


class LongSleep(Rule):
    """SS204: a ``sleep`` long enough to hold an instance idle."""

    info = RuleInfo(
        rule_id="SS204",
        name="long-sleep",
        title="Long sleep holding compute",
        severity=Severity.WARNING,
        why=(
            "A sleeping function is billed while it waits, hits the platform's "
            "time limit for long waits, and is forgotten when the instance is "
            "recycled: the thing it was going to do afterwards never happens."
        ),
        fix=(
            "Inside a workflow, wait with `ss.sleep(...)`: a durable timer that "
            "records its wake-up time and holds no thread, process or connection."
        ),
        example=(
            "@app.workflow()\n"
            "def cancel_if_unpaid(order_id: str) -> None:\n"
            "    ss.sleep(timedelta(minutes=30))\n"
            "    if not is_paid(order_id):     # an @app.step\n"
            "        cancel(order_id)          # an @app.step"
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        threshold = ctx.options.sleep_threshold_seconds
        for call in ast.walk(ctx.tree):
            if not isinstance(call, ast.Call) or ctx.call_name(call) not in SLEEPS:
                continue
            seconds = _sleep_seconds(ctx, call)
            if seconds is None or seconds < threshold:
                continue
            if _polling_loop(ctx, call) is not None:
                continue  # SS205 reports the loop, which is the real problem.
            yield Hit(
                call,
                f"`{ctx.call_name(call)}` waits {_format_seconds(seconds)} "
                "holding the instance",
            )


class PollingLoop(Rule):
    """SS205: a loop that sleeps between checks."""

    info = RuleInfo(
        rule_id="SS205",
        name="polling-loop",
        title="Polling loop",
        severity=Severity.WARNING,
        why=(
            "A loop that checks, sleeps and checks again keeps an instance busy "
            "for as long as the wait lasts, and the wait ends with the instance. "
            "Many waiting requests mean many idle instances."
        ),
        fix=(
            "Wait for the event itself: `ss.wait_for_event(name, timeout=...)` "
            "suspends the workflow until `app.send_event(...)` delivers it. "
            "Work that arrives over time goes on `app.queue(...)`."
        ),
        example=(
            "@app.workflow()\n"
            "def approve_order(order_id: str) -> bool:\n"
            '    answer = ss.wait_for_event("approval", timeout=86_400)\n'
            '    return answer["approved"]\n\n'
            '# the manager\'s request: app.send_event(f"order-{oid}", "approval", '
            '{"approved": True})'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for loop in ast.walk(ctx.tree):
            if not isinstance(loop, ast.While):
                continue
            sleep = _loop_sleep(ctx, loop)
            if sleep is not None:
                yield Hit(
                    loop,
                    f"loop waits by calling `{ctx.call_name(sleep)}` between checks",
                )


def _loop_sleep(ctx: ModuleContext, loop: ast.While) -> ast.Call | None:
    """The sleep that makes ``loop`` a polling loop, if there is one.

    Sleeps in an ``except`` block are back-off between retries, and very
    short sleeps are a spin on something about to finish; neither counts.
    """
    for node in walk_own(loop):
        if not isinstance(node, ast.Call) or ctx.call_name(node) not in SLEEPS:
            continue
        if _not_this_loops_wait(ctx, node, loop):
            continue
        seconds = _sleep_seconds(ctx, node)
        if seconds is not None and seconds < _POLL_MIN_SECONDS:
            continue
        return node
    return None


def _not_this_loops_wait(ctx: ModuleContext, node: ast.AST, loop: ast.While) -> bool:
    """True for a sleep in an ``except`` block or in an inner loop."""
    for ancestor in ctx.ancestors(node):
        if ancestor is loop:
            return False
        if isinstance(ancestor, (ast.ExceptHandler, ast.While)):
            return True
    return False


def _polling_loop(ctx: ModuleContext, call: ast.Call) -> ast.While | None:
    for ancestor in ctx.ancestors(call):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            return None
        if isinstance(ancestor, ast.While) and _loop_sleep(ctx, ancestor) is call:
            return ancestor
    return None
