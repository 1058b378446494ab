"""The rows of one partition key, as a rebalance reads, copies and deletes them.

A key's rows are the rows of every movable table (see
:mod:`stateshift.placement.registry`) whose partition column holds it,
listed by table, with the rows attached to them under
``"<table>/<attached table>"``. On the new shard a copy is written before
the old shard stops answering for the key, so:

* a table with a ``held_column`` (workflows) gets the copy with that
  column ``NULL`` and its value kept in ``placement_held`` until
  :func:`activate`, so no worker claims a copy before the switch. The
  copies are the rows named there; other rows of the key on the new
  shard (a workflow started there by a process with the new shard list)
  are never touched;
* a table with ``busy_when`` (a workflow a worker holds) keeps the key
  from moving while one of its rows matches: :class:`KeyBusy`.
"""

from __future__ import annotations

from typing import Any

from stateshift.placement.registry import Attached, TableSpec, registered_tables
from stateshift.store import Tx

__all__ = [
    "KeyBusy",
    "Rows",
    "activate",
    "check_idle",
    "delete_copy",
    "delete_source",
    "lock_source",
    "movable",
    "read_copy",
    "read_rows",
    "write_copy",
]

Rows = dict[str, list[tuple[Any, ...]]]


class KeyBusy(Exception):  # noqa: N818 - a verdict on a key, not a failure
    """A partition key cannot move now; nothing was switched."""

    def __init__(self, partition_key: str, reason: str) -> None:
        super().__init__(f"partition key {partition_key!r} {reason}")
        self.partition_key = partition_key
        self.reason = reason


def movable() -> list[TableSpec]:
    """The declared tables whose rows follow their partition key."""
    return [spec for spec in registered_tables() if spec.movable]


def _at(spec: TableSpec, attached: Attached) -> str:
    return f"{spec.table}/{attached.table}"


# --- reading ----------------------------------------------------------------------


def read_rows(tx: Tx, partition_key: str, tables: set[str]) -> Rows:
    """Every row of ``partition_key`` in the movable tables among ``tables``."""
    return _read(tx, partition_key, tables, copies=False)


def read_copy(tx: Tx, partition_key: str, tables: set[str]) -> Rows:
    """The copy of ``partition_key`` on a new shard, held values put back."""
    return _read(tx, partition_key, tables, copies=True)


def _read(tx: Tx, partition_key: str, tables: set[str], *, copies: bool) -> Rows:
    found: Rows = {}
    for spec in movable():
        if spec.table not in tables:
            continue
        found[spec.table] = _own_rows(tx, spec, partition_key, copies=copies)
        for attached in spec.attached:
            refs = _refs(spec, attached, found[spec.table])
            found[_at(spec, attached)] = _attached_rows(tx, attached, refs)
    return found


def _own_rows(
    tx: Tx, spec: TableSpec, partition_key: str, *, copies: bool
) -> list[tuple[Any, ...]]:
    order = ", ".join(f"t.{c}" for c in spec.primary_key)
    if not copies or spec.held_column is None:
        columns = ", ".join(f"t.{c}" for c in spec.columns)
        sql = (
            f"SELECT {columns} FROM {{p}}{spec.table} t "
            f"WHERE t.{spec.partition_column} = ? ORDER BY {order}"
        )
        return [_plain(row) for row in tx.fetchall(sql, (partition_key,))]
    # Only the rows this rebalance copied, each with its held value back.
    columns = ", ".join(
        "h.held" if c == spec.held_column else f"t.{c}" for c in spec.columns
    )
    sql = (
        f"SELECT {columns} FROM {{p}}{spec.table} t JOIN {{p}}placement_held h "
        f"ON h.table_name = ? AND h.row_key = t.{spec.primary_key[0]} "
        f"WHERE h.partition_key = ? ORDER BY {order}"
    )
    return [_plain(row) for row in tx.fetchall(sql, (spec.table, partition_key))]


def _refs(
    spec: TableSpec, attached: Attached, rows: list[tuple[Any, ...]]
) -> list[Any]:
    column = spec.columns.index(attached.via)
    return sorted({row[column] for row in rows if row[column] is not None})


