"""The PostgreSQL store behind a real PgBouncer in transaction pooling mode.

Transaction pooling hands each transaction to any server connection, which
breaks prepared statements, ``SET search_path`` and session locks; the
store uses none of them, and migrates under a transaction-level lock.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from conftest import POSTGRES_URL, drop_schema, require_postgres
from runtime_support.pgbouncer import Bouncer, pgbouncer
from stateshift.config import load_settings
from stateshift.store import open_store


@pytest.fixture(scope="module")
def bouncer() -> Iterator[Bouncer]:
    require_postgres()
    with pgbouncer(pool_size=2) as running:
        yield running


@pytest.fixture
def schema() -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    drop_schema(name)


def server_connections(bouncer: Bouncer) -> int:
    with psycopg.connect(bouncer.url("pgbouncer"), autocommit=True) as admin:
        rows = admin.execute("SHOW SERVERS").fetchall()
    return len(rows)


def test_many_stores_migrate_and_write_through_two_server_connections(
    bouncer: Bouncer, schema: str
) -> None:
    errors: list[BaseException] = []

    def cold_process(number: int) -> None:
        # Each thread is one cold process: its own store and pool of one.
        store = open_store(load_settings({"store": bouncer.url(), "schema": schema}))
        try:
            for round_number in range(15):
                with store.transaction() as tx:
                    tx.execute(
                        "INSERT INTO {p}meta (name, value) VALUES (?, ?)",
                        (f"p{number}-{round_number}", "x"),
                    )
                with store.read() as tx:
                    row = tx.fetchone(
                        "SELECT value FROM {p}meta WHERE name = ?",
                        (f"p{number}-{round_number}",),
                    )
                    assert row == ("x",)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=cold_process, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert server_connections(bouncer) <= bouncer.pool_size

    with psycopg.connect(POSTGRES_URL) as direct:
        count = direct.execute(
            f'SELECT count(*) FROM "{schema}".meta WHERE name LIKE %s', ("p%",)
        ).fetchone()
    assert count == (8 * 15,)


def test_a_statement_repeated_past_the_prepare_threshold_still_works(
    bouncer: Bouncer, schema: str
) -> None:
    # psycopg prepares a statement after five runs unless told not to; behind
    # transaction pooling the next transaction may land where it was never
    # prepared. The store turns preparing off.
    store = open_store(load_settings({"store": bouncer.url(), "schema": schema}))
    try:
        for _ in range(12):
            with store.read() as tx:
                assert tx.fetchone("SELECT count(*) FROM {p}meta") is not None
    finally:
        store.close()
