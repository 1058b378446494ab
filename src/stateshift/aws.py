"""AWS Lambda: one handler for API Gateway HTTP API, SQS and EventBridge.

::

    import stateshift as ss
    from stateshift.aws import handler

    app = ss.App()          # STATESHIFT_STORE=postgresql://...
    lambda_handler = handler(app)

Point an API Gateway HTTP API (payload 2.0), an SQS event source mapping
(with ``ReportBatchItemFailures``) and an EventBridge schedule
(``rate(1 minute)``) at ``lambda_handler``. The time budget of each
invocation is ``context.get_remaining_time_in_millis()``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from typing import Any, Protocol

from stateshift.runtime import aws_events
from stateshift.runtime.deadline import Deadline
from stateshift.runtime.http import problem_response
from stateshift.runtime.invocation import (
    BatchOutcome,
    InvocationPolicy,
    Invoker,
    TickOutcome,
    WakeUp,
)
from stateshift.runtime.service import Service
from stateshift.runtime.triggers import HttpResponse, MalformedEvent

__all__ = ["LambdaHandler", "handler", "sqs_wake_up"]

logger = logging.getLogger(__name__)

LambdaHandler = Callable[[Any, Any], dict[str, Any]]

# When Lambda gives no context (a local call), assume its default timeout.
DEFAULT_TIMEOUT_SECONDS = 3.0
SQS_MAX_DELAY_SECONDS = 900


class _RuntimeApp(Protocol):
    def invoker(
        self,
        *,
        token: str | None = ...,
        allow_anonymous: bool = ...,
        policy: InvocationPolicy | None = ...,
        wake_up: WakeUp | None = ...,
        max_body_bytes: int | None = ...,
        service: Service | None = ...,
    ) -> Invoker: ...


def handler(
    app: _RuntimeApp,
    *,
    token: str | None = None,
    allow_anonymous: bool = False,
    policy: InvocationPolicy | None = None,
    wake_up: WakeUp | None = None,
    service: Service | None = None,
) -> LambdaHandler:
    """A Lambda handler for ``app``.

    Args:
        app: the stateshift app.
        token: bearer token of the HTTP API (else the ``api_token`` setting).
        allow_anonymous: with no token, let any caller change things (when
            API Gateway authorizes the requests itself).
        policy: how an invocation shares its time with due work.
        wake_up: asks for a later invocation, such as :func:`sqs_wake_up`.
        service: what to act on; by default ``app`` itself.
    """
    invoker: Invoker | None = None

    def lambda_handler(event: Any, context: Any) -> dict[str, Any]:
        nonlocal invoker
        deadline = _deadline(context)
        if invoker is None:
            # Built on the first invocation, not at import: the store stays
            # closed until there is work, and import time is the cold start.
            invoker = app.invoker(
                token=token,
                allow_anonymous=allow_anonymous,
                policy=policy,
                wake_up=wake_up,
                service=service,
            )
        try:
            trigger = aws_events.parse_event(event)
        except MalformedEvent as exc:
            if aws_events.is_http_event(event):
                return aws_events.http_v2_response(
                    problem_response(400, "malformed_event", str(exc))
                )
            # Raising fails the whole invocation: Lambda reports the error.
            raise

        outcome = invoker.invoke(trigger, deadline)
        if isinstance(outcome, HttpResponse):
            return aws_events.http_v2_response(outcome)
        if isinstance(outcome, BatchOutcome):
            return aws_events.batch_response(outcome)
        assert isinstance(outcome, TickOutcome)
        report = outcome.tick
        return {"ran": report.ran if report else 0}

    return lambda_handler


def _deadline(context: Any) -> Deadline:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if callable(remaining):
        return Deadline.after(max(0, int(remaining())) / 1000)
    return Deadline.after(DEFAULT_TIMEOUT_SECONDS)


class _SqsClient(Protocol):
    def send_message(self, **kwargs: Any) -> Any: ...


def sqs_wake_up(queue_url: str, client: _SqsClient | None = None) -> WakeUp:
    """A wake-up that sends ``{"op": "wake"}`` to an SQS queue with a delay.

    Give it to :func:`handler` so a timer a few seconds away runs then, not
    at the next scheduled tick. The queue's event source mapping must point
    at the same function. ``client`` defaults to ``boto3.client("sqs")``.
    """
    sqs = client

    def wake_up(delay_seconds: float) -> None:
        nonlocal sqs
        if sqs is None:
            import boto3

            sqs = boto3.client("sqs")
        delay = min(SQS_MAX_DELAY_SECONDS, max(0, math.ceil(delay_seconds)))
        sqs.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({"op": "wake"}),
            DelaySeconds=delay,
        )

    return wake_up
