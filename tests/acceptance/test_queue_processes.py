"""Queues across real processes: kills at the worst moments, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import stateshift as ss
from stateshift.cli.main import main

SRC = str(Path(__file__).resolve().parents[2] / "src")

WORKER = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    import stateshift as ss
    from stateshift.unit import current_unit

    marks = Path(sys.argv[1])
    app = ss.App()
    q = app.queue("kill", visibility_timeout=0.5, backoff=0)

    @q.task(name="kill.effect")
    def effect(n):
        unit = current_unit()
        unit.add(lambda tx: tx.execute(
            "UPDATE {p}t_effects SET n = n + 1 WHERE k = ?", (str(n),)))
        mark = marks / f"{n}.killed"
        if n == 1 and not mark.exists():
            mark.touch()
            # Killed after the effect and the ack committed, before the
            # worker's loop learns of it.
            unit.after_commit.append(lambda: os._exit(3))
        if n == 2 and not mark.exists():
            mark.touch()
            # Killed while running: nothing committed, the claim times out.
            os._exit(4)

    q.work(20)
    """
)


def _env(store_config: dict[str, Any]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STATESHIFT_")}
    env["PYTHONPATH"] = SRC
    env["STATESHIFT_STORE"] = store_config["store"]
    if "schema" in store_config:
        env["STATESHIFT_SCHEMA"] = store_config["schema"]
    return env


def test_a_worker_killed_around_its_commit_applies_each_effect_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    with app.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}t_effects (k TEXT PRIMARY KEY, n INTEGER)")
        for n in range(4):
            tx.execute("INSERT INTO {p}t_effects (k, n) VALUES (?, 0)", (str(n),))
    q = app.queue("kill", visibility_timeout=0.5, backoff=0)

    @q.task(name="kill.effect")
    def effect(n: int) -> None:
        """Runs only in the worker processes."""

    ids = [q.enqueue(effect, n) for n in range(4)]

    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    codes = []
    for _ in range(5):
        done = subprocess.run(
            [sys.executable, str(script), str(tmp_path)],
            env=_env(store_config),
            cwd=tmp_path,
            timeout=60,
            capture_output=True,
            text=True,
        )
        codes.append(done.returncode)
        if done.returncode == 0 and all(q.status(i) == "done" for i in ids):
            break
        assert done.returncode in (3, 4), done.stderr
        time.sleep(0.6)  # let the killed worker's claim time out

    assert 3 in codes and 4 in codes
    with app.store.read() as tx:
        rows = dict(tx.fetchall("SELECT k, n FROM {p}t_effects"))
    assert rows == {"0": 1, "1": 1, "2": 1, "3": 1}
    assert [q.status(i) for i in ids] == ["done"] * 4
    app.close()


def test_the_cli_lists_shows_and_redrives_queues(
    store_config: dict[str, Any], capsys: Any
) -> None:
    app = ss.App(**store_config)
    q = app.queue("billing", max_attempts=1)

    @q.task
    def fail(n: int) -> None:
        raise RuntimeError(f"card {n} declined")

    @q.task
    def succeed() -> None:
        pass

    dead_id = q.enqueue(fail, 7)
    q.enqueue(succeed)
    q.enqueue(fail, 8, delay=3600)
    q.work(5)
    args = ["--store", store_config["store"]]
    if "schema" in store_config:
        args += ["--schema", store_config["schema"]]

    assert main(["queues", "list", "--json", *args]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed == {"billing": {"dead": 1, "done": 1, "ready": 1}}

    assert main(["queues", "show", "billing", *args]) == 0
    shown = capsys.readouterr().out
    assert dead_id in shown and "RuntimeError: card 7 declined" in shown

    assert main(["queues", "redrive", "billing", "--id", "nope", *args]) == 1
    capsys.readouterr()
    assert main(["queues", "redrive", "billing", "--id", dead_id, *args]) == 0
    assert "redrove 1 message of queue billing" in capsys.readouterr().out
    assert q.status(dead_id) == "ready"
    app.close()


FLOW_WORKER = textwrap.dedent(
    """
    import os, signal, sys, time
    from pathlib import Path
    import stateshift as ss
    import stateshift.workflows._inline as inline

    marks, worker, crash = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == "crash"
    app = ss.App(worker_id=worker, lease_seconds=1.0)
    q = app.queue("flows")

    @app.step()
    def count(n):
        with open(marks / f"{n}.ran", "a") as runs:
            runs.write(worker + "\\n")
        return n + 1

    @app.workflow(name="flows.flow")
    def flow(n):
        return count(n) * 10

    if crash:
        def killed(*args, **kwargs):
            # The acknowledgements and the leased inserts have committed;
            # none of the workflows has run yet.
            os.kill(os.getpid(), signal.SIGKILL)

        inline.run_started = killed
        app.run_until_idle()
    else:
        ids = sys.argv[4:]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            app.run_until_idle()
            if all(app.status(i).status.value == "succeeded" for i in ids):
                break
            time.sleep(0.05)
    """
)


def test_a_worker_killed_after_acknowledging_leaves_each_workflow_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    q = app.queue("flows")

    @app.workflow(name="flows.flow")
    def flow(n: int) -> int:
        """Runs only in the worker processes."""
        raise AssertionError

    ids = [f"queue-{q.enqueue(flow, n)}" for n in range(3)]
    script = tmp_path / "flow_worker.py"
    script.write_text(FLOW_WORKER)

    def worker(name: str, mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(tmp_path), name, mode, *ids],
            env=_env(store_config),
            cwd=tmp_path,
            timeout=60,
            capture_output=True,
            text=True,
        )

    crashed = worker("a", "crash")
    assert crashed.returncode == -9, crashed.stderr
    # Every message is done and its workflow exists, leased to the dead worker.
    assert [q.status(i.removeprefix("queue-")) for i in ids] == ["done"] * 3
    with app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT workflow_id, status, lease_owner FROM {p}workflows "
            "ORDER BY workflow_id"
        )
    assert rows == [(i, "running", "a") for i in sorted(ids)]

    finished = worker("b", "finish")
    assert finished.returncode == 0, finished.stderr
    for n, workflow_id in enumerate(ids):
        info = app.status(workflow_id)
        assert info.status == ss.WorkflowStatus.SUCCEEDED
        assert info.result == (n + 1) * 10
        # The step ran once, on the worker that took the workflow over.
        assert (tmp_path / f"{n}.ran").read_text() == "b\n"
    with app.store.read() as tx:
        count = tx.fetchone("SELECT COUNT(*) FROM {p}workflows")
    assert count == (3,)
    app.close()
