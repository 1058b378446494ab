"""The state of one workflow invocation, and the context variables for it.

A :class:`WorkflowContext` lives for one invocation: it holds the history
read at resume, hands out sequence numbers, buffers small records (times,
ids, child starts) until the next checkpoint, and remembers the first
signal raised so later calls raise it again.
"""

from __future__ import annotations

import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from stateshift.errors import NonDeterminismError, WorkflowTimeout
from stateshift.workflows._signals import Blocking, Cancelling, Signal

if TYPE_CHECKING:
    from stateshift.workflows._engine import Engine
    from stateshift.workflows._registry import WorkflowDef

__all__ = ["Invocation", "Record", "StepContext", "WorkflowContext", "current"]

CANCEL = "cancel"
"""The kind (and name) of the checkpoint marking where a cancellation struck."""

SETTLED = frozenset({"ok", "error", "timeout"})
"""Checkpoint statuses that replay as they are."""


class Record(NamedTuple):
    """One checkpoint row, as read from history."""

    seq: int
    kind: str
    name: str
    status: str
    attempts: int
    output: bytes | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None


@dataclass(frozen=True)
class StepContext:
    """Where the calling code runs; returned by ``ss.current()``."""

    workflow_id: str
    """The running workflow."""
    workflow_name: str
    """Its registered name."""
    step: str | None
    """The running step, or ``None`` in workflow code between steps."""
    seq: int | None
    """The step's position in the history."""
    attempt: int
    """The attempt number of the step, from 1 (0 outside a step)."""
    idempotency_key: str | None
    """``<workflow_id>:<seq>``: the same on every attempt and every worker, so
    an outside service can drop repeated calls."""


class Invocation:
    """The time budget of one invocation (``None``: unlimited)."""

    __slots__ = ("deadline",)

    def __init__(self, budget_seconds: float | None = None) -> None:
        self.deadline = (
            None if budget_seconds is None else time.monotonic() + budget_seconds
        )

    def remaining(self) -> float | None:
        """Seconds left, or ``None`` without a budget."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()


class WorkflowContext:
    """One invocation of one workflow."""

    def __init__(
        self,
        engine: Engine,
        definition: WorkflowDef,
        workflow_id: str,
        epoch: int,
        history: list[Record],
        *,
        cancel_requested: bool,
        deadline_at: float | None,
        parent_id: str | None,
        invocation: Invocation,
    ) -> None:
        self.engine = engine
        self.definition = definition
        self.workflow_id = workflow_id
        self.epoch = epoch
        self.history = {record.seq: record for record in history}
        self.last_seq = max(self.history, default=-1)
        self.next_seq = 0
        self.cancel_requested = cancel_requested
        self.deadline_at = deadline_at
        self.parent_id = parent_id
        self.invocation = invocation
        self.pending_records: list[tuple[Any, ...]] = []
        self.pending_children: list[tuple[Any, ...]] = []
        self.signal: Signal | None = None
        self.renew_lease_by = time.monotonic() + engine.app.settings.lease_seconds / 3
        """Until when a checkpoint may leave the lease as it is (monotonic)."""
        self.held: Signal | None = None
        """A cancellation set aside while a saga's compensations run."""
        self.compensating = 0
        """Depth of saga compensations running now: while above zero, a
        cancellation or the overall timeout does not stop step calls."""

    @property
    def replaying(self) -> bool:
        """True while the code is still retracing recorded history."""
        return self.next_seq <= self.last_seq

    def stop(self, signal: Signal) -> Signal:
        """Remember ``signal`` so every later call raises it too."""
        if self.signal is None:
            self.signal = signal
        return self.signal

    def guard(self) -> None:
        """Raise a pending signal, a cancellation or the overall timeout."""
        if self.signal is not None:
            raise self.signal
        if self.compensating:
            return
        if self.cancel_requested:
            self._cancel_point()
        if self.deadline_at is not None and self.engine.clock() >= self.deadline_at:
            raise WorkflowTimeout(
                self.workflow_id,
                f"workflow {self.workflow_id!r} ran past its overall timeout",
            )

    def _cancel_point(self) -> None:
        # Where a cancellation took effect is recorded (a "cancel" checkpoint
        # at that position), so a replay unwinds at the same call: a saga
        # then registers the same compensations and finds their checkpoints.
        seq = self.next_seq
        record = self.history.get(seq)
        if record is not None and record.kind == CANCEL:
            self.next_seq += 1
            raise self.stop(Cancelling())
        if not self.cancel_requested or not self._open(seq, record):
            return
        self.next_seq += 1
        self.pending_records.append(
            self.engine.step_row(self, seq, CANCEL, CANCEL, "ok", 1, None)
        )
        raise self.stop(Cancelling())

    def _open(self, seq: int, record: Record | None) -> bool:
        # A settled checkpoint replays; a cancellation takes effect at the
        # first position with nothing settled: no record, an unfinished one
        # (a retry, a wait), or the timer the workflow sleeps on now.
        if record is None or record.status not in SETTLED:
            return True
        return record.kind == "sleep" and seq == self.last_seq

    def take(self, kind: str, name: str) -> tuple[int, Record | None]:
        """The next sequence number and its recorded checkpoint, if any."""
        self.guard()
        seq = self.next_seq
        self.next_seq += 1
        record = self.history.get(seq)
        if record is not None and (record.kind != kind or record.name != name):
            error = NonDeterminismError(
                self.workflow_id,
                f"workflow {self.workflow_id!r} called {kind} {name!r} at position "
                f"{seq}, but its history has {record.kind} {record.name!r} there: "
                "the code changed under a running workflow. Restore the old code "
                "or guard the change with ss.patched(), then app.resume() it",
            )
            raise self.stop(Blocking(error))
        return seq, record

    def peek(self, seq: int) -> Record | None:
        """The recorded checkpoint at ``seq`` without taking it."""
        return self.history.get(seq)


