"""A backfill killed with SIGKILL midway, then run again: complete, clean, once.

``stateshift migrate-state`` copies a few thousand JSON Lines records in
small batches through a slow transform; the test kills the process once
some batches are committed, runs the same command again, and checks that
the verification pass is clean and that no item was written twice (every
item is at version 1).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import subprocess_env

RECORDS = 2000
BATCH = 40

TRANSFORM = """
import time

def slow(record):
    time.sleep(0.0005)
    if record["id"].endswith("7"):
        return None
    return record["id"], {"items": record["items"], "owner": record["owner"]}
"""


def _write_source(folder: Path) -> Path:
    path = folder / "legacy.jsonl"
    with path.open("w") as handle:
        for index in range(RECORDS):
            record = {"id": f"cart-{index:05d}", "items": [index], "owner": "u"}
            handle.write(json.dumps(record) + "\n")
    (folder / "slowmap.py").write_text(TRANSFORM)
    return path


def _command(store_config: dict[str, Any], source: Path) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "stateshift",
        "migrate-state",
        str(source),
        "--namespace",
        "carts",
        "--store",
        store_config["store"],
        "--transform",
        "slowmap:slow",
        "--batch-size",
        str(BATCH),
        "--id",
        "crash-backfill",
        "--json",
    ]
    if "schema" in store_config:
        command += ["--schema", store_config["schema"]]
    return command


def _items(app: ss.App) -> list[ss.Item[Any]]:
    found: list[ss.Item[Any]] = []
    cursor = None
    while True:
        page = app.state("carts").scan(limit=1000, cursor=cursor)
        found += page.items
        if page.cursor is None:
            return found
        cursor = page.cursor


def _wait_for_some_items(app: ss.App, process: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the backfill ended before it could be killed"
        try:
            count = len(_items(app))
        except ss.SchemaError:
            count = 0
        if count >= 5 * BATCH:
            return count
        time.sleep(0.02)
    raise AssertionError("the backfill copied nothing in 30 s")


@pytest.mark.timeout(60)
def test_a_backfill_killed_midway_resumes_and_copies_each_item_once(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    source = _write_source(tmp_path)
    command = _command(store_config, source)
    app = ss.App(**store_config, auto_migrate=False)

    process = subprocess.Popen(
        command,
        cwd=tmp_path,
        env=subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        copied_before_kill = _wait_for_some_items(app, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL

    partial = len(_items(app))
    expected = RECORDS - RECORDS // 10
    assert copied_before_kill <= partial < expected
    # Batches commit whole: what was copied is a whole number of batches.
    assert app.status("crash-backfill").status is ss.WorkflowStatus.RUNNING

    again = subprocess.run(
        command,
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        timeout=50,
        check=False,
    )
    assert again.returncode == 0, again.stderr.decode()
    report = json.loads(again.stdout)
    assert report["verify"]["clean"] is True
    assert report["verify"]["matched"] == expected
    assert report["backfill"]["read"] == RECORDS
    assert report["backfill"]["skipped"] == RECORDS // 10

    items = _items(app)
    assert len(items) == expected
    assert {item.version for item in items} == {1}
    assert app.status("crash-backfill").recoveries >= 1
    app.close()
