"""Rows of versioned state: the SQL behind namespaces, in one place.

Every write goes through :meth:`ItemRows.write`: lock the row (``FOR
UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already serializes
writers), let the caller check the version found, then insert or update.
A key is *visible* when its row is not expired and holds a value; its
visible version is then the row's version, otherwise 0. The row's own
version (``raw``) keeps growing through deletions, so a writer that read an
item before it was deleted and written again cannot mistake the new one for
the old.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from stateshift.errors import DeserializationError
from stateshift.placement.router import (
    ForwardRows,
    forward_select_sql,
    parse_forward_rows,
)
from stateshift.state.blobs import BlobStore, DatabaseBlobStore
from stateshift.store.base import Row, Store, Tx

Check = Callable[[int, int], None]
"""Called with (raw version, visible version) of the locked row; may raise."""

logger = logging.getLogger(__name__)

_BATCH = 32  # keys per batch read: one fixed text, so one cached plan

# The item half of a one-statement read: the row and, for a large value in
# the database's own blob table, its blob, so both come from one snapshot.
# Tombstones and expired rows are returned too: a unit needs their version,
# and the caller decides visibility by the rule the scans use. The residency
# tag is returned for the caller to check against the policy.
_JOINED = (
    "SELECT i.key, i.version, i.value, i.blob_ref, i.expires_at, i.residency, "
    "b.data{nulls} FROM {{p}}state_items i "
    "LEFT JOIN {{p}}state_blobs b ON b.blob_ref = i.blob_ref "
    "WHERE i.namespace = ? AND i.key IN ({keys})"
)
_JOINED_COLUMNS = 7


class _NotRead:
    """Marks a write whose row has not been locked and read yet."""


NOT_READ = _NotRead()


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One row as read, its value resolved from the blob store if needed."""

    key: str
    raw_version: int
    data: bytes | None
    expires_at: float | None
    residency: str = ""
    """The row's residency tag (``""``: untagged)."""

    def visible(self, now: float) -> bool:
        return self.data is not None and (
            self.expires_at is None or self.expires_at > now
        )


@dataclass(slots=True)
class WriteResult:
    """What a write did: the new version and blobs to remove after commit."""

    version: int
    changed: bool
    removed_blobs: list[str]


