"""Topics: an outbox written with the state change, an inbox read with the effect.

``app.publish`` inside a unit of work (a step, ``app.transaction()``, a queue
task, a subscriber) adds the message to the outbox in the same transaction
as the unit's other writes, so a message leaves only if the change that
caused it committed. A relay (:func:`relay_outbox`) hands outbox messages to
a :class:`Sink` in order per key and records what it delivered; delivery
is at least once.

Consumers turn that into effectively once. :func:`deliver` runs each
``@app.subscribe`` handler in a unit and commits it together with an inbox
row keyed by (consumer, message id): inbox, state, checkpoint and any
messages the handler published commit together, and a second delivery of
the same message finds the inbox row and changes nothing.

Outbox rows carry a residency tag like queue messages (see
:mod:`stateshift.events._residency`): ``publish`` is checked before the row
is written, and a relay reads and hands its sink only the messages that its
own region and the sink's (``sink.region``, if it has one) may process.
"""

from __future__ import annotations

import inspect
import logging
import time
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from stateshift._durations import Duration, to_seconds
from stateshift.events._registry import registry_of, task_name
from stateshift.events._residency import message_scope, message_tag, processable_tags
from stateshift.events._units import Rejected, add_or_run, call, commit, fresh_unit
from stateshift.store.base import Tx

if TYPE_CHECKING:
    from stateshift.app import AppBase

logger = logging.getLogger(__name__)

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Message:
    """One message of a topic, as a sink or a subscriber sees it."""

    message_id: str
    """Unique id; the deduplication key everywhere downstream."""
    topic: str
    """The topic it was published to."""
    key: str | None
    """Ordering key: messages of one key are delivered in publish order."""
    payload: bytes
    """The payload, encoded by the app's codec."""
    residency: str = ""
    """The residency tag it was published with (``""`` when untagged)."""


@dataclass(frozen=True)
class Subscription:
    """One handler of one topic within one consumer group."""

    topic: str
    group: str
    fn: Callable[..., Any]
    max_attempts: int
    wants_message: bool
    payload_hint: Any = None

    @property
    def consumer(self) -> str:
        """Inbox scope: the group and the handler's name."""
        return f"{self.group}/{task_name(self.fn)}"


class Sink(Protocol):
    """Where a relay sends outbox messages (a broker, or this process)."""

    name: str
    """Stable name; the relay records deliveries per sink name."""

    # A sink may also have ``region``: the region whose workers consume what
    # it is sent. A relay hands it only messages that region, and the
    # relay's own, may process.

    def send(self, messages: list[Message]) -> list[BaseException | None]:
        """Send messages in order; one outcome per message (``None``: sent).

        After a failure, later messages of the same key must not be sent
        (report :class:`HeldBack` for them): :func:`send_each` does that.
        """
        ...


# --- publishing -----------------------------------------------------------


def publish(
    app: AppBase,
    topic: str,
    payload: Any,
    *,
    key: str | None = None,
    message_id: str | None = None,
    residency: str | None = None,
    tenant: str | None = None,
) -> str:
    """Write a message to the outbox (with the current unit, if any).

    Raises:
        ResidencyViolation: the policy refuses the message here; it was
            audited and nothing was written.
    """
    if not isinstance(topic, str) or not topic or len(topic) > 200:
        raise ValueError("a topic must be a string of 1 to 200 characters")
    if key is not None and not isinstance(key, str):
        raise TypeError(f"key must be a string, not {type(key).__name__}")
    message_id = message_id or uuid.uuid4().hex
    tag = message_tag(app, f"topic:{topic}/{key or message_id}", residency, tenant)
    encoded = app.codec.encode(
        payload, what=f"message to topic {topic!r}", aad=message_id.encode()
    )
    store = app.store
    sql = store.queries("events")["outbox_insert"]

    def insert(tx: Tx) -> None:
        tx.execute(sql, (message_id, topic, key, encoded, tag))

    add_or_run(store, insert)
    return message_id


