"""A stateshift app on Azure Functions (Python v2 programming model).

Three functions: ``stateshift_http`` (the HTTP API), ``stateshift_queue``
(commands and wake-ups from the ``stateshift`` Storage queue) and
``stateshift_tick`` (every minute). Set ``STATESHIFT_STORE`` and
``STATESHIFT_API_TOKEN`` in the app settings.
"""

from __future__ import annotations

import os

import azure.functions as func

import stateshift as ss
from stateshift.azure import queue_wake_up, register

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


storage = os.environ.get("AzureWebJobsStorage", "")
functions = func.FunctionApp()
register(
    functions,
    app,
    queue_name="stateshift",
    wake_up=queue_wake_up(storage, "stateshift") if storage else None,
)
