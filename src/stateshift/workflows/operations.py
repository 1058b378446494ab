"""The operational methods of :class:`stateshift.App`.

``@app.schedule`` (cron schedules), ``app.worker`` (a long-running loop),
``app.list_workflows`` and ``app.doctor`` (inspection and repair). They
plug into the tick through :meth:`WorkflowsMixin._before_due_work`: every
tick starts due schedule slots and, now and then, purges expired state.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from stateshift._durations import Duration, to_seconds

# Schedules, the worker loop, listing and the doctor are imported on first
# use: a serverless function that only runs workflows never needs them.
if TYPE_CHECKING:
    from stateshift.workflows.api import WorkflowsMixin
    from stateshift.workflows.doctor import DoctorReport
    from stateshift.workflows.listing import WorkflowSummary
    from stateshift.workflows.schedules import Scheduler
    from stateshift.workflows.status import WorkflowStatus

    _Base = WorkflowsMixin
else:
    _Base = object

__all__ = ["OperationsMixin"]

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

PURGE_INTERVAL_SECONDS = 60.0
"""Ticks purge expired state at most this often per process."""


class OperationsMixin(_Base):
    """Schedules, workers, listing and the doctor, as methods of the app."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._scheduler: Scheduler | None = None  # made by the first @app.schedule
        self._last_purge = float("-inf")

    def schedule(
        self, *, cron: str, name: str | None = None, catch_up: int = 1
    ) -> Callable[[F], F]:
        """Start the decorated workflow once per cron slot (UTC).

        The function is registered as a workflow if it is not one already.
        If it takes a positional argument, it gets the slot as an aware UTC
        ``datetime``. Each slot's workflow id is ``schedule:<name>:<slot>``.

        Args:
            cron: five fields (minute hour day-of-month month day-of-week)
                or a shorthand such as ``@hourly`` or ``@daily``.
            name: the schedule's name (default: the workflow's name).
            catch_up: after downtime, how many of the latest missed slots
                to start; older ones are skipped.
        """
        from stateshift.workflows._registry import DEFINITION_ATTRIBUTE
        from stateshift.workflows.cron import CronExpression
        from stateshift.workflows.schedules import Schedule, Scheduler, takes_slot

        expression = CronExpression.parse(cron)
        if not isinstance(catch_up, int) or isinstance(catch_up, bool) or catch_up < 1:
            raise ValueError("catch_up must be a positive integer")

        def decorate(fn: F) -> F:
            definition = getattr(fn, DEFINITION_ATTRIBUTE, None)
            if (
                definition is None
                or self._workflow_definitions.get(definition.name) is not definition
            ):
                self.workflow()(fn)
            definition = self.definition_of(fn)
            if self._scheduler is None:
                self._scheduler = Scheduler(self)
            self._scheduler.add(
                Schedule(
                    name=name or definition.name,
                    cron=expression,
                    definition=definition,
                    catch_up=catch_up,
                    pass_slot=takes_slot(fn),
                )
            )
            return fn

        return decorate

    def _before_due_work(self) -> float | None:
        scheduler = self._scheduler
        wake_at = scheduler.start_due() if scheduler is not None else None
        self._purge_now_and_then()
        return wake_at

    def _purge_now_and_then(self) -> None:
        purge = getattr(self, "purge_expired", None)
        now = time.monotonic()
        if purge is None or now - self._last_purge < PURGE_INTERVAL_SECONDS:
            return
        self._last_purge = now
        try:
            purge()
        except Exception:
            # Upkeep must never stop due work from running.
            logger.exception(
                "purging expired state failed", extra={"event": "state.purge_failed"}
            )

    # --- running ----------------------------------------------------------

    def worker(
        self,
        *,
        concurrency: int = 1,
        max_sleep: Duration = 1.0,
        shutdown_timeout: Duration = 30.0,
    ) -> None:
        """Run due work on ``concurrency`` threads until SIGTERM or SIGINT.

        See :class:`stateshift.workflows.worker.Worker`; on stop, steps in
        flight finish and their workflows are handed back, due at once.
        """
        from stateshift.workflows.worker import Worker

        Worker(
            self,
            concurrency=concurrency,
            max_sleep=max_sleep,
            shutdown_timeout=shutdown_timeout,
        ).run()

    # --- inspection ---------------------------------------------------------

    def list_workflows(
        self,
        *,
        status: str | WorkflowStatus | Iterable[str] | None = None,
        name: str | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[WorkflowSummary]:
        """Workflows matching every filter given, newest first.

        Args:
            status: one status or several.
            name: the registered workflow name.
            parent_id: only children of this workflow.
            limit: the most rows to return.
        """
        from stateshift.workflows.listing import list_workflows

        return list_workflows(
            self.store, status=status, name=name, parent_id=parent_id, limit=limit
        )

    def doctor(
        self, *, repair: bool = False, overdue: Duration | None = None
    ) -> DoctorReport:
        """Find unfinished workflows with no wake-up source; repair them.

        Args:
            repair: make every stuck workflow due now.
            overdue: also report workflows due for longer than this
                (default: five minutes, ``workflows.doctor.OVERDUE_SECONDS``).
        """
        from stateshift.workflows.doctor import OVERDUE_SECONDS, diagnose

        if overdue is None:
            overdue = OVERDUE_SECONDS
        return diagnose(
            self.store,
            clock=self.clock,
            repair=repair,
            overdue_seconds=to_seconds(overdue, name="overdue"),
        )
