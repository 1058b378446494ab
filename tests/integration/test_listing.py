"""``app.list_workflows``: filters by status, name and parent; newest first."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=ManualClock(3_000_000.0))
    yield application
    application.close()


def test_listing_filters_and_orders_newest_first(app: ss.App) -> None:
    assert isinstance(app.clock, ManualClock)
    clock = app.clock

    @app.workflow(name="quick")
    def quick(n: int) -> int:
        return n

    @app.workflow(name="waits")
    def waits() -> Any:
        return ss.wait_for_event("go")

    @app.workflow(name="parent")
    def parent() -> Any:
        handle = ss.start_child(quick, 99, workflow_id="kid")
        return ss.wait_for_event("never") if handle else None

    for n in range(3):
        app.run(quick, n, workflow_id=f"q{n}")
        clock.advance(1)
    app.run(waits, workflow_id="w")
    clock.advance(1)
    app.run(parent, workflow_id="p")

    everything = [w.workflow_id for w in app.list_workflows()]
    # Same start time for a parent and its child: ties go by id, descending.
    assert everything == ["p", "kid", "w", "q2", "q1", "q0"]
    quick_ones = app.list_workflows(name="quick", limit=2)
    assert [w.workflow_id for w in quick_ones] == ["kid", "q2"]
    waiting = app.list_workflows(status="waiting")
    assert {w.workflow_id for w in waiting} == {"w", "p"}
    assert {w.waiting_for for w in waiting} == {"event 'go'", "event 'never'"}
    both = app.list_workflows(status=[ss.WorkflowStatus.SUCCEEDED, "waiting"])
    assert len(both) == 5
    children = app.list_workflows(parent_id="p")
    assert [(c.workflow_id, c.status) for c in children] == [
        ("kid", ss.WorkflowStatus.PENDING)
    ]


def test_listing_refuses_unknown_statuses_and_bad_limits(app: ss.App) -> None:
    with pytest.raises(ValueError):
        app.list_workflows(status="sleeping")
    with pytest.raises(ValueError):
        app.list_workflows(limit=0)