class ItemRows:
    """Named state queries of one store, with its blob store."""

    def __init__(self, store: Store, blobs: BlobStore, threshold_bytes: int) -> None:
        self.store = store
        self.blobs = blobs
        self.threshold_bytes = threshold_bytes
        self.q = store.queries("state")
        # Texts built once per store: the statement cache keys on them.
        self._read_one_routed = _joined(1, forward=1)
        self._read_batch_routed = _joined(_BATCH, forward=_BATCH)
        self._read_batch = _joined(_BATCH, forward=0)
        # The named text may end in a comment: the parenthesis needs its line.
        self._lock_routed = (
            f"WITH item AS (\n{self.q['lock_item']}\n) SELECT *, NULL, NULL, NULL "
            f"FROM item UNION ALL {forward_select_sql(1, columns_before=4)}"
        )
        # Only the store's own blob table can be joined into the read.
        self._blobs_joined = (
            isinstance(blobs, DatabaseBlobStore) and blobs.store is store
        )

    # --- reads ------------------------------------------------------------

    def read_alone(
        self, namespace: str, key: str, partition_key: str
    ) -> tuple[StoredItem | None, ForwardRows]:
        """The row of ``key`` and the forwarding rows of its partition key.

        One statement outside any transaction: one round trip, and one
        snapshot for the item, its blob and the forwarding rows.
        """
        rows = self.store.read_alone(
            self._read_one_routed, (namespace, key, partition_key)
        )
        found = self._joined_items(rows)
        return found.get(key), parse_forward_rows(rows)

    def read_many_alone(
        self,
        namespace: str,
        keys: Sequence[str],
        partition_keys: Sequence[str] | None = None,
    ) -> list[tuple[list[str], dict[str, StoredItem], ForwardRows]]:
        """Rows of ``keys`` that exist, with the forwarding rows of ``partition_keys``.

        ``partition_keys[i]`` is the partition key of ``keys[i]``. One
        statement outside any transaction per batch of keys; each batch's
        items and forwarding rows come from one snapshot, so they are
        returned batch by batch: ``(keys, items by key, forwarding rows)``.
        Without ``partition_keys`` no forwarding row is read.
        """
        batches: list[tuple[list[str], dict[str, StoredItem], ForwardRows]] = []
        for start in range(0, len(keys), _BATCH):
            chunk = list(keys[start : start + _BATCH])
            padded = chunk + [chunk[-1]] * (_BATCH - len(chunk))
            if partition_keys is None:
                rows = self.store.read_alone(self._read_batch, (namespace, *padded))
                batches.append((chunk, self._joined_items(rows), {}))
                continue
            wanted = list(dict.fromkeys(partition_keys[start : start + _BATCH]))
            wanted += [wanted[-1]] * (_BATCH - len(wanted))
            rows = self.store.read_alone(
                self._read_batch_routed, (namespace, *padded, *wanted)
            )
            batches.append((chunk, self._joined_items(rows), parse_forward_rows(rows)))
        return batches

    def _joined_items(
        self, rows: Sequence[Row], tx: Tx | None = None
    ) -> dict[str, StoredItem]:
        """Items of rows read with their joined blob (forwarding rows skipped).

        A blob of another blob store is read from it (in ``tx`` when given).
        Dicts keep the rows' order.
        """
        found: dict[str, StoredItem] = {}
        for row in rows:
            if row[0] is None:
                continue  # a forwarding row
            key, blob_ref = str(row[0]), row[3]
            if blob_ref is not None and not self._blobs_joined:
                if tx is not None:
                    stored = self._stored(
                        tx, key, row[1], row[2], blob_ref, row[4], row[5]
                    )
                else:
                    with self.store.read() as own:
                        stored = self._stored(
                            own, key, row[1], row[2], blob_ref, row[4], row[5]
                        )
            else:
                if blob_ref is not None and row[6] is None:
                    raise DeserializationError(
                        f"the blob {blob_ref} of a state item is missing from the store"
                    )
                data = row[6] if blob_ref is not None else row[2]
                expiry = None if row[4] is None else float(row[4])
                stored = StoredItem(
                    key,
                    int(row[1]),
                    None if data is None else bytes(data),
                    expiry,
                    str(row[5] or ""),
                )
            found[key] = stored
        return found

    def scan(
        self,
        tx: Tx,
        namespace: str,
        *,
        after: str,
        start: str,
        end: str | None,
        now: float,
        limit: int,
    ) -> list[StoredItem]:
        """Visible items with ``start <= key < end`` and ``key > after``."""
        if end is None:
            rows = tx.fetchall(
                self.q["scan_open"], (namespace, after, start, now, limit)
            )
        else:
            rows = tx.fetchall(
                self.q["scan_range"], (namespace, after, start, end, now, limit)
            )
        return list(self._joined_items(rows, tx).values())

    def _stored(
        self,
        tx: Tx,
        key: str,
        version: Any,
        value: Any,
        blob_ref: Any,
        expires_at: Any,
        residency: Any,
    ) -> StoredItem:
        data: bytes | None
        if blob_ref is not None:
            data = self.blobs.read(tx, str(blob_ref))
        else:
            data = None if value is None else bytes(value)
        expiry = None if expires_at is None else float(expires_at)
        return StoredItem(key, int(version), data, expiry, str(residency or ""))

    def check(self, tx: Tx, namespace: str, key: str, now: float) -> tuple[int, int]:
        """(raw, visible) versions of ``key``, share-locked until commit."""
        row = tx.fetchone(self.q["check_item"], (namespace, key))
        if row is None:
            return 0, 0
        raw = int(row[0])
        return raw, raw if _alive(row[1], row[2], now) else 0

    # --- writes -----------------------------------------------------------

    def lock_routed(
        self, tx: Tx, namespace: str, key: str, partition_key: str
    ) -> tuple[Row | None, ForwardRows]:
        """Lock the row of ``key`` and read the forwarding rows, in one statement.

        Returns what :meth:`write` takes as ``locked`` (the ``lock_item``
        row, or ``None``) and the forwarding rows of ``partition_key``. Run
        it after the key's advisory lock, in a statement of its own.
        """
        rows = tx.fetchall(self._lock_routed, (namespace, key, partition_key))
        item = next((row[:4] for row in rows if row[0] is not None), None)
        return item, parse_forward_rows(rows)

    def write(
        self,
        tx: Tx,
        namespace: str,
        key: str,
        data: bytes | None,
        *,
        expires_at: float | None,
        now: float,
        check: Check,
        new_version: int | None = None,
        placed: tuple[str, str] | None = None,
        locked: Row | None | _NotRead = NOT_READ,
    ) -> WriteResult:
        """Write ``data`` to ``key`` (``None`` deletes it) after ``check``.

        ``new_version`` defaults to the row's version plus one; a unit that
        wrote the key several times passes the version it promised.
        ``placed`` is ``(partition key, residency tag)``; by default the key
        itself, untagged. ``locked`` is the row :meth:`lock_routed` already
        locked in ``tx`` (``None``: there was none), saving a round trip.
        """
        placed = placed or (key, "")
        for _ in range(3):
            if isinstance(locked, _NotRead):
                row = tx.fetchone(self.q["lock_item"], (namespace, key))
            else:
                row, locked = locked, NOT_READ
            if row is None:
                check(0, 0)
                if data is None:
                    return WriteResult(0, False, [])
                inserted = self._insert(
                    tx, namespace, key, data, expires_at, now, new_version or 1, placed
                )
                if inserted is not None:
                    return inserted
                # PostgreSQL: another transaction inserted the key after our
                # lock_item found nothing; read it again, now committed.
                continue
            return self._update(
                tx,
                namespace,
                key,
                row,
                data,
                expires_at,
                now,
                check,
                new_version,
                placed,
            )
        raise AssertionError("a state row appeared and vanished three times")

    def _insert(
        self,
        tx: Tx,
        namespace: str,
        key: str,
        data: bytes,
        expires_at: float | None,
        now: float,
        version: int,
        placed: tuple[str, str],
    ) -> WriteResult | None:
        value, blob_ref = self._place(tx, data)
        changed = tx.execute(
            self.q["insert_item"],
            (namespace, key, version, value, blob_ref, expires_at, now, *placed),
        )
        if changed == 0:
            if blob_ref is not None:
                self.blobs.remove(tx if self.blobs.transactional else None, [blob_ref])
            return None
        return WriteResult(version, True, [])

    def _update(
        self,
        tx: Tx,
        namespace: str,
        key: str,
        row: Sequence[Any],
        data: bytes | None,
        expires_at: float | None,
        now: float,
        check: Check,
        new_version: int | None,
        placed: tuple[str, str],
    ) -> WriteResult:
        raw, row_expiry, old_blob = int(row[0]), row[1], row[2]
        visible = _alive(row_expiry, row[3], now)
        check(raw, raw if visible else 0)
        if data is None and not visible:
            return WriteResult(0, False, [])

        version = new_version if new_version is not None else raw + 1
        if data is None:
            # A tombstone: no value, expired now, version kept for the future.
            value, blob_ref, row_expiry = None, None, now
        else:
            value, blob_ref = self._place(tx, data)
            row_expiry = expires_at
        tx.execute(
            self.q["update_item"],
            (version, value, blob_ref, row_expiry, now, *placed, namespace, key, raw),
        )
        removed = [] if old_blob is None else [str(old_blob)]
        return WriteResult(version, True, self._remove_now(tx, removed))

    def _place(self, tx: Tx, data: bytes) -> tuple[bytes | None, str | None]:
        """Keep small values inline; put large ones in the blob store."""
        if len(data) <= self.threshold_bytes:
            return data, None
        blob_ref = uuid.uuid4().hex
        self.blobs.write(tx, blob_ref, data)
        return None, blob_ref

    def _remove_now(self, tx: Tx, blob_refs: list[str]) -> list[str]:
        """Remove blobs in ``tx`` if the blob store can; else return them."""
        if blob_refs and self.blobs.transactional:
            self.blobs.remove(tx, blob_refs)
            return []
        return blob_refs

    # --- purge ------------------------------------------------------------

    def purge(
        self, tx: Tx, *, now: float, tombstone_seconds: float, limit: int
    ) -> tuple[int, list[str]]:
        """Clear expired values and drop old tombstones, at most ``limit`` each.

        Returns the number of rows purged and blobs to remove after commit.
        """
        expired = tx.fetchall(self.q["expired_with_payload"], (now, limit))
        tx.executemany(self.q["clear_payload"], [(r[0], r[1], now) for r in expired])
        blob_refs = [str(r[2]) for r in expired if r[2] is not None]
        later = self._remove_now(tx, blob_refs)

        horizon = now - tombstone_seconds
        old = tx.fetchall(self.q["old_tombstones"], (horizon, limit))
        tx.executemany(self.q["delete_tombstone"], [(r[0], r[1], horizon) for r in old])
        return len(expired) + len(old), later


def _alive(expires_at: Any, has_value: Any, now: float) -> bool:
    return bool(has_value) and (expires_at is None or float(expires_at) > now)


def remove_blobs_later(blobs: BlobStore, blob_refs: Iterable[str]) -> None:
    """Remove blobs of a store that is not transactional, after a commit.

    The commit has already succeeded, so a failure here must not reach the
    caller as a failed write: the old blobs are left behind as orphans.
    """
    refs = list(blob_refs)
    if refs:
        try:
            blobs.remove(None, refs)
        except Exception:
            logger.warning(
                "could not remove %d replaced blob(s) after the commit; "
                "they stay in %r as orphans",
                len(refs),
                blobs,
                exc_info=True,
            )


def _joined(keys: int, *, forward: int) -> str:
    """The one-statement read of ``keys`` items and ``forward`` partition keys."""
    marks = ", ".join("?" for _ in range(keys))
    if not forward:
        return _JOINED.format(nulls="", keys=marks)
    return (
        _JOINED.format(nulls=", NULL, NULL, NULL", keys=marks)
        + " UNION ALL "
        + forward_select_sql(forward, columns_before=_JOINED_COLUMNS)
    )
