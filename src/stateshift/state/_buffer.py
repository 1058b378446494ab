"""State inside a unit of work: tracked keys, read-your-writes, one commit.

The first time a unit touches a key (read or write) the row is read and
its versions are recorded. Later reads are served from the unit; writes
change only the unit's copy. At commit, one operation visits every tracked
key in (namespace, key) order, so two units never lock rows in opposite
orders, and checks that each row still has the versions recorded: a key
only read is share-locked and checked, a key written is checked and
written. Any difference raises :class:`~stateshift.errors.ConflictError`
and the whole commit rolls back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from stateshift.errors import ConflictError
from stateshift.state._rows import ItemRows, remove_blobs_later
from stateshift.store.base import Tx
from stateshift.unit import Unit

_CACHE_KEY = ("stateshift.state", "buffer")


@dataclass(slots=True)
class Tracked:
    """One key as a unit sees it."""

    namespace: str
    key: str
    read_raw: int
    """The row's version when the unit first touched the key (0: no row)."""
    read_visible: int
    """The visible version then (0: absent, deleted or expired)."""
    raw: int
    """The row version the unit's copy will have (``read_raw`` + writes)."""
    data: bytes | None
    """The unit's copy of the encoded value; ``None`` when absent."""
    expires_at: float | None
    placed: tuple[str, str] = ("", "")
    """(partition key, residency tag) the row is written with."""
    found_residency: str = ""
    """The residency tag of the row when first read (``""``: none or no row)."""
    dirty: bool = False
    invalidate: list[Callable[[int], None]] = field(default_factory=list)
    """Cache invalidations to run, with the final version, after commit."""

    def visible_version(self, now: float) -> int:
        if self.data is None:
            return 0
        if self.expires_at is not None and self.expires_at <= now:
            return 0
        return self.raw

    def set(
        self,
        data: bytes | None,
        expires_at: float | None,
        placed: tuple[str, str] | None = None,
    ) -> int:
        """Change the unit's copy; return the version it will have."""
        if placed is not None:
            self.placed = placed
        self.raw += 1
        self.data = data
        self.expires_at = expires_at
        self.dirty = True
        return self.raw


class StateBuffer:
    """The state participant of one unit."""

    def __init__(self, rows: ItemRows, now: Callable[[], float]) -> None:
        self.rows = rows
        self.now = now
        self.tracked: dict[tuple[str, str], Tracked] = {}
        self._removed_blobs: list[str] = []

    @classmethod
    def of(cls, unit: Unit, rows: ItemRows, now: Callable[[], float]) -> StateBuffer:
        """The buffer of ``unit``, created (and its commit op added) once."""
        unit.bind(rows.store)
        buffer = unit.cache.get(_CACHE_KEY)
        if buffer is None:
            buffer = cls(rows, now)
            unit.cache[_CACHE_KEY] = buffer
            unit.add(buffer.apply)
            unit.after_commit.append(buffer.after_commit)
        assert isinstance(buffer, StateBuffer)
        return buffer

    @classmethod
    def existing(cls, unit: Unit) -> StateBuffer | None:
        """The buffer of ``unit`` if a state call made one, without binding."""
        buffer = unit.cache.get(_CACHE_KEY)
        return buffer if isinstance(buffer, StateBuffer) else None

    def track(
        self,
        namespace: str,
        keys: list[str],
        placed: dict[str, tuple[str, str]] | None = None,
    ) -> list[Tracked]:
        """Tracked entries of ``keys``, reading the untracked ones in one go.

        ``placed`` gives each new entry its (partition key, residency tag).
        """
        placed = placed or {}
        missing = [k for k in keys if (namespace, k) not in self.tracked]
        if missing:
            now = self.now()
            # No forwarding rows here: the commit checks them under the lock.
            found = {
                key: item
                for _, items, _ in self.rows.read_many_alone(namespace, missing)
                for key, item in items.items()
            }
            for key in missing:
                stored = found.get(key)
                where = placed.get(key, (key, ""))
                if stored is None:
                    entry = Tracked(namespace, key, 0, 0, 0, None, None, where)
                else:
                    visible = stored.visible(now)
                    entry = Tracked(
                        namespace,
                        key,
                        stored.raw_version,
                        stored.raw_version if visible else 0,
                        stored.raw_version,
                        stored.data if visible else None,
                        stored.expires_at if visible else None,
                        where,
                        stored.residency,
                    )
                self.tracked[(namespace, key)] = entry
        return [self.tracked[(namespace, k)] for k in keys]

    def apply(self, tx: Tx) -> None:
        """Check every tracked key and write the dirty ones (inside commit)."""
        now = self.now()
        for (namespace, key), entry in sorted(self.tracked.items()):
            check = _exact(entry)
            if not entry.dirty:
                check(*self.rows.check(tx, namespace, key, now))
                continue
            result = self.rows.write(
                tx,
                namespace,
                key,
                entry.data,
                expires_at=entry.expires_at,
                now=now,
                check=check,
                new_version=entry.raw,
                placed=entry.placed,
            )
            self._removed_blobs.extend(result.removed_blobs)

    def after_commit(self) -> None:
        remove_blobs_later(self.rows.blobs, self._removed_blobs)
        for entry in self.tracked.values():
            for invalidate in entry.invalidate:
                invalidate(entry.raw)


def _exact(entry: Tracked) -> Callable[[int, int], None]:
    def check(raw: int, visible: int) -> None:
        # The raw version catches a delete-and-recreate that lands on the
        # same visible version; the visible one catches an expiry since.
        if raw != entry.read_raw or visible != entry.read_visible:
            raise ConflictError(entry.namespace, entry.key, entry.read_visible, visible)

    return check