def subscribe(
    app: AppBase,
    topic: str,
    *,
    group: str,
    max_attempts: int,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a handler of ``topic`` (a decorator)."""
    if not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError("max_attempts must be a positive integer")
    if not group:
        raise ValueError("group must be a non-empty string")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        wants = "message" in inspect.signature(fn).parameters
        subscription = Subscription(
            topic, group, fn, max_attempts, wants, _first_parameter_hint(fn)
        )
        registry = registry_of(app)
        with registry.lock:
            registry.subscriptions.setdefault(topic, []).append(subscription)
        return fn

    return register


def _first_parameter_hint(fn: Callable[..., Any]) -> Any:
    """The annotation of the handler's first parameter: the payload's type."""
    try:
        hints = typing.get_type_hints(fn)
        first = next(iter(inspect.signature(fn).parameters))
    except Exception:
        return None
    return hints.get(first)


# --- consuming through the inbox ------------------------------------------


def deliver(app: AppBase, message: Message) -> None:
    """Hand ``message`` to every subscriber of its topic, once each.

    Raises:
        Exception: the first error of a subscriber that failed and has
            attempts left; the caller should deliver the message again.
    """
    first_error: BaseException | None = None
    for subscription in list(registry_of(app).subscriptions.get(message.topic, ())):
        try:
            _deliver_one(app, subscription, message)
        except Exception as exc:
            first_error = first_error or exc
    if first_error is not None:
        raise first_error


def _deliver_one(app: AppBase, subscription: Subscription, message: Message) -> None:
    store = app.store
    q = store.queries("events")
    consumer = subscription.consumer
    with store.read() as tx:
        seen = tx.fetchone(q["inbox_status"], (consumer, message.message_id))
    if seen is not None and seen[0] in ("done", "dead"):
        return
    attempts = int(seen[1]) + 1 if seen is not None else 1

    def mark_done(tx: Tx) -> None:
        # Another delivery of the same message may have committed since our
        # check: then the insert changes nothing and our effects roll back.
        if not tx.execute(q["inbox_done"], (consumer, message.message_id, attempts)):
            raise Rejected(message.message_id)

    try:
        payload = app.codec.decode(
            message.payload,
            type_hint=subscription.payload_hint,
            what=f"message {message.message_id} of topic {message.topic!r}",
            aad=message.message_id.encode(),
        )
        kwargs = {"message": message} if subscription.wants_message else {}
        with fresh_unit(store) as unit, message_scope(message.residency):
            call(subscription.fn, (payload,), kwargs)
        commit(store, unit, first=mark_done)
    except Rejected:
        logger.debug(
            "message %s was already handled by %s",
            message.message_id,
            consumer,
            extra={"event": "inbox.duplicate"},
        )
    except Exception as exc:
        dead = _record_failure(app, subscription, message, exc)
        if not dead:
            raise


def _record_failure(
    app: AppBase, subscription: Subscription, message: Message, exc: Exception
) -> bool:
    store = app.store
    error = f"{type(exc).__qualname__}: {exc}"[:MAX_ERROR_CHARS]
    first_status = "dead" if subscription.max_attempts <= 1 else "failed"
    with store.transaction() as tx:
        tx.execute(
            store.queries("events")["inbox_failed"],
            (
                subscription.consumer,
                message.message_id,
                first_status,
                error,
                subscription.max_attempts,
            ),
        )
        row = tx.fetchone(
            store.queries("events")["inbox_status"],
            (subscription.consumer, message.message_id),
        )
    dead = row is not None and row[0] == "dead"
    logger.log(
        logging.ERROR if dead else logging.WARNING,
        "%s failed on message %s of topic %r%s: %s",
        subscription.consumer,
        message.message_id,
        message.topic,
        " and gave up on it" if dead else "",
        error,
        extra={"event": "inbox.dead" if dead else "inbox.retry"},
    )
    return dead


class HeldBack(Exception):
    """Not sent because an earlier message of its key failed in this batch."""


def send_each(
    messages: list[Message], send_one: Callable[[Message], None]
) -> list[BaseException | None]:
    """Send one at a time; after a failure, hold back the rest of that key."""
    failed_keys: set[str] = set()
    outcomes: list[BaseException | None] = []
    for message in messages:
        if message.key is not None and message.key in failed_keys:
            outcomes.append(HeldBack(message.message_id))
            continue
        try:
            send_one(message)
            outcomes.append(None)
        except Exception as exc:
            if message.key is not None:
                failed_keys.add(message.key)
            outcomes.append(exc)
    return outcomes


class LocalSink:
    """Delivers outbox messages to this app's ``@app.subscribe`` handlers."""

    name = "local"

    def __init__(self, app: AppBase) -> None:
        self.app = app

    def send(self, messages: list[Message]) -> list[BaseException | None]:
        return send_each(messages, lambda message: deliver(self.app, message))


# --- the relay ------------------------------------------------------------


def relay_outbox(
    app: AppBase,
    sink: Sink,
    *,
    budget: Duration = 10.0,
    batch_size: int = 100,
    max_attempts: int = 20,
    retry_delay: Duration = 1.0,
) -> int:
    """Send pending outbox messages to ``sink``; return how many were sent.

    One relay per sink holds a lease at a time, so messages of one key leave
    in publish order. A message the sink fails on holds back the later
    messages of its key (only) and is retried after ``retry_delay``; after
    ``max_attempts`` it is recorded as dead for this sink and its key moves on.
    """
    store = app.store
    q = store.queries("events")
    deadline = time.monotonic() + to_seconds(budget, name="budget")
    retry_seconds = to_seconds(retry_delay, name="retry_delay")
    lease_seconds = app.settings.lease_seconds
    owner = f"{app.worker_id}:{uuid.uuid4().hex[:8]}"
    tags = processable_tags(app, getattr(sink, "region", None))
    if tags is None:
        return 0
    sent = 0
    try:
        while time.monotonic() < deadline:
            with store.transaction() as tx:
                if not tx.execute(q["relay_lease"], (sink.name, owner, lease_seconds)):
                    return sent
                rows = tx.fetchall(
                    q["outbox_pending"], (sink.name, tags, tags, batch_size)
                )
            batch, held = _sendable(rows)
            if not batch:
                break
            outcomes = sink.send([m for m, _ in batch])
            delivered, given_up = _record_deliveries(
                app, sink, batch, outcomes, max_attempts, retry_seconds
            )
            sent += delivered
            if given_up:
                continue  # the keys it held back may move on now
            if not delivered or (len(rows) < batch_size and not held):
                break
    finally:
        with store.transaction() as tx:
            tx.execute(q["relay_release"], (sink.name, owner))
    return sent


def _sendable(rows: list[Any]) -> tuple[list[tuple[Message, int]], bool]:
    """Messages to send now, and whether a key was held back."""
    blocked: set[str | None] = set()
    batch: list[tuple[Message, int]] = []
    held = False
    for row in rows:
        message_id, topic, key, payload = row[1:5]
        status, attempts, wait, tag = row[6:10]
        if key is not None and key in blocked:
            held = True
            continue
        if status == "retry" and float(wait) > 0:
            # Waiting out its retry delay: later messages of its key wait too.
            if key is not None:
                blocked.add(key)
            held = True
            continue
        batch.append(
            (
                Message(
                    str(message_id), str(topic), key, bytes(payload), str(tag or "")
                ),
                int(attempts),
            )
        )
    return batch, held


def _record_deliveries(
    app: AppBase,
    sink: Sink,
    batch: list[tuple[Message, int]],
    outcomes: list[BaseException | None],
    max_attempts: int,
    retry_seconds: float,
) -> tuple[int, int]:
    """Record outcomes; return how many were delivered and given up on."""
    store = app.store
    q = store.queries("events")
    done, failed = [], []
    for (message, attempts), outcome in zip(batch, outcomes, strict=True):
        if isinstance(outcome, HeldBack):
            continue
        if outcome is None:
            done.append((sink.name, message.message_id, attempts + 1))
            continue
        status = "dead" if attempts + 1 >= max_attempts else "retry"
        error = f"{type(outcome).__qualname__}: {outcome}"[:MAX_ERROR_CHARS]
        failed.append(
            (sink.name, message.message_id, status, attempts + 1, error, retry_seconds)
        )
        logger.warning(
            "relay to %s failed on message %s (attempt %d)%s: %s",
            sink.name,
            message.message_id,
            attempts + 1,
            "; giving up" if status == "dead" else "",
            error,
            extra={"event": f"relay.{status}"},
        )
    with store.transaction() as tx:
        if done:
            tx.executemany(q["outbox_delivered"], done)
        if failed:
            tx.executemany(q["outbox_failed"], failed)
    return len(done), sum(1 for row in failed if row[2] == "dead")


def prune_outbox(app: AppBase, older_than: Duration) -> int:
    """Delete outbox messages (and their delivery records) older than this."""
    seconds = to_seconds(older_than, name="older_than")
    store = app.store
    q = store.queries("events")
    with store.transaction() as tx:
        tx.execute(q["outbox_prune_deliveries"], (seconds,))
        return tx.execute(q["outbox_prune"], (seconds,))
