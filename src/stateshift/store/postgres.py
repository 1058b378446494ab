"""The scale-out backend: PostgreSQL through psycopg 3 and a small pool.

Works behind PgBouncer in transaction pooling mode: no prepared statements
(``prepare_threshold=None``), no ``SET search_path`` (every table name is
qualified with the schema), no session advisory locks and no LISTEN. Times
that must agree across machines (leases) come from the database clock.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from stateshift.config import Settings
from stateshift.errors import (
    ConfigError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
)
from stateshift.store.base import Params, Row, Store, Tx

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)

PasswordProvider = Callable[[], str]

# A pooled connection idle longer than this is pinged before use.
IDLE_CHECK_SECONDS = 5.0


def _import_driver() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ModuleNotFoundError as exc:
        raise ConfigError(
            "store",
            "a PostgreSQL store needs the psycopg driver: "
            "pip install 'stateshift[postgres]'",
        ) from exc
    return psycopg, psycopg_pool


def redact(url: str) -> str:
    """The URL without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


class PostgresTx(Tx):
    """A transaction on one pooled connection.

    ``BEGIN`` is not sent on its own: it travels with the first statement
    when that one has no parameters (the simple query protocol takes
    several statements in one message, the extended one does not), else
    just before it. A transaction that sends nothing costs no round trip.
    """

    dialect = "postgresql"

    def __init__(
        self, store: PostgresStore, connection: psycopg.Connection[Any], begin: str
    ):
        self._store = store
        self._cursor = connection.cursor()
        self._begin: str | None = begin

    @property
    def begun(self) -> bool:
        """Whether ``BEGIN`` has been sent (so the block must end)."""
        return self._begin is None

    def _send(self, text: str, params: Params) -> None:
        begin, self._begin = self._begin, None
        if begin is not None:
            if not params:
                # Without parameters psycopg sends the text as it is, so the
                # escaped percent signs of a translated text are restored.
                self._cursor.execute(f"{begin}; {text.replace('%%', '%')}")
                self._cursor.nextset()
                return
            self._cursor.execute(begin)
        self._cursor.execute(text, params)

    def execute(self, sql: str, params: Params = ()) -> int:
        with _translated_errors():
            self._send(self._store.sql(sql), params)
            return int(self._cursor.rowcount)

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        with _translated_errors():
            begin, self._begin = self._begin, None
            if begin is not None:
                self._cursor.execute(begin)
            self._cursor.executemany(self._store.sql(sql), rows)
            return int(self._cursor.rowcount)

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with _translated_errors():
            self._send(self._store.sql(sql), params)
            row: Row | None = self._cursor.fetchone()
            return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with _translated_errors():
            self._send(self._store.sql(sql), params)
            rows: list[Row] = self._cursor.fetchall()
            return rows


