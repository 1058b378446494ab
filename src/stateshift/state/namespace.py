"""Namespaces: versioned key-value state, ``app.state("carts")``.

Every item has a version, starting at 1 and growing by one with each
write. ``put(..., expected_version=v)`` writes only if the item is still at
version ``v`` (``0``: only if it does not exist), else raises
:class:`~stateshift.errors.ConflictError` carrying the current version.

Outside a unit of work each call is its own short transaction. Inside one
(a workflow step or ``app.transaction()``), writes are buffered and the
unit reads its own writes; the versions of every key touched are checked
when the unit commits (see :mod:`stateshift.state._buffer`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from stateshift._durations import Duration, to_seconds
from stateshift.errors import ConflictError
from stateshift.placement.router import ForwardRows
from stateshift.state._buffer import StateBuffer, Tracked
from stateshift.state._keys import (
    DEFAULT_UPDATE_ATTEMPTS,
    check_key,
    check_prefix,
    decode_cursor,
    encode_cursor,
    prefix_end,
)
from stateshift.state._placement import (
    ItemRoute,
    moving_among,
    open_item,
    open_locked_item,
    read_item_alone,
    route_item,
    stored_tag,
    unsettled,
)
from stateshift.state._rows import ItemRows, StoredItem, remove_blobs_later
from stateshift.store import Store, Tx
from stateshift.store.base import Row
from stateshift.unit import current_unit

if TYPE_CHECKING:
    from stateshift.state.api import StateMixin
    from stateshift.state.cache import RedisCache

__all__ = ["Item", "Namespace", "Page"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_SCAN_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    """One item of a namespace, as read."""

    key: str
    value: T
    version: int
    """Grows by one with every write of the key; never 0 for an item."""
    expires_at: float | None
    """When the item expires (epoch seconds of the app's clock), or never."""


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a scan, in key order."""

    items: list[Item[T]]
    cursor: str | None
    """Pass to the next ``scan`` to continue; ``None`` when the scan is done."""


class Namespace(Generic[T]):
    """A named set of versioned items, placed by partition key and residency.

    Each item lives on the shard its partition key (its own key unless
    ``partition_key=`` is given) picks in the home region of its residency
    tag. Every read and write is checked against the residency policy
    first; see :mod:`stateshift.state._placement`.
    """

    def __init__(
        self,
        app: StateMixin,
        name: str,
        *,
        type: Any = None,
        cache: RedisCache | None = None,
        residency: str | None = None,
        tenant: str | None = None,
    ) -> None:
        self.name = check_key(name, what="namespace")
        self.type = type
        self.cache = cache
        self.residency = residency
        """The tag of calls that pass no ``residency=``."""
        self.tenant = tenant
        """The tenant whose tag applies when neither names a tag."""
        self._app = app

    def __repr__(self) -> str:
        return f"<stateshift.Namespace {self.name!r}>"

    def now(self) -> float:
        """The clock expiry is measured on (the app's), in epoch seconds."""
        return self._app._state_now()

    # --- reads ------------------------------------------------------------

    def get(
        self,
        key: str,
        *,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> Item[T] | None:
        """The item under ``key``, or ``None`` if absent or expired.

        Raises:
            ResidencyViolation: this region may not read data of the tag.
        """
        check_key(key)
        route = self._route(key, residency, partition_key, "read")
        buffer = self._buffer(route)
        if buffer is not None:
            (entry,) = buffer.track(self.name, [key], {key: _placed(route)})
            self._check_found(route, entry.found_residency)
            return self._from_tracked(entry, buffer.now())
        return self._read(key, route, use_cache=True)

    def get_many(
        self,
        keys: Iterable[str],
        *,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> dict[str, Item[T]]:
        """The items that exist among ``keys``, by key."""
        wanted = list(dict.fromkeys(check_key(k) for k in keys))
        if not wanted:
            return {}
        routes = {k: self._route(k, residency, partition_key, "read") for k in wanted}
        found: dict[str, Item[T]] = {}
        buffer = self._buffer(routes[wanted[0]])
        if buffer is not None:
            now = buffer.now()
            placed = {k: _placed(r) for k, r in routes.items()}
            for entry in buffer.track(self.name, wanted, placed):
                self._check_found(routes[entry.key], entry.found_residency)
                item = self._from_tracked(entry, now)
                if item is not None:
                    found[entry.key] = item
            return found

        now = self._app._state_now()
        by_store: dict[int, list[str]] = {}
        for key in wanted:
            by_store.setdefault(id(routes[key].store), []).append(key)
        moving: list[str] = []
        for keys_here in by_store.values():
            rows = self._rows(routes[keys_here[0]])
            batches = rows.read_many_alone(
                self.name, keys_here, [routes[key].partition_key for key in keys_here]
            )
            # Each batch's items and forwarding rows share one snapshot.
            for batch, stored, forwarding in batches:
                away = moving_among(forwarding, [routes[key] for key in batch])
                moving += [k for k in batch if routes[k].partition_key in away]
                for key in batch:
                    row = stored.get(key)
                    if routes[key].partition_key in away:
                        continue
                    if row is not None and row.visible(now):
                        self._check_found(routes[key], row.residency)
                        found[key] = self._item(row)
        for key in moving:
            item = self._read(key, routes[key])
            if item is not None:
                found[key] = item
        return {key: found[key] for key in wanted if key in found}

    def scan(
        self,
        *,
        prefix: str = "",
        limit: int = 100,
        cursor: str | None = None,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> Page[T]:
        """Items whose key starts with ``prefix``, in key order, a page at a time.

        Pagination is by key, so an item that exists throughout a scan is
        returned exactly once, whatever is written meanwhile. A page may
        hold fewer than ``limit`` items before the end: continue while
        ``cursor`` is not ``None``. Inside a unit the page includes the
        unit's own writes; scanned keys are not version-checked at commit.
        With ``partition_key`` only that key's shard is read; without, every
        shard of the tag's home region, merged in key order.
        """
        prefix = check_prefix(prefix)
        if isinstance(limit, bool) or not isinstance(limit, int):
            raise TypeError("limit must be an int")
        if not 1 <= limit <= MAX_SCAN_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_SCAN_LIMIT}")
        after = "" if cursor is None else decode_cursor(cursor)
        end = prefix_end(prefix)

        now = self._app._state_now()
        routes = self._scan_routes(prefix, residency, partition_key)
        stored, more = self._scan_shards(
            routes, partition_key, after, prefix, end, now, limit
        )
        stored.sort(key=lambda row: row.key)
        if len(stored) > limit:
            stored, more = stored[:limit], True
        items = {row.key: self._item(row) for row in stored}
        horizon = stored[-1].key if more else None

        buffer = self._buffer(routes[0]) if len(routes) == 1 else None
        if buffer is None and current_unit() is not None and len(routes) > 1:
            buffer = _existing_buffer()
        if buffer is not None:
            self._overlay(buffer, items, after, prefix, horizon)
        keys = sorted(items)[:limit]
        if len(keys) == limit:
            more = True
        last = keys[-1] if keys else horizon
        next_cursor = encode_cursor(last) if more and last is not None else None
        return Page([items[k] for k in keys], next_cursor)

    def _scan_shards(
        self,
        routes: list[ItemRoute],
        partition_key: str | None,
        after: str,
        prefix: str,
        end: str | None,
        now: float,
        limit: int,
    ) -> tuple[list[StoredItem], bool]:
        """Scan each shard; settle the keys a rebalance is moving meanwhile.

        While keys move, a key can sit on two shards (a copy) or go from a
        shard not scanned yet to one already scanned. So a shard that holds
        forwarding rows adds the shards of the new list to the scan, and
        each key it may not answer for is read again by itself, following
        its forwarding rows; each key is then kept once, at its last version.
        """
        placement = self._app.placement
        pending = list(routes)
        seen = {route.shard_id for route in routes}
        best: dict[str, StoredItem] = {}
        recheck: dict[str, tuple[ItemRoute, str]] = {}
        more = False
        while pending:
            route = pending.pop(0)
            with (
                open_item(placement, route, write=False)
                if partition_key
                else (_plain_read(route)) as (store, tx)
            ):
                found = self._app._state_rows_for(store).scan(
                    tx,
                    self.name,
                    after=after,
                    start=prefix,
                    end=end,
                    now=now,
                    limit=limit,
                )
                keys = [row.key for row in found]
                moving, urls = (
                    ({}, {})
                    if partition_key
                    else unsettled(tx, self.name, keys, route.shard_id)
                )
            if urls:
                placement._learn(route.region, urls)
                for shard_id in urls:
                    if shard_id not in seen:
                        seen.add(shard_id)
                        store = placement.shard_store(route.region, shard_id)
                        pending.append(
                            ItemRoute(store, route.region, shard_id, route.tag, "")
                        )
            more = more or len(found) == limit
            for row in found:
                self._check_found(route, row.residency)
                if row.key in moving:
                    recheck[row.key] = (route, moving[row.key])
                elif row.key not in best or best[row.key].raw_version < row.raw_version:
                    best[row.key] = row
        for key, (route, moved_key) in recheck.items():
            again = self._route(key, route.tag or None, moved_key, "read")
            current = read_item_alone(placement, again, self._reader(key, again))
            if current is not None and current.visible(now):
                best[key] = current
            else:
                best.pop(key, None)
        return list(best.values()), more

    def _scan_routes(
        self, prefix: str, residency: str | None, partition_key: str | None
    ) -> list[ItemRoute]:
        if partition_key is not None:
            return [
                self._route(prefix or partition_key, residency, partition_key, "read")
            ]
        placement = self._app.placement
        tag, region = placement.check(
            f"{self.name}/{prefix}*",
            self._tag(residency),
            tenant=self.tenant,
            operation="read",
        )
        return [
            ItemRoute(
                placement.shard_store(region, shard_id),
                region,
                shard_id,
                stored_tag(tag),
                "",
            )
            for shard_id in placement.maps[region].shard_ids
        ]

    def _overlay(
        self,
        buffer: StateBuffer,
        items: dict[str, Item[T]],
        after: str,
        prefix: str,
        horizon: str | None,
    ) -> None:
        """Apply a unit's writes to a scanned page (up to where it ended)."""
        now = buffer.now()
        for (namespace, key), entry in buffer.tracked.items():
            if namespace != self.name or key <= after or not key.startswith(prefix):
                continue
            if horizon is not None and key > horizon:
                continue
            item = self._from_tracked(entry, now)
            if item is None:
                items.pop(key, None)
            else:
                items[key] = item

    # --- writes -----------------------------------------------------------

    def put(
        self,
        key: str,
        value: T,
        *,
        ttl: Duration | None = None,
        expected_version: int | None = None,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> int:
        """Write ``value`` under ``key`` and return its new version.

        Args:
            key: the key (see :func:`stateshift.state._keys.check_key`).
            value: anything the app's codec encodes.
            ttl: expire the item this long from now; ``None``: never.
            expected_version: write only if the item is at this version
                (``0``: only if it does not exist).
            residency: the item's residency tag (default: the namespace's).
            partition_key: place the item with this key's other rows (a
                workflow, an entity) instead of by its own key.

        Raises:
            ConflictError: the item is not at ``expected_version``.
            ResidencyViolation: the policy refuses the write (nothing is
                written; the attempt is audited).
        """
        check_key(key)
        expected = _check_version(expected_version)
        route = self._route(key, residency, partition_key, "write")
        now = self._app._state_now()
        expires_at = None if ttl is None else now + to_seconds(ttl, name="ttl")
        data = self._encode(key, value)
        return self._write(route, key, data, expires_at, expected, now)

    def delete(
        self,
        key: str,
        *,
        expected_version: int | None = None,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> bool:
        """Delete ``key``; return whether it existed.

        Raises:
            ConflictError: the item is not at ``expected_version``.
        """
        check_key(key)
        expected = _check_version(expected_version)
        route = self._route(key, residency, partition_key, "write")
        now = self._app._state_now()
        return self._write(route, key, None, None, expected, now) > 0

    def update(
        self,
        key: str,
        fn: Callable[[T | None], T],
        *,
        ttl: Duration | None = None,
        attempts: int = DEFAULT_UPDATE_ATTEMPTS,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> Item[T]:
        """Read, apply ``fn`` and write back, retrying on conflicts.

        ``fn`` gets the current value (``None`` when absent) and returns the
        new one. It may run several times, so it must have no outside
        effects. ``ttl=None`` keeps the item's expiry. Inside a unit it runs
        once: a conflict at commit runs the whole step again.

        Raises:
            ConflictError: still conflicting after ``attempts`` tries.
        """
        check_key(key)
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        route = self._route(key, residency, partition_key, "write")
        inside = self._buffer(route) is not None
        for attempt in range(1 if inside else attempts):
            current = (
                self.get(key, residency=residency, partition_key=partition_key)
                if attempt == 0
                else self._read(key, route)
            )
            value = fn(None if current is None else current.value)
            now = self._app._state_now()
            if ttl is not None:
                expires_at: float | None = now + to_seconds(ttl, name="ttl")
            else:
                expires_at = None if current is None else current.expires_at
            expected = 0 if current is None else current.version
            data = self._encode(key, value)
            try:
                version = self._write(route, key, data, expires_at, expected, now)
            except ConflictError:
                if inside or attempt == attempts - 1:
                    raise
                backoff(attempt)
                continue
            return Item(key, self._decode(key, data), version, expires_at)
        raise AssertionError("unreachable: the last attempt raises or returns")

    # --- internals --------------------------------------------------------

    def _tag(self, residency: str | None) -> str | None:
        return residency if residency is not None else self.residency

    def _route(
        self,
        key: str,
        residency: str | None,
        partition_key: str | None,
        operation: str,
    ) -> ItemRoute:
        if partition_key is not None:
            check_key(partition_key, what="partition key")
        return route_item(
            self._app.placement,
            key,
            residency=self._tag(residency),
            tenant=self.tenant,
            partition_key=partition_key,
            operation=operation,
            unit=current_unit(),
        )

    def _check_found(self, route: ItemRoute, found: str) -> None:
        # A row tagged otherwise than asked (written by another tag's path,
        # or planted): this region must be allowed to read *its* tag too.
        if found and found != route.tag:
            self._app.placement.check(
                route.partition_key or self.name, found, operation="read"
            )

    def _rows(self, route: ItemRoute) -> ItemRows:
        return self._app._state_rows_for(route.store)

    def _buffer(self, route: ItemRoute) -> StateBuffer | None:
        unit = current_unit()
        if unit is None:
            return None
        return StateBuffer.of(unit, self._rows(route), self._app._state_now)

    def _read(
        self, key: str, route: ItemRoute, *, use_cache: bool = False
    ) -> Item[T] | None:
        now = self._app._state_now()
        if use_cache and self.cache is not None:
            hit = self.cache.lookup(self.name, key, now)
            if hit is not None:
                version, data, expires_at = hit
                return Item(key, self._decode(key, data), version, expires_at)
        stored = read_item_alone(self._app.placement, route, self._reader(key, route))
        if stored is None or not stored.visible(now):
            return None
        self._check_found(route, stored.residency)
        assert stored.data is not None
        if use_cache and self.cache is not None:
            self.cache.fill(
                self.name, key, stored.raw_version, stored.data, stored.expires_at, now
            )
        return self._item(stored)

    def _reader(
        self, key: str, route: ItemRoute
    ) -> Callable[[Store], tuple[StoredItem | None, ForwardRows]]:
        def read(store: Store) -> tuple[StoredItem | None, ForwardRows]:
            rows = self._app._state_rows_for(store)
            return rows.read_alone(self.name, key, route.partition_key)

        return read

    def _write(
        self,
        route: ItemRoute,
        key: str,
        data: bytes | None,
        expires_at: float | None,
        expected: int | None,
        now: float,
    ) -> int:
        """Write or delete (``data=None``); return the new visible version."""
        buffer = self._buffer(route)
        if buffer is not None:
            return self._write_buffered(
                buffer, route, key, data, expires_at, expected, now
            )

        def check(raw: int, visible: int) -> None:
            if expected is not None and visible != expected:
                raise ConflictError(self.name, key, expected, visible)

        def lock(store: Store, tx: Tx) -> tuple[Row | None, ForwardRows]:
            rows = self._app._state_rows_for(store)
            return rows.lock_routed(tx, self.name, key, route.partition_key)

        placement = self._app.placement
        with open_locked_item(placement, route, lock) as (store, tx, locked):
            rows = self._app._state_rows_for(store)
            result = rows.write(
                tx,
                self.name,
                key,
                data,
                expires_at=expires_at,
                now=now,
                check=check,
                placed=_placed(route),
                locked=locked,
            )
        remove_blobs_later(rows.blobs, result.removed_blobs)
        if result.changed and self.cache is not None:
            self.cache.invalidate(self.name, key, result.version)
        return result.version if data is not None else int(result.changed)

    def _write_buffered(
        self,
        buffer: StateBuffer,
        route: ItemRoute,
        key: str,
        data: bytes | None,
        expires_at: float | None,
        expected: int | None,
        now: float,
    ) -> int:
        (entry,) = buffer.track(self.name, [key], {key: _placed(route)})
        visible = entry.visible_version(now)
        if expected is not None and visible != expected:
            raise ConflictError(self.name, key, expected, visible)
        if data is None and visible == 0:
            return 0
        version = entry.set(data, expires_at, _placed(route))
        if self.cache is not None and not entry.invalidate:
            cache, name = self.cache, self.name
            entry.invalidate.append(lambda v: cache.invalidate(name, key, v))
        return version if data is not None else 1

    def _encode(self, key: str, value: Any) -> bytes:
        return self._app.codec.encode(
            value, what=f"state {self.name}/{key}", aad=self._aad(key)
        )

    def _decode(self, key: str, data: bytes) -> Any:
        return self._app.codec.decode(
            data,
            type_hint=self.type,
            what=f"state {self.name}/{key}",
            aad=self._aad(key),
        )

    def _aad(self, key: str) -> bytes:
        # Binds a ciphertext to its place: a value copied under another key
        # or namespace fails to decrypt instead of being read as that one.
        return f"state\x00{self.name}\x00{key}".encode()

    def _item(self, stored: StoredItem) -> Item[T]:
        assert stored.data is not None
        return Item(
            stored.key,
            self._decode(stored.key, stored.data),
            stored.raw_version,
            stored.expires_at,
        )

    def _from_tracked(self, entry: Tracked, now: float) -> Item[T] | None:
        version = entry.visible_version(now)
        if version == 0 or entry.data is None:
            return None
        return Item(
            entry.key, self._decode(entry.key, entry.data), version, entry.expires_at
        )


@contextmanager
def _plain_read(route: ItemRoute) -> Iterator[tuple[Store, Tx]]:
    with route.store.read() as tx:
        yield route.store, tx


def _placed(route: ItemRoute) -> tuple[str, str]:
    return route.partition_key, route.tag


def _existing_buffer() -> StateBuffer | None:
    unit = current_unit()
    if unit is None:
        return None
    return StateBuffer.existing(unit)


def _check_version(expected_version: int | None) -> int | None:
    if expected_version is None:
        return None
    if isinstance(expected_version, bool) or not isinstance(expected_version, int):
        raise TypeError("expected_version must be an int or None")
    if expected_version < 0:
        raise ValueError("expected_version must be 0 (absent) or a version >= 1")
    return expected_version


def backoff(attempt: int) -> None:
    """Sleep before retrying a conflict: full jitter, growing to 100 ms."""
    ceiling = min(0.1, 0.001 * (2**attempt))
    time.sleep(random.uniform(0, ceiling))
