"""Handles: what ``app.start`` and ``ss.start_child`` return."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from stateshift._durations import Duration, optional_seconds
from stateshift.errors import WorkflowCancelled, WorkflowFailed
from stateshift.workflows._context import workflow_context
from stateshift.workflows.status import WorkflowInfo, WorkflowStatus

if TYPE_CHECKING:
    from stateshift.workflows._registry import WorkflowDef
    from stateshift.workflows.api import WorkflowsMixin

__all__ = ["WorkflowHandle"]

R = TypeVar("R")

_POLL_SECONDS = 0.02
_PARKED = (
    WorkflowStatus.BLOCKED,
    WorkflowStatus.DEAD,
    WorkflowStatus.COMPENSATION_FAILED,
)


def _ended(info: WorkflowInfo) -> bool:
    return info.status.finished or info.status in _PARKED


class WorkflowHandle(Generic[R]):
    """A reference to one workflow, by id."""

    def __init__(
        self,
        app: WorkflowsMixin,
        workflow_id: str,
        definition: WorkflowDef | None = None,
    ) -> None:
        self.app = app
        self.workflow_id = workflow_id
        """The workflow's id."""
        self.definition = definition

    def __repr__(self) -> str:
        return f"<WorkflowHandle {self.workflow_id!r}>"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, WorkflowHandle) and other.workflow_id == self.workflow_id
        )

    def __hash__(self) -> int:
        return hash(self.workflow_id)

    def status(self) -> WorkflowInfo:
        """A snapshot of the workflow (``app.status``)."""
        return self.app.status(self.workflow_id)

    def result(self, timeout: Duration | None = None) -> Any:
        """The workflow's result.

        Inside a workflow, waits durably for this (child) workflow. Outside,
        runs due work in this process and polls until the workflow ends.

        Raises:
            WorkflowFailed: it failed (with the error's type and message), or
                was left blocked, dead or compensation-failed.
            WorkflowCancelled: it was cancelled.
            TimeoutError: ``timeout`` passed first (outside a workflow).
        """
        if workflow_context() is not None:
            from stateshift.workflows._primitives import child_result

            return child_result(self)
        limit = optional_seconds(timeout, name="timeout")
        deadline = None if limit is None else time.monotonic() + limit
        while True:
            info = self.app.status(self.workflow_id)
            if not _ended(info):
                self.app.run_until_idle()
                info = self.app.status(self.workflow_id)
            if _ended(info):
                return self._outcome(info)
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(
                    f"workflow {self.workflow_id!r} is still {info.status.value} "
                    f"after {limit} s"
                )
            time.sleep(_POLL_SECONDS)

    async def result_async(self, timeout: Duration | None = None) -> Any:
        """:meth:`result` for async callers, off the event loop."""
        import asyncio

        return await asyncio.to_thread(self.result, timeout)

    def _outcome(self, info: WorkflowInfo) -> Any:
        if info.status is WorkflowStatus.SUCCEEDED:
            return info.result
        if info.status is WorkflowStatus.CANCELLED:
            raise WorkflowCancelled(
                self.workflow_id, f"workflow {self.workflow_id!r} was cancelled"
            )
        error = info.error
        raise WorkflowFailed(
            self.workflow_id,
            error.type if error else info.status.value,
            error.message if error else f"workflow is {info.status.value}",
        )
