"""Running a step: replay it from history, or attempt it and checkpoint it.

The protocol is written once, as a generator that asks its driver to run
one attempt of the body (or to pause briefly before a retry). A small
synchronous driver and a small asynchronous one run it, so sync and async
steps share every rule: replay, retries, timeouts, budget and fencing.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import traceback
from collections.abc import Callable, Generator
from typing import Any

from stateshift.errors import CodecError, ConflictError, StepTimeout
from stateshift.unit import Unit, unit_scope
from stateshift.workflows._context import (
    StepContext,
    WorkflowContext,
    _step,
    lost_context_suspected,
    step_context,
    workflow_context,
)
from stateshift.workflows._engine import ErrorRow
from stateshift.workflows._exceptions import rebuild, remember, type_name
from stateshift.workflows._registry import StepDef
from stateshift.workflows._signals import Released, Suspended
from stateshift.workflows.retry import RetryPolicy

logger = logging.getLogger(__name__)

IN_PROCESS_RETRY_SECONDS = 0.5
"""Retry waits up to this long are slept in-process when the budget allows;
longer ones become durable timers."""

BUDGET_MARGIN_SECONDS = 0.05
"""A step without a timeout is not started with less budget than this left."""

MAX_CONFLICT_RERUNS = 10
"""Re-runs of a step whose writes met a newer version, before it fails."""

_SCALARS = frozenset({str, int, float, bool, type(None)})
"""Result types whose decoded encoding equals the value itself."""

STEP = "step"
COMPENSATION = "compensation"
ENTITY = "entity"
"""Kinds of checkpoint a step body makes: a forward step, a saga's undo, or
an entity operation called from workflow code."""

ENTITY_RETRY = RetryPolicy(max_attempts=1)
"""An entity operation is pure state code: its errors are the business's and
fail at once; a version conflict at commit re-runs it (``MAX_CONFLICT_RERUNS``)."""


class _Attempt:
    __slots__ = ("unit", "context")

    def __init__(self, unit: Unit, context: StepContext) -> None:
        self.unit = unit
        self.context = context


class _Pause:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


Outcome = tuple[bool, Any]
Protocol = Generator["_Attempt | _Pause", Outcome, Any]


def error_row(error: BaseException) -> ErrorRow:
    """The stored form of an exception: type name, message, traceback."""
    return (
        type_name(type(error)),
        str(error),
        "".join(traceback.format_exception(error)),
    )


def _protocol(ctx: WorkflowContext, definition: StepDef, kind: str) -> Protocol:
    engine = ctx.engine
    codec = engine.app.codec
    seq, record = ctx.take(kind, definition.name)
    attempt = 1
    if record is not None and record.status == "error" and kind == COMPENSATION:
        # A compensation that failed for good parked the workflow; it runs
        # here again only because of app.resume, with a fresh set of attempts.
        record = None
    if record is not None:
        if record.status == "ok":
            assert record.output is not None
            return codec.decode(
                record.output,
                type_hint=definition.return_hint,
                what=f"result of step {definition.name!r}",
            )
        if record.status == "error":
            raise rebuild(
                ctx.workflow_id, record.error_type or "", record.error_message or ""
            )
        attempt = record.attempts + 1
    policy = definition.retry or engine.app.default_retry
    what = f"result of step {definition.name!r}"
    conflicts = 0

    while True:
        _check_budget(ctx, definition)
        unit = Unit()
        started = time.time()
        context = StepContext(
            workflow_id=ctx.workflow_id,
            workflow_name=ctx.definition.name,
            step=definition.name,
            seq=seq,
            attempt=attempt,
            idempotency_key=f"{ctx.workflow_id}:{seq}",
        )
        ok, value = yield _Attempt(unit, context)

        if ok:
            try:
                output = codec.encode(value, what=what)
            except CodecError as exc:
                ok, value = False, exc
        if ok:
            try:
                engine.commit_step(
                    ctx, seq, kind, definition.name, attempt, output, unit, started
                )
            except ConflictError as exc:
                conflicts += 1
                if conflicts < MAX_CONFLICT_RERUNS:
                    continue
                ok, value = False, exc
            else:
                logger.debug(
                    "step %s of workflow %s succeeded on attempt %d",
                    definition.name,
                    ctx.workflow_id,
                    attempt,
                    extra={
                        "event": "step.succeeded",
                        "workflow_id": ctx.workflow_id,
                        "step": definition.name,
                    },
                )
                if definition.return_hint is None and type(value) in _SCALARS:
                    # Decoding its own encoding gives the same scalar back.
                    return value
                # Otherwise live code gets what a replay gets: the decoded
                # copy, typed by the annotation.
                return codec.decode(output, type_hint=definition.return_hint, what=what)

        error: Exception = value
        remember(type(error))
        if policy.retries(error, attempt):
            delay = policy.delay_seconds(attempt)
            _log_retry(ctx, definition, attempt, delay, error)
            if _may_pause(ctx, delay):
                yield _Pause(delay)
                attempt += 1
                continue
            engine.suspend(
                ctx,
                engine.clock() + delay,
                f"retry of step {definition.name!r}",
                engine.step_row(
                    ctx,
                    seq,
                    kind,
                    definition.name,
                    "retrying",
                    attempt,
                    None,
                    error_row(error),
                    started,
                ),
            )
            raise ctx.stop(Suspended())
        engine.record(
            ctx,
            engine.step_row(
                ctx,
                seq,
                kind,
                definition.name,
                "error",
                attempt,
                None,
                error_row(error),
                started,
            ),
        )
        logger.warning(
            "step %s of workflow %s failed for good on attempt %d: %s",
            definition.name,
            ctx.workflow_id,
            attempt,
            error,
            extra={
                "event": "step.failed",
                "workflow_id": ctx.workflow_id,
                "step": definition.name,
            },
        )
        raise error


def _check_budget(ctx: WorkflowContext, definition: StepDef) -> None:
    remaining = ctx.invocation.remaining()
    if remaining is None:
        return
    needed = definition.timeout_seconds or BUDGET_MARGIN_SECONDS
    if remaining < needed:
        raise ctx.stop(Released())


def _may_pause(ctx: WorkflowContext, delay: float) -> bool:
    if delay > IN_PROCESS_RETRY_SECONDS:
        return False
    remaining = ctx.invocation.remaining()
    return remaining is None or remaining > delay + BUDGET_MARGIN_SECONDS


def _log_retry(
    ctx: WorkflowContext,
    definition: StepDef,
    attempt: int,
    delay: float,
    error: BaseException,
) -> None:
    logger.info(
        "step %s of workflow %s failed on attempt %d (%s: %s); retrying in %.3f s",
        definition.name,
        ctx.workflow_id,
        attempt,
        type(error).__name__,
        error,
        delay,
        extra={
            "event": "step.retry",
            "workflow_id": ctx.workflow_id,
            "step": definition.name,
        },
    )


# --- drivers ---------------------------------------------------------------


def run_step(
    definition: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    kind: str = STEP,
) -> Any:
    """Call a synchronous step: durably inside a workflow, plainly outside."""
    ctx = workflow_context()
    if ctx is None or step_context() is not None:
        if ctx is None and lost_context_suspected():
            raise RuntimeError(
                f"step {definition.name!r} was called from a pool thread while a "
                "workflow runs in another thread: context variables do not cross "
                "into ThreadPoolExecutor threads, so it would silently run as a "
                "plain call. Call steps from the workflow's own thread, or submit "
                "contextvars.copy_context().run"
            )
        return definition.fn(*args, **kwargs)
    protocol = _protocol(ctx, definition, kind)
    try:
        request = next(protocol)
        while True:
            if isinstance(request, _Pause):
                time.sleep(request.seconds)
                request = protocol.send((True, None))
            else:
                request = protocol.send(_attempt(definition, request, args, kwargs))
    except StopIteration as stop:
        return stop.value


async def run_step_async(
    definition: StepDef,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    kind: str = STEP,
) -> Any:
    """Call an asynchronous step: durably inside a workflow, plainly outside."""
    import asyncio

    ctx = workflow_context()
    if ctx is None or step_context() is not None:
        return await definition.fn(*args, **kwargs)
    protocol = _protocol(ctx, definition, kind)
    try:
        request = next(protocol)
        while True:
            if isinstance(request, _Pause):
                await asyncio.sleep(request.seconds)
                request = protocol.send((True, None))
            else:
                outcome = await _attempt_async(definition, request, args, kwargs)
                request = protocol.send(outcome)
    except StopIteration as stop:
        return stop.value


def _attempt(
    definition: StepDef,
    request: _Attempt,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Outcome:
    token = _step.set(request.context)
    try:
        with unit_scope(request.unit):
            if definition.timeout_seconds is None:
                return True, definition.fn(*args, **kwargs)
            return True, _in_thread(definition, request.context, args, kwargs)
    except Exception as exc:
        return False, exc
    finally:
        _step.reset(token)


async def _attempt_async(
    definition: StepDef,
    request: _Attempt,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Outcome:
    import asyncio

    token = _step.set(request.context)
    try:
        with unit_scope(request.unit):
            call = definition.fn(*args, **kwargs)
            if definition.timeout_seconds is None:
                return True, await call
            try:
                return True, await asyncio.wait_for(call, definition.timeout_seconds)
            except TimeoutError:
                return False, _timeout_error(definition, request.context)
    except Exception as exc:
        return False, exc
    finally:
        _step.reset(token)


def _timeout_error(definition: StepDef, context: StepContext) -> StepTimeout:
    return StepTimeout(
        context.workflow_id,
        f"attempt {context.attempt} of step {definition.name!r} ran past its "
        f"timeout of {definition.timeout_seconds} s",
    )


def _in_thread(
    definition: StepDef,
    context: StepContext,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    # A thread cannot be killed: on timeout we stop waiting for it. Its late
    # result and its buffered writes belong to an abandoned attempt and are
    # never recorded.
    box: list[Outcome] = []
    copied = contextvars.copy_context()

    def target() -> None:
        try:
            box.append((True, copied.run(definition.fn, *args, **kwargs)))
        except BaseException as exc:
            box.append((False, exc))

    thread = threading.Thread(
        target=target, name=f"stateshift-step-{definition.name}", daemon=True
    )
    thread.start()
    thread.join(definition.timeout_seconds)
    if not box:
        raise _timeout_error(definition, context)
    ok, value = box[0]
    if ok:
        return value
    raise value


def run_entity_operation(app: object, name: str, run: Callable[[], Any]) -> Any:
    """An entity operation: a checkpointed step when called from workflow code.

    Called between steps of a workflow of ``app``, the operation runs once,
    its save commits with its checkpoint, and replay returns the recorded
    result. Anywhere else (inside a step, outside workflows) it is a plain
    call, which joins the enclosing unit of work if there is one.
    """
    ctx = workflow_context()
    if ctx is None or step_context() is not None or ctx.engine.app is not app:
        return run()
    return run_step(StepDef(name, run, ENTITY_RETRY, None), (), {}, ENTITY)
