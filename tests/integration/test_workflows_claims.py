"""Claiming and fencing: leases, epochs, crashed workers, budgets, versions."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock

ONCE = ss.RetryPolicy(max_attempts=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


def make_app(config: dict[str, Any], clock: ManualClock, **options: Any) -> ss.App:
    return ss.App(**config, clock=clock, default_retry=ONCE, **options)


@pytest.fixture
def app(store_config: dict[str, Any], clock: ManualClock) -> Iterator[ss.App]:
    application = make_app(store_config, clock, worker_id="worker-a")
    yield application
    application.close()


def expire_lease(app: ss.App, workflow_id: str) -> None:
    with app.store.transaction() as tx:
        tx.execute(
            "UPDATE {p}workflows SET lease_expires_at = 0 WHERE workflow_id = ?",
            (workflow_id,),
        )


def test_a_stale_worker_cannot_commit_after_another_took_over(
    app: ss.App, store_config: dict[str, Any], clock: ManualClock
) -> None:
    other = make_app(store_config, clock, worker_id="worker-b")
    ran: list[str] = []

    def define(target: ss.App) -> Any:
        @target.step(name="effect")
        def effect() -> str:
            ran.append(target.worker_id)
            if target is app:
                # While worker A runs the step, B takes the workflow over.
                expire_lease(app, "w")
                assert other.run_until_idle().finished == 1
            return target.worker_id

        @target.workflow(name="flow")
        def flow() -> str:
            return effect()

        return flow

    flow = define(app)
    define(other)
    try:
        with pytest.raises(ss.LeaseLost):
            app.run(flow, workflow_id="w")
        info = app.status("w")
        assert info.status is ss.WorkflowStatus.SUCCEEDED
        assert info.result == "worker-b"
        assert len(info.steps) == 1 and info.recoveries == 1
        assert ran == ["worker-a", "worker-b"]
    finally:
        other.close()


def test_an_expired_lease_is_recovered_by_another_worker(
    app: ss.App, store_config: dict[str, Any], clock: ManualClock
) -> None:
    other = make_app(store_config, clock, worker_id="worker-b", lease_seconds=0.2)
    for target in (app, other):

        @target.workflow(name="flow")
        def flow() -> str:
            return "done"

    try:
        with app.store.transaction() as tx:
            tx.execute(
                "INSERT INTO {p}workflows (workflow_id, name, input, input_hash, "
                "status, app_version, epoch, lease_owner, lease_expires_at, "
                "created_at, updated_at) VALUES (?, ?, ?, 'x', 'running', '', 1, "
                "'crashed', {now} + 0.2, 0, 0)",
                ("w", "flow", app.codec.encode([[], {}])),
            )
        assert other.run_until_idle().ran == 0  # lease still valid
        time.sleep(0.3)
        assert other.run_until_idle().finished == 1
        assert app.status("w").recoveries == 1
    finally:
        other.close()


def test_a_restarted_worker_reclaims_its_own_leases_at_once(
    store_config: dict[str, Any], clock: ManualClock
) -> None:
    first = make_app(store_config, clock, worker_id="stable")

    @first.workflow(name="flow")
    def flow() -> str:
        return "done"

    with first.store.transaction() as tx:
        tx.execute(
            "INSERT INTO {p}workflows (workflow_id, name, input, input_hash, "
            "status, app_version, epoch, lease_owner, lease_expires_at, "
            "created_at, updated_at) VALUES ('w', 'flow', ?, 'x', 'running', '', "
            "1, 'stable', {now} + 3600, 0, 0)",
            (first.codec.encode([[], {}]),),
        )
    first.close()
    restarted = make_app(store_config, clock, worker_id="stable")

    @restarted.workflow(name="flow")
    def flow_again() -> str:
        return "done"

    try:
        assert restarted.run_until_idle().finished == 1
    finally:
        restarted.close()


def test_a_workflow_that_keeps_crashing_workers_becomes_dead_and_can_resume(
    app: ss.App, store_config: dict[str, Any], clock: ManualClock
) -> None:
    @app.workflow(name="flow")
    def flow() -> str:
        return "done"

    with app.store.transaction() as tx:
        tx.execute(
            "INSERT INTO {p}workflows (workflow_id, name, input, input_hash, "
            "status, app_version, epoch, lease_owner, lease_expires_at, recoveries,"
            " created_at, updated_at) VALUES ('w', 'flow', ?, 'x', 'running', '', "
            "1, 'gone', 0, 5, 0, 0)",
            (app.codec.encode([[], {}]),),
        )
    assert app.run_until_idle().ran == 0
    info = app.status("w")
    assert info.status is ss.WorkflowStatus.DEAD and info.error is not None
    assert app.resume("w")
    app.run_until_idle()
    assert app.status("w").result == "done"
    assert not app.resume("w")


def test_run_until_idle_runs_what_becomes_due_meanwhile(app: ss.App) -> None:
    @app.workflow()
    def child(n: int) -> int:
        return n

    @app.workflow()
    def starter() -> None:
        app.start(child, 1, workflow_id="started-meanwhile")

    app.start(starter, workflow_id="s")
    summary = app.run_until_idle()
    assert summary.finished == 2 and summary.next_wake_at is None
    assert app.status("started-meanwhile").result == 1


def test_tick_stops_claiming_when_its_budget_is_spent(app: ss.App) -> None:
    @app.step(timeout=5)
    def slow() -> None:
        pass

    @app.workflow()
    def flow() -> None:
        slow()

    for index in range(3):
        app.start(flow, workflow_id=f"w{index}")
    summary = app.tick(budget=1.0)
    assert summary.released == 1 and summary.budget_exhausted
    assert {app.status(f"w{i}").status for i in range(3)} == {ss.WorkflowStatus.PENDING}
    assert app.tick(budget=30).finished == 3


def test_only_workers_of_a_compatible_version_claim(
    store_config: dict[str, Any], clock: ManualClock
) -> None:
    apps = {
        version: make_app(store_config, clock, app_version=version)
        for version in ("1", "2", "")
    }
    try:
        for target in apps.values():

            @target.workflow(name="flow")
            def flow() -> str:
                return "ok"

        apps["1"].start(flow, workflow_id="v1")
        assert apps["2"].run_until_idle().ran == 0
        assert apps["1"].status("v1").app_version == "1"
        assert apps[""].run_until_idle().finished == 1
    finally:
        for target in apps.values():
            target.close()


def test_an_idle_tick_does_not_scan_sleeping_workflows(app: ss.App) -> None:
    @app.workflow()
    def sleeper() -> None:
        ss.sleep(3_600)

    for index in range(200):
        app.run(sleeper, workflow_id=f"s{index}")
    with app.store.read() as tx:
        if app.store.dialect == "sqlite":
            plan = " ".join(
                str(row[-1])
                for row in tx.fetchall(
                    "EXPLAIN QUERY PLAN SELECT workflow_id FROM {p}workflows "
                    "WHERE due_at <= ? ORDER BY due_at LIMIT 1",
                    (0,),
                )
            )
            assert "workflows_due" in plan
    summary = app.run_until_idle()
    assert summary.ran == 0 and summary.next_wake_at is not None


def test_a_claimed_workflow_replays_its_recorded_history_exactly(
    store_config: dict[str, Any], clock: ManualClock
) -> None:
    # Encrypted outputs are binary, and a step's error has text of its own:
    # the history a claim brings back (one statement on SQLite) must give
    # every byte and field back as recorded.
    key = base64.b64encode(bytes(range(32))).decode()
    app = make_app(store_config, clock, encryption_keys=f"k1:{key}")
    ran: list[str] = []
    attempts = ss.RetryPolicy(max_attempts=2, initial_interval=0)

    @app.step(name="text")
    def text() -> str:
        ran.append("text")
        return "naïve ☃ \x00 end"

    @app.step(name="flaky", retry=attempts)
    def flaky() -> None:
        ran.append("flaky")
        if ran.count("flaky") == 1:
            raise ValueError("first attempt fails")

    @app.workflow(name="replayed")
    def replayed() -> list[Any]:
        first = text()
        second = flaky()
        ss.sleep(60)
        return [first, second]

    try:
        app.start(replayed, workflow_id="r")
        app.run_until_idle()
        assert app.status("r").status == ss.WorkflowStatus.WAITING
        clock.advance(61)
        assert app.run_until_idle().finished == 1
        info = app.status("r")
        assert info.result == ["naïve ☃ \x00 end", None]
        assert ran == ["text", "flaky", "flaky"]
    finally:
        app.close()


def test_taking_back_old_leases_never_takes_one_this_process_holds(
    app: ss.App,
) -> None:
    # Threads of one process claim one after another; a claim that takes
    # back this worker id's old leases (at start, or after a store failure)
    # must pass over the workflows its sibling threads claimed or run.
    @app.workflow()
    def idle() -> int:
        return 1

    for name in ("a", "b"):
        app.start(idle, workflow_id=name)
    engine = app._workflow_engine
    first = engine.claim_next()
    assert first is not None
    engine.reclaim_own_leases_again()
    second = engine.claim_next()
    assert second is not None and second.workflow_id != first.workflow_id
    assert (first.recoveries, second.recoveries) == (0, 0)
    # An invocation that ended without settling (a store failure) is no
    # longer held, so its lease is taken back at once.
    engine.drop(first.workflow_id)
    engine.reclaim_own_leases_again()
    again = engine.claim_next()
    assert again is not None and again.workflow_id == first.workflow_id
    assert again.recoveries == 1 and again.epoch == first.epoch + 1
