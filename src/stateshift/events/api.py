"""The events methods of :class:`stateshift.App`: idempotency, queues, topics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from stateshift._durations import Duration, to_seconds

# The implementation modules are imported on first use: an app that never
# declares a queue or topic does not pay for importing them.
if TYPE_CHECKING:
    from stateshift.app import AppBase
    from stateshift.events import queues, topics
    from stateshift.events._payload import KeySpec
    from stateshift.events.idempotency import IdempotencyStore


class EventsMixin:
    """Effectively-once events: idempotent handlers, queues, outbox and inbox."""

    def _app(self) -> AppBase:
        return cast("AppBase", self)

    def _run_due_messages(
        self, budget_seconds: float | None
    ) -> tuple[int, Counter[str]]:
        # Called by tick() and run_until_idle(): queue messages are due work
        # like workflows, so a scheduled tick drives both. Workflows started
        # from messages run in the same pass; their outcomes come back too.
        from stateshift.events._registry import registry_of
        from stateshift.events.queues import due_messages

        if not registry_of(self._app()).queues:
            return 0, Counter()
        done = due_messages(self._app(), budget_seconds)
        return done.messages, done.workflows

    def idempotent(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        key: KeySpec,
        ttl: Duration | None = None,
        in_progress_expiry: Duration | None = None,
        name: str | None = None,
        exclude: Collection[str] = (),
        payload: KeySpec | None = None,
        release_on_error: bool = True,
        holder: IdempotencyStore | None = None,
    ) -> Any:
        """Make a sync or async function run once per idempotency key.

        Args:
            key: a dotted path into the event (the first argument), such as
                ``"body.payment_id"``, or a callable taking the call's arguments.
            ttl: how long the completed result is kept and replayed (default:
                the ``idempotency_ttl_seconds`` setting).
            in_progress_expiry: how long a running call holds the key; default
                the platform's remaining time (a Lambda context argument), else
                the ``idempotency_in_progress_seconds`` setting.
            name: scope of the keys (default: the function's qualified name).
            exclude: more field names to leave out of the payload hash, on top
                of :data:`~stateshift.events.DEFAULT_EXCLUDED_FIELDS`.
            payload: a dotted path or callable choosing what is hashed
                (default: every argument but a platform context).
            release_on_error: release the key when the function raises, so a
                retry runs it again; ``False`` keeps it until it expires.
            holder: where records live (default: the app's store; or a
                :class:`~stateshift.events.RedisIdempotencyStore`).

        Raises:
            IdempotencyInProgress: the same key is being handled now.
            IdempotencyKeyMismatch: the key was used with another payload.
        """

        from stateshift.events._registry import registry_of
        from stateshift.events.idempotency import IdempotentFunction

        def decorate(target: Callable[..., Any]) -> Callable[..., Any]:
            wrapper = IdempotentFunction(
                self._app(),
                target,
                key=key,
                ttl=ttl,
                in_progress_expiry=in_progress_expiry,
                name=name,
                exclude=exclude,
                payload=payload,
                release_on_error=release_on_error,
                holder=holder,
            ).wrapper()
            registry_of(self._app()).register_task(wrapper)
            return wrapper

        return decorate(fn) if fn is not None else decorate

    def queue(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        rate_limit: float | None = None,
        max_attempts: int = 5,
        visibility_timeout: Duration | None = None,
        ordered: bool = False,
        key_concurrency: int | None = None,
        backoff: Duration = 1.0,
        max_backoff: Duration = timedelta(minutes=5),
    ) -> queues.Queue:
        """Declare the durable queue ``name`` (once per process) and return it.

        Args:
            concurrency: most messages in flight at once, across workers.
            rate_limit: most messages started per second, across workers.
            max_attempts: attempts before a message is dead-lettered.
            visibility_timeout: how long a claimed message stays invisible
                (default: the ``lease_seconds`` setting).
            ordered: one message per ``key`` in flight, in enqueue order.
            key_concurrency: most messages of one ``key`` in flight at once.
            backoff: delay before the first retry (doubling, with jitter).
            max_backoff: longest delay between attempts.
        """
        from stateshift.events import queues

        return queues.make_queue(
            self._app(),
            name,
            concurrency=concurrency,
            rate_limit=rate_limit,
            max_attempts=max_attempts,
            visibility_timeout=visibility_timeout,
            ordered=ordered,
            key_concurrency=key_concurrency,
            backoff=backoff,
            max_backoff=max_backoff,
        )

    def run_queues(self, budget: Duration = 10.0) -> int:
        """Run due messages of every declared queue within ``budget``."""
        from stateshift.events import queues

        return queues.run_due_messages(self._app(), to_seconds(budget, name="budget"))

    def publish(
        self,
        topic: str,
        payload: Any,
        *,
        key: str | None = None,
        message_id: str | None = None,
        residency: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """Publish to ``topic`` through the outbox; return the message id.

        Inside a step, workflow, transaction, queue task or subscriber the
        message commits with that unit's writes; elsewhere on its own.

        The message is tagged ``residency`` (or ``tenant``'s tag; else the
        tag of the workflow, message or data subject it is published from)
        and checked against the residency policy first.

        Raises:
            ResidencyViolation: the policy refuses the message here; it was
                audited and nothing was written.
        """
        from stateshift.events import topics

        return topics.publish(
            self._app(),
            topic,
            payload,
            key=key,
            message_id=message_id,
            residency=residency,
            tenant=tenant,
        )

    def subscribe(
        self, topic: str, *, group: str = "default", max_attempts: int = 5
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Register a handler of ``topic``, deduplicated through the inbox.

        The handler gets the decoded payload (and the
        :class:`~stateshift.events.Message` if it has a ``message``
        parameter). After ``max_attempts`` failures on one message the
        handler gives up on it (recorded as dead in the inbox).
        """
        from stateshift.events import topics

        return topics.subscribe(
            self._app(), topic, group=group, max_attempts=max_attempts
        )

    def relay_outbox(
        self,
        sink: topics.Sink | None = None,
        *,
        budget: Duration = 10.0,
        batch_size: int = 100,
    ) -> int:
        """Send pending outbox messages to ``sink`` (default: this process's
        subscribers); return how many were delivered."""
        from stateshift.events import topics

        target = sink if sink is not None else topics.LocalSink(self._app())
        return topics.relay_outbox(
            self._app(), target, budget=budget, batch_size=batch_size
        )

    def deliver(self, message: topics.Message) -> None:
        """Hand one message (from a broker) to subscribers through the inbox."""
        from stateshift.events import topics

        topics.deliver(self._app(), message)

    def prune_outbox(self, older_than: Duration) -> int:
        """Delete outbox messages older than ``older_than``; return how many."""
        from stateshift.events import topics

        return topics.prune_outbox(self._app(), older_than)

    def prune_queues(self, older_than: Duration) -> int:
        """Delete ``done`` messages finished longer ago than ``older_than``.

        A pruned message's ``dedup_id`` can be used again.
        """
        seconds = to_seconds(older_than, name="older_than")
        store = self._app().store
        with store.transaction() as tx:
            return tx.execute(store.queries("events")["queue_prune"], (seconds,))

    def purge_idempotency(self) -> int:
        """Delete expired idempotency records from the store; return how many."""
        store = self._app().store
        with store.transaction() as tx:
            return tx.execute(store.queries("events")["idempotency_purge"])

    # --- async adapters: the sync core in a worker thread -------------------

    async def publish_async(
        self,
        topic: str,
        payload: Any,
        *,
        key: str | None = None,
        message_id: str | None = None,
        residency: str | None = None,
        tenant: str | None = None,
    ) -> str:
        """:meth:`publish` without blocking the event loop (joins the unit)."""
        import asyncio

        return await asyncio.to_thread(
            self.publish,
            topic,
            payload,
            key=key,
            message_id=message_id,
            residency=residency,
            tenant=tenant,
        )

    async def run_queues_async(self, budget: Duration = 10.0) -> int:
        """:meth:`run_queues` without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(self.run_queues, budget)

    async def relay_outbox_async(
        self,
        sink: topics.Sink | None = None,
        *,
        budget: Duration = 10.0,
        batch_size: int = 100,
    ) -> int:
        """:meth:`relay_outbox` without blocking the event loop."""
        import asyncio

        return await asyncio.to_thread(
            self.relay_outbox, sink, budget=budget, batch_size=batch_size
        )