class PostgresStore(Store):
    """Store in one PostgreSQL schema."""

    dialect = "postgresql"

    def __init__(
        self, settings: Settings, *, password_provider: PasswordProvider | None = None
    ) -> None:
        super().__init__(settings)
        psycopg, psycopg_pool = _import_driver()
        self._psycopg = psycopg
        self.url = settings.store.replace("postgres://", "postgresql://", 1)
        provider = password_provider

        class _Connection(psycopg.Connection):  # type: ignore[misc, name-defined]
            @classmethod
            def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
                # Short-lived credentials (IAM tokens) are fetched per connection.
                if provider is not None:
                    kwargs["password"] = provider()
                return super().connect(conninfo, **kwargs)

        self._connection_class = _Connection
        self._pool = psycopg_pool.ConnectionPool(
            self.url,
            min_size=0,
            max_size=settings.pool_size,
            timeout=settings.connect_timeout_seconds,
            connection_class=_Connection,
            kwargs={
                "autocommit": True,
                "prepare_threshold": None,
                "connect_timeout": max(1, int(settings.connect_timeout_seconds)),
            },
            check=self._check_connection,
            open=False,
            name="stateshift",
        )
        self._opened = False

    def _check_connection(self, connection: psycopg.Connection[Any]) -> None:
        # A pooled connection may have died while a serverless instance was
        # frozen. Pinging costs a round trip, so only connections that sat
        # idle for a while are checked: a busy worker pays nothing.
        last_used = getattr(connection, "_stateshift_last_used", 0.0)
        if time.monotonic() - last_used > IDLE_CHECK_SECONDS:
            self._pool.check_connection(connection)

    def _open(self) -> None:
        if not self._opened:
            self._pool.open(wait=False)
            self._opened = True

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection; a pool that cannot connect says why."""
        try:
            connection = self._pool.getconn()
        except self._psycopg.OperationalError as exc:
            self._diagnose(exc)
            raise
        try:
            # As the pool's own connection(): commit or roll back on exit.
            with connection:
                yield connection
        finally:
            self._pool.putconn(connection)

    def _diagnose(self, timeout: Exception) -> None:
        """Turn a pool timeout caused by a wrong URL into a ConfigError.

        The pool only says it got no connection in time; one direct attempt
        tells a database or role that does not exist (or a refused password),
        which no retry will fix, from a server that is down or busy.
        """
        try:
            probe = self._connection_class.connect(
                self.url, connect_timeout=max(1, int(min(5.0, self._timeout())))
            )
        except self._psycopg.OperationalError as exc:
            text = str(exc)
            for marker in _WRONG_URL_MARKERS:
                if marker in text:
                    reason = text.split("FATAL:")[-1].strip()
                    raise ConfigError(
                        "store",
                        f"PostgreSQL refused {redact(self.url)}: {reason}; "
                        "create the database or role, or fix the URL",
                    ) from timeout
            return
        probe.close()

    def _timeout(self) -> float:
        return float(self.settings.connect_timeout_seconds)

    @contextmanager
    def _begin(self, *, write: bool) -> Iterator[Tx]:
        self._open()
        with _translated_errors():
            with self._connection() as connection:
                # BEGIN READ ONLY in one statement, where a transaction block
                # followed by SET TRANSACTION would cost two; the Tx sends it
                # with its first statement.
                begin = "BEGIN" if write else "BEGIN READ ONLY"
                tx = PostgresTx(self, connection, begin)
                try:
                    yield tx
                except BaseException:
                    if tx.begun:
                        _rollback_quietly(connection)
                    raise
                if tx.begun:
                    connection.execute("COMMIT")
                connection._stateshift_last_used = time.monotonic()

    def execute_alone(self, sql: str, params: Params = ()) -> list[Row]:
        return self._alone(sql, params)

    def read_alone(self, sql: str, params: Params = ()) -> list[Row]:
        return self._alone(sql, params)

    def _alone(self, sql: str, params: Params) -> list[Row]:
        self.ensure_schema()
        self._open()
        text = self.sql(sql)
        with _translated_errors():
            with self._connection() as connection:
                # The pool's connections are in autocommit: one statement is
                # one transaction and one round trip.
                rows: list[Row] = connection.execute(text, params).fetchall()
                connection._stateshift_last_used = time.monotonic()
        return rows

    def _placeholders(self, text: str) -> str:
        return text.replace("%", "%%").replace("?", "%s")

    def table_prefix_sql(self) -> str:
        return f'"{self.settings.schema}".{self.settings.table_prefix}'

    def now_sql(self) -> str:
        return "extract(epoch from clock_timestamp())::float8"

    def list_tables(self, tx: Tx) -> list[str]:
        prefix = self.settings.table_prefix
        rows = tx.fetchall(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = ? ORDER BY table_name",
            (self.settings.schema,),
        )
        return [str(r[0])[len(prefix) :] for r in rows if str(r[0]).startswith(prefix)]

    def describe(self) -> str:
        return f"postgresql {redact(self.url)} schema {self.settings.schema}"

    def close(self) -> None:
        if self._opened:
            self._pool.close()
            self._opened = False


# What the server answers when the URL, not the server, is wrong.
_WRONG_URL_MARKERS = (
    "does not exist",
    "password authentication failed",
    "no pg_hba.conf entry",
)


def _rollback_quietly(connection: psycopg.Connection[Any]) -> None:
    # The original error is what the caller needs; a failed rollback on a
    # broken connection only means the pool will discard it.
    try:
        connection.execute("ROLLBACK")
    except Exception:
        logger.debug("rollback failed", exc_info=True)


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Translate psycopg errors into stateshift's, in this one place."""
    import psycopg
    from psycopg import errors as pg_errors

    try:
        yield
    except (pg_errors.SerializationFailure, pg_errors.DeadlockDetected) as exc:
        raise StoreUnavailable(f"PostgreSQL asked to retry: {exc}") from exc
    except psycopg.IntegrityError as exc:
        raise StoreIntegrityError(f"constraint violated: {exc}") from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"PostgreSQL is unreachable: {exc}") from exc
    except psycopg.Error as exc:
        raise StoreError(f"PostgreSQL error: {exc}") from exc
    except Exception as exc:
        if type(exc).__module__.startswith("psycopg_pool"):
            raise StoreUnavailable(
                f"no PostgreSQL connection available: {exc}"
            ) from exc
        raise
