"""The runtime over the real workflow engine, on both backends.

HTTP starts, events, cancels and ticks, queue commands and their
redelivery, all through ``app.asgi()`` and ``app.invoker()`` with the
app's own workflows; bad input leaves the store as it was.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

ss = pytest.importorskip("stateshift.workflows") and pytest.importorskip("stateshift")

from runtime_support.asgi_client import AsgiClient  # noqa: E402
from stateshift.runtime.deadline import Deadline  # noqa: E402
from stateshift.runtime.invocation import BatchOutcome  # noqa: E402
from stateshift.runtime.triggers import (  # noqa: E402
    Message,
    QueueBatch,
    ScheduledTick,
)
from stateshift.workflows.clock import ManualClock  # noqa: E402

TOKEN = "engine-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[Any]:
    app = ss.App(**store_config, clock=clock, api_token=TOKEN)

    @app.step()
    def shout(text: str) -> str:
        return text.upper()

    @app.workflow(name="greet")
    def greet(name: str) -> str:
        return shout(f"hello {name}")

    @app.workflow(name="approval")
    def approval(order_id: str) -> dict[str, Any]:
        answer = ss.wait_for_event("approved", timeout=3600)
        return {"order_id": order_id, "answer": answer}

    @app.workflow(name="nap")
    def nap() -> str:
        ss.sleep(30)
        return "rested"

    @app.entity(name="counter")
    class Counter:
        def __init__(self) -> None:
            self.total = 0

        def add(self, amount: int) -> int:
            self.total += amount
            return self.total

    yield app
    app.close()


def workflow_count(app: Any) -> int:
    with app.store.read() as tx:
        row = tx.fetchone("SELECT count(*) FROM {p}workflows")
    return int(row[0])


def test_http_runs_a_workflow_to_its_result(app: Any) -> None:
    with AsgiClient(app.asgi()) as client:
        answer = client.post(
            "/workflows/greet/start",
            json={"args": ["ada"], "workflow_id": "g1"},
            headers=AUTH,
        )
        assert answer.status_code == 200, answer.json()
        body = answer.json()
        assert body["status"] == "succeeded" and body["result"] == "HELLO ADA"
        assert [s["name"] for s in body["steps"] if s["kind"] == "step"] == ["shout"]


def test_http_waits_then_an_event_finishes_it(app: Any) -> None:
    with AsgiClient(app.asgi()) as client:
        started = client.post(
            "/workflows/approval/start",
            json={"args": ["o-7"], "workflow_id": "a1"},
            headers=AUTH,
        )
        assert started.status_code == 202
        assert started.json()["status"] == "waiting"
        sent = client.post(
            "/runs/a1/events/approved", json={"payload": "yes"}, headers=AUTH
        )
        assert sent.status_code == 202
        # The event request's own due work ran the workflow on.
        done = client.get("/runs/a1").json()
        assert done["status"] == "succeeded"
        assert done["result"] == {"order_id": "o-7", "answer": "yes"}


def test_a_scheduled_tick_wakes_a_sleeping_workflow(
    app: Any, clock: ManualClock
) -> None:
    with AsgiClient(app.asgi()) as client:
        started = client.post("/workflows/nap/start", json={}, headers=AUTH)
        workflow_id = started.json()["workflow_id"]
        assert started.json()["status"] == "waiting"
    asked: list[float] = []
    invoker = app.invoker(wake_up=asked.append)
    invoker.invoke(ScheduledTick("test"), Deadline.after(5))
    assert app.status(workflow_id).status == ss.WorkflowStatus.WAITING
    assert asked and 29 <= asked[0] <= 30  # a wake-up for the timer
    clock.advance(31)
    invoker.invoke(ScheduledTick("test"), Deadline.after(5))
    assert app.status(workflow_id).result == "rested"


def test_cancel_through_http(app: Any) -> None:
    with AsgiClient(app.asgi()) as client:
        client.post(
            "/workflows/approval/start",
            json={"args": ["o"], "workflow_id": "c1"},
            headers=AUTH,
        )
        cancelled = client.post("/runs/c1/cancel", headers=AUTH).json()
    assert app.status("c1").status == ss.WorkflowStatus.CANCELLED
    assert cancelled["workflow_id"] == "c1"


def test_bad_http_input_changes_nothing(app: Any) -> None:
    with AsgiClient(app.asgi()) as client:
        client.post(
            "/workflows/greet/start",
            json={"args": ["x"], "workflow_id": "taken"},
            headers=AUTH,
        )
        before = workflow_count(app)
        cases = [
            (b"{", 400),
            (json.dumps({"args": ["a", "b"]}).encode(), 422),
            (json.dumps({"kwargs": {"nom": "x"}}).encode(), 422),
            (json.dumps({"args": ["y"], "workflow_id": "taken"}).encode(), 409),
            (json.dumps({"args": ["x" * 300_000]}).encode(), 413),
        ]
        for body, status in cases:
            answer = client.post("/workflows/greet/start", content=body, headers=AUTH)
            assert answer.status_code == status, answer.json()
        assert (
            client.post("/workflows/gone/start", json={}, headers=AUTH).status_code
            == 404
        )
        assert client.get("/runs/missing").status_code == 404
        missing = client.post("/runs/missing/events/x", json={}, headers=AUTH)
        assert missing.status_code == 404
    assert workflow_count(app) == before


def test_queue_commands_start_once_even_when_redelivered(app: Any) -> None:
    invoker = app.invoker()
    start = json.dumps({"op": "start", "workflow": "greet", "args": ["q"]})
    batch = QueueBatch(
        (Message("m-1", start), Message("m-2", "not json"), Message("m-1", start)),
        source="test",
    )
    outcome = invoker.invoke(batch, Deadline.after(10))
    assert isinstance(outcome, BatchOutcome) and outcome.failed == ("m-2",)
    assert app.status("msg-m-1").result == "HELLO Q"
    assert workflow_count(app) == 1


def test_entity_operations_over_http(app: Any) -> None:
    with AsgiClient(app.asgi()) as client:
        for expected in (2, 5):
            added = client.post(
                "/entities/counter/k1/add",
                json={"args": [3 if expected == 5 else 2]},
                headers=AUTH,
            )
            assert added.status_code == 200 and added.json() == {"result": expected}
        wrong = client.post("/entities/counter/k1/add", json={}, headers=AUTH)
        assert wrong.status_code == 422
        unknown = client.post("/entities/counter/k1/steal", json={}, headers=AUTH)
        assert unknown.json()["error"]["code"] == "unknown_operation"
        nothing = client.post("/entities/ghost/k1/add", json={}, headers=AUTH)
        assert nothing.status_code == 404


def test_a_start_refused_by_residency_answers_403_and_writes_nothing(
    tmp_path: Any,
) -> None:
    from stateshift.placement import ResidencyPolicy

    app = ss.App(
        regions={
            "us": [f"sqlite:///{tmp_path / 'us.db'}"],
            "eu": [f"sqlite:///{tmp_path / 'eu.db'}"],
        },
        region="us",
        residency_policy=ResidencyPolicy({"EU": {"store": ["eu"], "process": ["eu"]}}),
        api_token=TOKEN,
    )

    @app.workflow(name="profile")
    def profile(user: str) -> str:
        return user

    with AsgiClient(app.asgi()) as client:
        refused = client.post(
            "/workflows/profile/start",
            json={"args": ["u1"], "residency": "EU", "workflow_id": "p1"},
            headers=AUTH,
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "residency_violation"
        assert client.get("/runs/p1").status_code == 404
        swallowed = client.post(
            "/workflows/profile/start",
            json={"kwargs": {"user": "u2", "tenant": "acme"}},
            headers=AUTH,
        )
        assert swallowed.status_code == 422
        allowed = client.post(
            "/workflows/profile/start",
            json={"args": ["u3"], "partition_key": "u3", "workflow_id": "p3"},
            headers=AUTH,
        )
        assert allowed.status_code == 200 and allowed.json()["result"] == "u3"
    app.close()
