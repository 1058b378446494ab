"""Sagas: compensations in reverse on errors and cancellation, never on waits."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock

ONCE = ss.RetryPolicy(max_attempts=1)
FORWARD = ("book_flight", "book_hotel", "book_car", "charge_card")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=clock, default_retry=ONCE)
    yield application
    application.close()


def trip(app: ss.App, calls: list[str], fail_at: int | None) -> Any:
    """A four-step booking whose step ``fail_at`` raises."""

    @app.step()
    def forward(name: str) -> str:
        calls.append(name)
        if fail_at is not None and name == FORWARD[fail_at]:
            raise RuntimeError(f"{name} refused")
        return f"{name}-ref"

    @app.step()
    def undo(reference: str) -> None:
        calls.append(f"undo {reference}")
        app.state("effects").update(reference, lambda count: (count or 0) + 1)

    @app.workflow(name="trip")
    def flow() -> str:
        with ss.Saga() as saga:
            for name in FORWARD:
                reference = forward(name)
                saga.compensate(undo, reference)
        return "booked"

    return flow


@pytest.mark.parametrize("fail_at", range(len(FORWARD)))
def test_a_failure_after_each_step_undoes_exactly_the_steps_done_in_reverse(
    app: ss.App, fail_at: int
) -> None:
    calls: list[str] = []
    flow = trip(app, calls, fail_at)

    app.run(flow, workflow_id="t")

    done = [f"{name}-ref" for name in FORWARD[:fail_at]]
    assert calls == [*FORWARD[: fail_at + 1], *(f"undo {r}" for r in reversed(done))]
    info = app.status("t")
    assert info.status is ss.WorkflowStatus.FAILED
    assert info.error is not None
    assert info.error.type == "builtins.RuntimeError"
    assert info.error.message == f"{FORWARD[fail_at]} refused"
    assert [(s.name, s.status) for s in info.compensations] == [
        ("undo", "ok") for _ in done
    ]
    effects = app.state("effects")
    for reference in done:
        item = effects.get(reference)
        assert item is not None and item.value == 1
    with pytest.raises(ss.WorkflowFailed, match="refused"):
        app.handle("t").result()


def test_a_saga_that_succeeds_compensates_nothing(app: ss.App) -> None:
    calls: list[str] = []
    flow = trip(app, calls, None)
    assert app.run(flow, workflow_id="t").result() == "booked"
    assert calls == list(FORWARD)
    assert app.status("t").compensations == ()


def test_a_rejected_approval_compensates_and_a_wait_does_not(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[str] = []

    @app.step()
    def charge() -> str:
        calls.append("charge")
        return "receipt"

    @app.step()
    def refund(receipt: str) -> None:
        calls.append(f"refund {receipt}")

    @app.workflow()
    def checkout() -> str:
        with ss.Saga() as saga:
            receipt = charge()
            saga.compensate(refund, receipt)
            ss.sleep(60)
            answer = ss.wait_for_event("approval")
            if not answer["approved"]:
                raise PermissionError("the order was rejected")
        return "shipped"

    app.run(checkout, workflow_id="c")
    assert app.status("c").status is ss.WorkflowStatus.WAITING
    clock.advance(61)
    app.run_until_idle()
    assert app.status("c").status is ss.WorkflowStatus.WAITING
    assert calls == ["charge"]  # suspending twice undid nothing

    app.send_event("c", "approval", {"approved": False})
    app.run_until_idle()
    info = app.status("c")
    assert info.status is ss.WorkflowStatus.FAILED
    assert info.error is not None and info.error.type == "builtins.PermissionError"
    assert calls == ["charge", "refund receipt"]


def test_cancelling_a_waiting_saga_runs_its_compensations_then_ends_cancelled(
    app: ss.App,
) -> None:
    calls: list[str] = []

    @app.step()
    def reserve(n: int) -> int:
        calls.append(f"reserve {n}")
        return n

    @app.step()
    def release(n: int) -> None:
        calls.append(f"release {n}")

    @app.workflow()
    def hold() -> None:
        try:
            with ss.Saga() as saga:
                for n in (1, 2):
                    saga.compensate(release, reserve(n))
                ss.wait_for_event("go")
        except Exception:
            calls.append("swallowed")  # a cancellation is no Exception
        finally:
            calls.append("finally")

    app.run(hold, workflow_id="h")
    assert app.cancel("h")
    app.run_until_idle()
    info = app.status("h")
    assert info.status is ss.WorkflowStatus.CANCELLED
    # The first "finally" ran when the wait unwound the first invocation.
    assert calls == [
        "reserve 1",
        "reserve 2",
        "finally",
        "release 2",
        "release 1",
        "finally",
    ]
    assert [s.kind for s in info.steps] == [
        "step",
        "step",
        "cancel",
        "compensation",
        "compensation",
    ]


def test_a_running_saga_sees_its_cancellation_at_the_next_call(app: ss.App) -> None:
    calls: list[str] = []

    @app.step()
    def first() -> None:
        calls.append("first")
        app.cancel(ss.current().workflow_id)  # type: ignore[union-attr]

    @app.step()
    def second() -> None:
        calls.append("second")

    @app.step()
    def undo_first() -> None:
        calls.append("undo first")

    @app.workflow()
    def flow() -> None:
        with ss.Saga() as saga:
            first()
            saga.compensate(undo_first)
            second()

    app.run(flow, workflow_id="w")
    assert app.status("w").status is ss.WorkflowStatus.CANCELLED
    assert calls == ["first", "undo first"]


def test_a_compensation_that_keeps_failing_parks_the_workflow_until_resumed(
    app: ss.App,
) -> None:
    calls: list[str] = []
    broken = {"release": True}

    @app.step()
    def take(name: str) -> str:
        calls.append(name)
        if name == "third":
            raise ValueError("out of stock")
        return name

    @app.step(retry=ss.RetryPolicy(max_attempts=2, initial_interval=0.01))
    def give_back(name: str) -> None:
        calls.append(f"give back {name}")
        if name == "first" and broken["release"]:
            raise ConnectionError("inventory is down")

    @app.workflow()
    def flow() -> None:
        with ss.Saga() as saga:
            for name in ("first", "second", "third"):
                saga.compensate(give_back, take(name))

    app.run(flow, workflow_id="w")
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.COMPENSATION_FAILED
    assert info.error is not None
    assert info.error.type == "builtins.ConnectionError"
    assert "give_back" in info.error.message and "app.resume()" in info.error.message
    assert "out of stock" in info.error.message
    assert [(s.status, s.attempts) for s in info.compensations] == [
        ("ok", 1),
        ("error", 2),
    ]
    assert app.run_until_idle().ran == 0  # parked: nothing runs by itself

    broken["release"] = False
    calls.clear()
    assert app.resume("w")
    app.run_until_idle()
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.FAILED
    assert info.error is not None and info.error.message == "out of stock"
    assert calls == ["give back first"]  # "second" was undone before, once
    assert [(s.status, s.attempts) for s in info.compensations] == [
        ("ok", 1),
        ("ok", 1),
    ]


def test_a_compensation_retry_is_a_durable_timer_even_when_cancelled(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[str] = []

    @app.step()
    def reserve() -> str:
        calls.append("reserve")
        return "r"

    @app.step(retry=ss.RetryPolicy(max_attempts=3, initial_interval=30, jitter=0))
    def release(reference: str) -> None:
        calls.append("release")
        if calls.count("release") == 1:
            raise ConnectionError("try later")

    @app.step()
    def note() -> None:
        calls.append("note")

    @app.workflow()
    def flow() -> None:
        with ss.Saga() as saga:
            saga.compensate(note)
            saga.compensate(release, reserve())
            ss.wait_for_event("never")

    app.run(flow, workflow_id="w")
    app.cancel("w")
    summary = app.run_until_idle()
    assert summary.ran == 1  # the retry timer holds despite the cancellation
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.WAITING
    assert info.due_at == pytest.approx(clock() + 30)

    clock.advance(31)
    app.run_until_idle()
    assert app.status("w").status is ss.WorkflowStatus.CANCELLED
    assert calls == ["reserve", "release", "release", "note"]


def test_nested_sagas_undo_inner_then_outer(app: ss.App) -> None:
    calls: list[str] = []

    @app.step()
    def act(name: str) -> str:
        calls.append(name)
        if name == "boom":
            raise KeyError(name)
        return name

    @app.workflow()
    def flow() -> None:
        with ss.Saga() as outer:
            outer.compensate(act, "undo a")
            with ss.Saga() as inner:
                inner.compensate(act, "undo b")
                act("boom")

    app.run(flow, workflow_id="w")
    assert calls == ["boom", "undo b", "undo a"]
    info = app.status("w")
    assert info.error is not None and info.error.type == "builtins.KeyError"


def test_a_plain_function_compensates_as_a_step_named_after_it(app: ss.App) -> None:
    calls: list[str] = []

    def cleanup(tag: str) -> None:
        calls.append(tag)

    @app.workflow()
    def flow() -> None:
        with ss.Saga() as saga:
            saga.compensate(cleanup, "x")
            raise OSError("disk full")

    app.run(flow, workflow_id="w")
    assert calls == ["x"]
    assert [s.name for s in app.status("w").compensations] == ["cleanup"]


def test_outside_a_workflow_compensations_are_plain_calls_in_reverse() -> None:
    calls: list[int] = []
    with pytest.raises(ZeroDivisionError):
        with ss.Saga() as saga:
            saga.compensate(calls.append, 1)
            saga.compensate(calls.append, 2)
            _ = 1 / 0
    assert calls == [2, 1]


def test_async_sagas_await_their_compensations(app: ss.App) -> None:
    calls: list[str] = []

    @app.step()
    async def pay() -> str:
        await asyncio.sleep(0)
        calls.append("pay")
        return "p"

    @app.step()
    async def refund(reference: str) -> None:
        await asyncio.sleep(0)
        calls.append(f"refund {reference}")

    @app.step()
    def log_undo() -> None:
        calls.append("log")

    @app.workflow()
    async def flow() -> None:
        async with ss.Saga() as saga:
            saga.compensate(log_undo)
            saga.compensate(refund, await pay())
            raise RuntimeError("declined")

    app.run(flow, workflow_id="w")
    assert calls == ["pay", "refund p", "log"]
    assert app.status("w").status is ss.WorkflowStatus.FAILED


def test_an_async_compensation_needs_async_with() -> None:
    async def undo() -> None:
        return None

    with pytest.raises(TypeError, match="async with"):
        with ss.Saga() as saga:
            saga.compensate(undo)
    with pytest.raises(TypeError, match="step or a function"):
        ss.Saga().compensate(42)  # type: ignore[arg-type]
