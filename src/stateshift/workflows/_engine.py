"""The engine's transactions: every row the workflow engine reads or writes.

Each method is one short transaction built from the named queries in
``store/queries/workflows.sql``. Writes for a claimed workflow carry its
epoch; when the fence finds another epoch the claim was taken over, and the
method raises the :class:`~stateshift.workflows._signals.Fenced` signal.
Lock order on PostgreSQL is always parent row before child rows, so a
parent suspending on its children and a child finishing cannot deadlock.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateshift.errors import LeaseLost, StoreError, StoreUnavailable, WorkflowNotFound
from stateshift.placement.scope import current_home
from stateshift.store.base import Store, Tx
from stateshift.unit import Unit
from stateshift.workflows import _placement
from stateshift.workflows._context import Record, WorkflowContext
from stateshift.workflows._signals import Fenced, Interrupted, Signal
from stateshift.workflows.status import EventDelivery

if TYPE_CHECKING:
    from stateshift.workflows.api import WorkflowsMixin

logger = logging.getLogger(__name__)

FINISHED = frozenset({"succeeded", "failed", "cancelled"})
ErrorRow = tuple[str | None, str | None, str | None]
NO_ERROR: ErrorRow = (None, None, None)


_CLAIM_COLUMNS = 11
"""Columns a claim query returns before the optional history column."""


def _record_of(r: Sequence[Any]) -> Record:
    """A history row as the ``history`` query returns it."""
    return Record(
        int(r[0]),
        str(r[1]),
        str(r[2]),
        str(r[3]),
        int(r[4]),
        None if r[5] is None else bytes(r[5]),
        r[6],
        r[7],
        r[8],
    )


def _history_of_json(raw: Any) -> list[Record]:
    """History rows from the ``claim_history`` column (see workflows.sql)."""
    rows = json.loads(raw) if isinstance(raw, str | bytes) else (raw or [])
    return [
        Record(
            int(r[0]),
            str(r[1]),
            str(r[2]),
            str(r[3]),
            int(r[4]),
            None if r[5] is None else bytes.fromhex(r[5]),
            r[6],
            r[7],
            r[8],
        )
        for r in rows
    ]


class _EachAlone(Tx):
    """A transaction stand-in whose every statement commits on its own.

    For the writes that may follow a claim made by one lone statement: each
    is a single statement fenced by the claim's epoch.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.dialect = store.dialect

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        with self.store.transaction() as tx:
            return tx.execute(sql, params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        with self.store.transaction() as tx:
            return tx.executemany(sql, rows)

    def fetchone(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.store.transaction() as tx:
            return tx.fetchone(sql, params)

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.store.transaction() as tx:
            return tx.fetchall(sql, params)


@dataclass
class Claim:
    """A workflow claimed by this worker, with its history."""

    workflow_id: str
    name: str
    input: bytes
    epoch: int
    recoveries: int
    cancel_requested: bool
    parent_id: str | None
    deadline_at: float | None
    history: list[Record]
    placed: _placement.Placed | None = None
    fresh_until: float = 0.0
    """Monotonic time until which its lease, set by the claim, needs no renewal."""


@dataclass(frozen=True)
class ChildOutcome:
    """How a child workflow ended, as recorded in its parent's history."""

    workflow_id: str
    status: str
    result: bytes | None
    error_type: str | None
    error_message: str | None

    def to_value(self) -> list[Any]:
        encoded = None if self.result is None else base64.b64encode(self.result)
        return [
            self.workflow_id,
            self.status,
            None if encoded is None else encoded.decode("ascii"),
            self.error_type,
            self.error_message,
        ]

    @classmethod
    def from_value(cls, value: list[Any]) -> ChildOutcome:
        workflow_id, status, result, error_type, error_message = value
        raw = None if result is None else base64.b64decode(result)
        return cls(workflow_id, status, raw, error_type, error_message)


class Engine:
    """Durable operations of the workflow engine for one app."""

    def __init__(self, app: WorkflowsMixin) -> None:
        self.app = app
        self._queries: dict[str, str] = {}
        self._queries_of: Store | None = None
        self._with_history: dict[str, str] = {}
        # Claims of this process go one at a time, so that a claim taking
        # back this worker's leases (left by an earlier process with the
        # same worker id) never takes a workflow another thread of this
        # process has just claimed or is running: those are in ``_held``.
        self._claim_lock = threading.Lock()
        self._held: set[str] = set()
        self._reclaimed_on: set[int] = set()
        """``id`` of each store whose leases of this worker were taken back."""

    @property
    def own_leases_reclaimed(self) -> bool:
        """Whether this worker's old leases on the current store are back."""
        return id(self.store) in self._reclaimed_on

    @own_leases_reclaimed.setter
    def own_leases_reclaimed(self, done: bool) -> None:
        if done:
            self._reclaimed_on.add(id(self.store))
        else:
            self._reclaimed_on.discard(id(self.store))

    def reclaim_own_leases_again(self) -> None:
        """Make the next claim on every store take this worker's leases back.

        After a store failure under a checkpoint the claim is left leased to
        this worker; taking it back at once beats waiting for the lease.
        """
        with self._claim_lock:
            self._reclaimed_on.clear()

    def hold(self, workflow_id: str) -> None:
        """Mark a workflow as run by this process (no reclaim may take it)."""
        with self._claim_lock:
            self._held.add(workflow_id)

    def drop(self, workflow_id: str) -> None:
        """This process no longer runs the workflow."""
        with self._claim_lock:
            self._held.discard(workflow_id)

    def _own_params(self, now: float) -> tuple[Any, ...]:
        """Parameters of ``claim_own``: this worker's leases, not those held here."""
        return (
            self.app.settings.lease_seconds,
            now,
            self.app.worker_id,
            *self._version(),
            json.dumps(sorted(self._held)),
        )

    # --- plumbing ---------------------------------------------------------

    @property
    def store(self) -> Store:
        # The shard of the workflow being started, claimed or run (see
        # workflows/_placement.py); the app's own store outside of those.
        return _placement.store_of(current_home(), self.app.store)

    @property
    def q(self) -> dict[str, str]:
        store = self.store
        if self._queries_of is not store:
            self._queries = store.queries("workflows")
            self._queries_of = store
        return self._queries

    def clock(self) -> float:
        return float(self.app.clock())

    def _version(self) -> tuple[str, str]:
        version = self.app.settings.app_version
        return version, version

    def _fenced(self, ctx: WorkflowContext) -> Signal:
        error = LeaseLost(
            ctx.workflow_id,
            f"worker {self.app.worker_id!r} lost its claim on workflow "
            f"{ctx.workflow_id!r} (epoch {ctx.epoch}): another worker took it "
            "over, so this worker's write was refused",
        )
        return ctx.stop(Fenced(error))

    def _interrupted(self, ctx: WorkflowContext, error: StoreUnavailable) -> Signal:
        # Whether the failed write committed is unknown: stop as a crash
        # would and let the replay tell. This worker takes the claim back
        # first thing, rather than waiting for its lease to expire.
        self.reclaim_own_leases_again()
        logger.warning(
            "workflow %s stops: the store failed under a checkpoint (%s)",
            ctx.workflow_id,
            error,
            extra={"event": "workflow.interrupted", "workflow_id": ctx.workflow_id},
        )
        return ctx.stop(Interrupted(error))

    @contextmanager
    def _writing(self, ctx: WorkflowContext) -> Iterator[Tx]:
        """A write transaction for workflow code; store failures interrupt."""
        try:
            with self.store.transaction() as tx:
                yield tx
        except StoreUnavailable as exc:
            raise self._interrupted(ctx, exc) from exc

    def _fence(self, tx: Tx, ctx: WorkflowContext) -> None:
        row = tx.fetchone(
            self.q["fence"],
            (self.app.settings.lease_seconds, self.clock(), ctx.workflow_id, ctx.epoch),
        )
        if row is None:
            raise self._fenced(ctx)
        ctx.cancel_requested = ctx.cancel_requested or bool(row[0])
        ctx.renew_lease_by = time.monotonic() + self.app.settings.lease_seconds / 3

    def _flush(self, tx: Tx, ctx: WorkflowContext) -> None:
        # Records buffered since the last checkpoint (times, ids, child
        # starts) ride along with the next write instead of a commit each.
        if ctx.pending_children:
            tx.executemany(self.q["insert"], ctx.pending_children)
        if ctx.pending_records:
            tx.executemany(self.q["save_step"], ctx.pending_records)

    @staticmethod
    def _flushed(ctx: WorkflowContext) -> None:
        ctx.pending_children.clear()
        ctx.pending_records.clear()

    def step_row(
        self,
        ctx: WorkflowContext,
        seq: int,
        kind: str,
        name: str,
        status: str,
        attempts: int,
        output: bytes | None,
        error: ErrorRow = NO_ERROR,
        started_at: float | None = None,
    ) -> tuple[Any, ...]:
        """A row for ``save_step``."""
        return (
            ctx.workflow_id,
            seq,
            kind,
            name,
            status,
            attempts,
            output,
            *error,
            started_at,
            time.time(),
        )

    def _suspend(
        self,
        tx: Tx,
        ctx: WorkflowContext,
        due_at: float | None,
        waiting_for: str,
        *,
        wait_event: str | None = None,
        wait_count: int = 0,
    ) -> None:
        now = self.clock()
        # A waiting workflow is woken at once by a cancellation and at its
        # deadline, to unwind; a saga's compensations run past both, so their
        # retry timers are kept.
        woken_at: float | None = now
        if ctx.compensating:
            woken_at = due_at
        elif ctx.deadline_at is not None:
            due_at = ctx.deadline_at if due_at is None else min(due_at, ctx.deadline_at)
        changed = tx.execute(
            self.q["suspend"],
            (
                woken_at,
                due_at,
                waiting_for,
                wait_event,
                wait_count,
                now,
                ctx.workflow_id,
                ctx.epoch,
            ),
        )
        if changed != 1:
            raise self._fenced(ctx)

    # --- starting ---------------------------------------------------------

    def insert_row(
        self,
        workflow_id: str,
        name: str,
        data: bytes,
        digest: str,
        *,
        leased: bool,
        parent_id: str | None = None,
        timeout_seconds: float | None = None,
    ) -> tuple[Any, ...]:
        """A row for the ``insert`` query."""
        now = self.clock()
        deadline = None if timeout_seconds is None else now + timeout_seconds
        return (
            workflow_id,
            name,
            data,
            digest,
            "running" if leased else "pending",
            self.app.settings.app_version,
            parent_id,
            1 if leased else 0,
            self.app.worker_id if leased else None,
            self.app.settings.lease_seconds if leased else None,
            None if leased else now,
            deadline,
            now,
            now,
            *_placement.placed_columns(workflow_id),
        )

    def insert(self, row: tuple[Any, ...]) -> tuple[str, str, str] | None:
        """Insert a workflow; ``None`` if new, else the existing identity."""
        store = self.store
        # One statement on its own: a single round trip, no BEGIN or COMMIT.
        if store.execute_alone(self.q["start"], row):
            return None
        with store.read() as tx:
            found = tx.fetchone(self.q["identity"], (row[0],))
        assert found is not None
        return str(found[0]), str(found[1]), str(found[2])

    # --- claiming ---------------------------------------------------------

    def claim_next(self) -> Claim | None:
        """Claim one due workflow (own leases first, then expired, then due)."""
        while True:
            found, claim = self._claim_once()
            if claim is not None or not found:
                return claim

    def _claim_once(self) -> tuple[bool, Claim | None]:
        with self._claim_lock:
            fresh_until = self._fresh_from_now()
            found, claim = self._claim_locked()
            if claim is not None:
                claim.fresh_until = fresh_until
                self._held.add(claim.workflow_id)
            return found, claim

    def _fresh_from_now(self) -> float:
        # Taken before the claim: its leases run from a moment after.
        return time.monotonic() + self.app.settings.lease_seconds / 3

    def claim_batch(self, limit: int) -> list[Claim]:
        """Claim up to ``limit`` due workflows, in the order to run them.

        On PostgreSQL one statement claims them all (leases that ran out
        first, as :meth:`claim_next` would), and one query in the same
        transaction reads their histories. Every claim is held by this
        process from the same critical section. Elsewhere, while this
        worker's old leases are not all back, or for ``limit`` 1, it is
        :meth:`claim_next`: at most one.
        """
        while True:
            with self._claim_lock:
                fresh_until = self._fresh_from_now()
                if limit > 1 and "claim_batch" in self.q:
                    found, claims = self._claim_batch_locked(limit)
                else:
                    found, claim = self._claim_locked()
                    claims = [] if claim is None else [claim]
                for claim in claims:
                    claim.fresh_until = fresh_until
                    self._held.add(claim.workflow_id)
            # Every row found may have been refused or dead: look again.
            if claims or not found:
                return claims

    def _claim_batch_locked(self, limit: int) -> tuple[bool, list[Claim]]:
        worker, lease = self.app.worker_id, self.app.settings.lease_seconds
        now = self.clock()
        if not self.own_leases_reclaimed:
            # This worker's old leases come back one at a time, as before,
            # each passing over the workflows this process holds.
            with self.store.transaction() as tx:
                row = tx.fetchone(self.q["claim_own"], self._own_params(now))
                if row is not None:
                    claim = self._claimed(tx, row)
                    return True, [] if claim is None else [claim]
            self.own_leases_reclaimed = True
        params = (
            *self._version(),
            limit,
            now,
            *self._version(),
            limit,
            worker,
            lease,
            now,
        )
        with self.store.transaction() as tx:
            rows = tx.fetchall(self.q["claim_batch"], params)
            if not rows:
                return False, []
            # Lease that ran out first (tier 0), each tier in its order.
            rows.sort(
                key=lambda r: (int(r[_CLAIM_COLUMNS]), float(r[_CLAIM_COLUMNS + 1]))
            )
            claims = [
                claim
                for claim in (self._admitted(tx, row[:_CLAIM_COLUMNS]) for row in rows)
                if claim is not None
            ]
            if claims:
                ids = json.dumps([claim.workflow_id for claim in claims])
                histories: dict[str, list[Record]] = {}
                for r in tx.fetchall(self.q["histories"], (ids,)):
                    histories.setdefault(str(r[0]), []).append(_record_of(r[1:]))
                for claim in claims:
                    claim.history = histories.get(claim.workflow_id, [])
        return True, claims

    def release_batch(self, claims: Sequence[Claim], due_at: float) -> None:
        """Hand claimed workflows back as pending, each fenced by its epoch."""
        if not claims:
            return
        now = self.clock()
        store = self.store
        if "release_batch" in self.q:
            pairs = json.dumps([[claim.workflow_id, claim.epoch] for claim in claims])
            store.execute_alone(self.q["release_batch"], (due_at, now, pairs))
            return
        with store.transaction() as tx:
            tx.executemany(
                self.q["release"],
                [(due_at, now, claim.workflow_id, claim.epoch) for claim in claims],
            )

    def take_back_own_lease(self) -> Claim | None:
        """Claim one workflow this worker id held when an earlier process died.

        Passes over the workflows this process holds; the claim is held
        until its run ends (``run_claim`` drops it).
        """
        with self._claim_lock:
            with self.store.transaction() as tx:
                row = tx.fetchone(self.q["claim_own"], self._own_params(self.clock()))
                claim = None if row is None else self._claimed(tx, row)
            if claim is not None:
                self._held.add(claim.workflow_id)
            return claim

    def _claim_locked(self) -> tuple[bool, Claim | None]:
        settings = self.app.settings
        worker, lease = self.app.worker_id, settings.lease_seconds
        now = self.clock()
        due = (worker, lease, now, *self._version(), now, *self._version())
        if "claim_history" in self.q:
            return self._claim_alone(now, due)
        with self.store.transaction() as tx:
            row = None
            if not self.own_leases_reclaimed:
                # A restarted worker with a stable id takes its leases back at
                # once instead of waiting for them to expire.
                row = tx.fetchone(self.q["claim_own"], self._own_params(now))
                if row is None:
                    self.own_leases_reclaimed = True
            if row is None:
                # An expired lease first, else due work: one statement.
                row = tx.fetchone(self.q["claim_next"], due)
            if row is None:
                return False, None
            return True, self._claimed(tx, row)

    def _claim_alone(
        self, now: float, due: tuple[Any, ...]
    ) -> tuple[bool, Claim | None]:
        """:meth:`_claim_once` where a claim returns its history (SQLite).

        Each claim is then one statement on its own, committed by itself;
        the rare writes after it (a row refused by the residency policy,
        one dead after too many recoveries) are fenced by the new epoch, so
        they need no transaction shared with the claim.
        """
        store = self.store
        row = None
        if not self.own_leases_reclaimed:
            own = self._own_params(now)
            found = store.execute_alone(self._history_sql("claim_own"), own)
            row = found[0] if found else None
            if row is None:
                self.own_leases_reclaimed = True
        if row is None:
            found = store.execute_alone(self._history_sql("claim_next"), due)
            row = found[0] if found else None
        if row is None:
            return False, None
        return True, self._claimed(_EachAlone(store), row)

    def claim_id(self, workflow_id: str) -> Claim | None:
        """Claim one workflow by id, if it is due or its lease expired."""
        settings = self.app.settings
        now = self.clock()
        params = (
            self.app.worker_id,
            settings.lease_seconds,
            now,
            workflow_id,
            now,
            *self._version(),
        )
        with self._claim_lock:
            fresh_until = self._fresh_from_now()
            claim = self._claim_id_locked(params)
            if claim is not None:
                claim.fresh_until = fresh_until
                self._held.add(claim.workflow_id)
            return claim

    def _claim_id_locked(self, params: tuple[Any, ...]) -> Claim | None:
        if "claim_history" in self.q:
            store = self.store
            found = store.execute_alone(self._history_sql("claim_id"), params)
            return self._claimed(_EachAlone(store), found[0]) if found else None
        with self.store.transaction() as tx:
            row = tx.fetchone(self.q["claim_id"], params)
            if row is None:
                return None
            return self._claimed(tx, row)

    def _history_sql(self, claim: str) -> str:
        """The claim query ``claim`` with the history as one more column."""
        q = self.q
        base = q[claim]
        found = self._with_history.get(base)
        if found is None:
            # RETURNING ends each claim query: the column goes last.
            found = f"{base},\n    {q['claim_history']}"
            self._with_history[base] = found
        return found

    def _claimed(self, tx: Tx, row: Sequence[Any]) -> Claim | None:
        """Build the claim and read its history; ``None`` if it just died."""
        claim = self._admitted(tx, row)
        if claim is None:
            return None
        if len(row) > _CLAIM_COLUMNS:
            claim.history = _history_of_json(row[_CLAIM_COLUMNS])
            return claim
        claim.history = [
            _record_of(r) for r in tx.fetchall(self.q["history"], (claim.workflow_id,))
        ]
        return claim

    def _admitted(self, tx: Tx, row: Sequence[Any]) -> Claim | None:
        """The claim of ``row`` without its history; ``None`` if refused or dead.

        A row the residency policy refuses is parked ``blocked``, one taken
        over more than ``max_recoveries`` times ``dead``, both in ``tx`` and
        fenced by the claim's epoch.
        """
        claim = Claim(
            workflow_id=str(row[0]),
            name=str(row[1]),
            input=bytes(row[2]),
            epoch=int(row[3]),
            recoveries=int(row[4]),
            cancel_requested=bool(row[5]),
            parent_id=row[6],
            deadline_at=row[7],
            history=[],
        )
        claim.placed = _placement.admit_claim(
            self, tx, claim, _placement.placed_of(claim.workflow_id, row[8:11])
        )
        if claim.placed is None:
            return None
        if claim.recoveries > self.app.settings.max_recoveries:
            message = (
                f"workflow {claim.workflow_id!r} was taken over from a crashed "
                f"worker {claim.recoveries} times (max_recoveries is "
                f"{self.app.settings.max_recoveries}); fix the crash, then "
                "app.resume() it"
            )
            tx.execute(
                self.q["park"],
                (
                    "dead",
                    "stateshift.Dead",
                    message,
                    None,
                    self.clock(),
                    claim.workflow_id,
                    claim.epoch,
                ),
            )
            logger.error(
                "workflow %s is dead after %d recoveries",
                claim.workflow_id,
                claim.recoveries,
                extra={"event": "workflow.dead", "workflow_id": claim.workflow_id},
            )
            return None
        return claim

    def release(self, workflow_id: str, epoch: int, due_at: float) -> None:
        """Hand a claimed workflow back as pending, due at ``due_at``."""
        with self.store.transaction() as tx:
            tx.execute(self.q["release"], (due_at, self.clock(), workflow_id, epoch))

    def next_wake_at(self) -> float | None:
        """The earliest due time of any workflow, if one is set."""
        with self.store.read() as tx:
            row = tx.fetchone(self.q["next_wake"])
        return None if row is None or row[0] is None else float(row[0])

    # --- checkpoints ------------------------------------------------------

    def commit_step(
        self,
        ctx: WorkflowContext,
        seq: int,
        kind: str,
        name: str,
        attempt: int,
        output: bytes,
        unit: Unit,
        started_at: float,
    ) -> None:
        """The hot path: fence, checkpoint and the step's writes, one commit."""
        store = self.store
        if unit.store is not None and unit.store is not store:
            raise StoreError(
                f"step {name!r} wrote to another store than its workflow's; "
                "state changed by a step must live in the workflow's store"
            )
        q = self.q
        fence = (self.app.settings.lease_seconds, self.clock(), ctx.workflow_id)
        try:
            if unit.operations or ctx.pending_children or ctx.pending_records:
                self._commit_step_tx(
                    ctx, seq, kind, name, attempt, output, unit, started_at
                )
            elif "checkpoint" in q:
                # A step with nothing else to write: one statement, one round
                # trip, no BEGIN or COMMIT.
                rows = store.execute_alone(
                    q["checkpoint"],
                    (*fence, ctx.epoch, seq, kind, name, attempt, output)
                    + (started_at, time.time()),
                )
                if not rows:
                    raise self._fenced(ctx)
                if rows[0][0]:
                    ctx.cancel_requested = True
            elif "checkpoint_in_lease" in q and time.monotonic() < ctx.renew_lease_by:
                # The lease was renewed less than a third of it ago: one
                # fenced statement, without BEGIN, COMMIT or the lease update.
                rows = store.execute_alone(
                    q["checkpoint_in_lease"],
                    (seq, kind, name, attempt, output, started_at, time.time())
                    + (ctx.workflow_id, ctx.epoch),
                )
                if not rows:
                    raise self._fenced(ctx)
                if rows[0][0]:
                    ctx.cancel_requested = True
            else:
                with store.transaction() as tx:
                    self._fence(tx, ctx)
                    tx.execute(
                        q["save_step"],
                        (ctx.workflow_id, seq, kind, name, "ok", attempt, output)
                        + (None, None, None, started_at, time.time()),
                    )
        except StoreUnavailable as exc:
            raise self._interrupted(ctx, exc) from exc
        if unit.after_commit:
            unit.committed()

    def _commit_step_tx(
        self,
        ctx: WorkflowContext,
        seq: int,
        kind: str,
        name: str,
        attempt: int,
        output: bytes,
        unit: Unit,
        started_at: float,
    ) -> None:
        with self.store.transaction() as tx:
            self._fence(tx, ctx)
            self._flush(tx, ctx)
            tx.execute(
                self.q["save_step"],
                self.step_row(
                    ctx, seq, kind, name, "ok", attempt, output, NO_ERROR, started_at
                ),
            )
            unit.apply(tx)
        self._flushed(ctx)

    def record(self, ctx: WorkflowContext, row: tuple[Any, ...]) -> None:
        """Write one checkpoint now (with whatever is buffered)."""
        with self._writing(ctx) as tx:
            self._fence(tx, ctx)
            self._flush(tx, ctx)
            tx.execute(self.q["save_step"], row)
        self._flushed(ctx)

    def suspend(
        self,
        ctx: WorkflowContext,
        due_at: float | None,
        waiting_for: str,
        row: tuple[Any, ...] | None = None,
    ) -> None:
        """Record ``row`` (if any) and leave the workflow waiting."""
        with self._writing(ctx) as tx:
            self._suspend(tx, ctx, due_at, waiting_for)
            self._flush(tx, ctx)
            if row is not None:
                tx.execute(self.q["save_step"], row)
        self._flushed(ctx)

    # --- events -----------------------------------------------------------

    def wait_event(
        self,
        ctx: WorkflowContext,
        seq: int,
        name: str,
        deadline_at: float | None,
        deadline_output: bytes,
    ) -> tuple[str, bytes | None]:
        """Take the oldest queued event, or time out, or start waiting.

        The choice is made in one transaction holding the workflow row, so an
        event arriving just as the timeout fires is either consumed here or
        stays queued for a later wait; it is never lost nor used twice.
        """
        q = self.q
        with self._writing(ctx) as tx:
            self._fence(tx, ctx)
            self._flush(tx, ctx)
            event = tx.fetchone(q["next_event"], (ctx.workflow_id, name))
            if event is not None:
                payload = bytes(event[1])
                tx.execute(q["consume_event"], (seq, event[0]))
                tx.execute(
                    q["save_step"],
                    self.step_row(ctx, seq, "event", name, "ok", 1, payload),
                )
                outcome: tuple[str, bytes | None] = ("event", payload)
            elif deadline_at is not None and self.clock() >= deadline_at:
                tx.execute(
                    q["save_step"],
                    self.step_row(ctx, seq, "event", name, "timeout", 1, None),
                )
                outcome = ("timeout", None)
            else:
                tx.execute(
                    q["save_step"],
                    self.step_row(
                        ctx, seq, "event", name, "waiting", 0, deadline_output
                    ),
                )
                self._suspend(tx, ctx, deadline_at, f"event {name!r}", wait_event=name)
                outcome = ("waiting", None)
        self._flushed(ctx)
        return outcome

    def send_event(
        self, workflow_id: str, name: str, data: bytes, event_id: str | None
    ) -> EventDelivery:
        """Queue an event and wake the workflow if it waits for that name."""
        q = self.q
        now = self.clock()
        with self.store.transaction() as tx:
            row = tx.fetchone(q["lock"], (workflow_id,))
            if row is None:
                raise WorkflowNotFound(workflow_id)
            if row[0] in FINISHED:
                return EventDelivery(False, "finished")
            if tx.execute(q["insert_event"], (workflow_id, name, event_id, data, now)):
                tx.execute(q["wake_for_event"], (now, workflow_id, name))
                return EventDelivery(True, "queued")
        return EventDelivery(False, "duplicate")

    # --- children ---------------------------------------------------------

    def wait_children(
        self,
        ctx: WorkflowContext,
        seq: int,
        name: str,
        child_ids: Sequence[str],
        needed: int,
    ) -> list[ChildOutcome] | None:
        """Record the outcomes if ``needed`` children ended, else suspend.

        A child's finishing transaction decrements the parent's counter and
        makes it due only when the counter reaches zero, so a parent of many
        children is not replayed once per child.
        """
        q = self.q
        with self._writing(ctx) as tx:
            self._fence(tx, ctx)
            self._flush(tx, ctx)
            ended = self._ended_children(tx, ctx.workflow_id, child_ids)
            if len(ended) >= needed:
                outcomes = [ended[c] for c in child_ids if c in ended]
                data = self.app.codec.encode(
                    [o.to_value() for o in outcomes], what="outcomes of children"
                )
                tx.execute(
                    q["save_step"],
                    self.step_row(ctx, seq, "wait", name, "ok", 1, data),
                )
                tx.execute(q["clear_notify"], (ctx.workflow_id,))
                result: list[ChildOutcome] | None = outcomes
            else:
                running = [(c,) for c in dict.fromkeys(child_ids) if c not in ended]
                tx.executemany(q["mark_notify"], running)
                count = needed - len(ended)
                self._suspend(
                    tx,
                    ctx,
                    None,
                    f"{count} of {len(child_ids)} child workflow(s)",
                    wait_count=count,
                )
                result = None
        self._flushed(ctx)
        return result

    def _ended_children(
        self, tx: Tx, parent_id: str, child_ids: Sequence[str]
    ) -> dict[str, ChildOutcome]:
        wanted = set(child_ids)
        rows = {r[0]: r for r in tx.fetchall(self.q["children_of"], (parent_id,))}
        for child_id in wanted - rows.keys():
            found = tx.fetchone(self.q["outcome"], (child_id,))
            if found is not None:
                rows[child_id] = found
        return {
            str(r[0]): ChildOutcome(
                str(r[0]), str(r[1]), None if r[2] is None else bytes(r[2]), r[3], r[4]
            )
            for cid, r in rows.items()
            if cid in wanted and r[1] in FINISHED
        }

    # --- ending -----------------------------------------------------------

    def finish(
        self,
        ctx: WorkflowContext,
        status: str,
        result: bytes | None,
        error: ErrorRow = NO_ERROR,
    ) -> None:
        """End the workflow, and count it off its waiting parent."""
        q = self.q
        now = self.clock()
        params = (status, result, *error, now, now, ctx.workflow_id, ctx.epoch)
        if ctx.parent_id is None and not (ctx.pending_children or ctx.pending_records):
            # Nothing else to write and no parent to count off: one
            # statement on its own, one round trip.
            if not self.store.execute_alone(q["finish"], params):
                raise self._fenced(ctx)
            return
        with self.store.transaction() as tx:
            if ctx.parent_id is not None:
                tx.fetchone(q["lock"], (ctx.parent_id,))
            self._flush(tx, ctx)
            row = tx.fetchone(q["finish"], params)
            if row is None:
                raise self._fenced(ctx)
            if row[0] and ctx.parent_id is not None:
                tx.execute(q["notify_parent"], (now, ctx.parent_id))
        self._flushed(ctx)

    def park(self, ctx: WorkflowContext, status: str, error: ErrorRow) -> None:
        """Leave the workflow blocked (or dead) until ``app.resume``."""
        with self.store.transaction() as tx:
            self._flush(tx, ctx)
            changed = tx.execute(
                self.q["park"],
                (status, *error, self.clock(), ctx.workflow_id, ctx.epoch),
            )
            if changed != 1:
                raise self._fenced(ctx)
        self._flushed(ctx)

    # --- control ----------------------------------------------------------

    def cancel(self, workflow_id: str) -> bool:
        """Ask a workflow and its unfinished descendants to stop."""
        q = self.q
        now = self.clock()
        with self.store.transaction() as tx:
            row = tx.fetchone(q["lock"], (workflow_id,))
            if row is None:
                raise WorkflowNotFound(workflow_id)
            if row[0] in FINISHED:
                return False
            todo = [workflow_id]
            while todo:
                current = todo.pop()
                tx.execute(q["request_cancel"], (now, current))
                parked = tx.fetchone(q["cancel_parked"], (now, now, current))
                if parked is not None and parked[0] and parked[1] is not None:
                    tx.execute(q["notify_parent"], (now, parked[1]))
                todo.extend(str(r[0]) for r in tx.fetchall(q["children"], (current,)))
        return True

    def revive(self, workflow_id: str) -> bool:
        """Make a dead, blocked or compensation-failed workflow due again."""
        now = self.clock()
        with self.store.transaction() as tx:
            if tx.execute(self.q["revive"], (now, now, workflow_id)) == 1:
                return True
            if tx.fetchone(self.q["lock"], (workflow_id,)) is None:
                raise WorkflowNotFound(workflow_id)
        return False

    def read_status(
        self, workflow_id: str
    ) -> tuple[Sequence[Any], list[Sequence[Any]]]:
        """The workflow row and its checkpoints, from one snapshot."""
        with self.store.read() as tx:
            row = tx.fetchone(self.q["status"], (workflow_id,))
            if row is None:
                raise WorkflowNotFound(workflow_id)
            steps = tx.fetchall(self.q["steps"], (workflow_id,))
        return row, list(steps)
