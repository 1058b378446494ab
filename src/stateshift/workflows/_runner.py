"""Running workflows: one invocation of one workflow, and loops over due work.

An invocation replays the workflow function from the top against its
history and keeps going live until it finishes, waits, runs out of budget
or loses its claim. Then it settles the outcome in one transaction.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from stateshift.errors import (
    CodecError,
    DataErased,
    StoreUnavailable,
    WorkflowCancelled,
)
from stateshift.placement.scope import Home, home_scope
from stateshift.workflows import _placement
from stateshift.workflows._context import (
    Invocation,
    WorkflowContext,
    _step,
    _workflow,
    enter_thread,
    leave_thread,
)
from stateshift.workflows._engine import Claim
from stateshift.workflows._registry import WorkflowDef
from stateshift.workflows._signals import (
    Blocking,
    Cancelling,
    CompensationFailing,
    Fenced,
    Interrupted,
    Released,
    Signal,
    Suspended,
)
from stateshift.workflows._steps import error_row
from stateshift.workflows.status import IdleSummary

if TYPE_CHECKING:
    from stateshift.workflows.api import WorkflowsMixin

logger = logging.getLogger(__name__)

UNKNOWN_WORKFLOW_RETRY_SECONDS = 60.0
"""When a worker claims a workflow it has no code for, it hands it back due
this much later, for a worker that has the code."""

NEARLY_SPENT_FRACTION = 0.05
"""``tick`` claims nothing new once less than this part of its budget is left."""

BATCH_SIZE = 16
"""``run_due`` claims up to this many due workflows at once (PostgreSQL)."""

FINISHED = "finished"
SUSPENDED = "suspended"
RELEASED = "released"
LEASE_LOST = "lease_lost"
INTERRUPTED = "interrupted"
BLOCKED = "blocked"


def _call(definition: WorkflowDef, args: list[Any], kwargs: dict[str, Any]) -> Any:
    if not definition.is_async:
        return definition.fn(*args, **kwargs)
    import asyncio

    async def drive() -> tuple[bool, Any]:
        # Signals are BaseExceptions; carry them out of the event loop as
        # values so asyncio does not treat them as fatal.
        try:
            return True, await definition.fn(*args, **kwargs)
        except BaseException as exc:
            return False, exc

    ok, value = asyncio.run(drive())
    if ok:
        return value
    raise value


def execute(
    ctx: WorkflowContext, args: list[Any], kwargs: dict[str, Any]
) -> tuple[str, BaseException | None]:
    """Run one invocation of ``ctx``'s workflow and settle how it ended."""
    definition = ctx.definition
    token = _workflow.set(ctx)
    # A workflow run from inside a step (a test, a script) is not that step.
    step_token = _step.set(None)
    enter_thread()
    outcome: Any
    try:
        try:
            value = _call(definition, args, kwargs)
            outcome = ctx.signal if ctx.signal is not None else ("value", value)
        finally:
            _step.reset(step_token)
            _workflow.reset(token)
            leave_thread()
    except Signal as signal:
        outcome = ctx.signal or signal
    except Exception as exc:
        # Code that caught a signal and raised something else still ends by
        # the signal.
        outcome = ctx.signal or exc
    try:
        return _settle(ctx, outcome), None
    except Fenced as fenced:
        _log(ctx, logging.WARNING, "workflow.lease_lost", "lost its claim", fenced)
        return LEASE_LOST, fenced.error
    except Interrupted as interrupted:
        return INTERRUPTED, interrupted.error
    except StoreUnavailable as exc:
        # Settling failed in the store: like a crash, the claim runs out (or
        # this worker takes it back) and the replay settles it again.
        ctx.engine.reclaim_own_leases_again()
        _log(ctx, logging.WARNING, "workflow.interrupted", "could not settle", exc)
        return INTERRUPTED, exc


