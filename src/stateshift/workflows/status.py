"""What a workflow is doing: its status, its steps, its result or error."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "ErrorInfo",
    "EventDelivery",
    "IdleSummary",
    "StepInfo",
    "WorkflowInfo",
    "WorkflowStatus",
]


class WorkflowStatus(StrEnum):
    """The status of a workflow, as stored."""

    PENDING = "pending"
    """Started, not claimed yet."""
    RUNNING = "running"
    """Claimed by a worker, which holds a lease on it."""
    WAITING = "waiting"
    """Suspended until a timer, an event or child workflows wake it."""
    SUCCEEDED = "succeeded"
    """Finished with a result."""
    FAILED = "failed"
    """Finished with an error."""
    CANCELLED = "cancelled"
    """Stopped by ``app.cancel``."""
    COMPENSATION_FAILED = "compensation_failed"
    """A saga's compensation failed; resumable with ``app.resume``."""
    BLOCKED = "blocked"
    """Replay met different code (non-determinism); resumable after a fix."""
    DEAD = "dead"
    """Crashed its workers too often; resumable with ``app.resume``."""

    @property
    def finished(self) -> bool:
        """True when the workflow will not run again by itself."""
        return self in _FINISHED

    def __str__(self) -> str:
        return self.value


_FINISHED = frozenset(
    {WorkflowStatus.SUCCEEDED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED}
)


@dataclass(frozen=True)
class ErrorInfo:
    """An error recorded for a step or a workflow."""

    type: str
    """Qualified name of the exception type, like ``builtins.ValueError``."""
    message: str
    """``str()`` of the exception."""
    traceback: str | None
    """The formatted traceback, when recorded live."""


@dataclass(frozen=True)
class StepInfo:
    """One checkpoint in a workflow's history."""

    seq: int
    """Position in the history, from 0."""
    name: str
    """Step name (or the helper's: ``sleep``, ``now``, an event name...)."""
    kind: str
    """``step``, ``compensation`` (a saga's undo step), ``sleep``, ``event``,
    ``child``, ``wait``, ``now``, ``uuid4``, ``random``, ``patch`` or ``cancel``
    (where a cancellation took effect)."""
    status: str
    """``ok``, ``error``, ``retrying``, ``waiting`` or ``timeout``."""
    attempts: int
    """Attempts made so far."""
    started_at: float | None
    """Wall-clock start of the last attempt (epoch seconds)."""
    finished_at: float | None
    """Wall-clock time the checkpoint was written."""
    error: ErrorInfo | None
    """The last error, for failed or retrying steps."""


@dataclass(frozen=True)
class WorkflowInfo:
    """A snapshot of one workflow, as returned by ``app.status``."""

    workflow_id: str
    """The workflow's id."""
    name: str
    """The registered workflow name."""
    status: WorkflowStatus
    """Where it stands."""
    steps: tuple[StepInfo, ...]
    """Its history, in order."""
    result: Any
    """The return value, once succeeded."""
    error: ErrorInfo | None
    """Why it failed, was blocked or died."""
    waiting_for: str | None
    """What a waiting workflow waits for, in words."""
    due_at: float | None
    """When it is next due (app clock), if it is."""
    created_at: float
    """When it was started (app clock)."""
    updated_at: float
    """Last change (app clock)."""
    finished_at: float | None
    """When it finished (app clock)."""
    app_version: str
    """The app version it started on."""
    parent_id: str | None
    """The parent workflow, for a child."""
    recoveries: int
    """Times it was taken over from a worker that crashed."""

    @property
    def compensations(self) -> tuple[StepInfo, ...]:
        """The saga compensations that ran or were tried, in the order run."""
        return tuple(step for step in self.steps if step.kind == "compensation")


@dataclass(frozen=True)
class EventDelivery:
    """What ``app.send_event`` did."""

    delivered: bool
    """True when the event was queued for the workflow."""
    reason: str
    """``queued``, ``duplicate`` (same ``event_id`` seen) or ``finished``."""


@dataclass(frozen=True)
class IdleSummary:
    """What ``run_until_idle`` or ``tick`` did."""

    ran: int
    """Workflow invocations run."""
    finished: int
    """Of which ended (succeeded, failed or cancelled)."""
    suspended: int
    """Of which now wait (timer, event, children)."""
    released: int
    """Of which were handed back unfinished (budget spent or unknown code)."""
    lease_lost: int
    """Of which another worker took over."""
    next_wake_at: float | None
    """Earliest due time still ahead (app clock), if any."""
    budget_exhausted: bool
    """True when ``tick`` stopped because its budget ran out."""
    messages: int = 0
    """Queue messages run (succeeded or not)."""
    interrupted: int = 0
    """Invocations stopped because the store failed under a checkpoint; each
    workflow is resumed from its history once its claim is taken back."""
