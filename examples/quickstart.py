"""Quick start: a durable checkout that waits for an approval without a process."""

import stateshift as ss

app = ss.App("sqlite:///quickstart.db")
carts = app.state("carts")


@app.step(retry=ss.RetryPolicy(max_attempts=5))
def charge(order_id: str, cents: int) -> str:
    # Pass the deterministic key on, so a retried charge is charged once.
    return f"charge-{ss.current().idempotency_key}"


@app.workflow()
def checkout(order: dict) -> dict:
    charge_id = charge(order["id"], order["cents"])
    decision = ss.wait_for_event("approval", timeout=86_400)  # rows only, no compute
    ss.sleep(1)  # a durable timer
    return {"order": order["id"], "charge": charge_id, "approved": decision["ok"]}


if __name__ == "__main__":
    carts.put("u42", {"items": ["sku-1"]})
    order = {"id": "order-42", "cents": 1999}
    app.start(checkout, order, workflow_id="order-42")  # idempotent on the id
    app.run_until_idle()
    print("after start:", app.status("order-42").status.value)
    app.send_event("order-42", "approval", {"ok": True})
    app.run_until_idle()  # runs up to the durable sleep, then returns at once
    result = app.handle("order-42").result(timeout=10)
    print("result:", result, "| cart version:", carts.get("u42").version)
