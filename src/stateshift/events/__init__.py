"""Effectively-once events: idempotent handlers, durable queues, topics.

Delivery is at least once everywhere; effects in the store happen once
because each handler's writes commit in the same transaction as the record
that says the message (or key) was handled: a queue acknowledgement, an
inbox row, a completed idempotency record.
"""

from __future__ import annotations

from stateshift.events._payload import DEFAULT_EXCLUDED_FIELDS
from stateshift.events.idempotency import (
    IdempotencyStore,
    RedisIdempotencyStore,
    StoreIdempotencyStore,
    execution_owner,
)
from stateshift.events.queues import Queue, QueueOptions, run_due_messages
from stateshift.events.topics import LocalSink, Message, Sink, send_each

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
