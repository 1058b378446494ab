"""``stateshift demo`` end to end, small: its invariants hold on both backends.

The demo runs as a user runs it (``python -m stateshift demo``) in a child
process, with worker processes SIGKILLed under it. On PostgreSQL the EU
region gets a database of its own, created and dropped here, so residency
is exercised on both backends.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import POSTGRES_URL, require_postgres, subprocess_env

ORDERS = 40


def run_demo(*options: str) -> dict[str, Any]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "stateshift",
            "demo",
            "--orders",
            str(ORDERS),
            "--seed",
            "3",
            "--kill-rate",
            "2",
            "--json",
            *options,
        ],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    report: dict[str, Any] = json.loads(completed.stdout)
    return report


def assert_invariants(report: dict[str, Any]) -> None:
    assert report["ok"] is True, report["violations"]
    assert report["violations"] == []
    assert report["orders"] == ORDERS
    assert report["lost"] == 0
    assert report["duplicate_charges"] == 0
    assert report["duplicate_refunds"] == 0
    assert report["double_credits"] == 0
    assert report["completed"] + report["compensated"] + report["waiting"] == ORDERS
    assert report["completed"] > 0 and report["compensated"] > 0
    assert report["kills"] > 0
    assert report["webhook_deliveries"] > report["webhooks_credited"]
    # One order event per finished order, each delivered exactly once.
    finished = report["completed"] + report["compensated"]
    assert report["order_events"] == report["order_events_delivered"] == finished
    assert report["duplicate_event_deliveries"] == 0
    assert "ss.Saga" in report["features"]["saga"]
    assert "@app.idempotent" in report["features"]["webhook"]
    assert "app.relay_outbox" in report["features"]["events"]


@pytest.fixture
def eu_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the EU region (dropped afterwards)."""
    require_postgres()
    import psycopg

    name = f"demo_eu_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield POSTGRES_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.timeout(120)
def test_the_demo_on_sqlite_loses_no_order_and_charges_no_card_twice() -> None:
    report = run_demo()
    assert_invariants(report)
    assert report["backend"] == "sqlite"
    assert report["features"]["residency"] == "on"
    assert report["misplaced_rows"] == 0
    assert report["residency_audited"] >= report["residency_refused"]


@pytest.mark.timeout(120)
def test_the_demo_on_postgresql_loses_no_order_and_charges_no_card_twice(
    eu_database: str,
) -> None:
    report = run_demo("--store", POSTGRES_URL, "--eu-store", eu_database)
    assert_invariants(report)
    assert report["backend"] == "postgresql"
    assert report["features"]["residency"] == "on"
    assert report["misplaced_rows"] == 0


@pytest.mark.timeout(60)
def test_the_demo_refuses_bad_options() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "stateshift", "demo", "--orders", "0"],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert "--orders" in completed.stderr
