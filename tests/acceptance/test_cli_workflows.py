"""The ``stateshift`` commands for operators, against real stores:
``workflows list|show|cancel|resume|send-event``, ``tick`` and ``doctor``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import subprocess_env
from stateshift.cli.main import main


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stateshift", *args],
        cwd=tmp_path,
        env=subprocess_env(**env),
        capture_output=True,
        text=True,
        timeout=60,
    )


def run_main(
    capsys: pytest.CaptureFixture[str], *args: str
) -> subprocess.CompletedProcess[str]:
    """The command in this process (fast); the same result shape as ``cli``."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def store_options(store_config: dict[str, Any]) -> list[str]:
    options = ["--store", store_config["store"]]
    if "schema" in store_config:
        options += ["--schema", store_config["schema"]]
    return options


def define(app: ss.App) -> tuple[Any, Any]:
    @app.step(name="double")
    def double(n: int) -> int:
        return n * 2

    @app.workflow(name="approval")
    def approval(n: int) -> dict[str, Any]:
        doubled = double(n)
        answer = ss.wait_for_event("approve")
        return {"doubled": doubled, "answer": answer}

    @app.workflow(name="later")
    def later() -> str:
        return "done"

    return approval, later


def test_list_show_send_event_cancel_and_resume(
    store_config: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    app = ss.App(**store_config)
    approval, later = define(app)
    app.run(approval, 21, workflow_id="a-1")
    app.run(approval, 1, workflow_id="a-2")
    app.start(later, workflow_id="l-1")
    options = store_options(store_config)

    listed = run_main(
        capsys, "workflows", "list", "--status", "waiting", "--json", *options
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert sorted(r["workflow_id"] for r in rows) == ["a-1", "a-2"]
    assert rows[0]["waiting_for"] == "event 'approve'"
    table = run_main(capsys, "workflows", "list", "--name", "later", *options)
    assert "l-1" in table.stdout and "pending" in table.stdout

    shown = run_main(capsys, "workflows", "show", "a-1", *options)
    assert shown.returncode == 0, shown.stderr
    assert "waits for: event 'approve'" in shown.stdout
    assert "double" in shown.stdout and "attempts=1" in shown.stdout

    sent = run_main(
        capsys,
        "workflows",
        "send-event",
        "a-1",
        "approve",
        '{"by": "ops"}',
        "--event-id",
        "e1",
        *options,
    )
    assert sent.returncode == 0 and "delivered: queued" in sent.stdout
    again = run_main(
        capsys,
        "workflows",
        "send-event",
        "a-1",
        "approve",
        "{}",
        "--event-id",
        "e1",
        *options,
    )
    assert again.returncode == 1 and "duplicate" in again.stdout
    app.run_until_idle()
    detail = json.loads(
        run_main(capsys, "workflows", "show", "a-1", "--json", *options).stdout
    )
    assert detail["status"] == "succeeded"
    assert detail["result"] == {"doubled": 42, "answer": {"by": "ops"}}

    cancelled = run_main(capsys, "workflows", "cancel", "a-2", *options)
    assert cancelled.returncode == 0, cancelled.stderr
    app.run_until_idle()
    assert app.status("a-2").status is ss.WorkflowStatus.CANCELLED
    assert run_main(capsys, "workflows", "cancel", "a-2", *options).returncode == 1

    with app.store.transaction() as tx:
        tx.execute(
            "UPDATE {p}workflows SET status = 'dead', due_at = NULL "
            "WHERE workflow_id = 'l-1'"
        )
    resumed = run_main(capsys, "workflows", "resume", "l-1", *options)
    assert resumed.returncode == 0 and "resumed" in resumed.stdout
    assert app.status("l-1").status is ss.WorkflowStatus.PENDING

    missing = run_main(capsys, "workflows", "show", "nope", *options)
    assert missing.returncode == 1 and "nope" in missing.stderr
    app.close()


def test_tick_runs_the_apps_code_and_doctor_repairs(
    store_config: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "jobs.py").write_text(
        textwrap.dedent(
            """
            import os
            import stateshift as ss

            app = ss.App(
                os.environ["JOBS_STORE"], schema=os.environ.get("JOBS_SCHEMA") or None
            )

            @app.workflow(name="later")
            def later() -> str:
                return "done"
            """
        )
    )
    env = {
        "JOBS_STORE": store_config["store"],
        "JOBS_SCHEMA": store_config.get("schema", ""),
    }
    app = ss.App(**store_config)
    _, later = define(app)
    app.start(later, workflow_id="l-1")
    app.start(later, workflow_id="l-2")
    with app.store.transaction() as tx:
        tx.execute("UPDATE {p}workflows SET due_at = NULL WHERE workflow_id = 'l-2'")
    options = store_options(store_config)

    ticked = cli(tmp_path, "tick", "jobs:app", "--budget", "5", "--json", **env)
    assert ticked.returncode == 0, ticked.stderr
    assert json.loads(ticked.stdout)["finished"] == 1
    assert app.status("l-1").result == "done"

    sick = run_main(capsys, "doctor", *options)
    assert sick.returncode == 1
    assert "pending_not_due" in sick.stdout and "l-2" in sick.stdout
    fixed = run_main(capsys, "doctor", "--repair", "--json", *options)
    assert fixed.returncode == 0, fixed.stdout
    assert json.loads(fixed.stdout)["findings"][0]["repaired"] is True
    cli(tmp_path, "tick", "jobs:app", **env)
    assert app.status("l-2").result == "done"
    healthy = run_main(capsys, "doctor", *options)
    assert healthy.returncode == 0 and "wake-up source" in healthy.stdout

    bad = run_main(capsys, "tick", "jobs_missing:app")
    assert bad.returncode == 1 and "no module named 'jobs_missing'" in bad.stderr
    app.close()
