"""The embedded backend: one SQLite file in WAL mode.

Every write transaction starts with ``BEGIN IMMEDIATE``: a deferred
transaction that reads and then writes fails with "database is locked" as
soon as two processes race, while an immediate one waits its turn for up to
the busy timeout. Each thread has its own connection.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote

from stateshift.config import Settings
from stateshift.errors import (
    ConfigError,
    SchemaError,
    StoreError,
    StoreIntegrityError,
    StoreUnavailable,
)
from stateshift.store.base import Params, Row, Store, Tx

logger = logging.getLogger(__name__)

# File systems on which SQLite's WAL (shared memory, POSIX locks) is unsafe.
NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "9p",
        "fuse.sshfs",
        "afs",
        "lustre",
        "glusterfs",
        "fuse.glusterfs",
        "ceph",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "efs",
    }
)

# Environment variables that tell a serverless platform, whose local disk
# does not survive the instance.
SERVERLESS_MARKERS = {
    "AWS_LAMBDA_FUNCTION_NAME": "AWS Lambda",
    "K_SERVICE": "Cloud Run / Cloud Functions",
    "FUNCTION_TARGET": "Cloud Functions",
    "FUNCTIONS_WORKER_RUNTIME": "Azure Functions",
}


def path_from_url(url: str) -> Path:
    """``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute."""
    if not url.startswith("sqlite:///"):
        raise ConfigError(
            "store", f"{url!r}: a SQLite URL looks like sqlite:///path/to/file.db"
        )
    raw = unquote(url[len("sqlite:///") :].split("?", 1)[0])
    if raw in ("", ":memory:"):
        raise ConfigError(
            "store",
            "an in-memory SQLite store cannot be shared by threads and processes; "
            "use a file such as sqlite:///./stateshift.db (or a temporary file)",
        )
    return Path(raw)


def filesystem_type(path: Path, mounts_file: str = "/proc/mounts") -> str | None:
    """The type of the file system holding ``path``, from /proc/mounts."""
    try:
        mounts = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path.parent if not path.exists() else path)
    best, best_type = "", None
    for line in mounts:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(
            mount_point.rstrip("/") + "/"
        )
        if inside and len(mount_point) >= len(best):
            best, best_type = mount_point, parts[2]
    return best_type


class SQLiteTx(Tx):
    """A transaction on one SQLite connection."""

    dialect = "sqlite"

    def __init__(self, store: SQLiteStore, connection: sqlite3.Connection) -> None:
        self._store = store
        self._connection = connection

    def execute(self, sql: str, params: Params = ()) -> int:
        with _translated_errors():
            return self._connection.execute(self._store.sql(sql), params).rowcount

    def executemany(self, sql: str, rows: Sequence[Params]) -> int:
        with _translated_errors():
            return self._connection.executemany(self._store.sql(sql), rows).rowcount

    def fetchone(self, sql: str, params: Params = ()) -> Row | None:
        with _translated_errors():
            row: Row | None = self._connection.execute(
                self._store.sql(sql), params
            ).fetchone()
            return row

    def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        with _translated_errors():
            rows: list[Row] = self._connection.execute(
                self._store.sql(sql), params
            ).fetchall()
            return rows


class SQLiteStore(Store):
    """Store on one SQLite file."""

    dialect = "sqlite"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.path = path_from_url(settings.store)
        self._refuse_unsafe_location()
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._all_lock = threading.Lock()

    def _refuse_unsafe_location(self) -> None:
        fs_type = filesystem_type(self.path)
        if fs_type in NETWORK_FILESYSTEMS:
            raise SchemaError(
                f"the SQLite file {self.path} is on a network file system "
                f"({fs_type}), where WAL mode corrupts data: put it on a local "
                "disk, or use a PostgreSQL store"
            )
        if self.settings.allow_sqlite_on_serverless:
            return
        for variable, platform in SERVERLESS_MARKERS.items():
            if os.environ.get(variable):
                raise ConfigError(
                    "store",
                    f"a SQLite store on {platform} loses its file when the "
                    "instance goes away: use a PostgreSQL URL, or set "
                    "allow_sqlite_on_serverless=True (STATESHIFT_ALLOW_SQLITE_ON_"
                    "SERVERLESS=1) if losing the data is acceptable",
                )

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            self._local.connection = connection
            with self._all_lock:
                self._all.append(connection)
        return connection

    def _connect(self) -> sqlite3.Connection:
        if self.path.parent != Path("") and not self.path.parent.exists():
            raise ConfigError(
                "store", f"the folder of the SQLite file {self.path} does not exist"
            )
        with _translated_errors():
            # isolation_level=None: we issue BEGIN ourselves; the module's own
            # implicit deferred transactions are what makes writers collide.
            connection = sqlite3.connect(
                self.path,
                timeout=self.settings.busy_timeout_seconds,
                isolation_level=None,
                check_same_thread=False,
            )
            busy_ms = int(self.settings.busy_timeout_seconds * 1000)
            connection.execute(f"PRAGMA busy_timeout = {busy_ms}")
            mode = self._switch_to_wal(connection)
            if mode != "wal":
                raise SchemaError(
                    f"SQLite could not switch {self.path} to WAL mode (got {mode})"
                )
            # FULL: a commit is on disk when COMMIT returns, even on power loss.
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute("PRAGMA foreign_keys = ON")
        return connection

    def _switch_to_wal(self, connection: sqlite3.Connection) -> str:
        # Changing the journal mode of a new file does not wait on the busy
        # handler: cold starts racing on one new file get "locked" at once.
        deadline = time.monotonic() + self.settings.busy_timeout_seconds
        while True:
            try:
                mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
                if str(mode).lower() == "wal":
                    return "wal"
                mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                return str(mode).lower()
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    @contextmanager
    def _begin(self, *, write: bool) -> Iterator[Tx]:
        connection = self._connection()
        with _translated_errors():
            connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield SQLiteTx(self, connection)
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        else:
            with _translated_errors():
                connection.execute("COMMIT")

    def execute_alone(self, sql: str, params: Params = ()) -> list[Row]:
        return self._alone(sql, params)

    def read_alone(self, sql: str, params: Params = ()) -> list[Row]:
        return self._alone(sql, params)

    def _alone(self, sql: str, params: Params) -> list[Row]:
        self.ensure_schema()
        connection = self._connection()
        with _translated_errors():
            # Outside BEGIN, one statement is its own transaction: a write
            # takes the write lock before it reads, waiting on the busy
            # handler; a read sees one snapshot. Reading every row lets it
            # finish (and commit).
            rows: list[Row] = connection.execute(self.sql(sql), params).fetchall()
        return rows

    def table_prefix_sql(self) -> str:
        return self.settings.table_prefix

    def now_sql(self) -> str:
        return "((julianday('now') - 2440587.5) * 86400.0)"

    def list_tables(self, tx: Tx) -> list[str]:
        prefix = self.settings.table_prefix
        rows = tx.fetchall(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
        return [str(r[0])[len(prefix) :] for r in rows if str(r[0]).startswith(prefix)]

    def describe(self) -> str:
        return f"sqlite {self.path}"

    def close(self) -> None:
        with self._all_lock:
            for connection in self._all:
                try:
                    connection.close()
                except sqlite3.Error:
                    logger.debug("closing a SQLite connection failed", exc_info=True)
            self._all.clear()
        self._local = threading.local()


@contextmanager
def _translated_errors() -> Iterator[None]:
    """Translate sqlite3 errors into stateshift's, in this one place."""
    try:
        yield
    except sqlite3.IntegrityError as exc:
        raise StoreIntegrityError(f"constraint violated: {exc}") from exc
    except sqlite3.OperationalError as exc:
        text = str(exc).lower()
        if "locked" in text or "busy" in text:
            raise StoreUnavailable(
                f"the SQLite database stayed locked past the busy timeout: {exc}"
            ) from exc
        if "disk i/o" in text or "unable to open" in text:
            raise StoreUnavailable(f"SQLite cannot reach its file: {exc}") from exc
        raise StoreError(f"SQLite error: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"SQLite error: {exc}") from exc
