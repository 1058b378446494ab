"""The shop on Cloud Functions (2nd gen) or Cloud Run.

Deploy from this folder, with ``STATESHIFT_STORE`` and
``STATESHIFT_API_TOKEN`` set, four functions:

* ``api`` (HTTP): the HTTP API (checkout starts, approvals, the cart's
  operations); Cloud Scheduler calls ``POST /tick`` every minute with the
  bearer token, which runs due work;
* ``on_message`` (Pub/Sub): commands such as approvals from a mail robot;
* ``webhook`` (HTTP): the payment provider's webhook;
* ``relay`` (HTTP): Cloud Scheduler calls it every minute to relay the
  order events from the outbox to the shop's subscriber. Deploy it
  without unauthenticated access: it takes no token of its own.
"""

from __future__ import annotations

from typing import Any

import functions_framework
from app import app, shop

import stateshift as ss
from stateshift.gcp import cloudevent_function, http_function

_serve = http_function(app)
_consume = cloudevent_function(app)

RELAY_BUDGET_SECONDS = 30.0
"""How long one ``relay`` request relays (well inside the function's limit)."""


@functions_framework.http
def api(request: Any) -> Any:
    return _serve(request)


@functions_framework.cloud_event
def on_message(event: Any) -> None:
    _consume(event)


@functions_framework.http
def webhook(request: Any) -> Any:
    """The payment provider's webhook (see ``lambda_function.webhook_handler``).

    A real deployment verifies the provider's signature here first.
    """
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return {"error": "the body is not a JSON object"}, 400
    try:
        return shop.on_payment_webhook(body), 200
    except ss.IdempotencyInProgress:
        return {"error": "this payment is being handled; retry"}, 409


@functions_framework.http
def relay(request: Any) -> Any:
    return {"relayed": app.relay_outbox(budget=RELAY_BUDGET_SECONDS)}, 200
