"""Steps and workflows: checkpoints, replay, starting, status and failures."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock

ONCE = ss.RetryPolicy(max_attempts=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=clock, default_retry=ONCE)
    yield application
    application.close()


def test_a_workflow_runs_its_steps_and_records_each_once(app: ss.App) -> None:
    calls: list[int] = []

    @app.step()
    def double(x: int) -> int:
        calls.append(x)
        return x * 2

    @app.workflow()
    def flow(x: int) -> int:
        return double(double(x)) + 1

    handle = app.run(flow, 5, workflow_id="w")
    assert handle.result() == 21
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.SUCCEEDED
    assert [(s.seq, s.name, s.attempts) for s in info.steps] == [
        (0, "double", 1),
        (1, "double", 1),
    ]
    assert calls == [5, 10]


def test_a_recorded_step_is_not_run_again_on_replay(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[str] = []

    @app.step()
    def effect(name: str) -> str:
        calls.append(name)
        return name.upper()

    @app.workflow()
    def flow() -> list[str]:
        first = effect("a")
        ss.sleep(60)
        return [first, effect("b")]

    app.run(flow, workflow_id="w")
    assert calls == ["a"] and app.status("w").status is ss.WorkflowStatus.WAITING
    clock.advance(61)
    app.run_until_idle()
    assert app.status("w").result == ["A", "B"]
    assert calls == ["a", "b"]


def test_starting_is_idempotent_on_the_workflow_id(app: ss.App) -> None:
    @app.workflow()
    def flow(x: int) -> int:
        return x

    first = app.start(flow, 1, workflow_id="same")
    second = app.start(flow, 1, workflow_id="same")
    assert first.workflow_id == second.workflow_id == "same"
    assert app.status("same").status is ss.WorkflowStatus.PENDING
    with pytest.raises(ss.WorkflowConflict):
        app.start(flow, 2, workflow_id="same")

    @app.workflow()
    def other(x: int) -> int:
        return x

    with pytest.raises(ss.WorkflowConflict):
        app.start(other, 1, workflow_id="same")
    app.run_until_idle()
    assert first.result() == 1


def test_an_unknown_workflow_id_raises_not_found(app: ss.App) -> None:
    with pytest.raises(ss.WorkflowNotFound):
        app.status("nope")
    with pytest.raises(ss.WorkflowNotFound):
        app.send_event("nope", "e", 1)
    with pytest.raises(ss.WorkflowNotFound):
        app.cancel("nope")


def test_a_step_outside_a_workflow_is_a_plain_call(app: ss.App) -> None:
    @app.step()
    def plain(x: int) -> int:
        assert ss.current() is None
        return x + 1

    assert plain(1) == 2


def test_current_gives_a_deterministic_idempotency_key(app: ss.App) -> None:
    seen: list[ss.StepContext] = []

    @app.step(retry=ss.RetryPolicy(max_attempts=2, initial_interval=0.01))
    def charge() -> str:
        context = ss.current()
        assert context is not None
        seen.append(context)
        if context.attempt == 1:
            raise ConnectionError("flaky")
        return context.idempotency_key or ""

    @app.workflow()
    def flow() -> str:
        return charge()

    assert app.run(flow, workflow_id="order-1").result() == "order-1:0"
    assert [(c.step, c.seq, c.attempt) for c in seen] == [
        ("charge", 0, 1),
        ("charge", 0, 2),
    ]
    assert {c.idempotency_key for c in seen} == {"order-1:0"}


class CardDeclined(Exception):
    pass


def test_a_step_error_replays_as_the_same_type_and_message(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[int] = []

    @app.step()
    def charge() -> None:
        calls.append(1)
        raise CardDeclined("card 4242 declined")

    @app.workflow()
    def flow() -> str:
        try:
            charge()
        except CardDeclined as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        ss.sleep(5)
        return outcome

    app.run(flow, workflow_id="w")
    clock.advance(6)
    app.run_until_idle()
    assert app.status("w").result == "CardDeclined: card 4242 declined"
    assert calls == [1]
    step = app.status("w").steps[0]
    assert step.status == "error" and step.error is not None
    assert step.error.type.endswith("CardDeclined")


def test_an_unknown_error_type_replays_as_step_error() -> None:
    from stateshift.workflows._exceptions import rebuild

    rebuilt = rebuild("w", "no_such_module.Boom", "it broke")
    assert isinstance(rebuilt, ss.StepError)
    assert str(rebuilt) == "it broke" and rebuilt.error_type == "no_such_module.Boom"
    key_error = rebuild("w", "builtins.KeyError", "'k'")
    assert type(key_error) is KeyError and str(key_error) == "'k'"
    assert isinstance(rebuild("w", "os.system", "x"), ss.StepError)


def test_an_unhandled_step_error_fails_the_workflow(app: ss.App) -> None:
    @app.step()
    def broken() -> None:
        raise ValueError("bad input 7")

    @app.workflow()
    def flow() -> None:
        broken()

    handle = app.run(flow, workflow_id="w")
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.FAILED
    assert info.error is not None
    assert info.error.type == "builtins.ValueError"
    assert info.error.message == "bad input 7"
    assert "ValueError" in (info.error.traceback or "")
    with pytest.raises(ss.WorkflowFailed) as caught:
        handle.result()
    assert caught.value.error_type == "builtins.ValueError"
    assert caught.value.error_message == "bad input 7"


def test_a_result_too_large_fails_the_step_at_once(
    store_config: dict[str, Any],
) -> None:
    app = ss.App(**store_config, max_value_bytes=1_000)
    calls: list[int] = []

    @app.step(retry=ss.RetryPolicy(max_attempts=5, initial_interval=0))
    def big() -> str:
        calls.append(1)
        return "x" * 5_000

    @app.workflow()
    def flow() -> str:
        return big()

    try:
        app.run(flow, workflow_id="w")
        info = app.status("w")
        assert info.status is ss.WorkflowStatus.FAILED
        assert info.error is not None and "PayloadTooLarge" in info.error.type
        assert calls == [1]
    finally:
        app.close()


def test_retries_wait_durably_and_exhausted_retries_fail(
    app: ss.App, clock: ManualClock
) -> None:
    calls: list[int] = []

    @app.step(
        retry=ss.RetryPolicy(max_attempts=3, initial_interval=10, backoff=2, jitter=0)
    )
    def flaky() -> None:
        calls.append(1)
        raise TimeoutError(f"attempt {len(calls)}")

    @app.workflow()
    def flow() -> None:
        flaky()

    app.run(flow, workflow_id="w")
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.WAITING
    assert info.due_at == pytest.approx(clock() + 10)
    assert info.steps[0].status == "retrying" and info.steps[0].attempts == 1
    app.run_until_idle()
    assert calls == [1]  # not due yet
    clock.advance(10)
    app.run_until_idle()
    assert calls == [1, 1] and app.status("w").due_at == pytest.approx(clock() + 20)
    clock.advance(20)
    app.run_until_idle()
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.FAILED and len(calls) == 3
    assert info.error is not None and info.error.message == "attempt 3"


def test_non_retryable_errors_fail_at_once(app: ss.App) -> None:
    calls: list[int] = []

    @app.step(retry=ss.RetryPolicy(max_attempts=5, non_retryable=(KeyError,)))
    def lookup() -> None:
        calls.append(1)
        raise KeyError("sku")

    @app.workflow()
    def flow() -> None:
        lookup()

    app.run(flow, workflow_id="w")
    assert app.status("w").status is ss.WorkflowStatus.FAILED and calls == [1]


def test_a_step_timeout_abandons_the_attempt_and_its_late_result(app: ss.App) -> None:
    import threading

    release = threading.Event()
    finished: list[int] = []

    @app.step(timeout=0.2, retry=ss.RetryPolicy(max_attempts=1))
    def slow() -> str:
        release.wait(5)
        finished.append(1)
        return "late"

    @app.workflow()
    def flow() -> str:
        try:
            return slow()
        except ss.StepTimeout as exc:
            return f"timed out: {type(exc).__name__}"

    assert app.run(flow, workflow_id="w").result() == "timed out: StepTimeout"
    release.set()
    step = app.status("w").steps[0]
    assert step.status == "error" and step.error is not None
    assert step.error.type.endswith("StepTimeout")


def test_the_overall_workflow_timeout_fails_it(app: ss.App, clock: ManualClock) -> None:
    @app.workflow(timeout=100)
    def flow() -> None:
        ss.sleep(1_000)
        ss.sleep(1)

    app.run(flow, workflow_id="w")
    assert app.status("w").due_at == pytest.approx(clock() + 100)
    clock.advance(100)
    app.run_until_idle()
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.FAILED
    assert info.error is not None and info.error.type.endswith("WorkflowTimeout")


def test_decorators_reject_bad_options(app: ss.App) -> None:
    with pytest.raises(TypeError):
        app.step(retry=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        app.step(timeout=-1)
    with pytest.raises(ValueError):
        ss.RetryPolicy(max_attempts=0)

    def not_registered() -> None:
        pass

    with pytest.raises(TypeError):
        app.start(not_registered)
