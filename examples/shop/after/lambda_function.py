"""The shop on AWS Lambda: the HTTP API, SQS commands, the tick, a webhook.

Package this folder with stateshift (``pip install 'stateshift[postgres]'
-t .``) and create three functions from it, all with ``STATESHIFT_STORE``
(PostgreSQL, through RDS Proxy or PgBouncer) and ``STATESHIFT_API_TOKEN``:

* ``lambda_function.lambda_handler``: API Gateway (HTTP API, payload 2.0)
  for ``POST /workflows/shop.checkout/start``, ``POST /runs/{id}/events/
  approval`` and the cart's ``POST /entities/shop.Cart/{customer}/add``;
  an SQS queue of commands; and an EventBridge schedule every minute,
  which runs due work (timers, retries, the 48-hour approval timeout);
* ``lambda_function.webhook_handler``: the payment provider's webhook, on
  an API Gateway route of its own;
* ``lambda_function.relay_handler``: an EventBridge schedule that relays
  the order events from the outbox to the shop's subscriber.
"""

from __future__ import annotations

import json
from typing import Any

from app import app, shop

import stateshift as ss
from stateshift.aws import handler

lambda_handler = handler(app)


def webhook_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The payment provider's webhook, behind API Gateway.

    A real deployment verifies the provider's signature here first (with
    the provider's own library); the demo's simulated provider signs
    nothing. A duplicate gets the first delivery's answer; one that races
    the first gets 409, which providers retry later.
    """
    try:
        body = json.loads(event.get("body") or "{}")
    except ValueError:
        return _answer(400, {"error": "the body is not JSON"})
    try:
        credit = shop.on_payment_webhook(body)
    except ss.IdempotencyInProgress:
        return _answer(409, {"error": "this payment is being handled; retry"})
    return _answer(200, credit)


def relay_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    """Relay pending order events to the subscriber, within this invocation."""
    remaining_seconds = context.get_remaining_time_in_millis() / 1000.0
    return {"relayed": app.relay_outbox(budget=max(1.0, remaining_seconds - 2.0))}


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(body),
    }
