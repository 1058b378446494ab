"""The doctor finds unfinished workflows with no wake-up source, and repairs them.

Each test breaks rows on purpose, by SQL through the store, the way a bug or
a careless manual edit would, then checks what the doctor says and that
after ``repair`` an ordinary tick finishes the workflow.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(2_000_000.0)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=clock)
    yield application
    application.close()


NO_DUE = "UPDATE {p}workflows SET due_at = NULL WHERE workflow_id = ?"


def break_rows(app: ss.App, sql: str, *params: Any) -> None:
    with app.store.transaction() as tx:
        tx.execute(sql, params)


def problems(report: ss.App | Any) -> dict[str, str]:
    return {f.workflow_id: f.problem for f in report.findings}


def test_a_healthy_store_gets_a_clean_bill(app: ss.App) -> None:
    @app.workflow()
    def waits() -> Any:
        ss.sleep(60)
        return ss.wait_for_event("go")

    app.run(waits, workflow_id="timer")
    report = app.doctor()
    assert report.healthy and report.findings == ()


def test_a_waiting_workflow_that_lost_its_timer_is_found_and_repaired(
    app: ss.App, clock: ManualClock
) -> None:
    @app.workflow()
    def sleeper() -> str:
        ss.sleep(60)
        return "woke"

    app.run(sleeper, workflow_id="lost-timer")
    break_rows(app, NO_DUE, "lost-timer")
    clock.advance(120)
    assert app.run_until_idle().ran == 0  # stuck: nothing wakes it

    report = app.doctor()
    assert problems(report) == {"lost-timer": "waiting_for_nothing"}
    assert not report.healthy and not report.stuck[0].repaired
    repaired = app.doctor(repair=True)
    assert repaired.stuck[0].repaired
    app.run_until_idle()
    assert app.status("lost-timer").result == "woke"
    assert app.doctor().healthy


def test_an_event_that_arrived_without_waking_its_workflow_is_found(
    app: ss.App,
) -> None:
    @app.workflow()
    def approver() -> Any:
        return ss.wait_for_event("approval")

    app.run(approver, workflow_id="missed")
    app.send_event("missed", "approval", {"ok": True})
    break_rows(app, NO_DUE, "missed")

    assert problems(app.doctor()) == {"missed": "event_not_woken"}
    app.doctor(repair=True)
    app.run_until_idle()
    assert app.status("missed").result == {"ok": True}


def test_a_parent_waiting_for_children_that_can_no_longer_notify_it(
    app: ss.App,
) -> None:
    @app.workflow()
    def child(n: int) -> int:
        return n * 2

    @app.workflow()
    def parent() -> list[int]:
        return ss.wait_all([ss.start_child(child, n) for n in range(2)])  # type: ignore[no-any-return]

    app.run(parent, workflow_id="p")
    assert app.status("p").status is ss.WorkflowStatus.WAITING
    # The children finish, but their notification of the parent is lost.
    break_rows(
        app, "UPDATE {p}workflows SET notify_parent = 0 WHERE parent_id = ?", "p"
    )
    app.run_until_idle()
    assert app.status("p").status is ss.WorkflowStatus.WAITING

    assert problems(app.doctor()) == {"p": "children_short"}
    app.doctor(repair=True)
    app.run_until_idle()
    assert app.status("p").result == [0, 2]


def test_pending_without_due_time_and_running_without_lease(app: ss.App) -> None:
    @app.workflow()
    def plain(n: int) -> int:
        return n

    app.start(plain, 1, workflow_id="never-due")
    app.start(plain, 2, workflow_id="no-lease")
    break_rows(app, NO_DUE, "never-due")
    break_rows(
        app,
        "UPDATE {p}workflows SET status = 'running', due_at = NULL, lease_owner = NULL,"
        " lease_expires_at = NULL WHERE workflow_id = ?",
        "no-lease",
    )
    assert app.run_until_idle().ran == 0
    assert problems(app.doctor()) == {
        "never-due": "pending_not_due",
        "no-lease": "running_without_lease",
    }
    app.doctor(repair=True)
    app.run_until_idle()
    assert app.status("never-due").result == 1
    assert app.status("no-lease").result == 2


def test_overdue_and_parked_workflows_are_reported_but_left_alone(
    app: ss.App, clock: ManualClock
) -> None:
    @app.workflow()
    def plain() -> str:
        return "x"

    app.start(plain, workflow_id="overdue")
    app.start(plain, workflow_id="parked")
    break_rows(
        app,
        "UPDATE {p}workflows SET status = 'dead', due_at = NULL,"
        " error_message = 'crashed' WHERE workflow_id = ?",
        "parked",
    )
    clock.advance(3_600)
    report = app.doctor(repair=True)
    assert problems(report) == {"overdue": "overdue", "parked": "parked"}
    assert report.healthy and not any(f.repaired for f in report.findings)
    assert app.status("parked").status is ss.WorkflowStatus.DEAD