_workflow: ContextVar[WorkflowContext | None] = ContextVar(
    "stateshift_workflow", default=None
)
_step: ContextVar[StepContext | None] = ContextVar("stateshift_step", default=None)

# Threads running workflow code now: a step called with no context from a
# pool thread while one of these runs was most likely handed over by a
# ThreadPoolExecutor, which does not carry context variables.
_active: dict[int, int] = {}
_active_lock = threading.Lock()


def workflow_context() -> WorkflowContext | None:
    """The workflow invocation of the calling code, if any."""
    return _workflow.get()


def step_context() -> StepContext | None:
    """The step being run by the calling code, if any."""
    return _step.get()


def current() -> StepContext | None:
    """Where the calling code runs: workflow, step, attempt, idempotency key.

    Returns ``None`` outside any workflow.
    """
    step = _step.get()
    if step is not None:
        return step
    context = _workflow.get()
    if context is None:
        return None
    return StepContext(
        workflow_id=context.workflow_id,
        workflow_name=context.definition.name,
        step=None,
        seq=None,
        attempt=0,
        idempotency_key=None,
    )


def enter_thread() -> None:
    """Count the calling thread as running workflow code."""
    ident = threading.get_ident()
    with _active_lock:
        _active[ident] = _active.get(ident, 0) + 1


def leave_thread() -> None:
    """Undo :func:`enter_thread`."""
    ident = threading.get_ident()
    with _active_lock:
        left = _active.get(ident, 0) - 1
        if left > 0:
            _active[ident] = left
        else:
            _active.pop(ident, None)


def lost_context_suspected() -> bool:
    """True when a pool thread calls a step while a workflow runs elsewhere."""
    thread = threading.current_thread()
    if not thread.name.startswith(("ThreadPoolExecutor", "asyncio_")):
        return False
    with _active_lock:
        return any(ident != thread.ident for ident in _active)
