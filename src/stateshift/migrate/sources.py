"""Legacy sources a backfill reads: JSON Lines, CSV, a SQL table or query, Redis.

Every source yields records in a stable order, a batch at a time, and
says where the next batch starts. That position is plain JSON (a byte
offset, the last key, a scan cursor), so a workflow step can record it in
its checkpoint and a resumed backfill can continue from it without
reading anything it already copied.

A record is what the legacy system had: a JSON object, a CSV row or a SQL
row as a ``dict``, or for Redis ``{"key", "type", "value"}``. The source
also knows its default mapping to a namespace item (:meth:`Source.pair`);
a transform hook may replace it.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stateshift.errors import ConfigError, StoreError

__all__ = [
    "Batch",
    "CsvSource",
    "JsonLinesSource",
    "RedisSource",
    "Source",
    "SourceSpec",
    "SqlSource",
    "open_source",
]

logger = logging.getLogger(__name__)

Position = Any
"""Where a batch starts: JSON-encodable, ``None`` for the beginning."""

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_GLOB_CHARS = re.compile(r"[*?\[\\]")


@dataclass(frozen=True)
class SourceSpec:
    """What to read, as given on the command line (all JSON-encodable)."""

    url: str
    """A file path (``.jsonl``/``.ndjson``/``.csv``), ``sqlite:///``,
    ``postgresql://`` or ``redis://`` URL."""
    key_field: str | None = None
    """The field or column holding each record's key (files and SQL)."""
    table: str | None = None
    """SQL: the table to read (``schema.table`` allowed)."""
    query: str | None = None
    """SQL: a query to read instead of a table; it must return ``key_field``."""
    match: str | None = None
    """Redis: the key pattern, like ``legacy:cart:*``."""
    format: str | None = None
    """Force ``jsonl`` or ``csv`` for a file whose name does not tell."""
    redis_values: str = "auto"
    """Redis strings: ``auto`` (JSON when it parses, else text), ``json``, ``text``."""

    def as_dict(self) -> dict[str, Any]:
        """The spec as a plain dict (workflow input)."""
        return {
            name: getattr(self, name)
            for name in self.__dataclass_fields__
            if getattr(self, name) is not None
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceSpec:
        """The inverse of :meth:`as_dict`."""
        return cls(**data)


@dataclass(frozen=True)
class Batch:
    """Records read from one position."""

    records: list[Any]
    position: Position
    """Where the next batch starts."""
    done: bool
    """True when nothing follows this batch."""


class Source(ABC):
    """A legacy store read in a stable order, a batch at a time."""

    @abstractmethod
    def read(self, position: Position, limit: int) -> Batch:
        """Up to ``limit`` records from ``position`` (``None``: the start)."""

    @abstractmethod
    def pair(self, record: Any) -> tuple[str, Any] | None:
        """The default namespace item for ``record``: ``(key, value)``."""

    def count(self) -> int | None:
        """How many records there are, when cheap to tell; else ``None``."""
        return None

    @abstractmethod
    def describe(self) -> str:
        """The source, for messages (no credentials)."""

    def close(self) -> None:  # noqa: B027 - most sources hold nothing open
        """Release connections and files."""

    def records(self, limit: int = 1000) -> Iterator[Any]:
        """Every record, from the start."""
        position: Position = None
        while True:
            batch = self.read(position, limit)
            yield from batch.records
            if batch.done:
                return
            position = batch.position


def _key_of(record: Any, key_field: str | None, where: str) -> str:
    if key_field is None:
        raise ConfigError(
            "key_field", f"{where}: name the field holding each key (--key-field)"
        )
    if not isinstance(record, dict) or key_field not in record:
        raise ConfigError(
            "key_field",
            f"{where}: a record has no field {key_field!r}: {record!r:.200}",
        )
    value = record[key_field]
    if value is None:
        raise ConfigError(
            "key_field", f"{where}: a record has a null key: {record!r:.200}"
        )
    return str(value)


# --- files ------------------------------------------------------------------


class JsonLinesSource(Source):
    """A file of one JSON value per line; the position is a byte offset."""

    def __init__(self, path: Path, key_field: str | None) -> None:
        self.path = path
        self.key_field = key_field
        if not path.is_file():
            raise ConfigError("source", f"{path} is not a file")

    def read(self, position: Position, limit: int) -> Batch:
        offset = int(position or 0)
        records: list[Any] = []
        with self.path.open("rb") as handle:
            handle.seek(offset)
            while len(records) < limit:
                line = handle.readline()
                if not line:
                    return Batch(records, offset, done=True)
                line_start, offset = offset, offset + len(line)
                if not line.strip():
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError as exc:
                    raise ConfigError(
                        "source", f"{self.path} at byte {line_start}: not JSON: {exc}"
                    ) from None
            done = not handle.readline().strip() and handle.read(1) == b""
        return Batch(records, offset, done=done)

    def pair(self, record: Any) -> tuple[str, Any] | None:
        return _key_of(record, self.key_field, str(self.path)), record

    def count(self) -> int | None:
        with self.path.open("rb") as handle:
            return sum(1 for line in handle if line.strip())

    def describe(self) -> str:
        return f"JSON Lines file {self.path}"


class CsvSource(Source):
    """A CSV file with a header row; the position is a byte offset.

    The file is read as bytes, line by line, and the lines are fed to the
    CSV parser, so the offset after each record is exact even when a
    quoted field spans lines.
    """

    def __init__(self, path: Path, key_field: str | None) -> None:
        self.path = path
        self.key_field = key_field
        if not path.is_file():
            raise ConfigError("source", f"{path} is not a file")

    def read(self, position: Position, limit: int) -> Batch:
        with self.path.open("rb") as handle:
            lines = _TrackedLines(handle)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None:
                return Batch([], 0, done=True)
            offset = max(int(position or 0), lines.offset)
            handle.seek(offset)
            lines.offset = offset
            records: list[Any] = []
            while len(records) < limit:
                row = next(reader, None)
                if row is None:
                    return Batch(records, lines.offset, done=True)
                if not row:
                    continue
                if len(row) != len(header):
                    raise ConfigError(
                        "source",
                        f"{self.path} near byte {lines.offset}: {len(row)} fields "
                        f"where the header has {len(header)}",
                    )
                records.append(dict(zip(header, row, strict=True)))
            offset = lines.offset
            done = handle.read(1) == b""
        return Batch(records, offset, done=done)

    def pair(self, record: Any) -> tuple[str, Any] | None:
        return _key_of(record, self.key_field, str(self.path)), record

    def count(self) -> int | None:
        with self.path.open(newline="", encoding="utf-8") as handle:
            return max(0, sum(1 for row in csv.reader(handle) if row) - 1)

    def describe(self) -> str:
        return f"CSV file {self.path}"


class _TrackedLines:
    """Lines of a binary file as text, counting the bytes consumed."""

    def __init__(self, handle: io.BufferedReader) -> None:
        self.handle = handle
        self.offset = 0

    def __iter__(self) -> _TrackedLines:
        return self

    def __next__(self) -> str:
        line = self.handle.readline()
        if not line:
            raise StopIteration
        self.offset += len(line)
        return line.decode("utf-8")


# --- SQL --------------------------------------------------------------------


class SqlSource(Source):
    """A table or query of a SQL database, read in key order.

    The position is the last key read, so each batch is one indexed range
    query (``WHERE key > ? ORDER BY key LIMIT n``) however far along it is.
    """

    def __init__(self, spec: SourceSpec) -> None:
        if spec.key_field is None or not _IDENTIFIER.match(spec.key_field):
            raise ConfigError(
                "key_field", "a SQL source needs --key-field naming its key column"
            )
        if (spec.table is None) == (spec.query is None):
            raise ConfigError("source", "a SQL source needs --table or --query")
        if spec.table is not None and not _IDENTIFIER.match(spec.table):
            raise ConfigError("table", f"{spec.table!r} is not a table name")
        self.spec = spec
        self.key_field = spec.key_field
        self.dialect = "sqlite" if spec.url.startswith("sqlite:") else "postgresql"
        self._connection: Any = None
        relation = _quote(spec.table) if spec.table is not None else f"({spec.query})"
        self._from = f"{relation} AS legacy_source"
        self._key = f'legacy_source."{spec.key_field}"'

    def _connect(self) -> Any:
        if self._connection is not None:
            return self._connection
        if self.dialect == "sqlite":
            from stateshift.store.sqlite import path_from_url

            path = path_from_url(self.spec.url)
            if not path.is_file():
                raise ConfigError("source", f"the SQLite file {path} does not exist")
            # Read-only: a backfill must never change the legacy database.
            self._connection = sqlite3.connect(
                f"file:{path}?mode=ro", uri=True, check_same_thread=False
            )
        else:
            try:
                import psycopg
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    "source",
                    "a PostgreSQL source needs pip install 'stateshift[postgres]'",
                ) from exc
            try:
                self._connection = psycopg.connect(self.spec.url, autocommit=True)
            except psycopg.Error as exc:
                raise StoreError(f"cannot reach {self.describe()}: {exc}") from exc
        return self._connection

    def _query(self, sql: str, params: tuple[Any, ...]) -> tuple[list[str], list[Any]]:
        connection = self._connect()
        if self.dialect == "postgresql":
            sql = sql.replace("?", "%s")
        try:
            cursor = connection.execute(sql, params)
            columns = [column[0] for column in cursor.description or ()]
            return columns, cursor.fetchall()
        except Exception as exc:
            if self.dialect == "sqlite" and not isinstance(exc, sqlite3.Error):
                raise
            if self.dialect == "postgresql" and type(exc).__module__.split(".")[0] != (
                "psycopg"
            ):
                raise
            raise StoreError(f"reading {self.describe()} failed: {exc}") from exc

    def read(self, position: Position, limit: int) -> Batch:
        where, params = (
            ("", ())
            if position is None
            else (
                f" WHERE {self._key} > ?",
                (position,),
            )
        )
        sql = f"SELECT * FROM {self._from}{where} ORDER BY {self._key} LIMIT ?"
        columns, rows = self._query(sql, (*params, limit))
        if self.key_field not in columns:
            raise ConfigError(
                "key_field", f"{self.describe()} has no column {self.key_field!r}"
            )
        records = [dict(zip(columns, row, strict=True)) for row in rows]
        if not records:
            return Batch([], position, done=True)
        last = records[-1][self.key_field]
        return Batch(records, _jsonable_key(last), done=len(records) < limit)

    def pair(self, record: Any) -> tuple[str, Any] | None:
        return _key_of(record, self.key_field, self.describe()), record

    def count(self) -> int | None:
        _, rows = self._query(f"SELECT COUNT(*) FROM {self._from}", ())
        return int(rows[0][0])

    def describe(self) -> str:
        from stateshift.store.postgres import redact

        what = self.spec.table or "query"
        return f"{redact(self.spec.url)} ({what})"

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _quote(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))


