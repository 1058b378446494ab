"""What workflow code calls: durable waits, recorded time and randomness.

Each helper takes the next sequence number. Waits (``sleep``,
``wait_for_event``, waiting on children) record their wake-up condition and
unwind by :class:`~stateshift.workflows._signals.Suspended`; the values of
``now``, ``uuid4``, ``random`` and ``patched`` are buffered and written with
the next checkpoint. In an ``async def`` workflow the waits return
awaitables, so ``await ss.sleep(60)`` reads naturally there.
"""

from __future__ import annotations

import random as _random
import time
import uuid as _uuid
from collections.abc import Generator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from stateshift._durations import Duration, optional_seconds, to_seconds
from stateshift.errors import EventTimeout, WorkflowCancelled, WorkflowFailed
from stateshift.workflows._context import (
    WorkflowContext,
    step_context,
    workflow_context,
)
from stateshift.workflows._engine import ChildOutcome
from stateshift.workflows._signals import Suspended

if TYPE_CHECKING:
    from stateshift.workflows.handle import WorkflowHandle

__all__ = [
    "now",
    "patched",
    "random",
    "sleep",
    "sleep_until",
    "start_child",
    "uuid4",
    "wait_all",
    "wait_first",
    "wait_for_event",
]

T = TypeVar("T")


