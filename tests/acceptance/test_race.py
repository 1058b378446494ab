"""Races between real processes over the same workflows.

* Six processes start one new workflow id and recover one abandoned
  workflow at the same moment: each body runs alone (never two at once),
  and every step's effect happens once.
* A worker frozen with SIGSTOP past its lease, and thawed after another
  worker took the workflow over and finished it, has its late checkpoint
  and its writes refused.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.unit import current_unit

RACERS = 6
STEPS = 5


def define(app: ss.App, folder: str) -> Any:
    """Register the test's step and workflow on ``app``."""

    @app.step(name="race-effect")
    def effect(value: int) -> int:
        context = ss.current()
        assert context is not None and context.seq is not None
        # An exclusive marker per workflow: creating it fails if another
        # process is inside a body of the same workflow right now.
        marker = Path(folder) / f"inside-{context.workflow_id}"
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            with open(Path(folder) / "overlaps.txt", "a") as handle:
                handle.write(f"{context.workflow_id}:{context.seq}\n")
            raise
        try:
            with open(Path(folder) / "runs.txt", "a") as handle:
                handle.write(f"{app.worker_id} {context.workflow_id}:{context.seq}\n")
            unit = current_unit()
            assert unit is not None
            unit.bind(app.store)
            row = (context.workflow_id, context.seq, app.worker_id)
            unit.add(
                lambda tx: tx.execute(
                    "INSERT INTO {p}race_effects (workflow_id, seq, worker) "
                    "VALUES (?, ?, ?)",
                    row,
                )
            )
            if app.worker_id == "sleepy" and context.seq == 1:
                (Path(folder) / "sleepy-inside").touch()
                time.sleep(4.0)  # frozen by the test meanwhile
            else:
                time.sleep(0.02)
        finally:
            marker.unlink(missing_ok=True)
        return value + 1

    @app.workflow(name="race-flow")
    def flow(start: int) -> int:
        value = start
        for _ in range(STEPS):
            value = effect(value)
        return value

    return flow


def racer(config: dict[str, Any], worker_id: str, folder: str) -> None:
    """Wait for the starting gun, then start and recover at once."""
    app = ss.App(**config, worker_id=worker_id, lease_seconds=10.0)
    flow = define(app, folder)
    gun = Path(folder) / "go"
    while not gun.exists():
        time.sleep(0.001)
    summary: dict[str, Any] = {"lease_lost": 0}
    for workflow_id, start in (("race-new", 0), ("race-abandoned", 100)):
        try:
            app.run(flow, start, workflow_id=workflow_id)
        except ss.LeaseLost:
            summary["lease_lost"] += 1
    app.run_until_idle()
    (Path(folder) / f"done-{worker_id}").write_text(json.dumps(summary))


def sleeper(config: dict[str, Any], worker_id: str, folder: str) -> None:
    """Run due work once with a short lease; report how it ended."""
    app = ss.App(**config, worker_id=worker_id, lease_seconds=1.0)
    define(app, folder)
    summary = app.run_until_idle()
    (Path(folder) / f"done-{worker_id}").write_text(
        json.dumps({"lease_lost": summary.lease_lost, "finished": summary.finished})
    )


def spawn(role: str, config: dict[str, Any], worker_id: str, folder: str) -> Any:
    from conftest import subprocess_env  # the child process has no conftest

    return subprocess.Popen(
        [sys.executable, __file__, role, json.dumps(config), worker_id, folder],
        env=subprocess_env(),
    )


def effects(app: ss.App) -> list[tuple[Any, ...]]:
    with app.store.read() as tx:
        return tx.fetchall(
            "SELECT workflow_id, seq, worker FROM {p}race_effects "
            "ORDER BY workflow_id, seq"
        )


def prepare(app: ss.App) -> None:
    with app.store.transaction() as tx:
        tx.execute(
            "CREATE TABLE {p}race_effects (workflow_id TEXT, seq INTEGER, worker TEXT)"
        )


def wait_for(path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.01)


@pytest.mark.timeout(90)
def test_racing_processes_never_run_one_body_twice_at_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app, str(tmp_path))
    prepare(app)
    # A workflow claimed by a worker that then vanished: its short lease has
    # run out by the time the racers arrive.
    app.start(flow, 100, workflow_id="race-abandoned")
    ghost = ss.App(**store_config, worker_id="ghost", lease_seconds=0.5)
    define(ghost, str(tmp_path))
    assert ghost._workflow_engine.claim_next() is not None
    ghost.close()

    racers = [
        spawn("racer", store_config, f"r{i}", str(tmp_path)) for i in range(RACERS)
    ]
    try:
        time.sleep(1.5)  # every racer imported and waits for the gun
        (tmp_path / "go").touch()
        for process in racers:
            assert process.wait(timeout=60) == 0
    finally:
        for process in racers:
            process.kill()
            process.wait()

    assert not (tmp_path / "overlaps.txt").exists()
    assert app.status("race-new").result == STEPS
    assert app.status("race-abandoned").result == 100 + STEPS
    assert app.status("race-abandoned").recoveries >= 1
    rows = effects(app)
    expected = [
        (workflow_id, seq)
        for workflow_id in ("race-abandoned", "race-new")
        for seq in range(STEPS)
    ]
    assert [(w, s) for w, s, _ in rows] == expected
    app.close()


@pytest.mark.timeout(90)
def test_a_worker_thawed_after_a_takeover_has_its_writes_refused(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app, str(tmp_path))
    prepare(app)
    app.start(flow, 0, workflow_id="frozen")

    sleepy = spawn("sleeper", store_config, "sleepy", str(tmp_path))
    try:
        wait_for(tmp_path / "sleepy-inside", 30)
        os.kill(sleepy.pid, signal.SIGSTOP)
        time.sleep(1.5)  # past the one-second lease

        (tmp_path / "inside-frozen").unlink()  # the frozen body's marker
        rescuer = spawn("sleeper", store_config, "rescuer", str(tmp_path))
        assert rescuer.wait(timeout=60) == 0
        assert app.status("frozen").result == STEPS

        os.kill(sleepy.pid, signal.SIGCONT)
        assert sleepy.wait(timeout=30) == 0
    finally:
        if sleepy.poll() is None:
            os.kill(sleepy.pid, signal.SIGCONT)
        sleepy.kill()
        sleepy.wait()

    report = json.loads((tmp_path / "done-sleepy").read_text())
    assert report == {"lease_lost": 1, "finished": 0}
    rows = effects(app)
    assert [(w, s) for w, s, _ in rows] == [("frozen", s) for s in range(STEPS)]
    assert [worker for _, _, worker in rows] == ["sleepy"] + ["rescuer"] * 4
    info = app.status("frozen")
    assert info.status is ss.WorkflowStatus.SUCCEEDED
    assert [s.attempts for s in info.steps] == [1] * STEPS
    app.close()


if __name__ == "__main__":
    role = sys.argv[1]
    target = racer if role == "racer" else sleeper
    target(json.loads(sys.argv[2]), sys.argv[3], sys.argv[4])
