"""Durable queues: messages in the store, claimed with a visibility timeout.

A message is ``ready`` until a worker claims it; it is then ``in_flight`` and
invisible until ``visible_at`` (its visibility timeout). The task runs inside
a unit of work, and its buffered store writes commit in the same transaction
as the acknowledgement (``done``), which is fenced by the claim's lease
token: a worker whose claim timed out and was taken over commits nothing.
A task that raises goes back to ``ready`` after a backoff, and to ``dead``
with its last error after ``max_attempts``.

Claims honour, per queue: a global ``concurrency`` (messages in flight at
once, across every worker), a ``rate_limit`` (claims per second), per-key
ordering (``ordered=True``: one message of a key in flight, oldest first,
like a FIFO message group) and a per-key concurrency (``key_concurrency``,
for tenants). PostgreSQL claims with ``FOR UPDATE SKIP LOCKED``, under a
per-queue transaction lock when a limit has to count across workers;
SQLite claims in an immediate transaction, which serializes claimers.

A message carries a residency tag (see :mod:`stateshift.events._residency`):
``enqueue`` is checked against the policy before anything is written, and a
claim takes only messages whose tag the worker's region may process.
"""

from __future__ import annotations

import inspect
import logging
import math
import random
import time
import typing
import uuid
import zlib
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from stateshift._durations import Duration, optional_seconds, to_seconds
from stateshift.errors import QueueError
from stateshift.events._registry import registry_of
from stateshift.events._residency import (
    message_scope,
    message_tag,
    processable_tags,
    running_tag,
)
from stateshift.events._units import Rejected, call, commit, fresh_unit
from stateshift.store.base import Store, Tx
from stateshift.unit import current_unit

if TYPE_CHECKING:
    from stateshift.app import AppBase
    from stateshift.workflows._inline import Prepared, Started
    from stateshift.workflows.api import WorkflowsMixin

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000

# Set by the engine's workflow decorator on workflow functions.
WORKFLOW_ATTRIBUTE = "__stateshift_workflow__"
WORKFLOW_TASK_PREFIX = "workflow:"
"""Tasks named so start the workflow named by the rest."""

running_message_id: ContextVar[str | None] = ContextVar(
    "stateshift_queue_message", default=None
)
"""Id of the queue message whose task is running, if any."""