class Ready:
    """A value already at hand, awaitable for ``async def`` workflows."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Generator[Any, None, Any]:
        return self.value
        yield  # pragma: no cover - makes this a generator


def _answer(ctx: WorkflowContext, value: Any) -> Any:
    return Ready(value) if ctx.definition.is_async else value


def _workflow_only(helper: str) -> WorkflowContext:
    ctx = workflow_context()
    if ctx is None:
        raise RuntimeError(f"ss.{helper}() can only be called inside a workflow")
    if step_context() is not None:
        raise RuntimeError(
            f"ss.{helper}() cannot be called inside a step: a step runs to the "
            "end in one go; wait in the workflow between steps"
        )
    return ctx


def _buffer(
    ctx: WorkflowContext, seq: int, kind: str, value: Any, name: str | None = None
) -> bytes:
    data = ctx.engine.app.codec.encode(value, what=f"recorded {kind}")
    row = ctx.engine.step_row(ctx, seq, kind, name or kind, "ok", 1, data)
    ctx.pending_records.append(row)
    return data


def _recorded(kind: str, live: Any) -> Any:
    """The recorded value of ``kind`` at this point, or ``live()`` recorded."""
    ctx = workflow_context()
    if ctx is None or step_context() is not None:
        return live()
    seq, record = ctx.take(kind, kind)
    if record is not None:
        assert record.output is not None
        return ctx.engine.app.codec.decode(record.output, what=f"recorded {kind}")
    value = live()
    _buffer(ctx, seq, kind, value)
    return value


# --- time and randomness ---------------------------------------------------


def now() -> datetime:
    """The current time (UTC), the same on every replay."""
    ctx = workflow_context()
    clock = ctx.engine.clock if ctx is not None else time.time
    return datetime.fromtimestamp(_recorded("now", clock), UTC)


def uuid4() -> _uuid.UUID:
    """A random UUID, the same on every replay."""
    return _uuid.UUID(_recorded("uuid4", lambda: _uuid.uuid4().hex))


def random() -> float:
    """A random float in [0, 1), the same on every replay."""
    return float(_recorded("random", _random.random))


def patched(patch_id: str) -> bool:
    """Whether this run takes the new branch of a code change.

    New runs record the patch and get ``True``; a workflow replaying history
    written before the change gets ``False`` and takes the old branch, so
    the change does not break running workflows.
    """
    ctx = _workflow_only("patched")
    ctx.guard()
    seq = ctx.next_seq
    record = ctx.peek(seq)
    if record is not None:
        if record.kind == "patch" and record.name == patch_id:
            ctx.next_seq += 1
            return True
        # History from before the patch: take no number, run the old code.
        return False
    ctx.next_seq += 1
    ctx.pending_records.append(
        ctx.engine.step_row(ctx, seq, "patch", patch_id, "ok", 1, None)
    )
    return True


# --- timers ----------------------------------------------------------------


def sleep(seconds: Duration) -> Any:
    """Wait durably; the workflow holds no compute meanwhile.

    Outside a workflow this is ``time.sleep``.
    """
    duration = to_seconds(seconds, name="seconds")
    ctx = workflow_context()
    if ctx is None:
        time.sleep(duration)
        return None
    return _sleep(_workflow_only("sleep"), lambda: ctx.engine.clock() + duration)


def sleep_until(moment: datetime) -> Any:
    """Wait durably until ``moment`` (an aware datetime, or naive UTC)."""
    if not isinstance(moment, datetime):
        raise TypeError("sleep_until() takes a datetime")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    ctx = _workflow_only("sleep_until")
    return _sleep(ctx, moment.timestamp)


def _sleep(ctx: WorkflowContext, wake_at: Any) -> Any:
    engine = ctx.engine
    codec = engine.app.codec
    seq, record = ctx.take("sleep", "sleep")
    if record is not None:
        assert record.output is not None
        target = float(codec.decode(record.output, what="recorded sleep"))
        if engine.clock() >= target or seq < ctx.last_seq:
            return _answer(ctx, None)
        engine.suspend(ctx, target, _timer_text(target))
        raise ctx.stop(Suspended())
    target = float(wake_at())
    if engine.clock() >= target:
        _buffer(ctx, seq, "sleep", target)
        return _answer(ctx, None)
    data = codec.encode(target, what="recorded sleep")
    row = engine.step_row(ctx, seq, "sleep", "sleep", "ok", 1, data)
    engine.suspend(ctx, target, _timer_text(target), row)
    raise ctx.stop(Suspended())


def _timer_text(target: float) -> str:
    return f"timer until {datetime.fromtimestamp(target, UTC).isoformat()}"


# --- events ----------------------------------------------------------------


def wait_for_event(name: str, timeout: Duration | None = None) -> Any:
    """Wait durably for the next event ``name`` sent to this workflow.

    Returns:
        The event's payload (events of one name are taken first in, first
        out; one sent before the wait is kept for it).

    Raises:
        EventTimeout: ``timeout`` passed first.
    """
    if not isinstance(name, str) or not name:
        raise ValueError("an event name is a non-empty string")
    timeout_seconds = optional_seconds(timeout, name="timeout")
    ctx = _workflow_only("wait_for_event")
    engine = ctx.engine
    codec = engine.app.codec
    seq, record = ctx.take("event", name)
    if record is not None and record.status == "ok":
        assert record.output is not None
        return _answer(ctx, codec.decode(record.output, what=f"event {name!r}"))
    if record is not None and record.status == "timeout":
        raise _event_timeout(ctx, name, timeout_seconds)
    if record is not None:
        assert record.output is not None
        deadline = codec.decode(record.output, what="recorded wait")
    else:
        deadline = None
        if timeout_seconds is not None:
            deadline = engine.clock() + timeout_seconds
    kind, payload = engine.wait_event(
        ctx, seq, name, deadline, codec.encode(deadline, what="recorded wait")
    )
    if kind == "event":
        assert payload is not None
        return _answer(ctx, codec.decode(payload, what=f"event {name!r}"))
    if kind == "timeout":
        raise _event_timeout(ctx, name, timeout_seconds)
    raise ctx.stop(Suspended())


def _event_timeout(
    ctx: WorkflowContext, name: str, timeout_seconds: float | None
) -> EventTimeout:
    return EventTimeout(
        ctx.workflow_id,
        f"workflow {ctx.workflow_id!r} waited {timeout_seconds} s for event "
        f"{name!r}, which did not arrive",
    )


# --- children --------------------------------------------------------------


def start_child(
    fn: Any, *args: Any, workflow_id: str | None = None, **kwargs: Any
) -> WorkflowHandle[Any]:
    """Start a child workflow; it is written with the next checkpoint.

    The child's id defaults to ``<parent id>/<seq>``, the same on replay. An
    explicit ``workflow_id`` must be new: an existing workflow of that id
    is not adopted as a child.
    """
    from stateshift.workflows.handle import WorkflowHandle

    ctx = _workflow_only("start_child")
    engine = ctx.engine
    definition = engine.app.definition_of(fn)
    codec = engine.app.codec
    seq, record = ctx.take("child", definition.name)
    if record is not None:
        assert record.output is not None
        child_id = str(codec.decode(record.output, what="recorded child id"))
        return WorkflowHandle(engine.app, child_id, definition)
    child_id = workflow_id or f"{ctx.workflow_id}/{seq}"
    data, digest = definition.encode_input(codec, args, kwargs)
    ctx.pending_children.append(
        engine.insert_row(
            child_id,
            definition.name,
            data,
            digest,
            leased=False,
            parent_id=ctx.workflow_id,
            timeout_seconds=definition.timeout_seconds,
        )
    )
    _buffer(ctx, seq, "child", child_id, definition.name)
    return WorkflowHandle(engine.app, child_id, definition)


def wait_all(handles: Sequence[WorkflowHandle[Any]]) -> Any:
    """Wait durably until every child ends; return their results in order.

    Raises:
        WorkflowFailed: a child failed (the first one, in order).
        WorkflowCancelled: a child was cancelled.
    """
    outcomes = _wait(list(handles), "all")
    by_id = {o.workflow_id: o for o in outcomes}
    results = [_result_of(handle, by_id[handle.workflow_id]) for handle in handles]
    return _answer(_workflow_only("wait_all"), results)


def wait_first(handles: Sequence[WorkflowHandle[Any]]) -> Any:
    """Wait durably until one child ends; return its handle."""
    handles = list(handles)
    outcomes = _wait(handles, "first")
    first = outcomes[0].workflow_id
    chosen = next(h for h in handles if h.workflow_id == first)
    return _answer(_workflow_only("wait_first"), chosen)


def child_result(handle: WorkflowHandle[T]) -> Any:
    """``handle.result()`` inside a workflow: wait for one child."""
    outcomes = _wait([handle], "result")
    return _answer(_workflow_only("result"), _result_of(handle, outcomes[0]))


def _wait(handles: list[WorkflowHandle[Any]], mode: str) -> list[ChildOutcome]:
    if not handles:
        raise ValueError("wait for at least one workflow handle")
    ctx = _workflow_only(f"wait_{mode}")
    engine = ctx.engine
    seq, record = ctx.take("wait", mode)
    if record is not None and record.status == "ok":
        assert record.output is not None
        values = engine.app.codec.decode(record.output, what="outcomes of children")
        return [ChildOutcome.from_value(v) for v in values]
    ids = [h.workflow_id for h in handles]
    needed = 1 if mode == "first" else len(set(ids))
    outcomes = engine.wait_children(ctx, seq, mode, ids, needed)
    if outcomes is None:
        raise ctx.stop(Suspended())
    return outcomes


def _result_of(handle: WorkflowHandle[Any], outcome: ChildOutcome) -> Any:
    if outcome.status == "succeeded":
        assert outcome.result is not None
        hint = handle.definition.return_hint if handle.definition else None
        return handle.app.codec.decode(
            outcome.result, type_hint=hint, what=f"result of {handle.workflow_id!r}"
        )
    if outcome.status == "cancelled":
        raise WorkflowCancelled(
            outcome.workflow_id, f"child workflow {outcome.workflow_id!r} was cancelled"
        )
    raise WorkflowFailed(
        outcome.workflow_id, outcome.error_type or "", outcome.error_message or ""
    )
