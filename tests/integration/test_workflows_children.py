"""Child workflows, fan-out and fan-in, cancellation, and async workflows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
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


def test_a_parent_waits_durably_for_its_child(app: ss.App) -> None:
    @app.workflow()
    def child(n: int) -> int:
        return n * 10

    @app.workflow()
    def parent() -> int:
        handle = ss.start_child(child, 4)
        return int(handle.result()) + 1

    app.run(parent, workflow_id="p")
    info = app.status("p")
    assert info.status is ss.WorkflowStatus.WAITING
    assert app.status("p/0").parent_id == "p"
    app.run_until_idle()
    assert app.status("p").result == 41


def test_fan_out_and_fan_in_wake_the_parent_once(
    app: ss.App, clock: ManualClock
) -> None:
    replays: list[int] = []

    @app.workflow()
    def child(n: int) -> int:
        ss.sleep(n)
        return n

    @app.workflow()
    def parent() -> list[int]:
        replays.append(1)
        handles = [ss.start_child(child, n) for n in (1, 2, 3)]
        return list(ss.wait_all(handles))

    app.run(parent, workflow_id="p")
    app.run_until_idle()  # children start and sleep
    for _ in range(3):
        clock.advance(1)
        app.run_until_idle()
    assert app.status("p").result == [1, 2, 3]
    # Started once, woken once, when the last child finished.
    assert len(replays) == 2


def test_wait_first_returns_the_first_child_to_finish(
    app: ss.App, clock: ManualClock
) -> None:
    @app.workflow()
    def child(n: int) -> int:
        ss.sleep(n)
        return n

    @app.workflow()
    def parent() -> int:
        slow = ss.start_child(child, 100)
        fast = ss.start_child(child, 1)
        first = ss.wait_first([slow, fast])
        return int(first.result())

    app.run(parent, workflow_id="p")
    app.run_until_idle()
    clock.advance(1)
    app.run_until_idle()
    assert app.status("p").result == 1


def test_a_failed_child_raises_workflow_failed_in_the_parent(app: ss.App) -> None:
    @app.workflow()
    def child() -> None:
        raise ValueError("child broke")

    @app.workflow()
    def parent() -> str:
        try:
            ss.start_child(child).result()
        except ss.WorkflowFailed as exc:
            return f"{exc.error_type}: {exc.error_message}"
        return "no error"

    app.run(parent, workflow_id="p")
    app.run_until_idle()
    assert app.status("p").result == "builtins.ValueError: child broke"


def test_cancelling_reaches_children_and_unwinds_at_the_next_call(
    app: ss.App,
) -> None:
    cleanup: list[str] = []

    @app.workflow()
    def child() -> None:
        ss.wait_for_event("never")

    @app.workflow()
    def parent() -> None:
        handle = ss.start_child(child)
        try:
            handle.result()
        except Exception:
            cleanup.append("swallowed")  # a cancellation is no Exception
        finally:
            cleanup.append("finally")

    app.run(parent, workflow_id="p")
    app.run_until_idle()
    assert app.status("p/0").status is ss.WorkflowStatus.WAITING
    assert app.cancel("p")
    app.run_until_idle()
    assert app.status("p").status is ss.WorkflowStatus.CANCELLED
    assert app.status("p/0").status is ss.WorkflowStatus.CANCELLED
    assert "swallowed" not in cleanup and "finally" in cleanup
    assert not app.cancel("p")
    with pytest.raises(ss.WorkflowCancelled):
        app.handle("p").result()


def test_a_running_workflow_sees_its_cancellation_after_the_step(
    app: ss.App,
) -> None:
    after: list[str] = []

    @app.step()
    def first() -> None:
        app.cancel(ss.current().workflow_id)  # type: ignore[union-attr]

    @app.step()
    def second() -> None:
        after.append("ran")

    @app.workflow()
    def flow() -> None:
        first()
        second()

    app.run(flow, workflow_id="w")
    assert app.status("w").status is ss.WorkflowStatus.CANCELLED and after == []


def test_async_workflows_and_steps_share_the_engine(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[int] = []

    @app.step()
    async def fetch(n: int) -> int:
        calls.append(n)
        await asyncio.sleep(0)
        return n + 1

    @app.step()
    def sync_step(n: int) -> int:
        return n * 2

    @app.workflow()
    async def flow(n: int) -> Any:
        a = await fetch(n)
        await ss.sleep(10)
        payload = await ss.wait_for_event("go")
        return [a, sync_step(a), payload]

    async def scenario() -> Any:
        await app.run_async(flow, 1, workflow_id="w")
        clock.advance(10)
        await app.run_until_idle_async()
        delivery = await app.send_event_async("w", "go", "yes")
        assert delivery.delivered
        await app.run_until_idle_async()
        return await app.status_async("w")

    info = asyncio.run(scenario())
    assert info.result == [2, 4, "yes"] and calls == [1]


def test_an_async_step_timeout_is_a_step_timeout(app: ss.App) -> None:
    @app.step(timeout=0.05)
    async def hang() -> None:
        await asyncio.sleep(5)

    @app.workflow()
    async def flow() -> str:
        try:
            await hang()
        except ss.StepTimeout:
            return "timed out"
        return "finished"

    assert app.run(flow, workflow_id="w").result() == "timed out"


def test_start_async_inserts_without_running(app: ss.App) -> None:
    @app.workflow()
    def flow() -> int:
        return 3

    handle = asyncio.run(app.start_async(flow, workflow_id="w"))
    assert app.status("w").status is ss.WorkflowStatus.PENDING
    assert asyncio.run(handle.result_async(timeout=5)) == 3
