"""Fixtures shared by every tier of tests.

Store tests run on both backends: ``store_config`` is parametrized over a
fresh SQLite file and a fresh PostgreSQL schema (dropped afterwards), so
runs can repeat and run side by side. Without a reachable PostgreSQL the
PostgreSQL half is skipped, except under ``CI=true`` where it fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_URL = os.environ.get(
    "STATESHIFT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
BACKENDS = ("sqlite", "postgresql")


def _postgres_available() -> str | None:
    try:
        import psycopg
    except ModuleNotFoundError:
        return "psycopg is not installed (pip install 'stateshift[postgres]')"
    try:
        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except psycopg.OperationalError as exc:
        return f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}"


_PG_PROBLEM: str | None | bool = False


def require_postgres() -> None:
    """Skip (or fail under CI) when PostgreSQL cannot be reached."""
    global _PG_PROBLEM
    if _PG_PROBLEM is False:
        _PG_PROBLEM = _postgres_available()
    if _PG_PROBLEM:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires PostgreSQL: {_PG_PROBLEM}")
        pytest.skip(str(_PG_PROBLEM))


def drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def new_store_config(backend: str, tmp_path: Path) -> dict[str, Any]:
    """Settings for a fresh, empty store of ``backend``."""
    if backend == "sqlite":
        return {"store": f"sqlite:///{tmp_path / f'store-{uuid.uuid4().hex[:8]}.db'}"}
    require_postgres()
    return {"store": POSTGRES_URL, "schema": f"t_{uuid.uuid4().hex[:12]}"}


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: every store test runs on both."""
    return str(request.param)


@pytest.fixture
def store_config(backend: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Keyword arguments for ``ss.App(**store_config)`` on a fresh store."""
    config = new_store_config(backend, tmp_path)
    yield config
    if "schema" in config:
        drop_schema(config["schema"])


@pytest.fixture
def store(store_config: dict[str, Any]) -> Iterator[Any]:
    """A fresh, migrated store of each backend."""
    from stateshift.config import load_settings
    from stateshift.store import open_store

    opened = open_store(load_settings(store_config))
    opened.ensure_schema()
    yield opened
    opened.close()


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Settings read STATESHIFT_* and ./stateshift.toml: keep tests independent
    # of the developer's shell and working directory.
    for name in list(os.environ):
        if name.startswith("STATESHIFT_") and name != "STATESHIFT_TEST_POSTGRES":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


SRC_PATH = str(Path(__file__).resolve().parent.parent / "src")


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a child Python process that imports this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC_PATH, str(Path(SRC_PATH).parent)])
    env.update(extra)
    return env
