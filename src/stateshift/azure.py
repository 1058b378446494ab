"""Azure Functions (Python v2 programming model): HTTP, queue and timer triggers.

::

    import azure.functions as func
    import stateshift as ss
    from stateshift.azure import register

    app = ss.App()                      # STATESHIFT_STORE=postgresql://...
    functions = func.FunctionApp()
    register(functions, app, queue_name="stateshift")

This adds three functions: ``stateshift_http`` (the HTTP API on every
route), ``stateshift_queue`` (commands from a Storage queue; a failure
raises, the host redelivers and after ``maxDequeueCount`` moves the message
to the poison queue) and ``stateshift_tick`` (due work every minute).
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from stateshift._durations import Duration, to_seconds
from stateshift.runtime import azure_events
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.invocation import (
    BatchOutcome,
    InvocationPolicy,
    Invoker,
    WakeUp,
    raise_for_failures,
)
from stateshift.runtime.service import Service
from stateshift.runtime.triggers import HttpResponse

__all__ = ["function_app", "queue_wake_up", "register"]

logger = logging.getLogger(__name__)

# The Consumption plan's default functionTimeout, and the HTTP load
# balancer's limit.
DEFAULT_TIMEOUT_SECONDS = 300.0
HTTP_LIMIT_SECONDS = 230.0
EVERY_MINUTE = "0 */1 * * * *"
# Azure Storage queues hide a message for at most seven days.
MAX_VISIBILITY_SECONDS = 7 * 24 * 3600


def register(
    functions: Any,
    app: Any,
    *,
    queue_name: str = "stateshift",
    connection: str = "AzureWebJobsStorage",
    schedule: str = EVERY_MINUTE,
    route_prefix: str = "api",
    token: str | None = None,
    allow_anonymous: bool = False,
    timeout: Duration = DEFAULT_TIMEOUT_SECONDS,
    policy: InvocationPolicy | None = None,
    wake_up: WakeUp | None = None,
    service: Service | None = None,
) -> None:
    """Add the HTTP, queue and timer functions of ``app`` to ``functions``.

    Args:
        functions: an ``azure.functions.FunctionApp``.
        app: the stateshift app.
        queue_name: the Storage queue that carries commands and wake-ups.
        connection: the app setting holding the Storage connection string.
        schedule: NCRONTAB schedule of the tick.
        route_prefix: ``extensions.http.routePrefix`` of host.json.
        token: bearer token of the HTTP API (else the ``api_token`` setting).
        allow_anonymous: with no token, let any caller change things.
        timeout: ``functionTimeout`` of host.json.
        policy: how an invocation shares its time with due work.
        wake_up: asks for a later invocation, such as :func:`queue_wake_up`.
        service: what to act on; by default ``app`` itself.
    """
    import azure.functions as func

    timeout_seconds = to_seconds(timeout, name="timeout")
    built: list[Invoker] = []

    def invoker() -> Invoker:
        if not built:
            built.append(
                app.invoker(
                    token=token,
                    allow_anonymous=allow_anonymous,
                    policy=policy,
                    wake_up=wake_up,
                    service=service,
                )
            )
        return built[0]

    def stateshift_http(req: func.HttpRequest) -> func.HttpResponse:
        deadline = Deadline.after(min(timeout_seconds, HTTP_LIMIT_SECONDS))
        request = azure_events.parse_http(req, route_prefix=route_prefix)
        outcome = invoker().invoke(request, deadline)
        assert isinstance(outcome, HttpResponse)
        answer: func.HttpResponse = azure_events.to_azure_response(outcome)
        return answer

    def stateshift_queue(msg: func.QueueMessage) -> None:
        deadline = Deadline.after(timeout_seconds)
        outcome = invoker().invoke(azure_events.parse_queue_message(msg), deadline)
        assert isinstance(outcome, BatchOutcome)
        raise_for_failures(outcome)

    def stateshift_tick(timer: func.TimerRequest) -> None:
        deadline = Deadline.after(timeout_seconds)
        invoker().invoke(azure_events.parse_timer(timer), deadline)

    # This module postpones annotations (PEP 563): give the worker real types,
    # since it binds parameters by their annotations.
    stateshift_http.__annotations__ = {
        "req": func.HttpRequest,
        "return": func.HttpResponse,
    }
    stateshift_queue.__annotations__ = {"msg": func.QueueMessage, "return": None}
    stateshift_tick.__annotations__ = {"timer": func.TimerRequest, "return": None}

    functions.route(
        route="{*path}",
        methods=["GET", "POST"],
        auth_level=func.AuthLevel.ANONYMOUS,
    )(stateshift_http)
    functions.queue_trigger(
        arg_name="msg", queue_name=queue_name, connection=connection
    )(stateshift_queue)
    functions.timer_trigger(schedule=schedule, arg_name="timer")(stateshift_tick)


def function_app(app: Any, **options: Any) -> Any:
    """A new ``azure.functions.FunctionApp`` with :func:`register` applied."""
    import azure.functions as func

    functions = func.FunctionApp()
    register(functions, app, **options)
    return functions


def queue_wake_up(connection_string: str, queue_name: str) -> WakeUp:
    """A wake-up that sends ``{"op": "wake"}`` to a Storage queue, hidden until due.

    The message is base64-encoded, as the Functions host reads queue
    messages by default. Needs ``azure-storage-queue``.
    """
    from azure.storage.queue import QueueClient, TextBase64EncodePolicy

    client = QueueClient.from_connection_string(
        connection_string, queue_name, message_encode_policy=TextBase64EncodePolicy()
    )

    def wake_up(delay_seconds: float) -> None:
        delay = min(MAX_VISIBILITY_SECONDS, max(0, math.ceil(delay_seconds)))
        client.send_message(json.dumps({"op": "wake"}), visibility_timeout=delay)

    return wake_up
