"""Azure Functions bindings (Python v2 model) to and from the trigger model.

Works on the ``azure-functions`` library's own types: ``HttpRequest``,
``QueueMessage`` and ``TimerRequest``, and builds its ``HttpResponse``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from stateshift.runtime.triggers import (
    HttpRequest,
    HttpResponse,
    Message,
    QueueBatch,
    ScheduledTick,
)


def parse_http(request: Any, *, route_prefix: str) -> HttpRequest:
    """An HTTP request from ``azure.functions.HttpRequest``."""
    url = urlsplit(request.url)
    path = url.path or "/"
    prefix = "/" + route_prefix.strip("/") if route_prefix.strip("/") else ""
    if prefix and (path == prefix or path.startswith(prefix + "/")):
        path = path[len(prefix) :] or "/"
    headers = {str(k).lower(): str(v) for k, v in request.headers.items()}
    query: dict[str, str] = {}
    for key, value in parse_qsl(url.query):
        query.setdefault(key, value)
    for key, value in (request.params or {}).items():
        query.setdefault(key, value)
    return HttpRequest(
        method=request.method.upper(),
        path=path,
        headers=headers,
        query=query,
        body=request.get_body() or b"",
        request_id=headers.get("x-ms-request-id", ""),
    )


def to_azure_response(response: HttpResponse) -> Any:
    """``azure.functions.HttpResponse`` for ``response``."""
    import azure.functions as func

    headers = dict(response.headers)
    mimetype = headers.pop("content-type", "application/json")
    return func.HttpResponse(
        response.body,
        status_code=response.status,
        headers=headers,
        mimetype=mimetype.split(";", 1)[0],
    )


def parse_queue_message(message: Any) -> QueueBatch:
    """A batch of one from ``azure.functions.QueueMessage``."""
    body = message.get_body()
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else str(body or "")
    except UnicodeDecodeError:
        text = ""  # fails this message as malformed JSON
    count = getattr(message, "dequeue_count", None)
    return QueueBatch(
        messages=(
            Message(
                message_id=str(message.id or ""),
                body=text,
                receive_count=int(count) if count else 1,
            ),
        ),
        source="azure-queue",
    )


def parse_timer(timer: Any) -> ScheduledTick:
    """A tick from ``azure.functions.TimerRequest``."""
    status = getattr(timer, "schedule_status", None) or {}
    return ScheduledTick(source="azure-timer", scheduled_at=status.get("Next"))
