"""A tick drives queue messages as well as workflows."""

from __future__ import annotations

from typing import Any

import stateshift as ss


def test_run_until_idle_runs_queue_messages_and_the_workflows_they_start(
    store_config: dict[str, Any],
) -> None:
    app = ss.App(**store_config)
    try:
        emails = app.queue("emails")
        sent = app.state("sent")

        @emails.task
        def send(address: str) -> None:
            sent.put(address, True)

        @app.workflow()
        def welcome(address: str) -> str:
            emails.enqueue(send, address, dedup_id=f"welcome:{address}")
            return address

        emails.enqueue(welcome, "a@example.com")
        summary = app.run_until_idle()
        assert summary.messages == 2  # the workflow's message, then the email
        assert sent.get("a@example.com") is not None

        emails.enqueue(send, "b@example.com")
        assert app.tick(budget=5).messages == 1
        assert sent.get("b@example.com") is not None
    finally:
        app.close()
