"""Durable workflows: functions whose steps are checkpointed in the store.

A workflow is replayed from the top whenever it resumes; a step already
recorded returns its recorded result without running. Waiting (timers,
events, children) records a wake-up condition and ends the invocation, so a
waiting workflow is only rows. See ``docs/workflows.md``.
"""

from __future__ import annotations

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
