"""Real worker processes killed with SIGKILL at random moments.

Two worker processes run about thirty multi-step workflows; the test kills
one of them several times and restarts it under the same worker id. Every
workflow must finish, and the store-written effect of every step must exist
exactly once, however often a step body itself ran.
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
from stateshift.unit import current_unit

WORKFLOWS = 30
STEPS = 4


def define(app: ss.App, runs_file: str | None = None) -> Any:
    """Register the test's step and workflow on ``app``."""

    @app.step(name="effect")
    def effect(index: int) -> int:
        context = ss.current()
        assert context is not None and context.seq is not None
        if runs_file:
            with open(runs_file, "a") as handle:
                handle.write(f"{context.workflow_id}:{context.seq}\n")
        unit = current_unit()
        assert unit is not None
        unit.bind(app.store)
        workflow_id, seq = context.workflow_id, context.seq
        unit.add(
            lambda tx: tx.execute(
                "INSERT INTO {p}crash_effects (workflow_id, seq) VALUES (?, ?)",
                (workflow_id, seq),
            )
        )
        time.sleep(random.uniform(0.005, 0.03))
        return index + 1

    @app.workflow(name="crash-flow")
    def flow(start: int) -> int:
        value = start
        for _ in range(STEPS):
            value = effect(value)
        return value

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


@pytest.mark.timeout(120)
def test_killed_workers_lose_nothing_and_repeat_no_effect(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app)
    with app.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}crash_effects (workflow_id TEXT, seq INTEGER)")
    for index in range(WORKFLOWS):
        app.start(flow, index * 10, workflow_id=f"crash-{index}")

    runs_file = str(tmp_path / "runs.txt")
    workers = {name: spawn(store_config, name, runs_file) for name in ("w1", "w2")}
    rng = random.Random(7)
    try:
        for _ in range(4):
            time.sleep(rng.uniform(0.3, 0.8))
            name = rng.choice(sorted(workers))
            os.kill(workers[name].pid, signal.SIGKILL)
            workers[name].wait()
            workers[name] = spawn(store_config, name, runs_file)

        deadline = time.monotonic() + 60
        pending = set(range(WORKFLOWS))
        while pending and time.monotonic() < deadline:
            pending = {
                i
                for i in pending
                if app.status(f"crash-{i}").status is not ss.WorkflowStatus.SUCCEEDED
            }
            time.sleep(0.1)
        assert not pending, f"unfinished: {sorted(pending)}"
    finally:
        for process in workers.values():
            process.kill()
            process.wait()

    for index in range(WORKFLOWS):
        assert app.status(f"crash-{index}").result == index * 10 + STEPS
    with app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT workflow_id, seq, COUNT(*) FROM {p}crash_effects "
            "GROUP BY workflow_id, seq"
        )
    assert len(rows) == WORKFLOWS * STEPS
    assert {row[2] for row in rows} == {1}
    runs = Path(runs_file).read_text().splitlines()
    assert len(runs) >= WORKFLOWS * STEPS
    app.close()


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
