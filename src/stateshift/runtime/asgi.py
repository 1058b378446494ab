"""The HTTP API as an ASGI application (serve it with uvicorn or any ASGI server).

Requests run in a worker thread, because the core is synchronous, each with
a deadline of ``request_timeout_seconds``. Bodies are read only up to the
limit: a larger one is refused with 413 before it is all received.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Protocol

from stateshift.runtime.deadline import Deadline
from stateshift.runtime.http import DEFAULT_MAX_BODY_BYTES, problem_response
from stateshift.runtime.invocation import Outcome
from stateshift.runtime.triggers import HttpRequest, HttpResponse, Trigger

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class _TooLarge(Exception):
    pass


class TriggerRunner(Protocol):
    """Anything that runs a trigger within a deadline, like :class:`Invoker`."""

    def invoke(self, trigger: Trigger, deadline: Deadline) -> Outcome: ...


class AsgiApp:
    """An ASGI 3 application answering the :class:`HttpApi` routes."""

    def __init__(
        self,
        invoker: TriggerRunner,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout_seconds: float = 30.0,
    ) -> None:
        self.invoker = invoker
        self.max_body_bytes = max_body_bytes
        self.request_timeout_seconds = request_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            raise TypeError(f"unsupported ASGI scope type {scope['type']!r}")

        deadline = Deadline.after(self.request_timeout_seconds)
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except _TooLarge:
            response = problem_response(
                413,
                "body_too_large",
                f"the body is over the limit of {self.max_body_bytes} bytes",
            )
        else:
            request = to_request(scope, body)
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(
                None, functools.partial(self.invoker.invoke, request, deadline)
            )
            assert isinstance(outcome, HttpResponse)
            response = outcome
        await _send_response(send, response)


def to_request(scope: Scope, body: bytes) -> HttpRequest:
    """The framework-free request of an ASGI ``http`` scope."""
    from urllib.parse import parse_qsl

    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]},{value}" if name in headers else value
    raw_path = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope.get("path", "/")
    query: dict[str, str] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1")):
        query.setdefault(key, value)
    return HttpRequest(
        method=str(scope.get("method", "GET")).upper(),
        path=path.split("?", 1)[0],
        headers=headers,
        query=query,
        body=body,
        request_id=headers.get("x-request-id") or uuid.uuid4().hex,
    )


async def _read_body(receive: Receive, limit_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit_bytes:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _send_response(send: Send, response: HttpResponse) -> None:
    headers = [
        (name.lower().encode("latin-1"), value.encode("latin-1"))
        for name, value in response.headers.items()
    ]
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send(
        {"type": "http.response.start", "status": response.status, "headers": headers}
    )
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