def _settle(ctx: WorkflowContext, outcome: Any) -> str:
    engine = ctx.engine
    if isinstance(outcome, Fenced | Interrupted):
        raise outcome
    if isinstance(outcome, Suspended):
        _log(ctx, logging.DEBUG, "workflow.suspended", "is waiting")
        return SUSPENDED
    if isinstance(outcome, Released):
        engine.release(ctx.workflow_id, ctx.epoch, engine.clock())
        _log(ctx, logging.DEBUG, "workflow.released", "was handed back")
        return RELEASED
    if isinstance(outcome, Cancelling):
        error = WorkflowCancelled(
            ctx.workflow_id, f"workflow {ctx.workflow_id!r} was cancelled"
        )
        engine.finish(ctx, "cancelled", None, error_row(error))
        _log(ctx, logging.INFO, "workflow.cancelled", "was cancelled")
        return FINISHED
    if isinstance(outcome, CompensationFailing):
        row = error_row(outcome.error)
        engine.park(ctx, "compensation_failed", (row[0], outcome.message, row[2]))
        _log(
            ctx,
            logging.ERROR,
            "workflow.compensation_failed",
            "could not compensate",
            outcome.error,
        )
        return BLOCKED
    if isinstance(outcome, Blocking):
        engine.park(ctx, "blocked", error_row(outcome.error))
        _log(ctx, logging.ERROR, "workflow.blocked", "is blocked", outcome.error)
        return BLOCKED
    if isinstance(outcome, BaseException):
        engine.finish(ctx, "failed", None, error_row(outcome))
        _log(ctx, logging.WARNING, "workflow.failed", "failed", outcome)
        return FINISHED
    try:
        data = engine.app.codec.encode(
            outcome[1], what=f"result of workflow {ctx.definition.name!r}"
        )
    except CodecError as exc:
        engine.finish(ctx, "failed", None, error_row(exc))
        _log(ctx, logging.WARNING, "workflow.failed", "failed", exc)
        return FINISHED
    engine.finish(ctx, "succeeded", data)
    _log(ctx, logging.INFO, "workflow.succeeded", "succeeded")
    return FINISHED


def _log(
    ctx: WorkflowContext,
    level: int,
    event: str,
    what: str,
    error: BaseException | None = None,
) -> None:
    if not logger.isEnabledFor(level):
        return
    detail = f": {type(error).__name__}: {error}" if error is not None else ""
    logger.log(
        level,
        "workflow %s (%s) %s%s",
        ctx.workflow_id,
        ctx.definition.name,
        what,
        detail,
        extra={"event": event, "workflow_id": ctx.workflow_id, "step": None},
    )


def run_claim(
    app: WorkflowsMixin, claim: Claim, invocation: Invocation
) -> tuple[str, BaseException | None]:
    """Run one claimed workflow in ``invocation``."""
    try:
        return _run_claim(app, claim, invocation)
    finally:
        # The claim put it among the workflows this process holds.
        app._workflow_engine.drop(claim.workflow_id)


def _run_claim(
    app: WorkflowsMixin, claim: Claim, invocation: Invocation
) -> tuple[str, BaseException | None]:
    engine = app._workflow_engine
    definition = app._workflow_definitions.get(claim.name)
    if definition is None:
        logger.warning(
            "workflow %s runs %r, which this worker does not have; handing it back",
            claim.workflow_id,
            claim.name,
            extra={"event": "workflow.unknown", "workflow_id": claim.workflow_id},
        )
        engine.release(
            claim.workflow_id,
            claim.epoch,
            engine.clock() + UNKNOWN_WORKFLOW_RETRY_SECONDS,
        )
        return RELEASED, None
    ctx = WorkflowContext(
        engine,
        definition,
        claim.workflow_id,
        claim.epoch,
        claim.history,
        cancel_requested=claim.cancel_requested,
        deadline_at=claim.deadline_at,
        parent_id=claim.parent_id,
        invocation=invocation,
    )
    # The lease was set by the claim, which may be a while ago in a batch.
    ctx.renew_lease_by = min(ctx.renew_lease_by, claim.fresh_until)
    args, kwargs = definition.decode_input(app.codec, claim.input)
    return execute(ctx, args, kwargs)


def run_due(app: WorkflowsMixin, budget_seconds: float | None) -> IdleSummary:
    """Run due workflows until none is due (or the budget is nearly spent).

    Claims go round the shards of this region, a batch at a time (see
    :func:`_batch_size`), and stop once every shard in a row had nothing
    due. The workflows of a batch run one after another; those not started
    while their leases are fresh (a third of the lease) or within the
    budget are handed back, pending and due at once.
    """
    engine = app._workflow_engine
    invocation = Invocation(budget_seconds)
    reserve = 0.0 if budget_seconds is None else budget_seconds * NEARLY_SPENT_FRACTION
    counts: Counter[str] = Counter()
    exhausted = False
    homes = _placement.claim_homes(app)
    turn = idle = 0
    began = time.monotonic()
    while idle < len(homes):
        remaining = invocation.remaining()
        if remaining is not None and remaining <= reserve:
            exhausted = True
            break
        home = homes[turn % len(homes)]
        turn += 1
        size = _batch_size(remaining, reserve, sum(counts.values()), began)
        with _placement.claiming(app, home):
            batch = engine.claim_batch(size)
        if not batch:
            idle += 1
            continue
        idle = 0
        if _run_batch(app, home, batch, invocation, reserve, counts):
            exhausted = True
            break
    return summary_of(counts, _placement.next_wake_at(app), exhausted)


