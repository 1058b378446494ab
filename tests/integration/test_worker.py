"""The worker loop in-process: parallel threads, schedules, and a clean stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.worker import Worker


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, pool_size=4)
    yield application
    application.close()


def run_in_thread(worker: Worker) -> threading.Thread:
    thread = threading.Thread(target=worker.run)
    thread.start()
    return thread


def test_workflows_run_in_parallel_up_to_the_concurrency(app: ss.App) -> None:
    @app.step()
    def nap() -> list[float]:
        began = time.monotonic()
        time.sleep(0.4)
        return [began, time.monotonic()]

    @app.workflow()
    def napper(n: int) -> list[float]:
        return nap()  # type: ignore[no-any-return]

    handles = [app.start(napper, n, workflow_id=f"nap-{n}") for n in range(3)]
    worker = Worker(app, concurrency=3, max_sleep=0.2)
    thread = run_in_thread(worker)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not all(
            h.status().status.finished for h in handles
        ):
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    assert all(h.status().status is ss.WorkflowStatus.SUCCEEDED for h in handles)
    # All three naps were under way at one moment: they ran side by side.
    spans = [h.status().result for h in handles]
    assert max(began for began, _ in spans) < min(ended for _, ended in spans)
    assert worker.invocations == 3


def test_threads_of_one_process_claim_each_workflow_once(app: ss.App) -> None:
    # A worker's threads, and app.run calls on another thread, all under one
    # worker id: none may take a workflow from another (a claim taking back
    # "own" leases must pass over the ones this process holds).
    ran: dict[tuple[str, int], int] = {}
    lock = threading.Lock()

    @app.step()
    def record(workflow_id: str, n: int) -> int:
        with lock:
            ran[(workflow_id, n)] = ran.get((workflow_id, n), 0) + 1
        time.sleep(0.01)
        return n

    @app.workflow()
    def two_steps(workflow_id: str) -> int:
        return record(workflow_id, 1) + record(workflow_id, 2)  # type: ignore[no-any-return]

    queued = [f"queued-{n}" for n in range(24)]
    for workflow_id in queued:
        app.start(two_steps, workflow_id, workflow_id=workflow_id)
    inline = [f"inline-{n}" for n in range(8)]
    worker = Worker(app, concurrency=4, max_sleep=0.05)
    thread = run_in_thread(worker)
    try:
        for workflow_id in inline:
            handle = app.run(two_steps, workflow_id, workflow_id=workflow_id)
            assert handle.result(timeout=10) == 3
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not all(
            app.status(w).status.finished for w in queued
        ):
            time.sleep(0.02)
    finally:
        worker.stop()
        thread.join(10)
    assert not thread.is_alive()
    everything = queued + inline
    assert {w: app.status(w).status for w in everything} == {
        w: ss.WorkflowStatus.SUCCEEDED for w in everything
    }
    assert ran == {(w, n): 1 for w in everything for n in (1, 2)}
    assert [w for w in everything if app.status(w).recoveries] == []
    assert worker.invocations == len(queued)


def test_stop_hands_a_workflow_back_between_steps(app: ss.App) -> None:
    entered = threading.Event()

    @app.step()
    def first() -> int:
        entered.set()
        time.sleep(0.3)
        return 1

    @app.step()
    def second() -> int:
        return 2

    @app.workflow()
    def two() -> list[int]:
        return [first(), second()]

    app.start(two, workflow_id="two")
    worker = Worker(app, concurrency=1, max_sleep=0.2)
    thread = run_in_thread(worker)
    assert entered.wait(10)
    worker.stop()
    thread.join(10)
    info = app.status("two")
    assert info.status is ss.WorkflowStatus.PENDING
    assert [s.name for s in info.steps] == ["first"]
    app.run_until_idle()
    assert app.status("two").result == [1, 2]


def test_options_are_checked(app: ss.App) -> None:
    with pytest.raises(ValueError):
        Worker(app, concurrency=0)
    with pytest.raises(ValueError):
        Worker(app, max_sleep=0)
