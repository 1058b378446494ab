"""Durable workflows: functions whose steps are checkpointed in the store.

A workflow is replayed from the top whenever it resumes; a step already
recorded returns its recorded result without running. Waiting (timers,
events, children) records a wake-up condition and ends the invocation, so a
waiting workflow is only rows. See ``docs/workflows.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateshift._lazy import lazy_getattr

if TYPE_CHECKING:
    from stateshift.workflows._context import StepContext, current
    from stateshift.workflows._primitives import (
        now,
        patched,
        random,
        sleep,
        sleep_until,
        start_child,
        uuid4,
        wait_all,
        wait_first,
        wait_for_event,
    )
    from stateshift.workflows.clock import ManualClock
    from stateshift.workflows.handle import WorkflowHandle
    from stateshift.workflows.retry import RetryPolicy
    from stateshift.workflows.saga import Saga
    from stateshift.workflows.status import (
        ErrorInfo,
        EventDelivery,
        IdleSummary,
        StepInfo,
        WorkflowInfo,
        WorkflowStatus,
    )

# Each name is imported on first use (see stateshift._lazy).
_HOMES = {
    "ErrorInfo": "stateshift.workflows.status",
    "EventDelivery": "stateshift.workflows.status",
    "IdleSummary": "stateshift.workflows.status",
    "ManualClock": "stateshift.workflows.clock",
    "RetryPolicy": "stateshift.workflows.retry",
    "Saga": "stateshift.workflows.saga",
    "StepContext": "stateshift.workflows._context",
    "StepInfo": "stateshift.workflows.status",
    "WorkflowHandle": "stateshift.workflows.handle",
    "WorkflowInfo": "stateshift.workflows.status",
    "WorkflowStatus": "stateshift.workflows.status",
    "current": "stateshift.workflows._context",
    "now": "stateshift.workflows._primitives",
    "patched": "stateshift.workflows._primitives",
    "random": "stateshift.workflows._primitives",
    "sleep": "stateshift.workflows._primitives",
    "sleep_until": "stateshift.workflows._primitives",
    "start_child": "stateshift.workflows._primitives",
    "uuid4": "stateshift.workflows._primitives",
    "wait_all": "stateshift.workflows._primitives",
    "wait_first": "stateshift.workflows._primitives",
    "wait_for_event": "stateshift.workflows._primitives",
}
__getattr__ = lazy_getattr(__name__, globals(), _HOMES)

__all__ = [
    "ErrorInfo",
    "EventDelivery",
    "IdleSummary",
    "ManualClock",
    "RetryPolicy",
    "Saga",
    "StepContext",
    "StepInfo",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowStatus",
    "current",
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