def _jsonable_key(value: Any) -> Any:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return value
    raise ConfigError(
        "key_field",
        f"a SQL key column must hold text or numbers to resume by, found "
        f"{type(value).__name__}",
    )


# --- Redis ------------------------------------------------------------------


class RedisSource(Source):
    """Keys of a Redis database matching a pattern; string and hash values.

    The position is Redis's ``SCAN`` cursor, which needs no server-side
    state and visits every key present for the whole scan. A key can be
    visited twice while Redis resizes its table; the backfill writes an
    unchanged value as a no-op, so that costs nothing.
    """

    def __init__(self, spec: SourceSpec) -> None:
        if not spec.match:
            raise ConfigError("match", "a Redis source needs --match 'prefix:*'")
        if spec.redis_values not in ("auto", "json", "text"):
            raise ConfigError("redis_values", "must be auto, json or text")
        self.spec = spec
        self.match = spec.match
        literal = _GLOB_CHARS.split(spec.match, maxsplit=1)[0]
        self.strip = literal
        self._client: Any = None

    def _redis(self) -> Any:
        if self._client is None:
            try:
                import redis
            except ModuleNotFoundError as exc:
                raise ConfigError(
                    "source", "a Redis source needs pip install 'stateshift[redis]'"
                ) from exc
            self._client = redis.Redis.from_url(self.spec.url)
        return self._client

    def read(self, position: Position, limit: int) -> Batch:
        client = self._redis()
        cursor = int(position or 0)
        keys: list[bytes] = []
        # One SCAN call may return fewer or more keys than COUNT: gather
        # whole pages, so the cursor after the batch is a true position.
        while True:
            cursor, page = client.scan(cursor=cursor, match=self.match, count=limit)
            keys.extend(page)
            if cursor == 0 or len(keys) >= limit:
                break
        records = self._load(client, sorted(set(keys)))
        return Batch(records, cursor, done=cursor == 0)

    def _load(self, client: Any, keys: list[bytes]) -> list[Any]:
        if not keys:
            return []
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.type(key)
        kinds = [_text(kind) for kind in pipe.execute()]
        pipe = client.pipeline(transaction=False)
        for key, kind in zip(keys, kinds, strict=True):
            if kind == "hash":
                pipe.hgetall(key)
            elif kind == "string":
                pipe.get(key)
            else:
                pipe.exists(key)
        values = pipe.execute()

        records: list[Any] = []
        for key, kind, raw in zip(keys, kinds, values, strict=True):
            if kind == "none":
                continue  # deleted between SCAN and read
            if kind == "hash":
                value: Any = {_text(f): _text(v) for f, v in raw.items()}
            elif kind == "string":
                value = self._string(raw)
            else:
                value = None
            records.append({"key": _text(key), "type": kind, "value": value})
        return records

    def _string(self, raw: bytes) -> Any:
        text = _text(raw)
        if self.spec.redis_values == "text":
            return text
        try:
            return json.loads(text)
        except ValueError:
            if self.spec.redis_values == "json":
                raise ConfigError(
                    "redis_values",
                    f"a value under {self.match} is not JSON: {text:.80}",
                ) from None
            return text

    def pair(self, record: Any) -> tuple[str, Any] | None:
        if record["type"] not in ("string", "hash"):
            logger.warning(
                "skipping Redis key %s: type %s is not a string or a hash",
                record["key"],
                record["type"],
                extra={"event": "migrate.skip", "key": record["key"]},
            )
            return None
        key = str(record["key"])
        if self.strip and key.startswith(self.strip) and key != self.strip:
            key = key[len(self.strip) :]
        return key, record["value"]

    def describe(self) -> str:
        from stateshift.store.postgres import redact

        return f"{redact(self.spec.url)} keys {self.match}"

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _text(raw: Any) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)


# --- choosing ---------------------------------------------------------------


def open_source(spec: SourceSpec) -> Source:
    """The source ``spec`` names, by URL scheme or file extension."""
    url = spec.url
    if url.startswith("sqlite:") or url.startswith(("postgresql:", "postgres:")):
        return SqlSource(spec)
    if url.startswith(("redis:", "rediss:")):
        return RedisSource(spec)
    if url.startswith(("mysql:", "mariadb:")):
        raise ConfigError(
            "source",
            "MySQL/MariaDB sources are not supported yet: export the table to CSV "
            "or JSON Lines and backfill from the file",
        )
    if "://" in url:
        raise ConfigError("source", f"{url!r}: unknown scheme")
    path = Path(url)
    kind = spec.format or path.suffix.lower().lstrip(".")
    if kind in ("jsonl", "ndjson"):
        return JsonLinesSource(path, spec.key_field)
    if kind == "csv":
        return CsvSource(path, spec.key_field)
    raise ConfigError(
        "source",
        f"{url!r}: cannot tell the format; name a .jsonl or .csv file, or pass "
        "--format jsonl|csv",
    )
