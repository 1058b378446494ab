"""The store interface: short transactions over a SQL database.

The store is the only layer that speaks SQL. Patterns above it open a
transaction, run named queries from ``store/queries/<concept>.sql`` and get
rows back as tuples. SQL is written once for both backends:

* ``?`` is a parameter placeholder (PostgreSQL gets ``%s``);
* ``{p}`` is the qualified table prefix (``"stateshift".`` on PostgreSQL,
  the configured ``table_prefix`` on both);
* ``{now}`` is the database clock in epoch seconds (a float);
* ``{prefix}`` is the bare table prefix, for index names (which PostgreSQL
  places in their table's schema and must not qualify).

A query may have a dialect-specific variant named ``name@postgresql`` or
``name@sqlite`` in the same file; it replaces the portable one there.
"""

from __future__ import annotations

import logging
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from typing import Any, ClassVar

from stateshift.config import Settings

logger = logging.getLogger(__name__)

Row = tuple[Any, ...]
Params = Sequence[Any]

_QUERY_HEADER = re.compile(
    r"^--\s*name:\s*([A-Za-z0-9_]+)(?:@(sqlite|postgresql))?\s*$"
)


class Tx(ABC):
    """One open database transaction; valid only inside its ``with`` block."""

    dialect: str

    @abstractmethod
    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement and return the number of rows it changed."""

    @abstractmethod
    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        """Run one statement once per parameter row; return the rows changed.

        The count is the sum over every parameter row, as both drivers give it.
        """

    @abstractmethod
    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        """Run a query and return its first row, or ``None``."""

    @abstractmethod
    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Run a query and return all its rows."""

    def now(self) -> float:
        """The database clock, in epoch seconds."""
        row = self.fetchone("SELECT {now}")
        assert row is not None
        return float(row[0])


class Store(ABC):
    """A database holding every durable row of one app (or one shard)."""

    dialect: ClassVar[str]

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._translated: dict[str, str] = {}
        self._queries: dict[str, dict[str, str]] = {}
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    # --- primitives each backend implements -------------------------------

    @abstractmethod
    def _begin(self, *, write: bool) -> Any:
        """Return a context manager that yields a :class:`Tx`."""

    @abstractmethod
    def table_prefix_sql(self) -> str:
        """What ``{p}`` becomes in this backend."""

    @abstractmethod
    def now_sql(self) -> str:
        """What ``{now}`` becomes in this backend."""

    @abstractmethod
    def close(self) -> None:
        """Release every connection."""

    @abstractmethod
    def describe(self) -> str:
        """The backend and location, without credentials."""

    @abstractmethod
    def list_tables(self, tx: Tx) -> list[str]:
        """Names of this store's tables, without the prefix."""

    # --- transactions ---------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A write transaction; commits on success, rolls back on error.

        Keep it short: no user code runs while it is open.
        """
        self.ensure_schema()
        with self._begin(write=True) as tx:
            yield tx

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read-only transaction giving one consistent snapshot."""
        self.ensure_schema()
        with self._begin(write=False) as tx:
            yield tx

    def execute_alone(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one statement as a transaction of its own; return its rows.

        A backend that can runs it in a single round trip (PostgreSQL:
        autocommit, no ``BEGIN`` / ``COMMIT``). One statement is atomic, so
        this is only for writes that one statement can say entirely.
        """
        with self.transaction() as tx:
            return tx.fetchall(sql, params)

    def read_alone(self, sql: str, params: Params = ()) -> list[Row]:
        """Run one query outside any transaction; return its rows.

        One statement sees one snapshot on both backends, so a query that
        reads several tables (state items with their forwarding rows) gets
        a consistent answer in a single round trip on PostgreSQL.
        """
        with self.read() as tx:
            return tx.fetchall(sql, params)

    # --- SQL text ---------------------------------------------------------

    def sql(self, text: str) -> str:
        """Translate portable SQL into this backend's text (cached)."""
        translated = self._translated.get(text)
        if translated is None:
            translated = self._translate(text)
            self._translated[text] = translated
        return translated

    def _translate(self, text: str) -> str:
        expanded = (
            text.replace("{p}", self.table_prefix_sql())
            .replace("{now}", self.now_sql())
            .replace("{prefix}", self.settings.table_prefix)
        )
        return self._placeholders(expanded)

    def _placeholders(self, text: str) -> str:
        return text

    def queries(self, concept: str) -> dict[str, str]:
        """Named queries of ``store/queries/<concept>.sql`` for this backend.

        The text is returned untranslated: ``Tx`` methods translate it.
        """
        loaded = self._queries.get(concept)
        if loaded is None:
            text = (
                resources.files("stateshift.store")
                .joinpath("queries", f"{concept}.sql")
                .read_text("utf-8")
            )
            loaded = parse_queries(text, self.dialect)
            self._queries[concept] = loaded
        return loaded

    # --- schema -----------------------------------------------------------

    def ensure_schema(self) -> None:
        """Apply pending migrations once per process, if ``auto_migrate``."""
        if self._schema_ready:
            return
        with self._schema_lock:
            if self._schema_ready:
                return
            from stateshift.store.migrate import check_or_migrate

            check_or_migrate(self, apply=self.settings.auto_migrate)
            self._schema_ready = True

    def raw_transaction(self, *, write: bool = True) -> Any:
        """A transaction that skips the schema check (for the migrator)."""
        return self._begin(write=write)


def parse_queries(text: str, dialect: str) -> dict[str, str]:
    """Split a named-query file into ``{name: sql}`` for ``dialect``."""
    portable: dict[str, list[str]] = {}
    specific: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        match = _QUERY_HEADER.match(line)
        if match:
            name, only = match.groups()
            if only is None:
                current = portable.setdefault(name, [])
            elif only == dialect:
                current = specific.setdefault(name, [])
            else:
                current = None
            continue
        if current is not None:
            current.append(line)
    merged = {**portable, **specific}
    return {
        name: "\n".join(lines).strip().rstrip(";") for name, lines in merged.items()
    }
