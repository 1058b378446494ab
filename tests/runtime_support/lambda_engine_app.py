"""A Lambda function over the real engine (``lambda_engine_app.lambda_handler``)."""

from __future__ import annotations

from typing import Any

import stateshift as ss
from runtime_support.sample import TOKEN
from stateshift.aws import handler

app = ss.App()


@app.step()
def reserve(order_id: str) -> str:
    return f"reserved {order_id}"


@app.workflow(name="order")
def order(order_id: str) -> dict[str, Any]:
    reserved = reserve(order_id)
    answer = ss.wait_for_event("approval", timeout=3600)
    ss.sleep(0.3)
    return {"reserved": reserved, "approved": answer}


lambda_handler = handler(app, token=TOKEN)