@dataclass(frozen=True, kw_only=True)
class QueueOptions:
    """How one queue delivers its messages."""

    concurrency: int | None = None
    """Most messages in flight at once across every worker (``None``: no limit)."""
    rate_limit: float | None = None
    """Most claims per second across every worker (``None``: no limit)."""
    max_attempts: int = 5
    """Attempts before a message is dead-lettered."""
    visibility_timeout_seconds: float = 30.0
    """How long a claimed message stays invisible to other workers."""
    ordered: bool = False
    """One message per key in flight, in enqueue order (FIFO message groups)."""
    key_concurrency: int | None = None
    """Most messages of one key in flight at once (per-tenant limits)."""
    backoff_seconds: float = 1.0
    """Delay before the first retry; doubles per attempt."""
    max_backoff_seconds: float = 300.0
    """Longest delay between attempts."""

    def __post_init__(self) -> None:
        for name in ("concurrency", "key_concurrency", "max_attempts"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if self.rate_limit is not None and not self.rate_limit > 0:
            raise ValueError(f"rate_limit must be positive, not {self.rate_limit!r}")
        if not self.visibility_timeout_seconds > 0:
            raise ValueError("visibility_timeout must be positive")

    @property
    def counts_across_workers(self) -> bool:
        """True when a claim must see every other claim (a limit applies)."""
        return bool(
            self.concurrency or self.rate_limit or self.ordered or self.key_concurrency
        )

    def backoff(self, attempts: int) -> float:
        """Delay before the attempt after ``attempts`` failed ones, with jitter."""
        delay = self.backoff_seconds * 2 ** max(0, attempts - 1)
        return float(min(self.max_backoff_seconds, delay) * random.uniform(0.8, 1.0))


@dataclass
class WorkDone:
    """What one :meth:`Queue.work_batches` (or a pass over queues) did."""

    messages: int = 0
    """Messages run (succeeded or not)."""
    workflows: Counter[str] = field(default_factory=Counter)
    """Workflows started from messages and run here, by outcome (as the
    runner names them)."""

    def add(self, other: WorkDone) -> None:
        self.messages += other.messages
        self.workflows += other.workflows


@dataclass(frozen=True)
class Claimed:
    """A message this worker holds until its visibility timeout."""

    id: str
    task: str
    args: bytes
    key: str | None
    attempt: int
    max_attempts: int
    lease_token: str
    residency: str = ""
    """The message's residency tag (``""`` when untagged)."""


class Queue:
    """A named durable queue; get one with ``app.queue(name, ...)``."""

    def __init__(self, app: AppBase, name: str, options: QueueOptions) -> None:
        if not name or len(name) > 200:
            raise ValueError("a queue name must be 1 to 200 characters")
        self.app = app
        self.name = name
        self.options = options
        scope = f"{app.settings.schema}.{app.settings.table_prefix}queue:{name}"
        self._lock_id = zlib.crc32(scope.encode())

    def __repr__(self) -> str:
        return f"<stateshift.Queue {self.name!r}>"

    # --- registering and enqueueing ---------------------------------------

    def task(
        self, fn: Callable[..., Any] | None = None, *, name: str | None = None
    ) -> Any:
        """Register ``fn`` so that messages can run it (a decorator)."""

        def register(target: Callable[..., Any]) -> Callable[..., Any]:
            return registry_of(self.app).register_task(target, name)

        return register(fn) if fn is not None else register

    def enqueue(
        self,
        fn: Callable[..., Any],
        *args: Any,
        key: str | None = None,
        delay: Duration | None = None,
        priority: int = 0,
        dedup_id: str | None = None,
        residency: str | None = None,
        tenant: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Add a message that runs ``fn(*args, **kwargs)``; return its id.

        Inside a unit of work (a step, ``app.transaction()``) the message is
        written with the unit's other writes. A ``dedup_id`` already used on
        this queue returns the first message's id and adds nothing.

        The message is tagged ``residency`` (or ``tenant``'s tag; else the
        tag of the workflow, message or data subject it is written from)
        and checked against the residency policy first.

        Raises:
            ResidencyViolation: the policy refuses the message here; it was
                audited and nothing was written.
        """
        task = _task_for(self.app, fn)
        if key is not None and not isinstance(key, str):
            raise TypeError(f"key must be a string, not {type(key).__name__}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError("priority must be an integer")
        delay_seconds = optional_seconds(delay, name="delay") or 0.0
        message_id = uuid.uuid4().hex
        _check_arguments(registry_of(self.app).tasks.get(task), task, args, kwargs)
        tag = message_tag(
            self.app,
            f"queue:{self.name}/{key or dedup_id or message_id}",
            residency,
            tenant,
        )
        payload = self.app.codec.encode(
            [list(args), kwargs],
            what=f"arguments of a message to queue {self.name!r}",
            aad=message_id.encode(),
        )
        store = self.app.store
        q = store.queries("events")
        row = (
            message_id,
            self.name,
            task,
            payload,
            key,
            priority,
            dedup_id,
            delay_seconds,
            self.options.max_attempts,
            tag,
        )

        def insert(tx: Tx) -> None:
            tx.execute(q["queue_insert"], row)

        unit = current_unit()
        if unit is not None:
            unit.bind(store)
            unit.add(insert)
            return message_id
        # One statement on its own (no BEGIN or COMMIT); a dedup id already
        # used is read afterwards: its message is never deleted, only done.
        if store.execute_alone(q["queue_insert_alone"], row):
            return message_id
        with store.read() as tx:
            found = tx.fetchone(q["queue_find_dedup"], (self.name, dedup_id))
        assert found is not None
        return str(found[0])

    # --- claiming ---------------------------------------------------------

    def claim(self, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` due messages, within the queue's limits."""
        store = self.app.store
        q = store.queries("events")
        opts = self.options
        token = uuid.uuid4().hex
        tags = processable_tags(self.app)
        if tags is None or limit < 1:
            return []
        if not opts.counts_across_workers:
            return self._claim_alone(token, tags, limit)
        with store.transaction() as tx:
            if store.dialect == "postgresql" and opts.counts_across_workers:
                # Counting in-flight messages under READ COMMITTED races with
                # other claimers; one claimer per limited queue at a time.
                tx.fetchone(q["queue_lock"], (self._lock_id,))
            slots = self._free_slots(tx, q, limit)
            if slots <= 0:
                return []
            keyed = opts.ordered or opts.key_concurrency is not None
            fetch = slots * 4 + 16 if keyed else slots
            candidates = tx.fetchall(
                q["queue_candidates"], (self.name, tags, tags, fetch)
            )
            if keyed:
                candidates = self._respect_keys(tx, q, candidates)
            chosen = candidates[:slots]
            if not chosen:
                return []
            tx.executemany(
                q["queue_claim"],
                [
                    (
                        opts.visibility_timeout_seconds,
                        token,
                        self.app.worker_id,
                        row[1],
                    )
                    for row in chosen
                ],
            )
        # The candidates were read before the claim counted this attempt.
        return [_claimed(r, token, int(r[5]) + 1) for r in chosen]

    def _claim_alone(self, token: str, tags: str, limit: int) -> list[Claimed]:
        """Claim in one statement on its own (no limit counts other claims)."""
        store = self.app.store
        rows = store.execute_alone(
            store.queries("events")["queue_claim_batch"],
            (
                self.options.visibility_timeout_seconds,
                token,
                self.app.worker_id,
                self.name,
                tags,
                tags,
                limit,
            ),
        )
        # RETURNING keeps no order: the queue's is priority, then age.
        rows.sort(key=lambda r: (-int(r[8]), int(r[0])))
        return [_claimed(r, token, int(r[5])) for r in rows]

    def _free_slots(self, tx: Tx, q: dict[str, str], limit: int) -> int:
        slots = limit
        opts = self.options
        if opts.concurrency is not None:
            row = tx.fetchone(q["queue_in_flight"], (self.name,))
            slots = min(slots, opts.concurrency - int(row[0] if row else 0))
        if opts.rate_limit is not None:
            window = max(1.0, 1.0 / opts.rate_limit)
            allowed = max(1, math.floor(opts.rate_limit * window))
            row = tx.fetchone(q["queue_recent_claims"], (self.name, window))
            slots = min(slots, allowed - int(row[0] if row else 0))
        return slots

    def _respect_keys(
        self, tx: Tx, q: dict[str, str], candidates: list[Any]
    ) -> list[Any]:
        opts = self.options
        busy = {
            str(k): int(n) for k, n in tx.fetchall(q["queue_busy_keys"], (self.name,))
        }
        heads: dict[str, int] = {}
        if opts.ordered:
            heads = {
                str(k): int(s)
                for k, s in tx.fetchall(q["queue_key_heads"], (self.name,))
            }
        per_key = 1 if opts.ordered else (opts.key_concurrency or 1)
        allowed = []
        for row in candidates:
            key = row[2]
            if key is not None:
                # Ordered: only the oldest unfinished message of a key may go,
                # even when it is waiting out a retry backoff.
                if opts.ordered and heads.get(key) != int(row[0]):
                    continue
                if busy.get(key, 0) >= per_key:
                    continue
                busy[key] = busy.get(key, 0) + 1
            allowed.append(row)
        return allowed

    # --- running ----------------------------------------------------------

    def run(self, message: Claimed) -> bool:
        """Run one claimed message; True when it succeeded and was acknowledged."""
        store = self.app.store
        q = store.queries("events")
        fn = _registered_task(self.app, message.task)
        if fn is None:
            self._fail(
                message,
                f"no task named {message.task!r} is registered in this process",
                permanent=True,
            )
            return False
        try:
            args, kwargs = _decode_arguments(self.app, fn, message)
        except Exception as exc:
            self._fail(message, _describe(exc), permanent=True)
            return False

        def ack(tx: Tx) -> None:
            if tx.execute(q["queue_ack"], (message.id, message.lease_token)) != 1:
                raise Rejected(message.id)

        token = running_message_id.set(message.id)
        try:
            with fresh_unit(store) as unit, message_scope(message.residency):
                call(fn, args, kwargs)
            commit(store, unit, first=ack)
        except Rejected:
            logger.warning(
                "message %s of queue %r timed out while running and was claimed "
                "again; its effects were rolled back",
                message.id,
                self.name,
                extra={"event": "queue.lease_lost"},
            )
            return False
        except Exception as exc:
            self._fail(message, _describe(exc), permanent=False)
            return False
        finally:
            running_message_id.reset(token)
        return True

    def _fail(self, message: Claimed, error: str, *, permanent: bool) -> None:
        store = self.app.store
        flag = 1 if permanent else 0
        delay = 0.0 if permanent else self.options.backoff(message.attempt)
        dead = permanent or message.attempt >= message.max_attempts
        with store.transaction() as tx:
            tx.execute(
                store.queries("events")["queue_fail"],
                (
                    flag,
                    delay,
                    error[:MAX_ERROR_CHARS],
                    flag,
                    message.id,
                    message.lease_token,
                ),
            )
        logger.log(
            logging.ERROR if dead else logging.WARNING,
            "message %s of queue %r failed (attempt %d of %d)%s: %s",
            message.id,
            self.name,
            message.attempt,
            message.max_attempts,
            "; dead-lettered" if dead else "",
            error,
            extra={"event": "queue.dead" if dead else "queue.retry"},
        )

    def _unclaim(self, messages: list[Claimed]) -> None:
        if not messages:
            return
        store = self.app.store
        with store.transaction() as tx:
            tx.executemany(
                store.queries("events")["queue_unclaim"],
                [(m.id, m.lease_token) for m in messages],
            )

    def work(self, budget: Duration = 10.0, *, batch_size: int = 10) -> int:
        """Run due messages until none is due or ``budget`` is spent.

        A message that starts a workflow is acknowledged in the transaction
        that inserts the workflow, and the workflow runs here at once, in
        the same budget (see :mod:`stateshift.workflows._inline`).

        Returns:
            How many messages ran (succeeded or not).
        """
        seconds = to_seconds(budget, name="budget")
        return self.work_batches(seconds, batch_size=batch_size).messages

    def work_batches(
        self, budget_seconds: float | None, *, batch_size: int = 10
    ) -> WorkDone:
        """:meth:`work`, telling the workflows it ran too (``None``: no budget)."""
        deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
        done = WorkDone()

        def left() -> float | None:
            return None if deadline is None else deadline - time.monotonic()

        while (remaining := left()) is None or remaining > 0:
            claimed = self.claim(batch_size)
            if not claimed:
                break
            started, rest = self._start_workflows(claimed)
            done.messages += len(claimed) - len(rest)
            for index, message in enumerate(rest):
                remaining = left()
                if remaining is not None and remaining <= 0:
                    # Out of budget: hand the rest back instead of sitting on
                    # them until their visibility timeout.
                    self._unclaim(rest[index:])
                    break
                self.run(message)
                done.messages += 1
            if started is not None:
                from stateshift.workflows._inline import run_started

                done.workflows += run_started(_workflows(self.app), started, left())
        return done

    def _start_workflows(
        self, claimed: list[Claimed]
    ) -> tuple[Started | None, list[Claimed]]:
        """Acknowledge the messages that start a workflow with its insert.

        Returns:
            The workflows started, leased to this worker, and the messages
            left to run the ordinary way (other tasks, and every message
            this path could not settle: they start their workflow with
            ``app.start``, then acknowledge).
        """
        registry = registry_of(self.app)
        starts: list[tuple[Claimed, Prepared]] = []
        rest: list[Claimed] = []
        for message in claimed:
            _registered_task(self.app, message.task)
            fn = registry.starts.get(message.task)
            if fn is None:
                rest.append(message)
                continue
            prepared = self._prepare_start(message, fn)
            if prepared is None:
                rest.append(message)
            elif prepared is not False:
                starts.append((message, prepared))
        if not starts:
            return None, rest

        from stateshift.workflows._inline import insert_with

        q = self.app.store.queries("events")
        acks = [(message.id, message.lease_token) for message, _ in starts]

        def ack_all(tx: Tx) -> None:
            if tx.executemany(q["queue_ack"], acks) != len(acks):
                raise Rejected("a message's claim was taken over")

        try:
            started = insert_with(_workflows(self.app), [p for _, p in starts], ack_all)
        except Exception as exc:
            logger.debug(
                "starting %d workflows with their acknowledgements failed (%s); "
                "their messages run one by one",
                len(starts),
                _describe(exc),
                extra={"event": "queue.start_fallback"},
            )
            started = None
        if started is None:
            # Nothing was written, so each message starts its workflow on its
            # own. (After a commit that failed without telling whether it
            # happened, the start finds the workflow and the ack finds the
            # message done: nothing happens twice.)
            ordinary = {m.id for m in rest} | {m.id for m, _ in starts}
            return None, [m for m in claimed if m.id in ordinary]
        return started, rest

    def _prepare_start(
        self, message: Claimed, fn: Callable[..., Any]
    ) -> Prepared | None | Literal[False]:
        """The workflow of ``message``; ``None``: the ordinary way; ``False``:
        the message failed (recorded as :meth:`run` would)."""
        from stateshift.workflows._inline import prepare

        task = registry_of(self.app).tasks[message.task]
        try:
            args, kwargs = _decode_arguments(self.app, task, message)
        except Exception as exc:
            self._fail(message, _describe(exc), permanent=True)
            return False
        try:
            # The message id names the workflow and its tag is the
            # workflow's, as in the ordinary start (start_workflow).
            return prepare(
                _workflows(self.app),
                fn,
                args,
                kwargs,
                workflow_id=f"queue-{message.id}",
                residency=message.residency or None,
            )
        except Exception as exc:
            self._fail(message, _describe(exc), permanent=False)
            return False

    # --- inspection -------------------------------------------------------

    def status(self, message_id: str) -> str | None:
        """The status of one message (``ready``, ``in_flight``, ``done``, ``dead``)."""
        store = self.app.store
        with store.read() as tx:
            row = tx.fetchone(store.queries("events")["queue_status"], (message_id,))
        return None if row is None else str(row[0])

    def counts(self) -> dict[str, int]:
        """Messages of this queue per status."""
        return queue_counts(self.app.store).get(self.name, {})

    def dead(self, limit: int = 100) -> list[dict[str, Any]]:
        """Dead-lettered messages, oldest first, with their last error."""
        return dead_messages(self.app.store, self.name, limit)

    def redrive(self, message_id: str | None = None) -> int:
        """Move dead messages (or one) back to ``ready``; return how many."""
        return redrive(self.app.store, self.name, message_id)


def _claimed(row: Any, token: str, attempt: int) -> Claimed:
    """A claimed message from a claim query's row (``attempt`` counted)."""
    return Claimed(
        str(row[1]),
        str(row[3]),
        bytes(row[4]),
        row[2],
        attempt,
        int(row[6]),
        token,
        str(row[7] or ""),
    )


def _check_arguments(
    fn: Callable[..., Any] | None,
    task: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """Refuse, at enqueue time, arguments the task could never take."""
    if fn is None:
        return
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"task {task!r}: {exc}") from None


def _decode_arguments(
    app: AppBase, fn: Callable[..., Any], message: Claimed
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Arguments rebuilt from a message, typed by the task's annotations."""
    what = f"arguments of message {message.id}"
    aad = message.id.encode()
    args, kwargs = app.codec.decode(message.args, what=what, aad=aad)
    hint = _arguments_hint(fn, len(args))
    if hint is not None:
        args, kwargs = app.codec.decode(
            message.args, type_hint=hint, what=what, aad=aad
        )
    return tuple(args), dict(kwargs)


def _arguments_hint(fn: Callable[..., Any], count: int) -> Any:
    try:
        hints = typing.get_type_hints(fn)
        parameters = list(inspect.signature(fn).parameters.values())
    except Exception:
        return None
    positional = [
        p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ][:count]
    if len(positional) < count:
        return None
    types = [hints.get(p.name, Any) for p in positional]
    if all(t is Any for t in types):
        return None
    inner: Any = tuple.__class_getitem__(tuple(types)) if types else tuple
    return tuple[inner, dict[str, Any]]


def _registered_task(app: AppBase, task: str) -> Callable[..., Any] | None:
    """The function of ``task``, registering a workflow's start task on demand.

    A process that runs messages learns the task of a workflow from the
    workflow's registration, not only by enqueueing one itself.
    """
    registry = registry_of(app)
    fn = registry.tasks.get(task)
    if fn is not None or not task.startswith(WORKFLOW_TASK_PREFIX):
        return fn
    definitions: dict[str, Any] = getattr(app, "_workflow_definitions", {})
    definition = definitions.get(task[len(WORKFLOW_TASK_PREFIX) :])
    if definition is None:
        return None
    _task_for(app, definition.fn)
    return registry.tasks.get(task)


def _task_for(app: AppBase, fn: Callable[..., Any]) -> str:
    """The task name of ``fn``; a workflow function becomes a task that starts it."""
    registry = registry_of(app)
    definition = getattr(fn, WORKFLOW_ATTRIBUTE, None)
    if definition is None:
        return registry.name_of(fn)
    name = f"{WORKFLOW_TASK_PREFIX}{definition.name}"
    if name not in registry.tasks:

        def start_workflow(*args: Any, **kwargs: Any) -> None:
            # The message id names the workflow: a redelivered message (its
            # first run's ack was lost) finds the workflow already started.
            # The workflow carries the message's tag: it is the same data.
            message_id = running_message_id.get()
            app.start(  # type: ignore[attr-defined]
                fn,
                *args,
                workflow_id=f"queue-{message_id}",
                residency=running_tag(),
                **kwargs,
            )

        registry.register_task(start_workflow, name)
        # Queue workers start such workflows with their acknowledgement.
        registry.starts[name] = fn
    return name


def _workflows(app: AppBase) -> WorkflowsMixin:
    # Every App has the workflow methods; the events layer's type does not
    # name them (it sits beside the workflows layer, not above it).
    return cast("WorkflowsMixin", app)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__qualname__}: {exc}"


def queue_counts(store: Store) -> dict[str, dict[str, int]]:
    """Messages per queue and status."""
    with store.read() as tx:
        rows = tx.fetchall(store.queries("events")["queue_counts"])
    counts: dict[str, dict[str, int]] = {}
    for queue, status, count in rows:
        counts.setdefault(str(queue), {})[str(status)] = int(count)
    return counts


def dead_messages(store: Store, queue: str, limit: int = 100) -> list[dict[str, Any]]:
    """Dead messages of ``queue`` with their last error."""
    with store.read() as tx:
        rows = tx.fetchall(store.queries("events")["queue_dead"], (queue, limit))
    names = ("id", "task", "key", "attempts", "last_error", "finished_at")
    return [dict(zip(names, row, strict=True)) for row in rows]


def redrive(store: Store, queue: str, message_id: str | None = None) -> int:
    """Send dead messages back to ``ready`` with fresh attempts."""
    q = store.queries("events")
    with store.transaction() as tx:
        if message_id is None:
            return tx.execute(q["queue_redrive_all"], (queue,))
        return tx.execute(q["queue_redrive_one"], (queue, message_id))


def run_due_messages(app: AppBase, budget_seconds: float) -> int:
    """Run due messages of every queue ``app`` declared, within the budget.

    Queues take turns a batch at a time, so one busy queue cannot starve the
    others. This is what a scheduled tick calls.
    """
    return due_messages(app, budget_seconds).messages


def due_messages(app: AppBase, budget_seconds: float | None) -> WorkDone:
    """:func:`run_due_messages`, telling the workflows run too (``None``: no
    budget)."""
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    queues = list(registry_of(app).queues.values())
    total = WorkDone()
    while queues:
        busy = []
        for queue in queues:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return total
            done = queue.work_batches(left, batch_size=10)
            total.add(done)
            if done.messages:
                busy.append(queue)
        queues = busy
    return total


def make_queue(
    app: AppBase,
    name: str,
    *,
    concurrency: int | None,
    rate_limit: float | None,
    max_attempts: int,
    visibility_timeout: Duration | None,
    ordered: bool,
    key_concurrency: int | None,
    backoff: Duration,
    max_backoff: Duration,
) -> Queue:
    """The queue ``name`` of ``app``, declared once per process."""
    options = QueueOptions(
        concurrency=concurrency,
        rate_limit=rate_limit,
        max_attempts=max_attempts,
        visibility_timeout_seconds=(
            to_seconds(visibility_timeout, name="visibility_timeout")
            if visibility_timeout is not None
            else app.settings.lease_seconds
        ),
        ordered=ordered,
        key_concurrency=key_concurrency,
        backoff_seconds=to_seconds(backoff, name="backoff"),
        max_backoff_seconds=to_seconds(max_backoff, name="max_backoff"),
    )
    registry = registry_of(app)
    with registry.lock:
        known = registry.queues.get(name)
        if known is not None:
            if known.options != options:
                raise QueueError(
                    f"queue {name!r} was already declared with other options: "
                    "declare each queue once"
                )
            return known
        queue = Queue(app, name, options)
        registry.queues[name] = queue
        return queue
