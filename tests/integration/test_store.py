"""The store interface, run identically on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from stateshift.config import load_settings
from stateshift.errors import StoreIntegrityError
from stateshift.store import open_store
from stateshift.store.migrate import (
    available_migrations,
    current_version,
    latest_version,
    migrate,
)


def _make_table(store: Any) -> None:
    with store.transaction() as tx:
        blob = "BLOB" if store.dialect == "sqlite" else "BYTEA"
        tx.execute(
            "CREATE TABLE IF NOT EXISTS {p}t_items"
            f" (k TEXT PRIMARY KEY, v {blob}, n INTEGER)"
        )


def test_a_committed_transaction_is_visible_to_a_new_one(store: Any) -> None:
    _make_table(store)
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO {p}t_items (k, v, n) VALUES (?, ?, ?)", ("a", b"\x00\x01", 1)
        )
    with store.read() as tx:
        assert tx.fetchone("SELECT v, n FROM {p}t_items WHERE k = ?", ("a",)) == (
            b"\x00\x01",
            1,
        )


def test_an_exception_rolls_the_transaction_back(store: Any) -> None:
    _make_table(store)
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.execute("INSERT INTO {p}t_items (k, n) VALUES (?, ?)", ("gone", 1))
            raise RuntimeError("boom")
    with store.read() as tx:
        assert tx.fetchone("SELECT k FROM {p}t_items WHERE k = ?", ("gone",)) is None


def test_a_constraint_violation_is_translated_and_not_retryable(store: Any) -> None:
    _make_table(store)
    with store.transaction() as tx:
        tx.execute("INSERT INTO {p}t_items (k, n) VALUES (?, ?)", ("dup", 1))
    with pytest.raises(StoreIntegrityError) as caught:
        with store.transaction() as tx:
            tx.execute("INSERT INTO {p}t_items (k, n) VALUES (?, ?)", ("dup", 2))
    assert caught.value.retryable is False


def test_percent_and_question_marks_in_values_are_data_not_syntax(store: Any) -> None:
    _make_table(store)
    hostile = "'; DROP TABLE t_items; -- 100% ?"
    with store.transaction() as tx:
        tx.execute("INSERT INTO {p}t_items (k, n) VALUES (?, ?)", (hostile, 1))
    with store.read() as tx:
        assert tx.fetchone(
            "SELECT k FROM {p}t_items WHERE k LIKE ? || '%'", ("'; DROP",)
        ) == (hostile,)


def test_the_database_clock_moves_forward(store: Any) -> None:
    with store.transaction() as tx:
        first = tx.now()
    with store.transaction() as tx:
        assert tx.now() >= first > 1.6e9


def test_migrating_twice_applies_nothing_the_second_time(store: Any) -> None:
    assert migrate(store) == []
    with store.read() as tx:
        assert current_version(tx) == latest_version(store.dialect)


def test_concurrent_cold_starts_migrate_exactly_once(
    store_config: dict[str, Any],
) -> None:
    settings = load_settings(store_config)
    stores = [open_store(settings) for _ in range(4)]
    applied: list[int] = []
    errors: list[BaseException] = []

    def cold_start(s: Any) -> None:
        try:
            applied.append(len(migrate(s)))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=cold_start, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for s in stores:
        s.close()
    assert errors == []
    assert sorted(applied) == [
        0,
        0,
        0,
        len(available_migrations(stores[0].dialect)),
    ]


def test_two_apps_with_different_prefixes_share_one_database(
    store_config: dict[str, Any],
) -> None:
    first = open_store(load_settings({**store_config, "table_prefix": "one_"}))
    second = open_store(load_settings({**store_config, "table_prefix": "two_"}))
    try:
        first.ensure_schema()
        second.ensure_schema()
        with first.read() as tx:
            tables = first.list_tables(tx)
        assert "schema_migrations" in tables and "meta" in tables
        with second.read() as tx:
            assert tx.fetchone("SELECT COUNT(*) FROM {p}meta") == (1,)
    finally:
        first.close()
        second.close()
