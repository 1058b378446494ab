"""Try the runtime locally: ``stateshift dev app:app`` in this folder."""

from __future__ import annotations

import stateshift as ss

app = ss.App("sqlite:///dev.db")


@app.step()
def reserve(order_id: str) -> str:
    return f"reserved {order_id}"


@app.workflow(name="checkout")
def checkout(order_id: str) -> dict[str, str]:
    reservation = reserve(order_id)
    decision = ss.wait_for_event("approval", timeout=86_400)
    ss.sleep(2)
    return {"reservation": reservation, "decision": str(decision)}
