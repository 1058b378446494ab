"""What identifies an event: its idempotency key and the hash of its payload.

A redelivered message is the same message with different delivery metadata
(a new SQS receipt handle, a higher receive count, a new API Gateway request
id). The payload hash leaves those fields out, wherever they sit in the
event, or every real redelivery would look like a key reused for another
payload. :data:`DEFAULT_EXCLUDED_FIELDS` is the list; decorators extend it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any
from uuid import UUID

from stateshift.errors import InvalidKey, UnsupportedType

DEFAULT_EXCLUDED_FIELDS: frozenset[str] = frozenset(
    {
        # Amazon SQS records
        "receiptHandle",
        "ApproximateReceiveCount",
        "ApproximateFirstReceiveTimestamp",
        # API Gateway / Lambda function URLs: per request, not per payload
        "requestContext",
        "headers",
        "multiValueHeaders",
        # Google Pub/Sub push and Cloud Tasks
        "deliveryAttempt",
        "X-CloudTasks-TaskRetryCount",
        "X-CloudTasks-TaskExecutionCount",
        # Azure Service Bus
        "DeliveryCount",
        "LockToken",
        "LockedUntilUtc",
    }
)
"""Delivery metadata left out of payload hashes, at any depth of the event."""

MAX_KEY_LENGTH = 512

KeySpec = str | Callable[..., Any]


def extract_key(spec: KeySpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """The idempotency key of one call, from a callable or a dotted path.

    A dotted path such as ``"body.payment_id"`` walks the first argument (the
    event); a segment whose value is a JSON string (an API Gateway body) is
    parsed on the way.

    Raises:
        InvalidKey: the path is missing from the event or the key is empty.
    """
    if callable(spec):
        value = spec(*args, **kwargs)
    else:
        if not args:
            raise InvalidKey(
                f"the idempotency key path {spec!r} needs the event as the first "
                "positional argument"
            )
        value = walk(args[0], spec)
    if value is None or value == "":
        raise InvalidKey(f"the idempotency key from {_describe(spec)} is empty")
    text = value if isinstance(value, str) else canonical_json(value)
    if len(text) > MAX_KEY_LENGTH:
        raise InvalidKey(
            f"the idempotency key from {_describe(spec)} is {len(text)} characters, "
            f"over {MAX_KEY_LENGTH}: pick a shorter field or hash it yourself"
        )
    return text


def walk(event: Any, path: str) -> Any:
    """Follow ``path`` (``a.b.c``) into ``event``; JSON strings are parsed."""
    current = event
    for segment in path.split("."):
        if isinstance(current, str | bytes):
            try:
                current = json.loads(current)
            except ValueError:
                raise InvalidKey(
                    f"the idempotency key path {path!r} reaches a string that is "
                    f"not JSON before {segment!r}"
                ) from None
        if isinstance(current, Mapping) and segment in current:
            current = current[segment]
        elif isinstance(current, list | tuple) and segment.isdigit():
            index = int(segment)
            if index >= len(current):
                raise InvalidKey(f"the idempotency key path {path!r} is not in it")
            current = current[index]
        elif not isinstance(current, Mapping) and hasattr(current, segment):
            current = getattr(current, segment)
        else:
            raise InvalidKey(
                f"the idempotency key path {path!r} is not in the event "
                f"(no {segment!r}): check the path, or pass key= a callable"
            )
    return current


def payload_hash(
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    excluded: Collection[str],
    select: KeySpec | None = None,
) -> str:
    """SHA-256 of the call's payload, without delivery metadata.

    ``select`` (a dotted path or callable) picks the part to hash; by default
    every argument is hashed except a platform context object.
    """
    if select is not None:
        chosen: Any = (
            select(*args, **kwargs) if callable(select) else walk(args[0], select)
        )
    else:
        chosen = {
            "args": [a for a in args if not is_platform_context(a)],
            "kwargs": {
                k: v for k, v in sorted(kwargs.items()) if not is_platform_context(v)
            },
        }
    text = canonical_json(_strip(chosen, excluded))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_platform_context(value: Any) -> bool:
    """True for a Lambda-style context (it says how much time is left)."""
    return callable(getattr(value, "get_remaining_time_in_millis", None))


def remaining_seconds(args: tuple[Any, ...], kwargs: dict[str, Any]) -> float | None:
    """Time left in this invocation, from a platform context among the args."""
    for value in (*args, *kwargs.values()):
        if is_platform_context(value):
            return float(value.get_remaining_time_in_millis()) / 1000.0
    return None


def canonical_json(value: Any) -> str:
    """One text per value: sorted keys, no spaces, typed values spelled out."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), default=_plain, allow_nan=False
    )


def _strip(value: Any, excluded: Collection[str]) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    elif hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {
            str(k): _strip(v, excluded)
            for k, v in value.items()
            if str(k) not in excluded
        }
    if isinstance(value, list | tuple):
        return [_strip(v, excluded) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(canonical_json(v) for v in value)
    raise UnsupportedType(f"{type(value).__module__}.{type(value).__qualname__}", "$")


def _describe(spec: KeySpec) -> str:
    return f"path {spec!r}" if isinstance(spec, str) else "the key function"
