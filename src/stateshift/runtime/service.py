"""What the runtime needs from an app: the operations its triggers ask for.

The HTTP API, queue commands and ticks all go through :class:`Service`, so
each operation is written once. :class:`Problem` is how a service refuses a
request it cannot even try (unknown name, arguments that do not fit); the
HTTP API turns it into its status code, a queue batch into a failed record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from stateshift.errors import StateshiftError

# Statuses after which a workflow never changes again by itself.
PLACEMENT_FIELDS = ("residency", "tenant", "partition_key")
"""Start options that place a workflow; never passed on as its arguments."""

FINISHED_STATUSES = frozenset(
    {"succeeded", "failed", "cancelled", "compensation_failed"}
)


class Problem(StateshiftError):
    """A request the runtime refuses before changing anything.

    Attributes:
        status: the HTTP status that fits (400, 404, 413, 422...).
        code: a stable, machine-readable name like ``unknown_workflow``.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class RunView:
    """What a caller may know about one workflow run."""

    workflow_id: str
    workflow: str
    """The registered name of the workflow function."""

    status: str
    """A :class:`stateshift.WorkflowStatus` value, like ``waiting``."""

    result: Any = None
    """The return value, once ``succeeded``."""

    error: Mapping[str, str] | None = None
    """``{"type", "message"}`` once it failed."""

    waiting_for: str | None = None
    """What a ``waiting`` workflow waits for, like ``event:approval``."""

    steps: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    """The recorded steps, oldest first, when the service reports them."""

    @property
    def finished(self) -> bool:
        """Whether the workflow ended (it will not change by itself any more)."""
        return self.status in FINISHED_STATUSES

    def to_json(self) -> dict[str, Any]:
        """The view as a JSON object, leaving out what does not apply."""
        document: dict[str, Any] = {
            "workflow_id": self.workflow_id,
            "workflow": self.workflow,
            "status": self.status,
        }
        if self.status == "succeeded":
            document["result"] = self.result
        if self.error is not None:
            document["error"] = dict(self.error)
        if self.waiting_for is not None:
            document["waiting_for"] = self.waiting_for
        if self.steps:
            document["steps"] = [dict(step) for step in self.steps]
        return document


@dataclass(frozen=True)
class TickReport:
    """What one round of due work did."""

    ran: int = 0
    """How many workflow runs it advanced."""

    next_wake_up_seconds: float | None = None
    """Seconds from now until the next timer is due, when one is known."""

    released: int = 0
    """Claims given back unstarted because the budget ran out."""


class Service(Protocol):
    """The operations behind every trigger. Values are plain JSON."""

    def workflow_names(self) -> Sequence[str]:
        """The registered workflow names, sorted."""
        ...

    def start(
        self,
        workflow: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        *,
        workflow_id: str | None,
        run_here: bool,
        budget_seconds: float,
        placement: Mapping[str, str] | None = None,
    ) -> RunView:
        """Start ``workflow`` (idempotently on ``workflow_id``).

        With ``run_here`` the run goes on in this invocation until it
        finishes, waits or the budget is spent; else it is only recorded.
        ``placement`` holds ``residency``, ``tenant`` or ``partition_key``
        for the residency check.

        Raises:
            Problem: unknown workflow (404) or arguments that do not fit (422).
            WorkflowConflict: the id is taken by another function or input.
        """
        ...

    def status(self, workflow_id: str) -> RunView:
        """The run's status. Raises ``WorkflowNotFound``."""
        ...

    def send_event(
        self, workflow_id: str, name: str, payload: Any, *, event_id: str | None
    ) -> bool:
        """Deliver an event; ``False`` when the run had already finished."""
        ...

    def cancel(self, workflow_id: str) -> RunView:
        """Cancel the run (its compensations run); returns the new status."""
        ...

    def call_entity(
        self,
        entity: str,
        key: str,
        operation: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> Any:
        """Run one entity operation and return its result."""
        ...

    def tick(self, budget_seconds: float) -> TickReport:
        """Do due work within the budget; never starts what cannot finish."""
        ...
