"""Cron schedules started by ticks: one workflow per slot, exactly once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock

START = datetime(2024, 5, 1, 10, 20, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = ss.App(**store_config, clock=clock)
    yield application
    application.close()


def ids(app: ss.App) -> list[str]:
    return sorted(w.workflow_id for w in app.list_workflows())


def test_a_tick_starts_and_runs_each_due_slot_once(
    app: ss.App, clock: ManualClock
) -> None:
    @app.schedule(cron="0 * * * *", name="hourly")
    def report(slot: datetime) -> str:
        return slot.isoformat()

    summary = app.run_until_idle()
    assert summary.ran == 0 and ids(app) == []
    assert summary.next_wake_at == datetime(2024, 5, 1, 11, tzinfo=UTC).timestamp()

    clock.advance(timedelta(minutes=40))
    assert app.run_until_idle().finished == 1
    assert app.run_until_idle().ran == 0
    info = app.status("schedule:hourly:2024-05-01T11:00:00Z")
    assert info.result == "2024-05-01T11:00:00+00:00"


def test_after_downtime_only_the_latest_missed_slot_runs_by_default(
    app: ss.App, clock: ManualClock
) -> None:
    @app.schedule(cron="*/10 * * * *", name="often")
    def often() -> None:
        return None

    app.run_until_idle()
    clock.advance(timedelta(hours=2))
    app.run_until_idle()
    assert ids(app) == ["schedule:often:2024-05-01T12:20:00Z"]


def test_catch_up_starts_that_many_of_the_latest_missed_slots(
    app: ss.App, clock: ManualClock
) -> None:
    @app.schedule(cron="0 * * * *", name="catchy", catch_up=3)
    def catchy(slot: datetime) -> int:
        return slot.hour

    app.run_until_idle()
    clock.advance(timedelta(hours=10))
    app.run_until_idle()
    assert ids(app) == [
        "schedule:catchy:2024-05-01T18:00:00Z",
        "schedule:catchy:2024-05-01T19:00:00Z",
        "schedule:catchy:2024-05-01T20:00:00Z",
    ]


def test_many_apps_ticking_at_once_start_each_slot_once(
    store_config: dict[str, Any], clock: ManualClock
) -> None:
    apps = [ss.App(**store_config, clock=clock, worker_id=f"w{n}") for n in range(4)]
    runs: list[str] = []
    for application in apps:

        @application.schedule(cron="* * * * *", name="minutely", catch_up=5)
        def minutely(slot: datetime) -> None:
            runs.append(slot.isoformat())

    apps[0].run_until_idle()
    clock.advance(timedelta(minutes=5))
    barrier = threading.Barrier(len(apps))

    def tick(application: ss.App) -> None:
        barrier.wait()
        application.tick(budget=10)

    threads = [threading.Thread(target=tick, args=(a,)) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for application in apps:
        application.run_until_idle()
    assert len(ids(apps[0])) == 5
    assert sorted(runs) == sorted(set(runs)) and len(runs) == 5
    for application in apps:
        application.close()


def test_a_schedule_seen_by_a_new_process_keeps_its_place(
    store_config: dict[str, Any], clock: ManualClock
) -> None:
    def make() -> ss.App:
        application = ss.App(**store_config, clock=clock)

        @application.schedule(cron="@daily", name="nightly")
        def nightly() -> str:
            return "ok"

        return application

    first = make()
    first.run_until_idle()
    first.close()
    clock.advance(timedelta(days=1))
    second = make()
    second.tick(budget=5)
    assert ids(second) == ["schedule:nightly:2024-05-02T00:00:00Z"]
    second.close()


def test_schedule_options_are_checked_at_decoration(app: ss.App) -> None:
    with pytest.raises(ValueError):
        app.schedule(cron="every minute")
    with pytest.raises(ValueError):
        app.schedule(cron="* * * * *", catch_up=0)

    @app.schedule(cron="* * * * *", name="dup")
    def first() -> None:
        return None

    with pytest.raises(ValueError, match="already exists"):

        @app.schedule(cron="* * * * *", name="dup")
        def second() -> None:
            return None


def test_an_already_registered_workflow_can_be_scheduled(
    app: ss.App, clock: ManualClock
) -> None:
    @app.schedule(cron="30 10 * * *")
    @app.workflow(name="tidy")
    def tidy() -> str:
        return "tidied"

    app.run_until_idle()
    clock.advance(timedelta(minutes=15))
    app.run_until_idle()
    assert app.status("schedule:tidy:2024-05-01T10:30:00Z").result == "tidied"
