"""``stateshift dev``: the HTTP API and tick loops, in-process or ephemeral.

With ``--ephemeral`` every tick runs in its own process; with ``--chaos``
invocations are killed at random, and workflows still all finish.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import subprocess_env
from runtime_support.servers import free_port, start_server, stop_server

TESTS = Path(__file__).resolve().parent.parent


def dev_server(
    tmp_path: Path, target: str, *options: str, **env: str
) -> tuple[Any, str]:
    port = free_port()
    environment = subprocess_env(**env)
    environment["PYTHONPATH"] += f":{TESTS}"
    command = [sys.executable, "-m", "stateshift", "dev", target]
    command += ["--port", str(port), "--tick", "0.1", *options]
    process = start_server(command, port, env=environment, cwd=tmp_path)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(params=["in-process", "ephemeral"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, Path, int, str]]:
    runs = tmp_path / "runs.json"
    options = ["--workers", "1"]
    if request.param == "ephemeral":
        options.append("--ephemeral")
    process, url = dev_server(
        tmp_path,
        "runtime_support.dev_app:app",
        *options,
        STATESHIFT_TEST_RUNS=str(runs),
    )
    try:
        yield url, runs, process.pid, request.param
    finally:
        stop_server(process)


def test_the_dev_server_serves_the_api_and_runs_ticks(
    served: tuple[str, Path, int, str],
) -> None:
    url, runs, server_pid, mode = served
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get("/health").json()["status"] == "ok"
        answer = client.post("/workflows/greet/start", json={"args": ["dev"]})
        assert answer.status_code == 200 and answer.json()["result"] == "hello dev"
    deadline = time.monotonic() + 10
    pids: list[int] = []
    while time.monotonic() < deadline and len(pids) < 3:
        time.sleep(0.1)
        if runs.exists():
            pids = json.loads(runs.read_text()).get("pids", [])
    assert len(pids) >= 3
    if mode == "ephemeral":
        assert len(set(pids)) == len(pids) and server_pid not in pids
    else:
        assert set(pids) == {server_pid}


def test_a_bad_target_is_refused(tmp_path: Path) -> None:
    import subprocess

    result = subprocess.run(
        [sys.executable, "-m", "stateshift", "dev", "no_such_module_here"],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "module:attribute" in result.stderr


def test_under_chaos_every_workflow_still_finishes(tmp_path: Path) -> None:
    pytest.importorskip("stateshift.workflows")
    store = f"sqlite:///{tmp_path / 'dev.db'}"
    process, url = dev_server(
        tmp_path,
        "runtime_support.dev_engine_app:app",
        "--chaos",
        "0.3",
        "--seed",
        "7",
        "--workers",
        "2",
        STATESHIFT_STORE=store,
        STATESHIFT_LEASE_SECONDS="2",
    )
    expected = {f"s-{n}": n + 2 * n + 3 * n for n in range(6)}
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for workflow_id in expected:
                n = int(workflow_id.split("-")[1])
                body = {"args": [n, 2 * n, 3 * n], "workflow_id": workflow_id}
                while (
                    client.post("/workflows/sum3/start", json=body).status_code == 503
                ):
                    pass  # killed: the same id again is safe
            results: dict[str, Any] = {}
            deadline = time.monotonic() + 60
            while len(results) < len(expected) and time.monotonic() < deadline:
                for workflow_id in expected.keys() - results.keys():
                    answer = client.get(f"/runs/{workflow_id}")
                    if (
                        answer.status_code == 200
                        and answer.json()["status"] == "succeeded"
                    ):
                        results[workflow_id] = answer.json()["result"]
                time.sleep(0.2)
    finally:
        output = stop_server(process)
    assert results == expected
    assert "ended with -9" in output  # chaos did kill invocations


def test_the_dev_example_runs_in_process_on_the_real_engine(tmp_path: Path) -> None:
    pytest.importorskip("stateshift.workflows")
    example = TESTS.parent / "examples" / "deploy" / "dev"
    port = free_port()
    environment = subprocess_env()
    environment["PYTHONPATH"] += f":{example}"
    command = [sys.executable, "-m", "stateshift", "dev", "app:app"]
    command += ["--port", str(port), "--tick", "0.2"]
    process = start_server(command, port, env=environment, cwd=tmp_path)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            started = client.post(
                "/workflows/checkout/start",
                json={"args": ["o-1"], "workflow_id": "o-1"},
            )
            assert started.status_code == 202, started.text
            sent = client.post("/runs/o-1/events/approval", json={"payload": "yes"})
            assert sent.status_code == 202
            deadline = time.monotonic() + 10
            body: dict[str, Any] = {}
            while time.monotonic() < deadline and body.get("status") != "succeeded":
                time.sleep(0.2)
                body = client.get("/runs/o-1").json()
    finally:
        stop_server(process)
    assert body["status"] == "succeeded", body
    assert body["result"] == {"reservation": "reserved o-1", "decision": "yes"}
