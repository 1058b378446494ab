"""Cron schedules: one workflow per slot, exactly once, started by ticks.

``@app.schedule(cron="0 3 * * *")`` registers a workflow and a schedule for
it. Every tick (``app.tick``, ``app.run_until_idle``, a worker's loop)
starts the workflows of slots that came due, with the id
``schedule:<name>:<slot>`` (the slot in UTC, like ``2024-05-01T03:00:00Z``).
However many workers tick at once, a slot's workflow starts once: the
schedule's row is locked while its slots are started, and starting is
idempotent on the workflow id anyway.

After downtime, only the ``catch_up`` latest missed slots are started (one
by default); older missed slots are skipped. A schedule's slots count from
the moment a tick first sees it: registering a schedule never starts slots
from the past.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from stateshift.store.base import Tx
from stateshift.workflows._registry import WorkflowDef
from stateshift.workflows.cron import CronExpression

if TYPE_CHECKING:
    from stateshift.workflows.api import WorkflowsMixin

__all__ = ["Schedule", "Scheduler", "slot_workflow_id"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    """A registered cron schedule."""

    name: str
    """The schedule's name (default: its workflow's name)."""
    cron: CronExpression
    """When it fires (UTC)."""
    definition: WorkflowDef
    """The workflow each slot starts."""
    catch_up: int
    """How many of the latest missed slots to start after downtime."""
    pass_slot: bool
    """The workflow takes the slot (an aware UTC datetime) as its argument."""


def slot_workflow_id(name: str, slot_at: float) -> str:
    """The workflow id of one slot: ``schedule:<name>:<UTC time>``."""
    moment = datetime.fromtimestamp(slot_at, UTC)
    return f"schedule:{name}:{moment.strftime('%Y-%m-%dT%H:%M:%SZ')}"


def takes_slot(fn: Callable[..., Any]) -> bool:
    """True when ``fn`` accepts one positional argument (the slot)."""
    parameters = [
        p
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]
    return bool(parameters)


class Scheduler:
    """Starts due slots of an app's schedules; one per app."""

    def __init__(self, app: WorkflowsMixin) -> None:
        self.app = app
        self.schedules: dict[str, Schedule] = {}
        # Next slot of each schedule as last read, so most ticks decide
        # without touching the store.
        self._next_slot_at: dict[str, float] = {}
        self._lock = threading.Lock()

    def add(self, schedule: Schedule) -> None:
        """Register ``schedule``.

        Raises:
            ValueError: another schedule has this name.
        """
        with self._lock:
            if schedule.name in self.schedules:
                raise ValueError(f"a schedule named {schedule.name!r} already exists")
            self.schedules[schedule.name] = schedule

    def start_due(self) -> float | None:
        """Start the workflows of due slots; return the next slot time."""
        if not self.schedules:
            return None
        now = float(self.app.clock())
        with self._lock:
            known = dict(self._next_slot_at)
        unknown = [name for name in self.schedules if name not in known]
        if unknown:
            known.update(self._read_next_slots())
        due = [
            name for name in self.schedules if name not in known or known[name] <= now
        ]
        if due:
            known.update(self._start(due, now))
        with self._lock:
            self._next_slot_at.update(known)
        return min(known.values(), default=None)

    def _read_next_slots(self) -> dict[str, float]:
        queries = self.app.store.queries("ops")
        with self.app.store.read() as tx:
            rows = tx.fetchall(queries["schedule_rows"])
        found = {}
        for name, _, last_slot_at in rows:
            schedule = self.schedules.get(str(name))
            if schedule is not None:
                found[schedule.name] = schedule.cron.next_after(float(last_slot_at))
        return found

    def _start(self, names: list[str], now: float) -> dict[str, float]:
        queries = self.app.store.queries("ops")
        next_slots: dict[str, float] = {}
        started: list[str] = []
        with self.app.store.transaction() as tx:
            for name in names:
                schedule = self.schedules[name]
                tx.execute(
                    queries["schedule_add"], (name, schedule.cron.text, now, now)
                )
                # Locked until commit: a second worker ticking at the same
                # moment waits here, then finds the slots already taken.
                row = tx.fetchone(queries["schedule_lock"], (name,))
                assert row is not None
                last_slot_at = float(row[1])
                slots = self._missed(schedule, last_slot_at, now)
                for slot_at in slots:
                    started.extend(self._insert(tx, schedule, slot_at))
                if slots or row[0] != schedule.cron.text:
                    reached = max(slots, default=last_slot_at)
                    tx.execute(
                        queries["schedule_advance"],
                        (schedule.cron.text, reached, now, name),
                    )
                next_slots[name] = schedule.cron.next_after(max(now, last_slot_at))
        for workflow_id in started:
            logger.info(
                "schedule started workflow %s",
                workflow_id,
                extra={"event": "schedule.started", "workflow_id": workflow_id},
            )
        return next_slots

    @staticmethod
    def _missed(schedule: Schedule, last_slot_at: float, now: float) -> list[float]:
        """The ``catch_up`` latest slots in ``(last_slot_at, now]``, oldest first."""
        slots: list[float] = []
        slot_at = schedule.cron.at_or_before(now)
        while slot_at is not None and slot_at > last_slot_at:
            slots.append(slot_at)
            if len(slots) >= schedule.catch_up:
                break
            slot_at = schedule.cron.at_or_before(slot_at - 60)
        skipped = _skipped(schedule, last_slot_at, slots)
        if skipped:
            logger.warning(
                "schedule %s skipped missed slots before %s (catch_up is %d)",
                schedule.name,
                slot_workflow_id(schedule.name, slots[0]),
                schedule.catch_up,
                extra={"event": "schedule.skipped", "schedule": schedule.name},
            )
        slots.reverse()
        return slots

    def _insert(self, tx: Tx, schedule: Schedule, slot_at: float) -> list[str]:
        app = self.app
        definition = schedule.definition
        workflow_id = slot_workflow_id(schedule.name, slot_at)
        args: tuple[Any, ...] = ()
        if schedule.pass_slot:
            args = (datetime.fromtimestamp(slot_at, UTC),)
        data, digest = definition.encode_input(app.codec, args, {})
        engine = app._workflow_engine
        row = engine.insert_row(
            workflow_id,
            definition.name,
            data,
            digest,
            leased=False,
            timeout_seconds=definition.timeout_seconds,
        )
        if tx.execute(engine.q["insert"], row) == 1:
            return [workflow_id]
        return []


def _skipped(schedule: Schedule, last_slot_at: float, slots: list[float]) -> bool:
    if not slots:
        return False
    earlier = schedule.cron.at_or_before(min(slots) - 60)
    return earlier is not None and earlier > last_slot_at
