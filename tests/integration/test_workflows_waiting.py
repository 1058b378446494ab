"""Durable waits: timers, events, their races, and determinism helpers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = ss.App(
        **store_config, clock=clock, default_retry=ss.RetryPolicy(max_attempts=1)
    )
    yield application
    application.close()


def test_a_sleeping_workflow_is_only_rows_until_its_timer(
    app: ss.App, clock: ManualClock
) -> None:
    @app.workflow()
    def flow() -> str:
        ss.sleep(timedelta(hours=1))
        ss.sleep_until(datetime.fromtimestamp(1_000_000.0 + 7_200, UTC))
        return "awake"

    app.run(flow, workflow_id="w")
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.WAITING
    assert info.waiting_for is not None and info.waiting_for.startswith("timer")
    summary = app.run_until_idle()
    assert summary.ran == 0 and summary.next_wake_at == pytest.approx(clock() + 3_600)
    clock.advance(3_600)
    app.run_until_idle()
    assert app.status("w").due_at == pytest.approx(1_000_000.0 + 7_200)
    clock.advance(3_600)
    assert app.run_until_idle().finished == 1
    assert app.status("w").result == "awake"


def test_an_event_wakes_the_waiting_workflow(app: ss.App) -> None:
    @app.workflow()
    def flow() -> Any:
        return ss.wait_for_event("approval", timeout=86_400)

    app.run(flow, workflow_id="w")
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.WAITING
    assert info.waiting_for == "event 'approval'"
    delivery = app.send_event("w", "approval", {"approved": True})
    assert delivery.delivered and delivery.reason == "queued"
    app.run_until_idle()
    assert app.status("w").result == {"approved": True}


def test_an_event_sent_before_the_wait_is_kept(app: ss.App, clock: ManualClock) -> None:
    @app.workflow()
    def flow() -> Any:
        ss.sleep(10)
        return ss.wait_for_event("go")

    app.run(flow, workflow_id="w")
    app.send_event("w", "go", 1)
    clock.advance(10)
    app.run_until_idle()
    assert app.status("w").result == 1


def test_events_queue_in_order_and_repeated_event_ids_are_dropped(
    app: ss.App,
) -> None:
    @app.workflow()
    def flow() -> list[Any]:
        return [ss.wait_for_event("item") for _ in range(3)]

    app.start(flow, workflow_id="w")
    assert app.send_event("w", "item", "a", event_id="e1").delivered
    duplicate = app.send_event("w", "item", "a-again", event_id="e1")
    assert not duplicate.delivered and duplicate.reason == "duplicate"
    app.send_event("w", "item", "b", event_id="e2")
    app.send_event("w", "other", "x")
    app.run_until_idle()
    assert app.status("w").status is ss.WorkflowStatus.WAITING
    app.send_event("w", "item", "c")
    app.run_until_idle()
    assert app.status("w").result == ["a", "b", "c"]
    finished = app.send_event("w", "item", "d")
    assert not finished.delivered and finished.reason == "finished"


def test_a_wait_times_out_with_event_timeout(app: ss.App, clock: ManualClock) -> None:
    @app.workflow()
    def flow() -> str:
        try:
            ss.wait_for_event("approval", timeout=60)
        except ss.EventTimeout:
            return "timed out"
        return "approved"

    app.run(flow, workflow_id="w")
    clock.advance(60)
    app.run_until_idle()
    assert app.status("w").result == "timed out"


def test_an_event_and_its_timeout_racing_are_settled_once(
    app: ss.App, clock: ManualClock
) -> None:
    @app.workflow()
    def flow() -> list[str]:
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(ss.wait_for_event("go", timeout=60))
            except ss.EventTimeout:
                outcomes.append("timeout")
        return outcomes

    app.run(flow, workflow_id="w")
    clock.advance(60)  # the timeout is due ...
    app.send_event("w", "go", "event")  # ... and the event arrives too
    app.run_until_idle()
    clock.advance(60)
    app.run_until_idle()
    # The event won the first wait; nothing was lost or used twice.
    assert app.status("w").result == ["event", "timeout"]


def test_now_uuid_and_random_replay_the_same_values(
    app: ss.App, clock: ManualClock
) -> None:
    seen: list[tuple[Any, ...]] = []

    @app.workflow()
    def flow() -> None:
        values = (ss.now(), ss.uuid4(), ss.random())
        seen.append(values)
        ss.sleep(1)

    app.run(flow, workflow_id="w")
    clock.advance(5)
    app.run_until_idle()
    assert len(seen) == 2 and seen[0] == seen[1]
    assert seen[0][0] == datetime.fromtimestamp(1_000_000.0, UTC)
    kinds = [s.kind for s in app.status("w").steps]
    assert kinds == ["now", "uuid4", "random", "sleep"]


def test_recorded_values_ride_with_the_next_checkpoint(app: ss.App) -> None:
    commits: list[int] = []

    @app.step()
    def noop() -> None:
        pass

    @app.workflow()
    def flow() -> None:
        ss.now()
        ss.uuid4()
        noop()

    store = app.store
    original, alone = store.transaction, store.execute_alone

    def counting() -> Any:
        commits.append(1)
        return original()

    def counting_alone(sql: str, params: Any = ()) -> Any:
        commits.append(1)
        return alone(sql, params)

    store.transaction = counting  # type: ignore[method-assign]
    store.execute_alone = counting_alone  # type: ignore[method-assign]
    app.run(flow, workflow_id="w")
    # insert, one checkpoint (with the two records), finish: each a
    # transaction or a statement on its own
    assert len(commits) == 3


def test_a_changed_step_blocks_the_workflow_until_fixed_and_resumed(
    app: ss.App, clock: ManualClock
) -> None:
    @app.step()
    def reserve() -> str:
        return "reserved"

    @app.step()
    def charge() -> str:
        return "charged"

    version = {"new": False}

    @app.workflow()
    def flow() -> str:
        first = charge() if version["new"] else reserve()
        ss.sleep(10)
        return first

    app.run(flow, workflow_id="w")
    version["new"] = True
    clock.advance(10)
    app.run_until_idle()
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.BLOCKED
    assert info.error is not None
    assert "'charge'" in info.error.message and "'reserve'" in info.error.message
    assert app.run_until_idle().ran == 0
    version["new"] = False  # the fix
    assert app.resume("w")
    app.run_until_idle()
    assert app.status("w").result == "reserved"


def test_patched_keeps_old_histories_on_the_old_branch(
    app: ss.App, clock: ManualClock
) -> None:
    @app.step()
    def old() -> str:
        return "old"

    @app.step()
    def new() -> str:
        return "new"

    deployed = {"patch": False}

    @app.workflow()
    def flow() -> list[str]:
        ss.sleep(10)
        if deployed["patch"] and ss.patched("use-new"):
            return [new()]
        return [old()]

    app.run(flow, workflow_id="before")
    deployed["patch"] = True
    app.run(flow, workflow_id="after")
    clock.advance(10)
    app.run_until_idle()
    assert app.status("before").result == ["new"]  # no later history: takes it
    assert app.status("after").result == ["new"]

    @app.workflow(name="flow-2")
    def flow_two() -> list[str]:
        first = old()
        if ss.patched("extra"):
            return [first, new()]
        return [first]

    deployed["patch"] = False
    app.run(flow_two, workflow_id="patched")
    assert app.status("patched").result == ["old", "new"]


def test_patched_returns_false_when_history_has_the_old_step(app: ss.App) -> None:
    @app.step()
    def old() -> str:
        return "old"

    @app.step()
    def new() -> str:
        return "new"

    state = {"deployed": False}

    @app.workflow()
    def flow() -> list[str]:
        if state["deployed"] and ss.patched("swap"):
            first = new()
        else:
            first = old()
        ss.wait_for_event("go")
        return [first]

    app.run(flow, workflow_id="w")
    state["deployed"] = True
    app.send_event("w", "go")
    app.run_until_idle()
    assert app.status("w").result == ["old"]


def test_waits_outside_a_workflow_refuse_or_fall_back(app: ss.App) -> None:
    with pytest.raises(RuntimeError):
        ss.wait_for_event("x")
    ss.sleep(0)
    assert isinstance(ss.now(), datetime)
