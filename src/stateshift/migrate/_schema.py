"""The store's tables as its declared schema describes them.

``store/schema/<dialect>.sql`` is what migrating from zero produces (a test
diffs the two), so it names every table, its columns in order, the kind of
each column and the primary key: what a copy between backends needs,
without asking each database's catalog in its own dialect.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

__all__ = ["Column", "Table", "declared_tables"]

_CREATE = re.compile(r"CREATE TABLE \{p\}(\w+)\s*\(", re.IGNORECASE)
_CONSTRAINT_WORDS = ("PRIMARY", "UNIQUE", "CONSTRAINT", "CHECK", "FOREIGN")


@dataclass(frozen=True)
class Column:
    """One column."""

    name: str
    kind: str
    """``int``, ``float``, ``bytes`` or ``str``: how values are compared."""
    identity: bool
    """Filled by the database (``GENERATED ... AS IDENTITY``, PostgreSQL)."""


@dataclass(frozen=True)
class Table:
    """One table of the store."""

    name: str
    """Without the table prefix."""
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    """Primary-key columns; empty when the table has none."""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def declared_tables(dialect: str) -> list[Table]:
    """Every table of the declared schema of ``dialect``, in declared order."""
    text = (
        resources.files("stateshift.store")
        .joinpath("schema", f"{dialect}.sql")
        .read_text("utf-8")
    )
    text = "\n".join(line.split("--", 1)[0] for line in text.splitlines())
    tables: list[Table] = []
    for match in _CREATE.finditer(text):
        body = _body(text, match.end())
        tables.append(_table(match.group(1), body))
    return tables


def _body(text: str, start: int) -> str:
    depth = 1
    for index in range(start, len(text)):
        if text[index] == "(":
            depth += 1
        elif text[index] == ")":
            depth -= 1
            if depth == 0:
                return text[start:index]
    raise ValueError("unbalanced parentheses in the declared schema")


def _split(body: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    depth = 0
    for char in body:
        if char == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        depth += char == "("
        depth -= char == ")"
        current.append(char)
    parts.append("".join(current).strip())
    return [part for part in parts if part]


def _table(name: str, body: str) -> Table:
    columns: list[Column] = []
    key: tuple[str, ...] = ()
    for part in _split(body):
        words = part.split()
        head = words[0].upper()
        if head in _CONSTRAINT_WORDS:
            if head == "PRIMARY":
                inside = part[part.index("(") + 1 : part.rindex(")")]
                key = tuple(column.strip() for column in inside.split(","))
            continue
        upper = part.upper()
        columns.append(Column(words[0], _kind(words[1]), "AS IDENTITY" in upper))
        if "PRIMARY KEY" in upper:
            key = (words[0],)
    return Table(name, tuple(columns), key)


def _kind(sql_type: str) -> str:
    word = sql_type.upper()
    if word in ("BLOB", "BYTEA"):
        return "bytes"
    if word in ("DOUBLE", "REAL", "FLOAT", "NUMERIC"):
        return "float"
    if word in ("INTEGER", "BIGINT", "INT", "SMALLINT", "BOOLEAN"):
        return "int"
    return "str"
