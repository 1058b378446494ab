"""PostgreSQL connections that die while pooled (a frozen Lambda, a failover)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from conftest import POSTGRES_URL, drop_schema, require_postgres
from stateshift.config import load_settings
from stateshift.errors import StoreUnavailable
from stateshift.store import open_store
from stateshift.store import postgres as postgres_module


@pytest.fixture
def pg_store() -> Iterator[Any]:
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = open_store(load_settings({"store": POSTGRES_URL, "schema": schema}))
    store.ensure_schema()
    yield store
    store.close()
    drop_schema(schema)


def _kill_backends_of(store: Any) -> int:
    import psycopg

    with store.read() as tx:
        (pid,) = tx.fetchone("SELECT pg_backend_pid()")
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    return int(pid)


def test_a_connection_killed_while_idle_is_replaced_before_use(
    pg_store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    old_pid = _kill_backends_of(pg_store)
    monkeypatch.setattr(postgres_module, "IDLE_CHECK_SECONDS", 0.0)
    with pg_store.read() as tx:
        (pid,) = tx.fetchone("SELECT pg_backend_pid()")
    assert pid != old_pid


def test_a_connection_killed_mid_use_is_a_retryable_error_then_recovers(
    pg_store: Any,
) -> None:
    _kill_backends_of(pg_store)
    with pytest.raises(StoreUnavailable) as caught:
        with pg_store.read() as tx:
            tx.fetchone("SELECT 1")
    assert caught.value.retryable
    with pg_store.read() as tx:
        assert tx.fetchone("SELECT 1") == (1,)


def test_a_password_provider_is_asked_for_each_new_connection() -> None:
    require_postgres()
    calls: list[int] = []

    def provider() -> str:
        calls.append(1)
        return "unused-with-trust-auth"

    schema = f"t_{uuid.uuid4().hex[:12]}"
    store = postgres_module.PostgresStore(
        load_settings({"store": POSTGRES_URL, "schema": schema}),
        password_provider=provider,
    )
    try:
        with store.transaction() as tx:
            assert tx.fetchone("SELECT 1") == (1,)
    finally:
        store.close()
        drop_schema(schema)
    assert calls


def _url_with(path_or_user: dict[str, str]) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(POSTGRES_URL)
    netloc = parts.netloc
    if "user" in path_or_user:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{path_or_user['user']}@{host}"
    path = "/" + path_or_user.get("database", parts.path.lstrip("/"))
    return urlunsplit((parts.scheme, netloc, path, parts.query, ""))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"database": "ss_missing_database_x1"}, "ss_missing_database_x1"),
        ({"user": "ss_missing_role_x1"}, "ss_missing_role_x1"),
    ],
)
def test_a_url_naming_what_does_not_exist_is_a_config_error(
    change: dict[str, str], named: str
) -> None:
    require_postgres()
    from stateshift.errors import ConfigError

    settings = load_settings({"store": _url_with(change), "connect_timeout_seconds": 1})
    store = open_store(settings)
    try:
        with pytest.raises(ConfigError, match=named) as caught:
            store.ensure_schema()
        assert not caught.value.retryable
    finally:
        store.close()


def test_a_server_that_is_not_there_stays_retryable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/test"
    store = open_store(load_settings({"store": url, "connect_timeout_seconds": 1}))
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.ensure_schema()
        assert caught.value.retryable
    finally:
        store.close()
