"""What starts an invocation, whatever the platform: one model for every trigger.

Adapters parse their platform's event (API Gateway, SQS, EventBridge,
Pub/Sub, Azure queues and timers) into one of these values; the
:class:`~stateshift.runtime.invocation.Invoker` only ever sees these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_TYPE = "application/json"


class MalformedEvent(ValueError):
    """A platform event lacks a field its documented shape requires.

    Attributes:
        source: the kind of event (``apigateway-v2``, ``sqs``...).
    """

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"malformed {source} event: {message}")
        self.source = source


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request, as the API sees it on every platform."""

    method: str
    """Upper-case method, like ``POST``."""

    path: str
    """The path without query string, percent-encoded as received."""

    headers: Mapping[str, str] = field(default_factory=dict)
    """Header names in lower case; repeated headers joined with ``,``."""

    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters, the first value of each."""

    body: bytes = b""
    """The raw body."""

    request_id: str = ""
    """The platform's id of this request, for logs."""


@dataclass(frozen=True)
class HttpResponse:
    """An HTTP answer, turned into each platform's response shape."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(
        cls,
        status: int,
        document: Any,
        headers: Mapping[str, str] | None = None,
    ) -> HttpResponse:
        """A response whose body is ``document`` as JSON."""
        body = json.dumps(document, separators=(",", ":"), default=plain_json)
        return cls(
            status, body.encode("utf-8"), {"content-type": JSON_TYPE, **(headers or {})}
        )


@dataclass(frozen=True)
class Message:
    """One queue or topic message."""

    message_id: str
    """The platform's id; the same on every redelivery."""

    body: str
    """The body as text (SQS bodies are always strings)."""

    receive_count: int = 1
    """How many times this message was delivered, this delivery included."""

    group_id: str | None = None
    """FIFO message group or ordering key, when there is one."""

    attributes: Mapping[str, str] = field(default_factory=dict)
    """Platform attributes, for logs; never part of what the message means."""


@dataclass(frozen=True)
class QueueBatch:
    """Messages handed over together; each succeeds or fails on its own."""

    messages: tuple[Message, ...]
    source: str
    """Where they come from: ``sqs``, ``pubsub``, ``azure-queue``..."""

    ordered: bool = False
    """FIFO: after the first failure every later message must fail as well."""


@dataclass(frozen=True)
class ScheduledTick:
    """A timer firing: do the work that is due."""

    source: str
    scheduled_at: str | None = None
    """When the platform meant it to fire (ISO 8601), if it says."""


Trigger = HttpRequest | QueueBatch | ScheduledTick


def plain_json(value: Any) -> Any:
    """Turn values ``json`` cannot write into plain JSON for API callers."""
    import base64
    import dataclasses
    import datetime
    import decimal
    import enum
    import uuid

    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
