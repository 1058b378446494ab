"""A stateshift app on Cloud Functions (2nd gen) or Cloud Run.

Deploy ``api`` as an HTTP function and ``on_message`` as a Pub/Sub
triggered function; Cloud Scheduler calls ``POST /tick`` on ``api`` every
minute with the bearer token. Set ``STATESHIFT_STORE`` and
``STATESHIFT_API_TOKEN``.
"""

from __future__ import annotations

from typing import Any

import functions_framework

import stateshift as ss
from stateshift.gcp import cloudevent_function, http_function

app = ss.App()


@app.step()
def reserve(order_id: str) -> str:
    return f"reserved {order_id}"


@app.workflow(name="checkout")
def checkout(order_id: str) -> dict[str, str]:
    reservation = reserve(order_id)
    decision = ss.wait_for_event("approval", timeout=86_400)
    ss.sleep(5)
    return {"reservation": reservation, "decision": str(decision)}


_serve = http_function(app)
_consume = cloudevent_function(app)


@functions_framework.http
def api(request: Any) -> Any:
    return _serve(request)


@functions_framework.cloud_event
def on_message(event: Any) -> None:
    _consume(event)
