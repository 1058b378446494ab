"""The doctor: find unfinished workflows that nothing will ever wake.

The invariant: every unfinished workflow has a wake-up source. A pending
workflow is due; a running one holds a lease (which, once expired, any
worker takes over); a waiting one has a due time (timer, retry, timeout),
an awaited event not yet sent, or enough unfinished children still to
notify it. A row that breaks this (after a bug, a manual edit, a restore
from backup) would wait forever in silence. The doctor reports such rows
and, with ``repair``, makes them due: replay then works out afresh what the
workflow waits for, so repairing is always safe.

It also reports, without changing anything, workflows overdue for a long
time (no worker or scheduled tick seems to run) and workflows parked as
dead, blocked or compensation-failed (they wait for ``app.resume``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from stateshift.store.base import Store

__all__ = ["DoctorFinding", "DoctorReport", "diagnose"]

logger = logging.getLogger(__name__)

OVERDUE_SECONDS = 300.0
"""Due (or with an expired lease) for longer than this counts as overdue."""

# Query name, problem code, and what it means for the operator.
_STUCK_CHECKS = (
    ("doctor_pending_not_due", "pending_not_due", "pending but never due"),
    (
        "doctor_running_without_lease",
        "running_without_lease",
        "running with no lease for another worker to take over",
    ),
    (
        "doctor_waiting_for_nothing",
        "waiting_for_nothing",
        "waiting with no timer, event or children",
    ),
    (
        "doctor_event_not_woken",
        "event_not_woken",
        "its awaited event was sent but did not wake it",
    ),
    (
        "doctor_children_short",
        "children_short",
        "waits for more children than can still notify it",
    ),
)


@dataclass(frozen=True)
class DoctorFinding:
    """One workflow the doctor has something to say about."""

    workflow_id: str
    """The workflow's id."""
    name: str
    """Its registered name."""
    status: str
    """Its status when checked."""
    problem: str
    """A stable code: ``pending_not_due``, ``running_without_lease``,
    ``waiting_for_nothing``, ``event_not_woken``, ``children_short`` (stuck:
    repairable), ``overdue`` or ``parked`` (reported only)."""
    detail: str
    """What is wrong, in words."""
    repaired: bool = False
    """True when ``repair`` made it due."""

    @property
    def stuck(self) -> bool:
        """True when nothing would ever wake this workflow."""
        return self.problem not in ("overdue", "parked")


@dataclass(frozen=True)
class DoctorReport:
    """What ``app.doctor()`` or ``stateshift doctor`` found."""

    findings: tuple[DoctorFinding, ...] = field(default_factory=tuple)
    """Every finding, stuck workflows first."""

    @property
    def stuck(self) -> tuple[DoctorFinding, ...]:
        """Workflows without a wake-up source."""
        return tuple(f for f in self.findings if f.stuck)

    @property
    def healthy(self) -> bool:
        """True when no workflow is stuck (overdue and parked ones aside)."""
        return not self.stuck


def diagnose(
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
    repair: bool = False,
    overdue_seconds: float = OVERDUE_SECONDS,
) -> DoctorReport:
    """Check every unfinished workflow for a wake-up source.

    Args:
        store: the store to check.
        clock: the app clock (due times are on it).
        repair: make every stuck workflow due now.
        overdue_seconds: report workflows due for longer than this.
    """
    queries = store.queries("ops")
    findings: list[DoctorFinding] = []
    seen: set[str] = set()
    with store.read() as tx:
        for query, problem, detail in _STUCK_CHECKS:
            for row in tx.fetchall(queries[query]):
                if row[0] in seen:
                    continue
                seen.add(str(row[0]))
                words = detail if not row[3] else f"{detail} ({row[3]})"
                findings.append(
                    DoctorFinding(str(row[0]), str(row[1]), str(row[2]), problem, words)
                )
        now = float(clock())
        overdue = tx.fetchall(
            queries["doctor_overdue"], (now - overdue_seconds, overdue_seconds)
        )
        parked = tx.fetchall(queries["doctor_parked"])

    if repair:
        findings = [_repair(store, finding, clock) for finding in findings]
    for row in overdue:
        if row[0] in seen:
            continue
        findings.append(
            DoctorFinding(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                "overdue",
                f"due for more than {overdue_seconds:g} s: is a worker or a "
                "scheduled tick running for this store?",
            )
        )
    for row in parked:
        findings.append(
            DoctorFinding(
                str(row[0]),
                str(row[1]),
                str(row[2]),
                "parked",
                f"{row[2]}: fix the cause, then resume it ({row[3] or 'no message'})",
            )
        )
    return DoctorReport(tuple(findings))


def _repair(
    store: Store, finding: DoctorFinding, clock: Callable[[], float]
) -> DoctorFinding:
    now = float(clock())
    with store.transaction() as tx:
        # Guarded by status and a missing due time: a workflow that moved on
        # since the check is left alone.
        changed = tx.execute(
            store.queries("ops")["doctor_make_due"],
            (now, now, finding.workflow_id, finding.status),
        )
    if changed != 1:
        return finding
    logger.warning(
        "doctor made stuck workflow %s due (%s)",
        finding.workflow_id,
        finding.problem,
        extra={"event": "doctor.repaired", "workflow_id": finding.workflow_id},
    )
    return DoctorFinding(
        finding.workflow_id,
        finding.name,
        finding.status,
        finding.problem,
        finding.detail,
        repaired=True,
    )
