"""Moving a whole store to another database: ``stateshift db copy SRC DST``.

Every table of the declared schema is copied in primary-key order, a
batch per destination transaction, from one consistent snapshot of the
source (one read transaction; on PostgreSQL at ``REPEATABLE READ``). The
workflow tables travel like the rest, leases and due times included, so a
worker pointed at the destination resumes workflows that were in flight.

Rows are written with an upsert on the primary key, so a copy that was
interrupted can simply be run again (``force=True``): it ends with the
destination holding every source row. Afterwards each table's row count
and checksum (an order-independent sum of per-row hashes, over values
normalized by column kind so that SQLite and PostgreSQL agree) are
compared; a table that differs is compared row by row to name the keys.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from stateshift.errors import SchemaError, StoreError
from stateshift.migrate._schema import Table, declared_tables
from stateshift.store import Store
from stateshift.store.base import Row, Tx
from stateshift.store.migrate import current_version, latest_version, migrate

__all__ = ["CopyReport", "TableReport", "copy_store", "verify_copy"]

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 1000
_MODULUS = 2**256

# Tables a fresh store already has rows in (facts about the store, which
# the copy carries over from the source).
_WRITTEN_BY_MIGRATIONS = frozenset({"meta"})

Progress = Callable[[str, int, int], None]
"""Called with (table, rows copied so far, rows in the table)."""


@dataclass
class TableReport:
    """One table, compared after the copy."""

    table: str
    source_rows: int
    destination_rows: int
    matched: bool
    """Same row count and checksum."""
    missing: list[str] = field(default_factory=list)
    """Keys (as JSON) in the source only."""
    different: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    """Keys in the destination only."""


@dataclass
class CopyReport:
    """What a copy moved and how the verification went."""

    source: str
    destination: str
    copied: dict[str, int] = field(default_factory=dict)
    """Rows written per table."""
    tables: list[TableReport] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True when every table matched."""
        return all(table.matched for table in self.tables)


def copy_store(
    source: Store,
    destination: Store,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    force: bool = False,
    progress: Progress | None = None,
) -> CopyReport:
    """Copy every stateshift table of ``source`` into ``destination``, then verify.

    Raises:
        SchemaError: the source is not at this code's schema version.
        StoreError: the destination holds rows and ``force`` is not set.
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    tables = _tables(source)
    targets = _targets(destination, tables)
    migrate(destination)
    if not force:
        _refuse_non_empty(destination, tables)

    report = CopyReport(source.describe(), destination.describe())
    with source.read() as tx:
        if source.dialect == "postgresql":
            # One snapshot for every table: rows that reference each other
            # (a workflow and its steps) are copied as of the same instant.
            tx.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        for table in tables:
            total = _count(tx, table)
            copied = 0
            for rows in _batches(tx, table, batch_rows):
                _write(destination, targets[table.name], rows)
                copied += len(rows)
                if progress is not None:
                    progress(table.name, copied, total)
            report.copied[table.name] = copied
            logger.info(
                "copied %d rows of %s",
                copied,
                table.name,
                extra={"event": "migrate.copy_table", "table": table.name},
            )
    _reset_identities(destination, list(targets.values()))
    report.tables = verify_copy(source, destination)
    return report


def verify_copy(source: Store, destination: Store) -> list[TableReport]:
    """Row counts and checksums of every table, source against destination."""
    tables = _tables(source)
    reports = []
    for table in tables:
        src_count, src_sum = _summary(source, table)
        dst_count, dst_sum = _summary(destination, table)
        report = TableReport(
            table.name,
            src_count,
            dst_count,
            (src_count, src_sum) == (dst_count, dst_sum),
        )
        if not report.matched:
            _compare_rows(source, destination, table, report)
        reports.append(report)
    return reports


# --- tables -------------------------------------------------------------------


def _tables(source: Store) -> list[Table]:
    """The tables to copy: the declared schema, checked against the source."""
    with source.raw_transaction(write=False) as tx:
        present = set(source.list_tables(tx))
        version = current_version(tx) if "schema_migrations" in present else 0
    if version != latest_version(source.dialect):
        raise SchemaError(
            f"{source.describe()} is at schema version {version}, this code at "
            f"{latest_version(source.dialect)}: run 'stateshift db upgrade' on the "
            "source first (with the matching stateshift version)"
        )
    declared = {table.name: table for table in declared_tables(source.dialect)}
    unknown = sorted(present - set(declared))
    if unknown:
        raise SchemaError(
            f"{source.describe()} has tables this stateshift does not declare: "
            f"{', '.join(unknown)}; copy with the stateshift version that made them"
        )
    # The destination's migrations write its own schema_migrations rows.
    return [t for t in declared.values() if t.name != "schema_migrations"]


def _targets(destination: Store, tables: Sequence[Table]) -> dict[str, Table]:
    """The destination's view of each table (its identity columns differ)."""
    declared = {t.name: t for t in declared_tables(destination.dialect)}
    for table in tables:
        target = declared.get(table.name)
        if target is None or target.column_names != table.column_names:
            raise SchemaError(
                f"table {table.name} is declared differently for "
                f"{destination.dialect}: this stateshift cannot copy it"
            )
    return {table.name: declared[table.name] for table in tables}


