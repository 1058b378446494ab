"""Entity operations called from workflow code are checkpointed steps."""

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


def register(app: ss.App, runs: list[int]) -> type:
    @app.entity(name="Counter")
    class Counter:
        def __init__(self) -> None:
            self.total = 0

        def add(self, amount: int) -> int:
            runs.append(amount)
            if amount < 0:
                raise ValueError("no negative amounts")
            self.total += amount
            return self.total

    return Counter


def test_an_operation_in_workflow_code_runs_once_and_replays_its_result(
    app: ss.App, clock: ManualClock
) -> None:
    runs: list[int] = []
    counter = register(app, runs)

    @app.workflow()
    def flow() -> list[int]:
        first = app.entity(counter, "c").add(5)
        ss.sleep(60)
        second = app.entity(counter, "c").add(2)
        return [first, second]

    app.run(flow, workflow_id="w")
    assert runs == [5]
    clock.advance(61)
    app.run_until_idle()
    assert app.status("w").result == [5, 7]
    assert runs == [5, 2]  # the replay took the first result from history
    assert app.entity(counter, "c").get().total == 7
    steps = app.status("w").steps
    assert [(s.kind, s.name) for s in steps] == [
        ("entity", "Counter.add"),
        ("sleep", "sleep"),
        ("entity", "Counter.add"),
    ]


def test_an_operation_error_fails_at_once_and_replays_as_the_same_error(
    app: ss.App,
) -> None:
    runs: list[int] = []
    counter = register(app, runs)

    @app.workflow()
    def flow() -> str:
        try:
            app.entity(counter, "c").add(-1)
        except ValueError as exc:
            return f"refused: {exc}"
        return "accepted"

    assert app.run(flow, workflow_id="w").result() == "refused: no negative amounts"
    assert runs == [-1]
    assert app.entity(counter, "c").get().total == 0


def test_inside_a_step_or_outside_workflows_an_operation_is_a_plain_call(
    app: ss.App,
) -> None:
    runs: list[int] = []
    counter = register(app, runs)

    @app.step()
    def bump() -> int:
        total: int = app.entity(counter, "c").add(3)
        return total

    @app.workflow()
    def flow() -> int:
        total: int = bump()
        return total

    assert app.entity(counter, "c").add(1) == 1
    assert app.run(flow, workflow_id="w").result() == 4
    assert [s.kind for s in app.status("w").steps] == ["step"]
    assert app.entity(counter, "c").get().total == 4
