"""Queue and topic messages: what a message body asks the runtime to do.

A message body is a JSON object with an ``op``::

    {"op": "start", "workflow": "checkout", "args": [...], "kwargs": {...},
     "workflow_id": "order-42", "partition_key": "u42"}
    {"op": "event", "workflow_id": "order-42", "name": "approval",
     "payload": {...}, "event_id": "mail-7"}
    {"op": "cancel", "workflow_id": "order-42"}
    {"op": "wake"}

Queues deliver at least once, so every command is idempotent: a start
without ``workflow_id`` takes one made from the message id, and an event
without ``event_id`` is deduplicated on the message id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stateshift.runtime.service import PLACEMENT_FIELDS, Problem, Service
from stateshift.runtime.triggers import Message

logger = logging.getLogger(__name__)

MAX_ID_CHARS = 200
OPS = ("start", "event", "cancel", "wake")


@dataclass(frozen=True)
class Command:
    """One validated request, from a message or an HTTP call."""

    op: str
    workflow: str = ""
    workflow_id: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] | None = None
    name: str = ""
    payload: Any = None
    event_id: str | None = None
    placement: Mapping[str, str] | None = None


def parse_json_object(text: str | bytes, *, what: str) -> dict[str, Any]:
    """Parse ``text`` as one JSON object.

    Raises:
        Problem: 400 when it is not JSON, 422 when it is JSON but no object.
    """
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            400, "malformed_json", f"{what} is not valid JSON: {exc}"
        ) from None
    if not isinstance(document, dict):
        raise Problem(
            422, "invalid_body", f"{what} must be a JSON object, not {_kind(document)}"
        )
    return document


def parse_message(message: Message) -> Command:
    """The command a message carries, with ids defaulted from the message id."""
    document = parse_json_object(message.body, what=f"message {message.message_id}")
    op = document.get("op")
    if op not in OPS:
        raise Problem(
            422, "unknown_op", f"'op' must be one of {', '.join(OPS)}, not {op!r}"
        )
    if op == "wake":
        return Command(op="wake")
    if op == "start":
        workflow_id = optional_id(document, "workflow_id")
        return Command(
            op="start",
            workflow=required_name(document, "workflow"),
            workflow_id=workflow_id or f"msg-{message.message_id}"[:MAX_ID_CHARS],
            args=arguments(document),
            kwargs=keyword_arguments(document),
            placement=placement_options(document),
        )
    workflow_id = required_name(document, "workflow_id")
    if op == "cancel":
        return Command(op="cancel", workflow_id=workflow_id)
    return Command(
        op="event",
        workflow_id=workflow_id,
        name=required_name(document, "name"),
        payload=document.get("payload"),
        event_id=optional_id(document, "event_id") or f"msg-{message.message_id}",
    )


def execute(service: Service, command: Command, *, budget_seconds: float) -> None:
    """Carry out a command from a message; raise to fail that message."""
    if command.op == "start":
        view = service.start(
            command.workflow,
            command.args,
            command.kwargs or {},
            workflow_id=command.workflow_id,
            run_here=True,
            budget_seconds=budget_seconds,
            placement=command.placement,
        )
        logger.info(
            "message started workflow %s: %s",
            view.workflow_id,
            view.status,
            extra={"event": "runtime.command.start", "workflow_id": view.workflow_id},
        )
    elif command.op == "event":
        assert command.workflow_id is not None
        delivered = service.send_event(
            command.workflow_id,
            command.name,
            command.payload,
            event_id=command.event_id,
        )
        if not delivered:
            # Not a failure: redelivering cannot help a finished workflow.
            logger.warning(
                "event %r for finished workflow %s was not delivered",
                command.name,
                command.workflow_id,
                extra={"event": "runtime.command.undelivered"},
            )
    elif command.op == "cancel":
        assert command.workflow_id is not None
        service.cancel(command.workflow_id)
    # "wake" asks for nothing beyond the due work every invocation does.


def required_name(document: Mapping[str, Any], field: str) -> str:
    """A non-empty string field of at most ``MAX_ID_CHARS`` characters."""
    if field not in document:
        raise Problem(422, "missing_field", f"the field {field!r} is required")
    return checked_name(document[field], field)


def checked_name(value: Any, field: str) -> str:
    """``value`` if it is a fitting name or id, else a 422 problem."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise Problem(
            422,
            "invalid_field",
            f"{field!r} must be a non-empty string of at most {MAX_ID_CHARS} "
            f"characters, not {_kind(value)}",
        )
    if any(ord(c) < 32 for c in value):
        raise Problem(422, "invalid_field", f"{field!r} contains control characters")
    return value


def optional_id(document: Mapping[str, Any], field: str) -> str | None:
    """An optional id field: absent or ``null`` gives ``None``."""
    value = document.get(field)
    return None if value is None else checked_name(value, field)


def placement_options(document: Mapping[str, Any]) -> dict[str, str]:
    """``residency``, ``tenant`` and ``partition_key`` given beside the arguments."""
    options: dict[str, str] = {}
    for field in PLACEMENT_FIELDS:
        value = optional_id(document, field)
        if value is not None:
            options[field] = value
    return options


def arguments(document: Mapping[str, Any]) -> tuple[Any, ...]:
    """The positional arguments of a start or entity call."""
    value = document.get("args", [])
    if not isinstance(value, list):
        raise Problem(422, "invalid_arguments", "'args' must be a JSON array")
    return tuple(value)


def keyword_arguments(document: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a start or entity call."""
    value = document.get("kwargs", {})
    if not isinstance(value, dict):
        raise Problem(422, "invalid_arguments", "'kwargs' must be a JSON object")
    return value


def _kind(value: Any) -> str:
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "an array"
    return {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        dict: "an object",
    }.get(type(value), type(value).__name__)
