"""Numbered schema migrations, applied once and under a lock.

Migrations are ``store/migrations/<dialect>/NNNN_name.sql``; each runs in the
same transaction as the record of it, so a crash leaves either all of it or
none. Many cold starts at once race to "migrate on first use": SQLite
serializes them with ``BEGIN IMMEDIATE``, PostgreSQL with a transaction-level
advisory lock (which, unlike a session lock, works behind PgBouncer).
"""

from __future__ import annotations

import logging
import re
import zlib
from dataclasses import dataclass
from importlib import resources

from stateshift.errors import SchemaError
from stateshift.store.base import Store, Tx

logger = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def available_migrations(dialect: str) -> list[Migration]:
    """Every migration shipped for ``dialect``, in order."""
    folder = resources.files("stateshift.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE_NAME.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text("utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise SchemaError(f"two {dialect} migrations share a number: {versions}")
    return found


def latest_version(dialect: str) -> int:
    """The schema version this code declares."""
    migrations = available_migrations(dialect)
    return migrations[-1].version if migrations else 0


def split_statements(sql: str) -> list[str]:
    """Split a migration into statements at lines ending with ``;``."""
    statements, current = [], []
    for line in sql.splitlines():
        stripped = line.strip()
        if stripped.startswith("--") or not stripped:
            continue
        current.append(line)
        if stripped.endswith(";"):
            statements.append("\n".join(current).rstrip().rstrip(";"))
            current = []
    if current:
        statements.append("\n".join(current))
    return statements


def _lock_and_prepare(store: Store, tx: Tx) -> None:
    if store.dialect == "postgresql":
        scope = (
            f"stateshift-migrate:{store.settings.schema}:{store.settings.table_prefix}"
        )
        tx.execute("SELECT pg_advisory_xact_lock(?)", (zlib.crc32(scope.encode()),))
        tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{store.settings.schema}"')
    tx.execute(
        "CREATE TABLE IF NOT EXISTS {p}schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at DOUBLE PRECISION NOT NULL)"
    )


def current_version(tx: Tx) -> int:
    """The highest migration recorded in the store (0 for a new one)."""
    row = tx.fetchone("SELECT COALESCE(MAX(version), 0) FROM {p}schema_migrations")
    return int(row[0]) if row else 0


def migrate(store: Store) -> list[Migration]:
    """Apply every pending migration; return those applied."""
    pending: list[Migration] = []
    with store.raw_transaction(write=True) as tx:
        _lock_and_prepare(store, tx)
        version = current_version(tx)
        _refuse_newer(store, version)
        pending = [
            m for m in available_migrations(store.dialect) if m.version > version
        ]
        for migration in pending:
            logger.info(
                "applying migration %04d_%s to %s",
                migration.version,
                migration.name,
                store.describe(),
                extra={"event": "store.migrate"},
            )
            for statement in split_statements(migration.sql):
                tx.execute(statement)
            tx.execute(
                "INSERT INTO {p}schema_migrations (version, name, applied_at) "
                "VALUES (?, ?, {now})",
                (migration.version, migration.name),
            )
    return pending


def _refuse_newer(store: Store, version: int) -> None:
    known = latest_version(store.dialect)
    if version > known:
        raise SchemaError(
            f"{store.describe()} has schema version {version}, newer than this "
            f"stateshift knows ({known}): upgrade stateshift on this machine"
        )


def check_or_migrate(store: Store, *, apply: bool) -> None:
    """Make sure the schema is current, migrating when ``apply`` is set."""
    if apply:
        migrate(store)
        return
    with store.raw_transaction(write=False) as tx:
        try:
            version = current_version(tx)
        except Exception:
            version = 0
    _refuse_newer(store, version)
    if version < latest_version(store.dialect):
        raise SchemaError(
            f"{store.describe()} is at schema version {version}, this code needs "
            f"{latest_version(store.dialect)}: run 'stateshift db upgrade'"
        )
