"""Effectively-once events: idempotent handlers, durable queues, topics.

Delivery is at least once everywhere; effects in the store happen once
because each handler's writes commit in the same transaction as the record
that says the message (or key) was handled: a queue acknowledgement, an
inbox row, a completed idempotency record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateshift._lazy import lazy_getattr

if TYPE_CHECKING:
    from stateshift.events._payload import DEFAULT_EXCLUDED_FIELDS
    from stateshift.events.idempotency import (
        IdempotencyStore,
        RedisIdempotencyStore,
        StoreIdempotencyStore,
        execution_owner,
    )
    from stateshift.events.queues import Queue, QueueOptions, run_due_messages
    from stateshift.events.topics import LocalSink, Message, Sink, send_each

# Each name is imported on first use (see stateshift._lazy).
_HOMES = {
    "DEFAULT_EXCLUDED_FIELDS": "stateshift.events._payload",
    "IdempotencyStore": "stateshift.events.idempotency",
    "LocalSink": "stateshift.events.topics",
    "Message": "stateshift.events.topics",
    "Queue": "stateshift.events.queues",
    "QueueOptions": "stateshift.events.queues",
    "RedisIdempotencyStore": "stateshift.events.idempotency",
    "Sink": "stateshift.events.topics",
    "StoreIdempotencyStore": "stateshift.events.idempotency",
    "execution_owner": "stateshift.events.idempotency",
    "run_due_messages": "stateshift.events.queues",
    "send_each": "stateshift.events.topics",
}
__getattr__ = lazy_getattr(__name__, globals(), _HOMES)

__all__ = [
    "DEFAULT_EXCLUDED_FIELDS",
    "IdempotencyStore",
    "LocalSink",
    "Message",
    "Queue",
    "QueueOptions",
    "RedisIdempotencyStore",
    "Sink",
    "StoreIdempotencyStore",
    "execution_owner",
    "run_due_messages",
    "send_each",
]
