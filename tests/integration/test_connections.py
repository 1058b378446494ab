"""Connections under serverless fan-out: one per process, PgBouncer for the rest.

A dedicated role and database with ``CONNECTION LIMIT 50`` stand for a
server with ``max_connections = 50`` (the server's own settings are left
alone). 200 cold invocations start at once; through PgBouncer they wait
for a connection (back-pressure) instead of failing, and PostgreSQL never
sees more than the pool.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from conftest import POSTGRES_URL, require_postgres
from runtime_support.pgbouncer import Bouncer, pgbouncer
from stateshift.config import load_settings
from stateshift.errors import StoreUnavailable
from stateshift.runtime.deadline import Deadline
from stateshift.store import open_store

LIMIT = 50
INVOCATIONS = 200
BUDGET_SECONDS = 15.0


@pytest.fixture(scope="module")
def role() -> Iterator[str]:
    require_postgres()
    name = f"ss_conn_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN CONNECTION LIMIT {LIMIT}")
        admin.execute(f"CREATE DATABASE {name} OWNER {name} CONNECTION LIMIT {LIMIT}")
    yield name
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture(scope="module")
def bouncer(role: str) -> Iterator[Bouncer]:
    with pgbouncer(pool_size=20, max_client_conn=INVOCATIONS + 50, users=(role,)) as b:
        yield b


def direct_url(role: str) -> str:
    return POSTGRES_URL.rsplit("/", 1)[0].replace("postgres@", f"{role}@") + f"/{role}"


def backends(role: str) -> int:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = %s", (role,)
        ).fetchone()
    assert row is not None
    return int(row[0])


class Sampler(threading.Thread):
    """Counts the role's server connections while a test runs."""

    def __init__(self, role: str) -> None:
        super().__init__(daemon=True)
        self.role = role
        self.peak = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, backends(self.role))
            time.sleep(0.02)

    def stop(self) -> int:
        self.done.set()
        self.join()
        return self.peak


def test_the_limit_is_real(role: str) -> None:
    held = [psycopg.connect(direct_url(role)) for _ in range(LIMIT)]
    try:
        with pytest.raises(psycopg.OperationalError, match="too many connections"):
            psycopg.connect(direct_url(role))
    finally:
        for connection in held:
            connection.close()


def test_one_store_holds_at_most_one_connection_by_default(role: str) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    store = open_store(load_settings({"store": direct_url(role), "schema": schema}))
    # Backends of connections closed by an earlier test take a moment to go.
    settle_until = time.monotonic() + 10
    while backends(role) and time.monotonic() < settle_until:
        time.sleep(0.05)
    sampler = Sampler(role)
    sampler.start()
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                with store.transaction() as tx:
                    tx.execute("SELECT pg_sleep(0.005)")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    peak = sampler.stop()
    store.close()
    assert errors == [] and peak == 1


def test_200_cold_invocations_wait_for_connections_instead_of_failing(
    role: str, bouncer: Bouncer
) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    start_line = threading.Barrier(INVOCATIONS)
    durations: list[float] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def cold_invocation(number: int) -> None:
        # A fresh process: its own store (migrating on first use), one
        # transaction of work, then it is frozen or gone.
        start_line.wait()
        deadline = Deadline.after(BUDGET_SECONDS)
        settings = load_settings(
            {
                "store": bouncer.url(role, role),
                "schema": schema,
                "connect_timeout_seconds": BUDGET_SECONDS,
            }
        )
        store = open_store(settings)
        began = time.monotonic()
        try:
            with store.transaction() as tx:
                tx.execute(
                    "INSERT INTO {p}meta (name, value) VALUES (?, ?)",
                    (f"invocation-{number}", "done"),
                )
                tx.execute("SELECT pg_sleep(0.01)")
            assert deadline.remaining_seconds() > 0
        except BaseException as exc:
            with lock:
                errors.append(exc)
        finally:
            store.close()
            with lock:
                durations.append(time.monotonic() - began)

    sampler = Sampler(role)
    sampler.start()
    threads = [
        threading.Thread(target=cold_invocation, args=(n,)) for n in range(INVOCATIONS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=BUDGET_SECONDS * 2)
    peak = sampler.stop()

    assert [e for e in errors if isinstance(e, StoreUnavailable)] == []
    assert errors == []
    assert peak <= bouncer.pool_size < LIMIT
    durations.sort()
    p99 = durations[int(len(durations) * 0.99) - 1]
    assert max(durations) < BUDGET_SECONDS
    print(
        f"\n{INVOCATIONS} cold invocations: peak {peak} server connections, "
        f"median {statistics.median(durations):.3f} s, p99 {p99:.3f} s, "
        f"max {max(durations):.3f} s"
    )
    with psycopg.connect(direct_url(role)) as check:
        row = check.execute(f'SELECT count(*) FROM "{schema}".meta').fetchone()
    assert row == (INVOCATIONS + 1,)  # and the created_at row
