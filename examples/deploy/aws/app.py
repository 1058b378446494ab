"""A stateshift app on AWS Lambda: HTTP API, SQS commands, a one-minute tick.

Handler: ``app.lambda_handler``. Set ``STATESHIFT_STORE`` to a PostgreSQL
URL (through RDS Proxy or PgBouncer) and ``STATESHIFT_API_TOKEN``.
"""

from __future__ import annotations

import os

import stateshift as ss
from stateshift.aws import handler, sqs_wake_up

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


# A standard (not FIFO) queue wired to this function wakes short timers on
# time; without it the one-minute schedule does, up to a minute late.
wake_queue = os.environ.get("STATESHIFT_WAKE_QUEUE_URL")
lambda_handler = handler(app, wake_up=sqs_wake_up(wake_queue) if wake_queue else None)