def _attached_rows(
    tx: Tx, attached: Attached, refs: list[Any]
) -> list[tuple[Any, ...]]:
    if not refs:
        return []
    marks = ", ".join("?" for _ in refs)
    order = ", ".join(attached.order or (attached.key,))
    rows = tx.fetchall(
        f"SELECT {', '.join(attached.columns)} FROM {{p}}{attached.table} "
        f"WHERE {attached.key} IN ({marks}) ORDER BY {order}",
        tuple(refs),
    )
    return [_plain(row) for row in rows]


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(bytes(v) if isinstance(v, memoryview | bytearray) else v for v in row)


# --- the old shard ----------------------------------------------------------------


def lock_source(tx: Tx, dialect: str, partition_key: str) -> None:
    """Lock the key's rows of tables that workers write (PostgreSQL).

    Taken before the key's advisory lock: a step's commit locks its
    workflow row and then the key's lock, so this order cannot deadlock
    with it. SQLite's write transaction already excludes every writer.
    """
    if dialect != "postgresql":
        return
    for spec in movable():
        if spec.busy_when is not None:
            tx.fetchall(
                f"SELECT {spec.primary_key[0]} FROM {{p}}{spec.table} "
                f"WHERE {spec.partition_column} = ? "
                f"ORDER BY {', '.join(spec.primary_key)} FOR UPDATE",
                (partition_key,),
            )


def check_idle(tx: Tx, partition_key: str, tables: set[str]) -> None:
    """Raise :class:`KeyBusy` when a row of the key is held by a worker."""
    for spec in movable():
        if spec.busy_when is None or spec.table not in tables:
            continue
        row = tx.fetchone(
            f"SELECT {spec.primary_key[0]} FROM {{p}}{spec.table} "
            f"WHERE {spec.partition_column} = ? AND ({spec.busy_when}) LIMIT 1",
            (partition_key,),
        )
        if row is not None:
            raise KeyBusy(partition_key, f"has {spec.table} row {row[0]!r} in use")


def delete_source(tx: Tx, partition_key: str, rows: Rows) -> None:
    """Delete the key's rows (and attached rows) that were copied.

    Tables that workers write lose exactly the copied rows, so a row
    inserted since (a workflow started by a process on the old shard
    list) is never deleted unmoved.
    """
    for spec in movable():
        if spec.table not in rows:
            continue
        if spec.busy_when is None:
            _delete_by_key(tx, spec, partition_key)
            continue
        column = spec.columns.index(spec.primary_key[0])
        ids = [row[column] for row in rows[spec.table]]
        _delete_by_ids(tx, spec, ids)


def _delete_by_key(tx: Tx, spec: TableSpec, partition_key: str) -> None:
    where = f"WHERE {spec.partition_column} = ?"
    for attached in spec.attached:
        tx.execute(
            f"DELETE FROM {{p}}{attached.table} WHERE {attached.key} IN "
            f"(SELECT {attached.via} FROM {{p}}{spec.table} {where})",
            (partition_key,),
        )
    tx.execute(f"DELETE FROM {{p}}{spec.table} {where}", (partition_key,))


def _delete_by_ids(tx: Tx, spec: TableSpec, ids: list[Any]) -> None:
    if not ids:
        return
    marks = ", ".join("?" for _ in ids)
    where = f"WHERE {spec.primary_key[0]} IN ({marks})"
    for attached in spec.attached:
        tx.execute(
            f"DELETE FROM {{p}}{attached.table} WHERE {attached.key} IN "
            f"(SELECT {attached.via} FROM {{p}}{spec.table} {where})",
            tuple(ids),
        )
    tx.execute(f"DELETE FROM {{p}}{spec.table} {where}", tuple(ids))


# --- the new shard ----------------------------------------------------------------


def write_copy(tx: Tx, partition_key: str, rows: Rows) -> None:
    """Replace the key's copy on the new shard with ``rows``.

    Raises:
        KeyBusy: the new shard has a row of that id that is no copy (the
            same workflow id started there meanwhile); nothing is written.
    """
    for spec in movable():
        if spec.table not in rows:
            continue
        # A copy made earlier (before a writer changed the key, or by a run
        # that crashed) is replaced whole, its attached rows included.
        _delete_copy_of(tx, spec, partition_key)
        own = rows[spec.table]
        if spec.held_column is not None:
            own = _hold(tx, spec, partition_key, own)
        _insert(tx, spec.table, spec.columns, own)
        for attached in spec.attached:
            _insert(tx, attached.table, attached.columns, rows[_at(spec, attached)])


