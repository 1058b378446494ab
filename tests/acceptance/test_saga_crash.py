"""Worker processes killed with SIGKILL while sagas are compensating.

Each workflow books three things, registering an undo after each, and then
fails, so its saga runs three compensations. The test kills the worker that
holds a workflow whose compensations are half done, several times, and
restarts it under the same worker id. Every workflow must end failed with
its original error, and the store-written effect of every compensation must
exist exactly once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss

WORKFLOWS = 12
BOOKINGS = ("flight", "hotel", "car")
KILLS = 5


def define(app: ss.App, runs_file: str | None = None) -> Any:
    """Register the test's steps and workflow on ``app``."""

    @app.step(name="book")
    def book(what: str) -> str:
        return what

    @app.step(name="cancel_booking")
    def cancel_booking(what: str) -> None:
        context = ss.current()
        assert context is not None
        if runs_file:
            with open(runs_file, "a") as handle:
                handle.write(f"{context.workflow_id}:{what}\n")
        key = f"{context.workflow_id}:{what}"
        app.state("effects").update(key, lambda count: (count or 0) + 1)
        time.sleep(random.uniform(0.05, 0.15))

    @app.workflow(name="saga-crash-flow")
    def flow() -> None:
        with ss.Saga() as saga:
            for what in BOOKINGS:
                saga.compensate(cancel_booking, book(what))
            raise LookupError("no seats left")

    return flow


def worker(config: dict[str, Any], worker_id: str, runs_file: str) -> None:
    app = ss.App(**config, worker_id=worker_id, lease_seconds=2.0)
    define(app, runs_file)
    while True:
        if app.run_until_idle().ran == 0:
            time.sleep(0.02)


def spawn(config: dict[str, Any], worker_id: str, runs_file: str) -> Any:
    from conftest import subprocess_env  # the worker process has no conftest

    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(config), worker_id, runs_file],
        env=subprocess_env(),
    )


def half_compensated_owner(app: ss.App) -> str | None:
    """The worker running a workflow whose compensations are partly done."""
    with app.store.read() as tx:
        row = tx.fetchone(
            "SELECT w.lease_owner FROM {p}workflows w WHERE w.status = 'running' "
            "AND w.lease_owner IS NOT NULL AND (SELECT COUNT(*) FROM "
            "{p}workflow_steps s WHERE s.workflow_id = w.workflow_id "
            "AND s.kind = 'compensation' AND s.status = 'ok') BETWEEN 1 AND 2"
        )
    return None if row is None else str(row[0])


@pytest.mark.timeout(120)
def test_killed_workers_run_every_compensation_exactly_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app)
    for index in range(WORKFLOWS):
        app.start(flow, workflow_id=f"saga-{index}")

    runs_file = str(tmp_path / "runs.txt")
    workers = {name: spawn(store_config, name, runs_file) for name in ("w1", "w2")}
    kills = 0
    try:
        deadline = time.monotonic() + 30
        while kills < KILLS and time.monotonic() < deadline:
            owner = half_compensated_owner(app)
            if owner not in workers:
                time.sleep(0.01)
                continue
            os.kill(workers[owner].pid, signal.SIGKILL)
            workers[owner].wait()
            kills += 1
            workers[owner] = spawn(store_config, owner, runs_file)

        deadline = time.monotonic() + 60
        pending = set(range(WORKFLOWS))
        while pending and time.monotonic() < deadline:
            pending = {
                i
                for i in pending
                if app.status(f"saga-{i}").status is not ss.WorkflowStatus.FAILED
            }
            time.sleep(0.1)
        assert not pending, f"unfinished: {sorted(pending)}"
    finally:
        for process in workers.values():
            process.kill()
            process.wait()

    assert kills >= 3, "the test never caught a saga half compensated"
    effects = app.state("effects")
    for index in range(WORKFLOWS):
        info = app.status(f"saga-{index}")
        assert info.error is not None and info.error.message == "no seats left"
        assert [s.status for s in info.compensations] == ["ok"] * len(BOOKINGS)
        for what in BOOKINGS:
            item = effects.get(f"saga-{index}:{what}")
            assert item is not None and item.value == 1, (index, what)
    runs = Path(runs_file).read_text().splitlines()
    assert len(runs) >= WORKFLOWS * len(BOOKINGS)
    app.close()


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