def _refuse_non_empty(destination: Store, tables: Sequence[Table]) -> None:
    with destination.read() as tx:
        for table in tables:
            if table.name in _WRITTEN_BY_MIGRATIONS:
                continue
            if tx.fetchone(f"SELECT 1 FROM {{p}}{table.name} LIMIT 1") is not None:
                raise StoreError(
                    f"{destination.describe()} already holds rows in {table.name}: "
                    "copy into an empty store, or pass --force to merge (rows "
                    "with the same key are overwritten by the source's)"
                )


def _count(tx: Tx, table: Table) -> int:
    row = tx.fetchone(f"SELECT COUNT(*) FROM {{p}}{table.name}")
    return int(row[0]) if row else 0


def _batches(tx: Tx, table: Table, size: int) -> Iterator[list[Row]]:
    """Rows in key order, ``size`` at a time, each batch one range query."""
    columns = ", ".join(table.column_names)
    if not table.key:
        yield from _chunks(
            tx.fetchall(f"SELECT {columns} FROM {{p}}{table.name}"), size
        )
        return
    key = ", ".join(table.key)
    positions = [table.column_names.index(name) for name in table.key]
    after: tuple[Any, ...] | None = None
    while True:
        where = ""
        if after is not None:
            marks = ", ".join("?" for _ in table.key)
            where = (
                f" WHERE ({key}) > ({marks})"
                if len(table.key) > 1
                else (f" WHERE {key} > ?")
            )
        rows = tx.fetchall(
            f"SELECT {columns} FROM {{p}}{table.name}{where} ORDER BY {key} LIMIT ?",
            (*(after or ()), size),
        )
        if not rows:
            return
        yield rows
        after = tuple(rows[-1][i] for i in positions)


def _chunks(rows: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _write(destination: Store, table: Table, rows: list[Row]) -> None:
    columns = ", ".join(table.column_names)
    marks = ", ".join("?" for _ in table.columns)
    overriding = ""
    if destination.dialect == "postgresql" and any(c.identity for c in table.columns):
        overriding = " OVERRIDING SYSTEM VALUE"
    conflict = ""
    if table.key:
        others = [c for c in table.column_names if c not in table.key]
        action = (
            "DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in others)
            if others
            else "DO NOTHING"
        )
        conflict = f" ON CONFLICT ({', '.join(table.key)}) {action}"
    sql = (
        f"INSERT INTO {{p}}{table.name} ({columns}){overriding} "
        f"VALUES ({marks}){conflict}"
    )
    normalized = [_normalized(table, row) for row in rows]
    with destination.transaction() as tx:
        tx.executemany(sql, normalized)


def _reset_identities(destination: Store, tables: Sequence[Table]) -> None:
    """Move PostgreSQL identity sequences past the copied ids."""
    if destination.dialect != "postgresql":
        return  # SQLite's AUTOINCREMENT follows explicit inserts by itself
    schema = destination.settings.schema.replace('"', '""')
    prefix = destination.settings.table_prefix
    with destination.transaction() as tx:
        for table in tables:
            for column in table.columns:
                if column.identity:
                    qualified = f'"{schema}".{prefix}{table.name}'
                    tx.fetchone(
                        f"SELECT setval(pg_get_serial_sequence(?, ?), "
                        f"COALESCE(MAX({column.name}), 0) + 1, false) "
                        f"FROM {{p}}{table.name}",
                        (qualified, column.name),
                    )


# --- checksums ----------------------------------------------------------------


def _normalized(table: Table, row: Row) -> tuple[Any, ...]:
    """Values by column kind, as both backends hand them back alike."""
    out: list[Any] = []
    for column, value in zip(table.columns, row, strict=True):
        if value is None:
            out.append(None)
        elif column.kind == "bytes":
            out.append(bytes(value))
        elif column.kind == "float":
            out.append(float(value))
        elif column.kind == "int":
            out.append(int(value))
        else:
            out.append(str(value))
    return tuple(out)


def _row_digest(table: Table, row: Row) -> bytes:
    values = [
        {"b": value.hex()} if isinstance(value, bytes) else value
        for value in _normalized(table, row)
    ]
    text = json.dumps(values, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).digest()


def _key_text(table: Table, row: Row) -> str:
    if not table.key:
        return _row_digest(table, row).hex()
    positions = [table.column_names.index(name) for name in table.key]
    return json.dumps([row[i] for i in positions], ensure_ascii=False)


def _summary(store: Store, table: Table) -> tuple[int, int]:
    count, total = 0, 0
    with store.read() as tx:
        for rows in _batches(tx, table, DEFAULT_BATCH_ROWS):
            for row in rows:
                count += 1
                total = (total + int.from_bytes(_row_digest(table, row))) % _MODULUS
    return count, total


def _row_digests(store: Store, table: Table) -> dict[str, bytes]:
    digests = {}
    with store.read() as tx:
        for rows in _batches(tx, table, DEFAULT_BATCH_ROWS):
            for row in rows:
                digests[_key_text(table, row)] = _row_digest(table, row)
    return digests


def _compare_rows(
    source: Store, destination: Store, table: Table, report: TableReport
) -> None:
    expected = _row_digests(source, table)
    found = _row_digests(destination, table)
    report.missing = sorted(k for k in expected if k not in found)
    report.extra = sorted(k for k in found if k not in expected)
    report.different = sorted(
        k for k, digest in expected.items() if k in found and found[k] != digest
    )
