"""Listing workflows: ``app.list_workflows(status=..., name=..., limit=...)``.

A listing reads one row per workflow, newest first, without history or
results; ``app.status(workflow_id)`` gives the full picture of one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from stateshift.store.base import Store
from stateshift.workflows.status import WorkflowStatus

__all__ = ["WorkflowSummary", "count_by_status", "list_workflows"]

MAX_LIMIT = 10_000
"""The most rows one listing returns."""


@dataclass(frozen=True)
class WorkflowSummary:
    """One row of a listing."""

    workflow_id: str
    """The workflow's id."""
    name: str
    """The registered workflow name."""
    status: WorkflowStatus
    """Where it stands."""
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
    parent_id: str | None
    """The parent workflow, for a child."""
    error_type: str | None
    """The type of the error it failed, died or was blocked with."""
    error_message: str | None
    """That error's message."""


def _statuses(status: str | WorkflowStatus | Iterable[str] | None) -> str:
    if status is None:
        return ""
    values = [status] if isinstance(status, str) else list(status)
    # Each must be a real status: a typo should fail, not list nothing.
    return ",".join(WorkflowStatus(value).value for value in values)


def list_workflows(
    store: Store,
    *,
    status: str | WorkflowStatus | Iterable[str] | None = None,
    name: str | None = None,
    parent_id: str | None = None,
    limit: int = 100,
) -> list[WorkflowSummary]:
    """Workflows matching every filter given, newest first.

    Raises:
        ValueError: an unknown status, or a limit out of range.
    """
    if not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    statuses = _statuses(status)
    name_filter = name or ""
    parent_filter = parent_id or ""
    query = store.queries("ops")["list_workflows"]
    with store.read() as tx:
        rows = tx.fetchall(
            query,
            (
                statuses,
                statuses,
                name_filter,
                name_filter,
                parent_filter,
                parent_filter,
                limit,
            ),
        )
    return [
        WorkflowSummary(
            workflow_id=str(row[0]),
            name=str(row[1]),
            status=WorkflowStatus(row[2]),
            waiting_for=row[3] if row[2] == "waiting" else None,
            due_at=row[4],
            created_at=float(row[5]),
            updated_at=float(row[6]),
            finished_at=row[7],
            parent_id=row[8],
            error_type=row[9],
            error_message=row[10],
        )
        for row in rows
    ]


def count_by_status(store: Store) -> dict[str, int]:
    """How many workflows are in each status."""
    with store.read() as tx:
        rows = tx.fetchall(store.queries("ops")["count_by_status"])
    return {str(row[0]): int(row[1]) for row in rows}
