"""Claiming due workflows in batches: one claim statement for many (PostgreSQL).

On SQLite a claim is still one workflow at a time; every test here checks
the same outcomes on both backends, and on PostgreSQL also that the
workflows did come in one batch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.workflows.clock import ManualClock

ONCE = ss.RetryPolicy(max_attempts=1)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_000_000.0)


def batch_sizes(app: ss.App) -> list[int]:
    """Record how many workflows each claim of ``app`` returned."""
    engine = app._workflow_engine
    sizes: list[int] = []
    claim_batch = engine.claim_batch

    def recorded(limit: int) -> list[Any]:
        claims = claim_batch(limit)
        if claims:
            sizes.append(len(claims))
        return claims

    engine.claim_batch = recorded  # type: ignore[method-assign]
    return sizes


def insert_row(app: ss.App, workflow_id: str, **columns: Any) -> None:
    values = {
        "workflow_id": workflow_id,
        "name": "flow",
        "input": app.codec.encode([[], {}]),
        "input_hash": "x",
        "status": "pending",
        "app_version": "",
        "epoch": 0,
        "due_at": 0,
        "created_at": 0,
        "updated_at": 0,
        **columns,
    }
    names = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    with app.store.transaction() as tx:
        tx.execute(
            f"INSERT INTO {{p}}workflows ({names}) VALUES ({marks})",
            tuple(values.values()),
        )


def test_a_batch_leaves_dead_and_other_versions_as_one_claim_did(
    store_config: dict[str, Any], backend: str, clock: ManualClock
) -> None:
    app = ss.App(**store_config, clock=clock, app_version="1", worker_id="a")
    try:

        @app.workflow(name="flow")
        def flow() -> str:
            return "done"

        for index in range(4):
            insert_row(app, f"ok{index}", app_version="1", due_at=index)
        insert_row(app, "other", app_version="2")
        # Taken over from crashed workers too often: dead on this claim.
        insert_row(
            app,
            "doomed",
            status="running",
            epoch=1,
            due_at=None,
            lease_owner="gone",
            lease_expires_at=0,
            recoveries=5,
        )
        sizes = batch_sizes(app)
        summary = app.run_until_idle()
        assert summary.ran == 4 and summary.finished == 4
        for index in range(4):
            info = app.status(f"ok{index}")
            assert info.result == "done" and info.recoveries == 0
        dead = app.status("doomed")
        assert dead.status is ss.WorkflowStatus.DEAD and dead.error is not None
        assert dead.error.type == "stateshift.Dead"
        assert app.status("other").status is ss.WorkflowStatus.PENDING
        assert sizes == ([4] if backend == "postgresql" else [1, 1, 1, 1])
    finally:
        app.close()


def test_a_batch_parks_a_workflow_the_policy_refuses_as_one_claim_did(
    backend: str, tmp_path: Path
) -> None:
    from test_placement_support import POLICY, shard_urls

    from stateshift import App
    from stateshift.errors import ResidencyViolation
    from stateshift.placement import ResidencyPolicy

    with shard_urls(backend, tmp_path, {"eu": 1}) as urls:
        eu = App(regions=urls, region="eu", residency_policy=POLICY)
        tightened = ResidencyPolicy(
            {"EU": {"store": ["eu"], "process": ["us"]}},
            default={"store": ["*"], "process": ["*"]},
        )
        strict = App(regions=urls, region="eu", residency_policy=tightened)
        try:

            @eu.workflow(name="job")
            def job() -> str:
                return "done"

            strict.workflow(name="job")(job)
            eu.start(job, workflow_id="plain-0")
            eu.start(job, workflow_id="eu-job", residency="EU")
            eu.start(job, workflow_id="plain-1")
            eu.start(job, workflow_id="plain-2")
            sizes = batch_sizes(strict)
            assert strict.run_until_idle().finished == 3
            for name in ("plain-0", "plain-1", "plain-2"):
                assert strict.status(name).status is ss.WorkflowStatus.SUCCEEDED
            with pytest.raises(ResidencyViolation):
                strict.status("eu-job")
            info = eu.status("eu-job")
            assert info.status is ss.WorkflowStatus.BLOCKED
            assert info.error is not None and "ResidencyViolation" in info.error.type
            claims = [
                r
                for r in strict.placement.audit_log.records()
                if r.operation == "claim"
            ]
            assert [r.key for r in claims] == ["eu-job"]
            assert sizes == ([3] if backend == "postgresql" else [1, 1, 1])
        finally:
            strict.close()
            eu.close()


def test_workflows_a_tick_does_not_reach_are_handed_back_for_the_next(
    store_config: dict[str, Any], backend: str, clock: ManualClock
) -> None:
    app = ss.App(**store_config, clock=clock, default_retry=ONCE)
    try:

        @app.step(name="quick")
        def quick() -> None:
            pass

        @app.step(name="slow", timeout=5)
        def slow() -> None:
            pass

        @app.workflow(name="fast")
        def fast() -> None:
            quick()

        @app.workflow(name="late")
        def late() -> None:
            slow()

        app.start(fast, workflow_id="first")
        for index in range(4):
            clock.advance(1)
            app.start(late, workflow_id=f"late{index}")
        sizes = batch_sizes(app)
        # The first claim takes one (no pace yet); the next as many as fit.
        # The first slow step cannot fit in the budget: it is handed back,
        # and the rest of its batch with it, unrun.
        summary = app.tick(budget=1.0)
        assert (summary.ran, summary.finished, summary.released) == (2, 1, 1)
        assert summary.budget_exhausted
        assert sizes == ([1, 4] if backend == "postgresql" else [1, 1])
        for index in range(4):
            info = app.status(f"late{index}")
            assert info.status is ss.WorkflowStatus.PENDING and not info.steps
        assert app.tick(budget=30).finished == 4
        for index in range(4):
            assert app.status(f"late{index}").recoveries == 0
    finally:
        app.close()


def test_a_batch_hands_back_what_it_cannot_start_while_its_leases_are_fresh(
    store_config: dict[str, Any], backend: str
) -> None:
    # Fresh for a third of the lease: 0.1 s, which the first step outlasts.
    app = ss.App(**store_config, default_retry=ONCE, lease_seconds=0.3)
    ran: Counter[str] = Counter()
    try:

        @app.step(name="work")
        def work(name: str) -> None:
            ran[name] += 1
            if name == "w0":
                time.sleep(0.2)

        @app.workflow(name="flow")
        def flow(name: str) -> None:
            work(name)

        for index in range(5):
            app.start(flow, f"w{index}", workflow_id=f"w{index}")
        sizes = batch_sizes(app)
        summary = app.run_until_idle()
        # The four handed back were claimed again and run, each once.
        assert summary.finished == 5 and summary.released == 0
        assert ran == Counter({f"w{index}": 1 for index in range(5)})
        for index in range(5):
            info = app.status(f"w{index}")
            assert info.status is ss.WorkflowStatus.SUCCEEDED
            assert info.recoveries == 0
        assert sizes == ([5, 4] if backend == "postgresql" else [1] * 5)
    finally:
        app.close()


COUNT = 40


def define_counted(app: ss.App, log: Any) -> Any:
    """A workflow of two steps, each telling ``log`` when it runs."""

    @app.step(name="one")
    def one(name: str) -> None:
        log(name, 1)

    @app.step(name="two")
    def two(name: str) -> None:
        log(name, 2)

    @app.workflow(name="counted")
    def counted(name: str) -> None:
        one(name)
        two(name)

    return counted


def tick_until_idle(app: ss.App) -> None:
    while app.tick(budget=30).ran:
        pass


def assert_each_ran_once(app: ss.App, runs: Counter[tuple[str, int]]) -> None:
    expected = {(f"c{i}", seq): 1 for i in range(COUNT) for seq in (1, 2)}
    assert dict(runs) == expected
    for index in range(COUNT):
        info = app.status(f"c{index}")
        assert info.status is ss.WorkflowStatus.SUCCEEDED
        assert info.recoveries == 0 and len(info.steps) == 2


def test_two_threads_ticking_at_once_run_each_workflow_once(
    store_config: dict[str, Any],
) -> None:
    app = ss.App(**store_config, default_retry=ONCE)
    runs: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def log(name: str, seq: int) -> None:
        with lock:
            runs[(name, seq)] += 1

    try:
        counted = define_counted(app, log)
        for index in range(COUNT):
            app.start(counted, f"c{index}", workflow_id=f"c{index}")
        go = threading.Barrier(2)
        failures: list[BaseException] = []

        def ticker() -> None:
            go.wait()
            try:
                tick_until_idle(app)
            except BaseException as exc:
                failures.append(exc)

        threads = [threading.Thread(target=ticker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == []
        tick_until_idle(app)
        assert_each_ran_once(app, runs)
    finally:
        app.close()


def child_main(config: dict[str, Any], worker_id: str, folder: str) -> None:
    """A process that ticks until nothing is due, logging each step it runs."""
    app = ss.App(**config, worker_id=worker_id, default_retry=ONCE)
    path = Path(folder) / f"{worker_id}.log"
    with path.open("a") as out:

        def log(name: str, seq: int) -> None:
            out.write(f"{name} {seq}\n")
            out.flush()

        define_counted(app, log)
        go = Path(folder) / "go"
        while not go.exists():
            time.sleep(0.01)
        tick_until_idle(app)
    app.close()


def test_two_processes_ticking_at_once_run_each_workflow_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    from conftest import subprocess_env

    app = ss.App(**store_config, default_retry=ONCE)
    try:
        counted = define_counted(app, lambda name, seq: None)
        for index in range(COUNT):
            app.start(counted, f"c{index}", workflow_id=f"c{index}")
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    json.dumps(store_config),
                    worker,
                    str(tmp_path),
                ],
                env=subprocess_env(),
            )
            for worker in ("process-a", "process-b")
        ]
        (tmp_path / "go").touch()
        assert [child.wait(timeout=120) for child in children] == [0, 0]
        runs: Counter[tuple[str, int]] = Counter()
        for worker in ("process-a", "process-b"):
            for line in (tmp_path / f"{worker}.log").read_text().splitlines():
                name, seq = line.split()
                runs[(name, int(seq))] += 1
        assert_each_ran_once(app, runs)
    finally:
        app.close()


if __name__ == "__main__":
    child_main(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
