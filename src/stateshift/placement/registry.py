"""Tables that hold tagged or partitioned rows, declared by their owners.

The residency checker scans every declared table for rows whose tag may
not live in the region of the shard they sit in, and the rebalancer moves
the rows of a partition key between shards. Each feature declares its
tables here once (at import) instead of the placement code knowing them::

    register_table(TableSpec(
        "state_items",
        columns=("namespace", "key", "partition_key", "residency", "value"),
        primary_key=("namespace", "key"),
        partition_column="partition_key",
        residency_column="residency",
    ))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Attached", "TableSpec", "register_table", "registered_tables"]

_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class Attached:
    """Rows of another table that belong to a row by reference (its blobs).

    They move with the row that names them, and are deleted with it.
    """

    table: str
    """Table name without the prefix; it exists wherever the owner's does."""

    columns: tuple[str, ...]
    """Every column copied when the rows move."""

    key: str
    """Column of ``table`` that the owner's column names."""

    via: str
    """Column of the owner's table holding the reference (``NULL``: none)."""

    order: tuple[str, ...] = ()
    """Columns that order the rows (default: ``key``). The copies are
    inserted in this order, so a generated id (an event's position, left
    out of ``columns``) is numbered again on the new shard in the same order.
    """


@dataclass(frozen=True)
class TableSpec:
    """How the placement code may read and move the rows of one table."""

    table: str
    """Table name without the prefix."""

    columns: tuple[str, ...]
    """Every column copied when rows move (all of them but generated ids)."""

    primary_key: tuple[str, ...]
    """Columns naming one row, for reports."""

    partition_column: str | None = None
    """Column with the partition key; rows of tables without one never move."""

    residency_column: str | None = None
    """Column with the residency tag (empty for untagged rows)."""

    attached: tuple[Attached, ...] = ()
    """Rows of other tables that move and are deleted with these rows."""

    busy_when: str | None = None
    """SQL condition on a row that keeps its partition key from moving now
    (a workflow a worker holds); the rebalance tries the key again later."""

    held_column: str | None = None
    """Column left ``NULL`` on the copy until the key's switch, its value
    held back meanwhile (a workflow's due time: no worker of the new shard
    claims the copy while the old shard answers). Needs a one-column
    primary key."""

    held_applies: str | None = None
    """SQL condition on a copy that takes its held value back when its key
    is switched; a copy changed since the switch otherwise keeps its own
    (a workflow a worker claimed, ran and ended meanwhile)."""

    def __post_init__(self) -> None:
        names = (self.table, *self.columns, *self.primary_key)
        for attached in self.attached:
            names += (attached.table, *attached.columns, attached.key, *attached.order)
            if attached.via not in self.columns:
                raise ValueError(f"{attached.via!r} is not a column of {self.table}")
            if attached.key not in attached.columns:
                raise ValueError(f"{attached.key!r} is not among {attached.columns}")
        extra = (self.partition_column, self.residency_column, self.held_column)
        for name in (*names, *(n for n in extra if n is not None)):
            if not _NAME.match(name):
                raise ValueError(f"{name!r} is not a plain SQL identifier")
        for column in (*self.primary_key, *(n for n in extra if n is not None)):
            if column not in self.columns:
                raise ValueError(f"{column!r} is not among the columns of {self}")
        if self.held_column is not None and len(self.primary_key) != 1:
            raise ValueError(f"{self.table}: held_column needs a one-column key")

    @property
    def movable(self) -> bool:
        """True when rows follow their partition key to another shard."""
        return self.partition_column is not None


_TABLES: dict[str, TableSpec] = {}


def register_table(spec: TableSpec) -> None:
    """Declare a table; declaring the same one again replaces it."""
    _TABLES[spec.table] = spec


def registered_tables() -> list[TableSpec]:
    """Every declared table, in declaration order."""
    return list(_TABLES.values())


register_table(
    TableSpec(
        "placement_audit",
        columns=(
            "at",
            "tag",
            "region",
            "operation",
            "key",
            "home_region",
            "target_region",
        ),
        primary_key=("key", "at"),
        residency_column="tag",
    )
)
register_table(
    TableSpec(
        "placement_probe",
        columns=("partition_key", "item_key", "residency", "value", "version"),
        primary_key=("partition_key", "item_key"),
        partition_column="partition_key",
        residency_column="residency",
    )
)