def _batch_size(remaining: float | None, reserve: float, ran: int, began: float) -> int:
    """How many workflows to claim at once: never more than fit in the budget.

    Without a budget, :data:`BATCH_SIZE`. With one, as many as the pace of
    this call so far says fit in what is left (one, until a workflow ran).
    """
    if remaining is None:
        return BATCH_SIZE
    if not ran:
        return 1
    pace = (time.monotonic() - began) / ran
    if pace <= 0:
        return BATCH_SIZE
    return max(1, min(BATCH_SIZE, int((remaining - reserve) / pace)))


def _run_batch(
    app: WorkflowsMixin,
    home: Home,
    batch: list[Claim],
    invocation: Invocation,
    reserve: float,
    counts: Counter[str],
) -> bool:
    """Run a claimed batch in order; ``True`` when the budget ran out."""
    engine = app._workflow_engine
    budgeted = invocation.deadline is not None
    index = 0
    try:
        while index < len(batch):
            claim = batch[index]
            remaining = invocation.remaining()
            spent = remaining is not None and remaining <= reserve
            # The first is run as a lone claim would be; the others only
            # while their leases, set by the claim, need no renewal.
            if index and (spent or time.monotonic() >= claim.fresh_until):
                _release(app, home, batch[index:])
                index = len(batch)
                return spent
            index += 1
            outcome = _run_claimed(app, home, claim, invocation)
            counts[outcome] += 1
            if outcome == RELEASED and budgeted:
                # Its next step cannot finish in what is left: stop here
                # rather than claim it again and again.
                _release(app, home, batch[index:])
                index = len(batch)
                return True
        return False
    finally:
        if index < len(batch):
            # Something escaped a run: hand the rest back (or, if even that
            # fails, let this worker's next claim take their leases back).
            _release_or_reclaim(app, home, batch[index:])
        for claim in batch[index:]:
            engine.drop(claim.workflow_id)


def _run_claimed(
    app: WorkflowsMixin, home: Home, claim: Claim, invocation: Invocation
) -> str:
    with _placement.workflow_scope(home, claim.placed, claim.workflow_id):
        try:
            outcome, _ = run_claim(app, claim, invocation)
        except DataErased as erased:
            # Its input belongs to a forgotten data subject: it can never
            # run again.
            _placement.fail_unreadable(app, claim, erased)
            outcome = FINISHED
    return outcome


def _release(app: WorkflowsMixin, home: Home, claims: list[Claim]) -> None:
    """Hand claims of a batch back unrun, pending and due now.

    They count in no summary: they were not invoked.
    """
    if not claims:
        return
    engine = app._workflow_engine
    try:
        with home_scope(home):
            engine.release_batch(claims, engine.clock())
    finally:
        for claim in claims:
            engine.drop(claim.workflow_id)
    logger.debug(
        "handed back %d claimed workflows, unrun",
        len(claims),
        extra={"event": "workflow.released"},
    )


def _release_or_reclaim(app: WorkflowsMixin, home: Home, claims: list[Claim]) -> None:
    try:
        _release(app, home, claims)
    except Exception:
        logger.warning(
            "could not hand back %d claimed workflows; this worker takes their "
            "leases back on its next claim",
            len(claims),
            exc_info=True,
            extra={"event": "workflow.release_failed"},
        )
        app._workflow_engine.reclaim_own_leases_again()


def summary_of(
    counts: Counter[str],
    next_wake_at: float | None = None,
    budget_exhausted: bool = False,
) -> IdleSummary:
    """A summary of invocations counted by outcome."""
    return IdleSummary(
        ran=sum(counts.values()),
        finished=counts[FINISHED],
        suspended=counts[SUSPENDED] + counts[BLOCKED],
        released=counts[RELEASED],
        lease_lost=counts[LEASE_LOST],
        interrupted=counts[INTERRUPTED],
        next_wake_at=next_wake_at,
        budget_exhausted=budget_exhausted,
    )
