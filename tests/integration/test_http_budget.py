"""An HTTP start answers within its request deadline, leaving the rest to ticks."""

from __future__ import annotations

from typing import Any

import stateshift as ss
from runtime_support.asgi_client import AsgiClient

TOKEN = "budget-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


def test_a_step_that_cannot_fit_the_request_is_left_for_the_next_tick(
    store_config: dict[str, Any],
) -> None:
    app = ss.App(**store_config, api_token=TOKEN)
    ran: list[str] = []

    @app.step()
    def quick(order_id: str) -> str:
        ran.append("quick")
        return order_id

    # Declared to take up to 30 s: it cannot start inside a 2 s request.
    @app.step(timeout=30)
    def slow_report(order_id: str) -> str:
        ran.append("slow")
        return f"report for {order_id}"

    @app.workflow(name="report")
    def report(order_id: str) -> str:
        return slow_report(quick(order_id))

    try:
        with AsgiClient(app.asgi(request_timeout=2)) as client:
            answer = client.post(
                "/workflows/report/start",
                json={"args": ["o-1"], "workflow_id": "r1"},
                headers=AUTH,
            )
        assert answer.status_code == 202, answer.json()
        assert answer.json()["status"] == "pending"
        assert answer.headers["location"] == "/runs/r1"
        assert ran == ["quick"]

        app.run_until_idle()
        assert app.status("r1").result == "report for o-1"
        assert ran == ["quick", "slow"]
    finally:
        app.close()


def test_app_run_refuses_a_negative_time_budget(store_config: dict[str, Any]) -> None:
    app = ss.App(**store_config)

    @app.workflow()
    def noop() -> int:
        return 1

    try:
        try:
            app.run(noop, time_budget=-1)
        except ValueError as error:
            assert "time_budget" in str(error)
        else:
            raise AssertionError("a negative budget was accepted")
        assert app.list_workflows() == []
    finally:
        app.close()
