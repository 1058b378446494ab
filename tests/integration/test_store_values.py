"""Hostile keys and values round-trip exactly through the store, or are refused."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stateshift.errors import StoreError

# Text the databases must keep exactly: unicode, SQL metacharacters, LIKE
# wildcards, quotes. NUL is tested apart (PostgreSQL text cannot hold it).
hostile_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    max_size=200,
) | st.sampled_from(["'; DROP TABLE t_values; --", "%", "_", "a%", "a_", "\\", "?"])


def _make_table(store: Any) -> None:
    blob = "BLOB" if store.dialect == "sqlite" else "BYTEA"
    with store.transaction() as tx:
        tx.execute(
            "CREATE TABLE IF NOT EXISTS {p}t_values"
            f" (k TEXT PRIMARY KEY, v {blob} NOT NULL)"
        )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(key=hostile_text, value=st.binary(max_size=300))
def test_hostile_keys_and_binary_values_round_trip(
    store: Any, key: str, value: bytes
) -> None:
    _make_table(store)
    with store.transaction() as tx:
        tx.execute("DELETE FROM {p}t_values WHERE k = ?", (key,))
        tx.execute("INSERT INTO {p}t_values (k, v) VALUES (?, ?)", (key, value))
    with store.read() as tx:
        row = tx.fetchone("SELECT k, v FROM {p}t_values WHERE k = ?", (key,))
        tables = store.list_tables(tx)
    assert row is not None
    assert (row[0], bytes(row[1])) == (key, value)
    assert "t_values" in tables


def test_a_ten_thousand_character_key_round_trips(store: Any) -> None:
    _make_table(store)
    key = "k" * 10_000
    with store.transaction() as tx:
        tx.execute("INSERT INTO {p}t_values (k, v) VALUES (?, ?)", (key, b"v"))
    with store.read() as tx:
        assert tx.fetchone("SELECT k FROM {p}t_values WHERE k = ?", (key,)) == (key,)


def test_a_nul_in_text_round_trips_or_is_refused_with_a_store_error(
    store: Any,
) -> None:
    _make_table(store)
    key = "before\x00after"
    try:
        with store.transaction() as tx:
            tx.execute("INSERT INTO {p}t_values (k, v) VALUES (?, ?)", (key, b"v"))
    except StoreError:
        assert store.dialect == "postgresql"
        with store.read() as tx:
            assert tx.fetchone("SELECT COUNT(*) FROM {p}t_values") == (0,)
        return
    with store.read() as tx:
        assert tx.fetchone("SELECT k FROM {p}t_values WHERE k = ?", (key,)) == (key,)


@pytest.mark.parametrize("pattern", ["a%", "a_"])
def test_like_wildcards_in_parameters_match_only_literally_when_escaped(
    store: Any, pattern: str
) -> None:
    _make_table(store)
    with store.transaction() as tx:
        for key in ("a%x", "a_x", "abc", "ab"):
            tx.execute("INSERT INTO {p}t_values (k, v) VALUES (?, ?)", (key, b""))
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    with store.read() as tx:
        rows = tx.fetchall(
            "SELECT k FROM {p}t_values WHERE k LIKE ? ESCAPE '\\' ORDER BY k",
            (escaped + "%",),
        )
    assert [r[0] for r in rows] == [pattern + "x"]
