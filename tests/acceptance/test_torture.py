"""Kill -9 torture: hundreds of workflows, workers killed again and again.

Two worker processes run 200 workflows of four steps. The test kills a
random worker with SIGKILL ten times while work remains, restarting it under
the same worker id each time. Every workflow must finish with the right
result; every step's effect, written through the store inside the step,
must exist exactly once; and the step bodies must have run more often than
there are steps, which proves that killed attempts were run again.
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

WORKFLOWS = 200
STEPS = 4
KILLS = 10


def define(app: ss.App, runs_file: str | None = None) -> Any:
    """Register the test's step and workflow on ``app``."""

    @app.step(name="torture-effect")
    def effect(value: int) -> int:
        context = ss.current()
        assert context is not None and context.seq is not None
        if runs_file:
            with open(runs_file, "a") as handle:
                handle.write(f"{app.worker_id} {context.workflow_id}:{context.seq}\n")
        unit = current_unit()
        assert unit is not None
        unit.bind(app.store)
        row = (context.workflow_id, context.seq)
        unit.add(
            lambda tx: tx.execute(
                "INSERT INTO {p}torture_effects (workflow_id, seq) VALUES (?, ?)", row
            )
        )
        time.sleep(random.uniform(0.002, 0.01))
        return value + 1

    @app.workflow(name="torture-flow")
    def flow(start: int) -> int:
        value = start
        for _ in range(STEPS):
            value = effect(value)
        return value

    return flow


def worker(config: dict[str, Any], worker_id: str, runs_file: str) -> None:
    app = ss.App(**config, worker_id=worker_id, lease_seconds=3.0, max_recoveries=100)
    define(app, runs_file)
    while True:
        if app.run_until_idle().ran == 0:
            time.sleep(0.01)


def spawn(config: dict[str, Any], worker_id: str, runs_file: str) -> Any:
    from conftest import subprocess_env  # the worker process has no conftest

    return subprocess.Popen(
        [sys.executable, __file__, json.dumps(config), worker_id, runs_file],
        env=subprocess_env(),
    )


def runs_by(runs_file: str, worker_id: str) -> int:
    try:
        lines = Path(runs_file).read_text().splitlines()
    except FileNotFoundError:
        return 0
    return sum(1 for line in lines if line.startswith(f"{worker_id} "))


def wait_until_busy(runs_file: str, worker_id: str, runs: int) -> None:
    deadline = time.monotonic() + 10
    while runs_by(runs_file, worker_id) < runs and time.monotonic() < deadline:
        time.sleep(0.005)


def unfinished(app: ss.App) -> int:
    with app.store.read() as tx:
        row = tx.fetchone(
            "SELECT COUNT(*) FROM {p}workflows WHERE status <> 'succeeded'"
        )
    assert row is not None
    return int(row[0])


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_hundreds_of_workflows_survive_repeated_kills_with_effects_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app)
    with app.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}torture_effects (workflow_id TEXT, seq INTEGER)")
    for index in range(WORKFLOWS):
        app.start(flow, index * 10, workflow_id=f"t-{index}")

    runs_file = str(tmp_path / "runs.txt")
    workers = {name: spawn(store_config, name, runs_file) for name in ("w1", "w2")}
    rng = random.Random(11)
    kills = 0
    try:
        while kills < KILLS and unfinished(app) > WORKFLOWS // 10:
            # Kill a worker only once it is busy again (a fresh process
            # spends its first few hundred milliseconds importing), at a
            # random moment of its work.
            name = rng.choice(sorted(workers))
            wait_until_busy(runs_file, name, runs_by(runs_file, name) + 3)
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(workers[name].pid, signal.SIGKILL)
            workers[name].wait()
            kills += 1
            workers[name] = spawn(store_config, name, runs_file)

        deadline = time.monotonic() + 40
        while unfinished(app) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert unfinished(app) == 0
    finally:
        for process in workers.values():
            process.kill()
            process.wait()

    assert kills >= KILLS // 2, f"only {kills} kills landed while work remained"
    with app.store.read() as tx:
        results = tx.fetchall("SELECT workflow_id, result FROM {p}workflows")
        effects = tx.fetchall(
            "SELECT workflow_id, seq, COUNT(*) FROM {p}torture_effects "
            "GROUP BY workflow_id, seq"
        )
    assert len(results) == WORKFLOWS
    for workflow_id, result in results:
        index = int(workflow_id.split("-")[1])
        assert app.codec.decode(bytes(result)) == index * 10 + STEPS
    assert len(effects) == WORKFLOWS * STEPS
    assert {row[2] for row in effects} == {1}
    runs = [line.split()[1] for line in Path(runs_file).read_text().splitlines()]
    assert len(runs) > WORKFLOWS * STEPS, "no killed attempt was run again"
    assert set(runs) == {f"{w}:{s}" for w, s, _ in effects}
    app.close()


if __name__ == "__main__":
    worker(json.loads(sys.argv[1]), sys.argv[2], sys.argv[3])
