"""``stateshift worker`` as a real process: it runs work, idles without
spinning, and on SIGTERM finishes the step in flight, hands the workflow
back and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import subprocess_env

APP_MODULE = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import stateshift as ss

    app = ss.App(
        os.environ["SHOP_STORE"],
        schema=os.environ.get("SHOP_SCHEMA") or None,
        worker_id="shop-worker",
    )
    MARKS = Path(os.environ["SHOP_MARKS"])

    @app.step(name="slow")
    def slow(n: int) -> int:
        with MARKS.open("a") as marks:
            marks.write(f"start {n}\\n")
        time.sleep(float(os.environ.get("SHOP_STEP_SECONDS", "0.6")))
        with MARKS.open("a") as marks:
            marks.write(f"end {n}\\n")
        return n

    @app.workflow(name="three-steps")
    def three_steps(tag: str) -> list[int]:
        return [slow(n) for n in range(3)]
    """
)


def define(app: ss.App) -> Any:
    """The same workflow, for the test's own process (steps are instant)."""

    @app.step(name="slow")
    def slow(n: int) -> int:
        return n

    @app.workflow(name="three-steps")
    def three_steps(tag: str) -> list[int]:
        return [slow(n) for n in range(3)]

    return three_steps


def spawn(
    tmp_path: Path, store_config: dict[str, Any], *options: str, **env: str
) -> subprocess.Popen[str]:
    (tmp_path / "shop.py").write_text(APP_MODULE)
    environment = subprocess_env(
        SHOP_STORE=store_config["store"],
        SHOP_SCHEMA=store_config.get("schema", ""),
        SHOP_MARKS=str(tmp_path / "marks.txt"),
        **env,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "stateshift", "worker", "shop:app", *options],
        cwd=tmp_path,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate: Any, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached in time")


def marks(tmp_path: Path) -> list[str]:
    path = tmp_path / "marks.txt"
    return path.read_text().splitlines() if path.exists() else []


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.timeout(90)
def test_sigterm_finishes_the_step_in_flight_hands_back_and_exits_zero(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app)
    app.store.ensure_schema()
    worker = spawn(tmp_path, store_config, "--concurrency", "2")
    try:
        app.start(flow, "a", workflow_id="order-1")
        wait_for(lambda: "start 0" in marks(tmp_path))
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=30)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert worker.returncode == 0, stderr

    # The step in flight ran to its end and was recorded; nothing further
    # was started, and the workflow is due again for the next worker.
    assert marks(tmp_path) == ["start 0", "end 0"]
    info = app.status("order-1")
    assert info.status is ss.WorkflowStatus.PENDING
    assert [(s.name, s.status) for s in info.steps] == [("slow", "ok")]
    assert info.due_at is not None

    assert app.run_until_idle().finished == 1
    assert app.status("order-1").result == [0, 1, 2]
    app.close()


@pytest.mark.timeout(90)
def test_an_idle_worker_sleeps_yet_picks_up_new_work_within_a_second(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    app = ss.App(**store_config)
    flow = define(app)
    app.store.ensure_schema()
    worker = spawn(tmp_path, store_config, "--concurrency", "2", SHOP_STEP_SECONDS="0")
    try:
        app.start(flow, "warm-up", workflow_id="warm-up")
        wait_for(lambda: app.status("warm-up").status.finished)

        before = cpu_seconds(worker.pid)
        time.sleep(2.0)
        idle_cpu = cpu_seconds(worker.pid) - before
        assert idle_cpu < 0.3, f"an idle worker burned {idle_cpu:.2f} s of CPU"

        started = time.monotonic()
        app.start(flow, "b", workflow_id="order-2")
        wait_for(lambda: app.status("order-2").status.finished, 10)
        assert time.monotonic() - started < 2.5
        assert app.status("order-2").result == [0, 1, 2]
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.communicate(timeout=30)
    assert worker.returncode == 0
    app.close()