def _hold(
    tx: Tx, spec: TableSpec, partition_key: str, own: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    key_at = spec.columns.index(spec.primary_key[0])
    held_at = spec.columns.index(str(spec.held_column))
    ids = [row[key_at] for row in own]
    if ids:
        marks = ", ".join("?" for _ in ids)
        taken = tx.fetchone(
            f"SELECT {spec.primary_key[0]} FROM {{p}}{spec.table} "
            f"WHERE {spec.primary_key[0]} IN ({marks}) LIMIT 1",
            tuple(ids),
        )
        if taken is not None:
            raise KeyBusy(
                partition_key,
                f"has {spec.table} row {taken[0]!r} on the new shard as well",
            )
    tx.executemany(
        "INSERT INTO {p}placement_held (table_name, row_key, partition_key, held) "
        "VALUES (?, ?, ?, ?)",
        [(spec.table, row[key_at], partition_key, row[held_at]) for row in own],
    )
    return [(*row[:held_at], None, *row[held_at + 1 :]) for row in own]


def delete_copy(tx: Tx, partition_key: str, tables: set[str]) -> None:
    """Delete the key's copy on the new shard (a key that cannot move now)."""
    for spec in movable():
        if spec.table in tables:
            _delete_copy_of(tx, spec, partition_key)


def _delete_copy_of(tx: Tx, spec: TableSpec, partition_key: str) -> None:
    if spec.held_column is None:
        _delete_by_key(tx, spec, partition_key)
        return
    ids = _held(tx, spec, partition_key)
    _delete_by_ids(tx, spec, [row_key for row_key, _ in ids])
    tx.execute(
        "DELETE FROM {p}placement_held WHERE table_name = ? AND partition_key = ?",
        (spec.table, partition_key),
    )


def _held(tx: Tx, spec: TableSpec, partition_key: str) -> list[tuple[Any, Any]]:
    rows = tx.fetchall(
        "SELECT row_key, held FROM {p}placement_held "
        "WHERE table_name = ? AND partition_key = ? ORDER BY row_key",
        (spec.table, partition_key),
    )
    return [(row[0], row[1]) for row in rows]


def activate(tx: Tx, partition_key: str, tables: set[str]) -> int:
    """Give the key's switched copies their held values back; count them.

    Between the switch and this transaction the copy already answers: an
    event, a cancellation or a child's end may have woken it (set its due
    time), and a worker may have claimed it. A woken row keeps the earlier
    of both times; a row a worker holds or that has ended keeps its own.
    """
    count = 0
    for spec in movable():
        if spec.held_column is None or spec.table not in tables:
            continue
        held = dict(_held(tx, spec, partition_key))
        updates = []
        for row_key, value in _current(tx, spec, list(held)):
            if value is None:
                value = held[row_key]
            elif held[row_key] is not None:
                value = min(value, held[row_key])
            updates.append((value, row_key))
        tx.executemany(
            f"UPDATE {{p}}{spec.table} SET {spec.held_column} = ? "
            f"WHERE {spec.primary_key[0]} = ?",
            updates,
        )
        tx.execute(
            "DELETE FROM {p}placement_held WHERE table_name = ? AND partition_key = ?",
            (spec.table, partition_key),
        )
        count += len(held)
    return count


def _current(tx: Tx, spec: TableSpec, ids: list[Any]) -> list[tuple[Any, Any]]:
    """``(id, held column)`` of the rows among ``ids`` that take a held value."""
    if not ids:
        return []
    marks = ", ".join("?" for _ in ids)
    only = f" AND ({spec.held_applies})" if spec.held_applies else ""
    rows = tx.fetchall(
        f"SELECT {spec.primary_key[0]}, {spec.held_column} FROM {{p}}{spec.table} "
        f"WHERE {spec.primary_key[0]} IN ({marks}){only}",
        tuple(ids),
    )
    return [(row[0], row[1]) for row in rows]


def _insert(
    tx: Tx, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    if rows:
        marks = ", ".join("?" for _ in columns)
        tx.executemany(
            f"INSERT INTO {{p}}{table} ({', '.join(columns)}) VALUES ({marks})", rows
        )
