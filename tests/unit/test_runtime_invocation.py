"""The invoker: per-message failure, FIFO, deadlines, releasing, wake-ups."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from runtime_support.file_service import FileService
from stateshift.runtime.deadline import Deadline, default_margin_seconds
from stateshift.runtime.invocation import (
    BatchOutcome,
    InvocationPolicy,
    Invoker,
    MessageFailed,
    TickOutcome,
    raise_for_failures,
)
from stateshift.runtime.service import RunView, TickReport
from stateshift.runtime.triggers import Message, QueueBatch, ScheduledTick


class SlowService(FileService):
    def __init__(self, path: Path, seconds: float) -> None:
        super().__init__(path)
        self.seconds = seconds
        self.workflows["greet"] = lambda name: f"hello {name}"

    def start(
        self,
        workflow: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        **options: Any,
    ) -> RunView:
        time.sleep(self.seconds)
        return super().start(workflow, args, kwargs, **options)


def start(name: str) -> Message:
    body = {"op": "start", "workflow": "greet", "args": [name], "workflow_id": name}
    return Message(message_id=f"id-{name}", body=json.dumps(body))


def test_the_margin_is_a_tenth_of_the_budget_within_bounds() -> None:
    assert default_margin_seconds(3) == pytest.approx(0.3)
    assert default_margin_seconds(0.5) == 0.1
    assert default_margin_seconds(900) == 5.0
    deadline = Deadline.after(2, margin=0.5)
    assert 1.4 < deadline.budget_seconds() <= 1.5
    assert Deadline.after(0.05, margin=0.1).may_claim() is False


def test_messages_not_started_before_the_margin_are_released(tmp_path: Path) -> None:
    service = SlowService(tmp_path / "runs.json", seconds=0.2)
    invoker = Invoker(service)
    batch = QueueBatch(tuple(start(f"m{i}") for i in range(6)), source="test")
    outcome = invoker.invoke(batch, Deadline.after(0.75, margin=0.3))
    assert isinstance(outcome, BatchOutcome)
    started = set(service.load()["runs"])
    assert 1 <= len(started) <= 3
    assert outcome.released == tuple(
        m.message_id for m in batch.messages[len(started) :]
    )
    assert outcome.failed == outcome.released
    assert outcome.tick is None  # no time was left for due work


def test_an_unordered_batch_goes_on_after_a_failure(tmp_path: Path) -> None:
    service = SlowService(tmp_path / "runs.json", seconds=0)
    bad = Message(message_id="bad", body="{")
    batch = QueueBatch((start("a"), bad, start("b")), source="test")
    outcome = Invoker(service).invoke(batch, Deadline.after(5))
    assert isinstance(outcome, BatchOutcome)
    assert outcome.failed == ("bad",) and "malformed_json" in outcome.errors["bad"]
    assert set(service.load()["runs"]) == {"a", "b"}
    with pytest.raises(MessageFailed, match="bad"):
        raise_for_failures(outcome)


def test_an_ordered_batch_stops_at_the_first_failure(tmp_path: Path) -> None:
    service = SlowService(tmp_path / "runs.json", seconds=0)
    bad = Message(message_id="bad", body='{"op": "start"}')
    batch = QueueBatch((start("a"), bad, start("b")), source="test", ordered=True)
    outcome = Invoker(service).invoke(batch, Deadline.after(5))
    assert isinstance(outcome, BatchOutcome)
    assert outcome.failed == ("bad", "id-b")
    assert set(service.load()["runs"]) == {"a"}


class WakeService(FileService):
    def __init__(self, path: Path, report: TickReport) -> None:
        super().__init__(path)
        self.report = report

    def tick(self, budget_seconds: float) -> TickReport:
        return self.report


def test_a_near_timer_asks_for_a_wake_up_and_a_far_one_does_not(
    tmp_path: Path,
) -> None:
    asked: list[float] = []
    near = WakeService(tmp_path / "a.json", TickReport(ran=1, next_wake_up_seconds=7))
    Invoker(near, wake_up=asked.append).invoke(ScheduledTick("t"), Deadline.after(5))
    assert asked == [7]
    far = WakeService(tmp_path / "b.json", TickReport(ran=1, next_wake_up_seconds=600))
    Invoker(far, wake_up=asked.append).invoke(ScheduledTick("t"), Deadline.after(5))
    assert asked == [7]


def test_a_wake_up_that_found_nothing_to_do_ends_its_chain(tmp_path: Path) -> None:
    asked: list[float] = []
    idle = WakeService(tmp_path / "a.json", TickReport(ran=0, next_wake_up_seconds=3))
    invoker = Invoker(idle, wake_up=asked.append)
    wake = QueueBatch((Message("w", '{"op": "wake"}'),), source="test")
    invoker.invoke(wake, Deadline.after(5))
    assert asked == []
    busy = WakeService(tmp_path / "b.json", TickReport(ran=2, next_wake_up_seconds=3))
    Invoker(busy, wake_up=asked.append).invoke(wake, Deadline.after(5))
    assert asked == [3]


def test_a_failing_wake_up_does_not_fail_the_invocation(tmp_path: Path) -> None:
    def broken(delay: float) -> None:
        raise ConnectionError("queue unreachable")

    near = WakeService(tmp_path / "a.json", TickReport(ran=1, next_wake_up_seconds=1))
    outcome = Invoker(near, wake_up=broken).invoke(
        ScheduledTick("t"), Deadline.after(5)
    )
    assert isinstance(outcome, TickOutcome) and outcome.tick is not None


def test_http_due_work_is_capped_by_the_policy(tmp_path: Path) -> None:
    from stateshift.runtime.http import HttpApi
    from stateshift.runtime.triggers import HttpRequest

    service = SlowService(tmp_path / "runs.json", seconds=0)
    api = HttpApi(service, allow_anonymous=True)
    policy = InvocationPolicy(http_due_work_seconds=0.25)
    invoker = Invoker(service, http=api, policy=policy)
    invoker.invoke(HttpRequest("GET", "/health"), Deadline.after(10))
    assert service.load()["ticks"] == [0.25]
