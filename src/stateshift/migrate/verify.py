"""The verification pass: every source item against the namespace, by checksum.

The source is read again from the start and mapped exactly as the backfill
maps it; each item's checksum (of its canonical encoded value, see
:mod:`stateshift.migrate._checksum`) is compared with the namespace's.
The report names every key that is missing, holds another value, or is in
the namespace without being in the source.

The source's checksums are held in memory, one entry per key (about 150
bytes each): ten million keys need about 1.5 GB.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stateshift.migrate._checksum import value_digest
from stateshift.migrate.backfill import Backfill, open_mapper
from stateshift.migrate.sources import Source

if TYPE_CHECKING:
    from stateshift.app import App

__all__ = ["VerifyReport", "verify_backfill"]

_CHUNK = 1000


@dataclass
class VerifyReport:
    """Counts and every mismatch between a source and a namespace."""

    source_items: int = 0
    """Distinct keys the source maps to."""
    namespace_items: int = 0
    """Items in the namespace."""
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    """Keys in the source, absent from the namespace."""
    different: list[str] = field(default_factory=list)
    """Keys whose values differ."""
    extra: list[str] = field(default_factory=list)
    """Keys in the namespace, absent from the source."""

    @property
    def clean(self) -> bool:
        """True when counts and every checksum agree."""
        return not (self.missing or self.different or self.extra)

    def as_dict(self) -> dict[str, object]:
        return {
            "clean": self.clean,
            "source_items": self.source_items,
            "namespace_items": self.namespace_items,
            "matched": self.matched,
            "missing": self.missing,
            "different": self.different,
            "extra": self.extra,
        }

    def lines(self) -> list[str]:
        """The report as text, one mismatch per line."""
        out = [
            f"source items:    {self.source_items}",
            f"namespace items: {self.namespace_items}",
            f"matched:         {self.matched}",
        ]
        out += [f"missing   {key}" for key in self.missing]
        out += [f"different {key}" for key in self.different]
        out += [f"extra     {key}" for key in self.extra]
        out.append("verify: clean" if self.clean else "verify: MISMATCHES")
        return out


def verify_backfill(app: App, plan: Backfill) -> VerifyReport:
    """Compare the source of ``plan`` with its namespace, item by item."""
    mapper = open_mapper(plan)
    expected: dict[str, str] = {}
    try:
        for batch in _batches(mapper.source, plan.batch_size):
            items, _ = mapper.items(batch)
            for key, value in items.items():
                expected[key] = value_digest(value)
    finally:
        mapper.source.close()

    report = VerifyReport(source_items=len(expected))
    namespace = app.state(plan.namespace)
    keys = list(expected)
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        found = namespace.get_many(chunk)
        for key in chunk:
            item = found.get(key)
            if item is None:
                report.missing.append(key)
            elif value_digest(item.value) != expected[key]:
                report.different.append(key)
            else:
                report.matched += 1

    cursor: str | None = None
    while True:
        page = namespace.scan(limit=_CHUNK, cursor=cursor)
        report.namespace_items += len(page.items)
        report.extra += [i.key for i in page.items if i.key not in expected]
        if page.cursor is None:
            break
        cursor = page.cursor
    report.missing.sort()
    report.different.sort()
    return report


def _batches(source: Source, size: int) -> Iterator[list[Any]]:
    position: Any = None
    while True:
        batch = source.read(position, size)
        yield batch.records
        if batch.done:
            return
        position = batch.position
