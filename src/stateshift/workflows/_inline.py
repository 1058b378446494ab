"""Workflows started from queue messages, leased from their insert and run here.

A queue message whose task is a workflow becomes that workflow in the very
transaction that acknowledges the message: either the message is done and
the workflow exists, or neither. The row goes in as ``app.run`` inserts
one, already ``running`` and leased to this worker at epoch 1, so the
worker runs it at once without claiming it first; every checkpoint it
writes is fenced by that epoch as after any claim.

Three cases take the ordinary way instead (start, then acknowledge, the
workflow claimed later by whoever comes first), which has always been
right and only costs more statements:

* the workflow's shard is not the store the queue lives in (one
  transaction cannot span two databases);
* its id is already taken (a message redelivered after an older worker
  started its workflow but lost the acknowledgement): the start then
  finds the existing workflow or raises ``WorkflowConflict``;
* an acknowledgement is refused (the message's visibility timeout ran out
  and another worker claimed it again).

A worker runs the workflows of one batch one after another. Those it does
not reach while their leases are fresh (a third of the lease, when a
running workflow would renew its own) or within the time budget are
handed back as pending, due at once, for any worker; a worker that dies
first leaves them leased, to be taken over when the lease runs out, or at
once by the same worker id on restart.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateshift.placement.scope import Home, home_scope
from stateshift.workflows import _placement
from stateshift.workflows._context import Invocation, WorkflowContext
from stateshift.workflows._registry import WorkflowDef
from stateshift.workflows._runner import RELEASED, execute

if TYPE_CHECKING:
    from stateshift.store.base import Tx
    from stateshift.workflows.api import WorkflowsMixin

logger = logging.getLogger(__name__)

EPOCH = 1
"""The epoch of a workflow inserted leased (``Engine.insert_row``)."""


@dataclass(frozen=True)
class Prepared:
    """A workflow ready to be inserted leased to this worker."""

    definition: WorkflowDef
    row: tuple[Any, ...]
    """The row for the ``insert`` query (``Engine.insert_row``)."""
    home: Home
    """The shard it goes to: the app's own store."""


@dataclass(frozen=True)
class Started:
    """Workflows inserted leased to this worker, to run here."""

    prepared: Sequence[Prepared]
    fresh_until: float
    """Monotonic time until which their leases need no renewal."""


def prepare(
    app: WorkflowsMixin,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workflow_id: str,
    residency: str | None,
) -> Prepared | None:
    """Check and place a start; ``None`` when its shard is another store.

    Raises:
        ResidencyViolation: the policy refuses the start (audited).
        TypeError: ``fn`` is not a workflow of this app.
    """
    home = _placement.start_home(app, workflow_id, residency, None, None)
    if home.store is not app.store:
        return None
    with home_scope(home):
        definition, row = app._prepare(fn, args, kwargs, workflow_id, leased=True)
    return Prepared(definition, row, home)


def insert_with(
    app: WorkflowsMixin, prepared: Sequence[Prepared], first: Callable[[Tx], None]
) -> Started | None:
    """Run ``first`` and insert every workflow, in one transaction.

    Returns:
        The started workflows; ``None`` when an id was already taken, and
        then nothing was written (not even ``first``'s rows).

    Raises:
        Exception: whatever ``first`` or the store raised; nothing was
            written, except when a commit failed in a way that cannot tell
            (``StoreUnavailable``). The next claim of this worker then takes
            its leases back first, so such workflows are not left waiting.
    """
    store = app.store
    rows = [p.row for p in prepared]
    lease_seconds = app.settings.lease_seconds
    # Taken before the insert: the leases run from a moment after it.
    fresh_until = time.monotonic() + lease_seconds / 3
    engine = app._workflow_engine
    # Held from before the insert, as app.run does: no claim of this process
    # that takes back old leases may take these while they run here.
    for item in prepared:
        engine.hold(item.row[0])
    try:
        with store.transaction() as tx:
            first(tx)
            if tx.executemany(store.queries("workflows")["insert"], rows) != len(rows):
                raise _Taken
    except _Taken:
        _drop(app, prepared)
        return None
    except Exception:
        _drop(app, prepared)
        _reclaim_soon(app)
        raise
    return Started(prepared, fresh_until)


def run_started(
    app: WorkflowsMixin, started: Started, budget_seconds: float | None
) -> Counter[str]:
    """Run started workflows here, in order; outcomes as ``run_due`` counts them."""
    invocation = Invocation(budget_seconds)
    counts: Counter[str] = Counter()
    items = list(started.prepared)
    try:
        for index, item in enumerate(items):
            remaining = invocation.remaining()
            stale = time.monotonic() >= started.fresh_until
            if stale or (remaining is not None and remaining <= 0):
                counts[RELEASED] += _release(app, items[index:])
                break
            try:
                counts[_run_one(app, item, invocation, started.fresh_until)] += 1
            finally:
                app._workflow_engine.drop(item.row[0])
    except BaseException:
        # Whatever was not run stays leased to this worker: its next claim
        # takes those back at once instead of waiting out the lease.
        _reclaim_soon(app)
        raise
    finally:
        _drop(app, items)
    return counts


def _run_one(
    app: WorkflowsMixin, item: Prepared, invocation: Invocation, fresh_until: float
) -> str:
    engine = app._workflow_engine
    row = item.row
    with home_scope(item.home):
        ctx = WorkflowContext(
            engine,
            item.definition,
            row[0],
            EPOCH,
            [],
            cancel_requested=False,
            deadline_at=row[11],
            parent_id=None,
            invocation=invocation,
        )
        # The lease was set at the insert, not now.
        ctx.renew_lease_by = fresh_until
        args, kwargs = item.definition.decode_input(app.codec, row[2])
        outcome, _ = execute(ctx, args, kwargs)
    return outcome


def _release(app: WorkflowsMixin, items: Sequence[Prepared]) -> int:
    """Hand workflows back, pending and due now, in one transaction."""
    engine = app._workflow_engine
    now = engine.clock()
    store = app.store
    with store.transaction() as tx:
        tx.executemany(
            store.queries("workflows")["release"],
            [(now, now, item.row[0], EPOCH) for item in items],
        )
    logger.debug(
        "handed back %d workflows started from messages, unrun",
        len(items),
        extra={"event": "workflow.released"},
    )
    return len(items)


def _reclaim_soon(app: WorkflowsMixin) -> None:
    app._workflow_engine.reclaim_own_leases_again()


def _drop(app: WorkflowsMixin, items: Sequence[Prepared]) -> None:
    engine = app._workflow_engine
    for item in items:
        engine.drop(item.row[0])


class _Taken(Exception):
    """An id was taken: roll the whole insert back."""
