"""Google Cloud events to the trigger model: Pub/Sub CloudEvents and HTTP.

Pure functions over what ``functions-framework`` hands a function: a
CloudEvent (``attributes`` and ``data``) and a Flask/Werkzeug request.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from stateshift.runtime.triggers import (
    HttpRequest,
    MalformedEvent,
    Message,
    QueueBatch,
    ScheduledTick,
    Trigger,
)

PUBSUB_TYPE = "google.cloud.pubsub.topic.v1.messagePublished"
SCHEDULER_TYPE = "google.cloud.scheduler.job.v1.executed"


def parse_cloudevent(attributes: Mapping[str, Any], data: Any) -> Trigger:
    """The trigger of a CloudEvent: a Pub/Sub message is a batch of one."""
    event_type = str(attributes.get("type", ""))
    if event_type == SCHEDULER_TYPE:
        return ScheduledTick(
            source="cloud-scheduler", scheduled_at=attributes.get("time")
        )
    if event_type != PUBSUB_TYPE:
        raise MalformedEvent("cloudevent", f"unsupported type {event_type!r}")
    if not isinstance(data, Mapping) or not isinstance(data.get("message"), Mapping):
        raise MalformedEvent("pubsub", "'data.message' is missing")
    message = data["message"]
    message_id = message.get("messageId") or message.get("message_id")
    if not isinstance(message_id, str) or not message_id:
        message_id = str(attributes.get("id", ""))
    if not message_id:
        raise MalformedEvent("pubsub", "the message has no id")
    try:
        body = base64.b64decode(message.get("data") or "", validate=True)
        text = body.decode("utf-8")
    except (binascii.Error, ValueError):
        # Not base64 or not UTF-8: fail this message as malformed JSON.
        text = ""
    raw_attributes = message.get("attributes") or {}
    delivery_attempt = data.get("deliveryAttempt") or message.get("deliveryAttempt")
    return QueueBatch(
        messages=(
            Message(
                message_id=message_id,
                body=text,
                receive_count=_int(delivery_attempt, 1),
                group_id=message.get("orderingKey") or None,
                attributes={str(k): str(v) for k, v in raw_attributes.items()},
            ),
        ),
        source="pubsub",
        ordered=bool(message.get("orderingKey")),
    )


def parse_flask_request(request: Any, body: bytes) -> HttpRequest:
    """An HTTP request from a Flask/Werkzeug request object."""
    environ = request.environ
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    path = str(raw).split("?", 1)[0] if raw else quote(request.path)
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    return HttpRequest(
        method=request.method.upper(),
        path=path,
        headers=headers,
        query={k: request.args.get(k) for k in request.args},
        body=body,
        request_id=headers.get("x-cloud-trace-context", "").split("/", 1)[0],
    )


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
