"""The store: every durable row, behind one interface with two backends.

:func:`open_store` picks the backend from the URL scheme; the PostgreSQL
driver is imported only when a PostgreSQL URL is used.
"""

from __future__ import annotations

from stateshift.config import Settings
from stateshift.errors import ConfigError
from stateshift.store.base import Store, Tx

__all__ = ["Store", "Tx", "open_store"]


def open_store(settings: Settings, **options: object) -> Store:
    """Open the store named by ``settings.store`` (no connection is made yet)."""
    url = settings.store
    if url.startswith("sqlite:"):
        from stateshift.store.sqlite import SQLiteStore

        return SQLiteStore(settings)
    if url.startswith(("postgresql:", "postgres:")):
        from stateshift.store.postgres import PostgresStore

        return PostgresStore(settings, **options)  # type: ignore[arg-type]
    raise ConfigError(
        "store", f"{url!r} has an unknown scheme; use sqlite: or postgresql:"
    )
