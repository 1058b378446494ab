"""AWS Lambda events, as AWS documents them, to and from the trigger model.

Handles API Gateway HTTP API payload 2.0, SQS batches (standard and FIFO),
EventBridge scheduled events and other EventBridge events (whose ``detail``
is read as a command). Pure functions: no AWS library is needed.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from stateshift.runtime.invocation import BatchOutcome
from stateshift.runtime.triggers import (
    HttpRequest,
    HttpResponse,
    MalformedEvent,
    Message,
    QueueBatch,
    ScheduledTick,
    Trigger,
)

HTTP_SOURCE = "apigateway-v2"


def parse_event(event: Any) -> Trigger:
    """The trigger an invocation event stands for.

    Raises:
        MalformedEvent: the event matches no supported shape, or lacks a
            field its shape requires (like ``requestContext``).
    """
    if not isinstance(event, Mapping):
        raise MalformedEvent("lambda", f"expected a JSON object, got {type(event)}")
    if "Records" in event:
        return parse_sqs(event)
    if "detail-type" in event and "source" in event:
        return parse_eventbridge(event)
    if event.get("version") == "2.0" or "routeKey" in event or "rawPath" in event:
        return parse_http_v2(event)
    raise MalformedEvent(
        "lambda",
        "not an API Gateway v2, SQS or EventBridge event (keys: "
        + ", ".join(sorted(str(k) for k in event)[:8])
        + ")",
    )


def is_http_event(event: Any) -> bool:
    """Whether ``event`` claims to be an HTTP event (so errors answer in HTTP)."""
    return isinstance(event, Mapping) and (
        event.get("version") == "2.0" or "routeKey" in event or "rawPath" in event
    )


def parse_http_v2(event: Mapping[str, Any]) -> HttpRequest:
    """An API Gateway HTTP API (payload 2.0) request."""
    context = event.get("requestContext")
    if not isinstance(context, Mapping):
        raise MalformedEvent(HTTP_SOURCE, "'requestContext' is missing")
    http = context.get("http")
    if not isinstance(http, Mapping) or not isinstance(http.get("method"), str):
        raise MalformedEvent(HTTP_SOURCE, "'requestContext.http.method' is missing")

    raw_headers = event.get("headers") or {}
    if not isinstance(raw_headers, Mapping):
        raise MalformedEvent(HTTP_SOURCE, "'headers' must be an object")
    headers = {str(k).lower(): str(v) for k, v in raw_headers.items()}
    cookies = event.get("cookies")
    if isinstance(cookies, list) and cookies and "cookie" not in headers:
        headers["cookie"] = "; ".join(str(c) for c in cookies)

    query: dict[str, str] = {}
    for key, value in parse_qsl(str(event.get("rawQueryString") or "")):
        query.setdefault(key, value)

    body = event.get("body") or ""
    if not isinstance(body, str):
        raise MalformedEvent(HTTP_SOURCE, "'body' must be a string")
    if event.get("isBase64Encoded"):
        try:
            data = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedEvent(HTTP_SOURCE, "'body' is not valid base64") from None
    else:
        data = body.encode("utf-8")

    path = event.get("rawPath") or http.get("path") or "/"
    return HttpRequest(
        method=str(http["method"]).upper(),
        path=str(path),
        headers=headers,
        query=query,
        body=data,
        request_id=str(context.get("requestId", "")),
    )


def parse_sqs(event: Mapping[str, Any]) -> QueueBatch:
    """An SQS batch; FIFO when the queue's ARN ends in ``.fifo``."""
    records = event.get("Records")
    if not isinstance(records, list):
        raise MalformedEvent("sqs", "'Records' must be a list")
    messages: list[Message] = []
    fifo = False
    for number, record in enumerate(records):
        if not isinstance(record, Mapping) or not isinstance(
            record.get("messageId"), str
        ):
            raise MalformedEvent("sqs", f"record {number} has no 'messageId'")
        attributes = record.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            attributes = {}
        fifo = fifo or str(record.get("eventSourceARN", "")).endswith(".fifo")
        body = record.get("body")
        messages.append(
            Message(
                message_id=record["messageId"],
                # A body that is no string fails as malformed JSON, alone.
                body=body if isinstance(body, str) else "",
                receive_count=_int(attributes.get("ApproximateReceiveCount"), 1),
                group_id=attributes.get("MessageGroupId"),
                attributes={str(k): str(v) for k, v in attributes.items()},
            )
        )
    ordered = fifo or any(m.group_id is not None for m in messages)
    return QueueBatch(messages=tuple(messages), source="sqs", ordered=ordered)


def parse_eventbridge(event: Mapping[str, Any]) -> Trigger:
    """A scheduled tick, or another event whose ``detail`` is a command."""
    if event.get("detail-type") == "Scheduled Event":
        return ScheduledTick(source="eventbridge", scheduled_at=event.get("time"))
    event_id = event.get("id")
    if not isinstance(event_id, str) or not event_id:
        raise MalformedEvent("eventbridge", "'id' is missing")
    detail = event.get("detail")
    message = Message(message_id=event_id, body=json.dumps(detail))
    return QueueBatch(messages=(message,), source="eventbridge")


def http_v2_response(response: HttpResponse) -> dict[str, Any]:
    """The payload 2.0 answer for API Gateway."""
    try:
        body, encoded = response.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(response.body).decode("ascii"), True
    return {
        "statusCode": response.status,
        "headers": dict(response.headers),
        "cookies": [],
        "body": body,
        "isBase64Encoded": encoded,
    }


def batch_response(outcome: BatchOutcome) -> dict[str, Any]:
    """The partial batch response: the ids SQS must deliver again."""
    return {"batchItemFailures": [{"itemIdentifier": mid} for mid in outcome.failed]}


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
