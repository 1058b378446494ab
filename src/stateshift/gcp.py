"""Google Cloud Functions and Cloud Run through ``functions-framework``.

::

    import functions_framework
    import stateshift as ss
    from stateshift.gcp import cloudevent_function, http_function

    app = ss.App()                       # STATESHIFT_STORE=postgresql://...
    api = http_function(app)             # --target api (HTTP)
    on_message = functions_framework.cloud_event(cloudevent_function(app))

An HTTP function serves the HTTP API, Cloud Scheduler calls its
``POST /tick`` every minute, and a Pub/Sub push or Eventarc trigger sends
commands as messages. Time budget: ``timeout`` (by default the
``FUNCTION_TIMEOUT_SEC`` variable, else 60 s, the platform's default).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from stateshift._durations import Duration, to_seconds
from stateshift.runtime import gcp_events
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.http import DEFAULT_MAX_BODY_BYTES, problem_response
from stateshift.runtime.invocation import (
    BatchOutcome,
    InvocationPolicy,
    Invoker,
    WakeUp,
    raise_for_failures,
)
from stateshift.runtime.service import Service
from stateshift.runtime.triggers import HttpResponse, QueueBatch

__all__ = ["cloudevent_function", "http_function"]

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 60.0

FlaskAnswer = tuple[bytes, int, dict[str, str]]


def _timeout_seconds(timeout: Duration | None) -> float:
    if timeout is not None:
        return to_seconds(timeout, name="timeout")
    return float(os.environ.get("FUNCTION_TIMEOUT_SEC") or DEFAULT_TIMEOUT_SECONDS)


def _lazy_invoker(app: Any, **options: Any) -> Callable[[], Invoker]:
    built: list[Invoker] = []

    def get() -> Invoker:
        if not built:
            built.append(app.invoker(**options))
        return built[0]

    return get


def http_function(
    app: Any,
    *,
    token: str | None = None,
    allow_anonymous: bool = False,
    timeout: Duration | None = None,
    policy: InvocationPolicy | None = None,
    wake_up: WakeUp | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    service: Service | None = None,
) -> Callable[[Any], FlaskAnswer]:
    """An HTTP function serving the HTTP API of ``app``."""
    timeout_seconds = _timeout_seconds(timeout)
    invoker = _lazy_invoker(
        app,
        token=token,
        allow_anonymous=allow_anonymous,
        policy=policy,
        wake_up=wake_up,
        max_body_bytes=max_body_bytes,
        service=service,
    )

    def function(request: Any) -> FlaskAnswer:
        deadline = Deadline.after(timeout_seconds)
        length = request.content_length
        if length is not None and length > max_body_bytes:
            response = problem_response(
                413, "body_too_large", f"the body is over {max_body_bytes} bytes"
            )
        else:
            body = request.get_data(cache=False)
            trigger = gcp_events.parse_flask_request(request, body)
            outcome = invoker().invoke(trigger, deadline)
            assert isinstance(outcome, HttpResponse)
            response = outcome
        return response.body, response.status, dict(response.headers)

    return function


def cloudevent_function(
    app: Any,
    *,
    timeout: Duration | None = None,
    policy: InvocationPolicy | None = None,
    wake_up: WakeUp | None = None,
    service: Service | None = None,
) -> Callable[[Any], None]:
    """A CloudEvent function: Pub/Sub messages are commands, scheduler events ticks.

    A failed message raises, so functions-framework answers 500 and Pub/Sub
    delivers it again.
    """
    timeout_seconds = _timeout_seconds(timeout)
    invoker = _lazy_invoker(app, policy=policy, wake_up=wake_up, service=service)

    def function(event: Any) -> None:
        deadline = Deadline.after(timeout_seconds)
        attributes = event.get_attributes() if hasattr(event, "get_attributes") else {}
        trigger = gcp_events.parse_cloudevent(attributes, event.data)
        outcome = invoker().invoke(trigger, deadline)
        if isinstance(trigger, QueueBatch):
            assert isinstance(outcome, BatchOutcome)
            raise_for_failures(outcome)

    return function
