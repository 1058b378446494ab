"""The router: from a partition key and a residency tag to one shard's store.

:class:`Placement` owns one :class:`~stateshift.store.Store` per shard of
every region. Each access names a partition key and, optionally, a tag
(or a tenant, resolved by the policy); the router checks the policy first,
so a violation is refused and audited before anything is stored, then
picks the home region of the tag (the local one when allowed) and the
shard by rendezvous hash. Rows that share a partition key share a shard,
so a step that touches one key's workflow, entity and state commits in one
transaction on one database.

While a rebalance moves keys, :meth:`Placement.transaction` (and below
it :meth:`Placement.follow` and :meth:`Placement.read_key_alone`, which the
state API uses) follows the forwarding rows it leaves (see
:mod:`stateshift.placement.rebalance`), so readers never see a missing or
stale item and writers never write beside a moved copy.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from stateshift.config import Settings
from stateshift.errors import ConfigError, ResidencyViolation, StoreError
from stateshift.placement.audit import AuditLog
from stateshift.placement.policy import (
    AuditRecord,
    ResidencyPolicy,
    check_region_name,
)
from stateshift.placement.shards import ShardMap, shard_ids_for
from stateshift.store import Store, Tx, open_store
from stateshift.store.base import Row

__all__ = [
    "ForwardRows",
    "Placement",
    "Routed",
    "forward_rows",
    "forward_select_sql",
    "key_lock_id",
    "lock_keys",
    "parse_forward_rows",
    "stays",
]

logger = logging.getLogger(__name__)

REGION_ENV = "STATESHIFT_REGION"
"""Environment variable naming this process's region."""

_STORING = frozenset({"write", "start", "enqueue", "copy"})
_MAP_MARKER = "*"
_MAX_HOPS = 4

T = TypeVar("T")
StoreFactory = Callable[[Settings], Store]
RegionsConfig = Mapping[str, Sequence[str] | Mapping[str, str] | str]


def key_lock_id(partition_key: str) -> int:
    """The PostgreSQL advisory lock number guarding one partition key."""
    digest = hashlib.blake2b(
        partition_key.encode("utf-8"), digest_size=8, person=b"ss-place"
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


REGION_LOCK_ID = key_lock_id("\x00region-map")
"""Advisory lock a rebalance takes exclusively while it publishes a new map."""


@dataclass
class Routed:
    """An open transaction on the shard that holds a partition key."""

    tx: Tx
    """The transaction; valid inside the ``with`` block only."""

    store: Store
    """The shard's store."""

    region: str
    """The region of the shard."""

    shard_id: str
    """The shard's id inside its region."""

    tag: str
    """The residency tag the access was checked for."""


class Placement:
    """Regions, their shards, the residency policy, and the audit log.

    Args:
        settings: the app's settings; each shard's store uses them with its
            own URL.
        regions: region name to its shard URLs (a list, or shard id to URL).
            Without it the app's single store is region ``region`` with one
            shard.
        region: the region this process runs in; else ``STATESHIFT_REGION``;
            else the only region configured.
        policy: the residency policy; else ``[residency]`` of the settings.
        store_factory: opens a store from settings (tests may count opens).
        known_stores: stores already open, by URL, to share instead of
            opening a second one (the app's own store).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        regions: RegionsConfig | None = None,
        region: str | None = None,
        policy: ResidencyPolicy | None = None,
        store_factory: StoreFactory = open_store,
        known_stores: Mapping[str, Store] | None = None,
    ) -> None:
        self.settings = settings
        if regions is None:
            regions = settings.extra.get("regions") or None
        region = region or os.environ.get(REGION_ENV) or None
        if regions is None:
            regions = {region or "default": [settings.store]}
        self.urls: dict[str, dict[str, str]] = {
            check_region_name(name): shard_ids_for(urls)
            for name, urls in regions.items()
        }
        if region is None:
            if len(self.urls) != 1:
                raise ConfigError(
                    "region",
                    "several regions are configured: say which one this process "
                    f"runs in with region= or {REGION_ENV}",
                )
            region = next(iter(self.urls))
        if region not in self.urls:
            raise ConfigError(
                "region", f"{region!r} is not one of the regions {sorted(self.urls)}"
            )
        self.region = region
        self.maps = {
            name: ShardMap(name, tuple(shards)) for name, shards in self.urls.items()
        }
        if policy is None:
            policy = ResidencyPolicy.from_config(settings.extra.get("residency", {}))
        self.policy = policy
        self._factory = store_factory
        self._stores: dict[str, Store] = dict(known_stores or {})
        self._shared = set(self._stores)
        self._lock = threading.Lock()
        self.audit_log = AuditLog(self)

    # --- stores ---------------------------------------------------------------

    def store_at(self, url: str) -> Store:
        """The store of one shard URL, opened once (no connection until used)."""
        with self._lock:
            store = self._stores.get(url)
            if store is None:
                store = self._factory(self.settings.replace(store=url))
                self._stores[url] = store
            return store

    def shard_store(self, region: str, shard_id: str) -> Store:
        """The store of shard ``shard_id`` of ``region``."""
        try:
            url = self.urls[region][shard_id]
        except KeyError:
            raise ConfigError(
                "regions", f"no shard {shard_id!r} in region {region!r}"
            ) from None
        return self.store_at(url)

    def local_stores(self) -> list[Store]:
        """The shards a worker of this region claims work from."""
        return [
            self.shard_store(self.region, shard_id)
            for shard_id in self.maps[self.region].shard_ids
        ]

    def all_stores(self) -> list[tuple[str, str, Store]]:
        """Every shard of every region, as ``(region, shard id, store)``."""
        return [
            (region, shard_id, self.shard_store(region, shard_id))
            for region, shard_map in self.maps.items()
            for shard_id in shard_map.shard_ids
        ]

    def close(self) -> None:
        """Close every shard's connections."""
        with self._lock:
            stores = [s for url, s in self._stores.items() if url not in self._shared]
            self._stores = {url: self._stores[url] for url in self._shared}
        for store in stores:
            store.close()

    # --- routing --------------------------------------------------------------

    def home_region(self, tag: str) -> str:
        """Where data of ``tag`` written from this region is stored."""
        return self.policy.home_region(tag, self.region, self.maps)

    def check(
        self,
        partition_key: str,
        residency: str | None = None,
        *,
        tenant: str | None = None,
        operation: str = "write",
        region: str | None = None,
        target_region: str | None = None,
    ) -> tuple[str, str]:
        """Check an access against the policy; return ``(tag, home region)``.

        ``region`` is a region claimed by a caller (a request header, a
        message attribute); one that differs from this process's region is
        refused as forged. ``target_region`` asks for a store of that region
        explicitly instead of the tag's home region.

        Raises:
            ResidencyViolation: refused; an audit record was written first.
        """
        tag = self.policy.resolve(residency, tenant)
        try:
            natural: str | None = self.home_region(tag)
        except ConfigError:
            natural = None
        home = natural if target_region is None else target_region
        if target_region is not None and target_region not in self.maps:
            raise ConfigError("region", f"no region {target_region!r} is configured")

        if region is not None and region != self.region:
            self.audit(
                AuditRecord(
                    tag=tag,
                    region=self.region,
                    operation=f"forged-region:{operation}",
                    key=partition_key,
                    home_region=self._audit_region(tag, natural),
                    target_region=region,
                )
            )
            raise ResidencyViolation(tag, region, operation, partition_key)

        self.policy.check(
            tag,
            self.region,
            operation,
            partition_key,
            target_region=home,
            home_region=self._audit_region(tag, natural),
            audit=self.audit,
        )
        assert home is not None
        return tag, home

    def store_for(
        self,
        partition_key: str,
        residency: str | None = None,
        *,
        tenant: str | None = None,
        operation: str = "write",
        region: str | None = None,
        target_region: str | None = None,
    ) -> Store:
        """The store of the shard that holds ``partition_key``, after the check.

        It does not follow rebalance forwarding; use :meth:`transaction`
        for reads and writes that must stay correct during a rebalance.
        """
        _, home = self.check(
            partition_key,
            residency,
            tenant=tenant,
            operation=operation,
            region=region,
            target_region=target_region,
        )
        return self.shard_store(home, self.maps[home].shard_for(partition_key))

    @contextmanager
    def transaction(
        self,
        partition_key: str,
        residency: str | None = None,
        *,
        tenant: str | None = None,
        operation: str = "write",
        region: str | None = None,
    ) -> Iterator[Routed]:
        """A transaction on the shard holding ``partition_key``, after the check.

        Storing operations open a write transaction, ``read`` and ``claim``
        a read one. The key's forwarding row is read inside the same
        transaction as the data (under a shared lock on the key that a
        rebalance takes exclusively to switch it), so the data it yields is
        never a stale or half-moved copy.
        """
        tag, home = self.check(
            partition_key, residency, tenant=tenant, operation=operation, region=region
        )
        shard_id = self.maps[home].shard_for(partition_key)
        with self.follow(
            home, shard_id, partition_key, tag=tag, write=operation in _STORING
        ) as routed:
            yield routed

    @contextmanager
    def follow(
        self,
        region: str,
        shard_id: str,
        partition_key: str,
        *,
        tag: str = "",
        write: bool,
    ) -> Iterator[Routed]:
        """A transaction on the shard that answers for ``partition_key`` now.

        Starts at ``shard_id`` (the one the process's shard map picks) and
        follows rebalance forwarding rows, each read in the same transaction
        (and under the same key lock) as the data. No policy check: the
        caller has made it.
        """
        with self.follow_fetch(
            region,
            shard_id,
            partition_key,
            lambda store, tx: (None, _forward_rows(tx, [partition_key])),
            tag=tag,
            write=write,
        ) as (routed, _):
            yield routed

    @contextmanager
    def follow_fetch(
        self,
        region: str,
        shard_id: str,
        partition_key: str,
        fetch: Callable[[Store, Tx], tuple[T, ForwardRows]],
        *,
        tag: str = "",
        write: bool,
    ) -> Iterator[tuple[Routed, T]]:
        """Like :meth:`follow`, with a first read that brings the forwarding rows.

        ``fetch`` runs after the key lock and returns what it read together
        with the forwarding rows of ``partition_key`` (and the region map
        marker), read by the same statement: one round trip for both, and
        its snapshot is taken after the lock was granted, so a switch that
        committed before is seen. On a shard that no longer answers,
        ``fetch`` may have locked rows there; the transaction ends at once.
        """
        via: str | None = None
        for _ in range(_MAX_HOPS):
            store = self.shard_store(region, shard_id)
            with store.transaction() if write else store.read() as tx:
                _lock_keys(store, tx, [partition_key])
                value, rows = fetch(store, tx)
                hop = _next_hop(rows, partition_key, shard_id, via)
                if hop is None:
                    yield Routed(tx, store, region, shard_id, tag), value
                    return
            shard_id, via, new_urls = hop
            self._learn(region, new_urls)
        raise StoreError(
            f"forwarding rows for partition key {partition_key!r} form a loop: "
            "run the same 'stateshift shards rebalance' again to resume it"
        )

    def read_key_alone(
        self,
        region: str,
        shard_id: str,
        partition_key: str,
        fetch: Callable[[Store], tuple[T, ForwardRows]],
    ) -> T:
        """Read ``partition_key``'s data from the shard that answers for it.

        Like :meth:`follow`, without a lock. ``fetch`` reads the data and
        the forwarding rows of ``partition_key`` (with the region map
        marker) in one snapshot, typically one statement outside any
        transaction (:meth:`Store.read_alone` over a query that adds
        :func:`forward_select_sql`): the rows it returns for a shard that
        still answers are that shard's current ones. If this shard still
        answers for the key then, it did when the data was read (the switch
        deletes the rows and leaves its ``moved`` row in one transaction),
        so the answer is kept; otherwise ``fetch`` runs on the next shard.
        """
        via: str | None = None
        for _ in range(_MAX_HOPS):
            store = self.shard_store(region, shard_id)
            value, rows = fetch(store)
            hop = _next_hop(rows, partition_key, shard_id, via)
            if hop is None:
                return value
            shard_id, via, new_urls = hop
            self._learn(region, new_urls)
        raise StoreError(
            f"forwarding rows for partition key {partition_key!r} form a loop: "
            "run the same 'stateshift shards rebalance' again to resume it"
        )

    def _learn(self, region: str, urls: Mapping[str, str] | None) -> None:
        # A process still on the old shard list meets a shard it was not
        # configured with: the rebalance published its URL with the new map.
        if not urls:
            return
        with self._lock:
            known = self.urls[region]
            for shard_id, url in urls.items():
                known.setdefault(shard_id, url)

    # --- audit ------------------------------------------------------------------

    def _audit_region(self, tag: str, home: str | None) -> str:
        if home is not None and self.policy.rule(tag).may_store(home):
            return home
        return self.region

    def audit(self, record: AuditRecord) -> None:
        """Append ``record`` to the audit log of its home region."""
        self.audit_log.append(record)


def lock_keys(store: Store, tx: Tx, partition_keys: Sequence[str]) -> None:
    """Take the shared locks that keep a switch out while ``tx`` uses the keys."""
    _lock_keys(store, tx, partition_keys)


def _lock_keys(store: Store, tx: Tx, partition_keys: Sequence[str]) -> None:
    # SQLite serializes writers and gives readers one snapshot; PostgreSQL
    # needs the lock so that a rebalance cannot switch the key between our
    # reading its forwarding row and our reading (or writing) its rows.
    # It is a statement of its own, never folded into the read after it: a
    # statement's snapshot is taken when it starts, before a lock it waits
    # for is granted. The ids are integers we computed, written as literals
    # so the statement has no parameters and travels with the BEGIN.
    if store.dialect != "postgresql":
        return
    ids = [REGION_LOCK_ID, *(key_lock_id(key) for key in partition_keys)]
    tx.execute(
        "SELECT " + ", ".join(f"pg_advisory_xact_lock_shared({int(i)})" for i in ids)
    )


ForwardRows = dict[str, tuple[str, str]]


def forward_rows(tx: Tx, partition_keys: Sequence[str]) -> ForwardRows:
    """The forwarding rows of ``partition_keys`` and the region map marker."""
    return _forward_rows(tx, partition_keys)


def _forward_rows(tx: Tx, partition_keys: Sequence[str]) -> ForwardRows:
    wanted = list(dict.fromkeys(partition_keys))
    return parse_forward_rows(
        tx.fetchall(forward_select_sql(len(wanted)), tuple(wanted))
    )


@functools.lru_cache(maxsize=64)
def forward_select_sql(count: int, columns_before: int = 0) -> str:
    """The portable query of the forwarding rows of ``count`` partition keys.

    The region map marker is always included; ``?`` stands for each key.
    With ``columns_before``, that many ``NULL`` columns come first, so the
    query can be the second half of a ``UNION ALL`` whose first half reads
    data (the forwarding rows are then the last three columns).
    """
    marks = ", ".join("?" for _ in range(count))
    nulls = "NULL, " * columns_before
    return (
        f"SELECT {nulls}partition_key, kind, shard_id FROM {{p}}placement_forward "
        f"WHERE partition_key IN ('{_MAP_MARKER}'{', ' if count else ''}{marks})"
    )


def parse_forward_rows(rows: Iterable[Row]) -> ForwardRows:
    """Forwarding rows from the last three columns of ``rows``.

    Rows whose third column from the end is ``NULL`` (the data half of a
    ``UNION ALL`` built with :func:`forward_select_sql`) are skipped.
    """
    return {str(r[-3]): (str(r[-2]), str(r[-1])) for r in rows if r[-3] is not None}


def stays(rows: ForwardRows, partition_key: str, shard_id: str) -> bool:
    """Whether a first visit to ``shard_id`` answers for ``partition_key``."""
    return _next_hop(rows, partition_key, shard_id, None) is None


def _next_hop(
    rows: ForwardRows, partition_key: str, shard_id: str, via: str | None
) -> tuple[str, str, dict[str, str] | None] | None:
    """Where to look next for ``partition_key``, or None to stay on this shard.

    ``moved`` (in the old shard, written at the switch) is authoritative;
    ``incoming`` (in the new shard, written before the copy) sends readers
    back to the old shard until then; ``kept`` (in the old shard, for a key
    the rebalance could not move yet) keeps it there; the region ``map``
    marker (in an old shard) sends keys that have no row of their own to the
    new map's shard.
    """
    own = rows.get(partition_key)
    marker = rows.get(_MAP_MARKER)
    # The marker also tells the URLs of shards a process was not configured
    # with; it stays on every old shard until the rebalance is finished.
    urls: dict[str, str] | None = json.loads(marker[1]) if marker is not None else None
    if own is not None:
        kind, target = own
        if kind == "kept":
            return None
        if kind == "moved":
            return None if via == "moved" else (target, "moved", urls)
        if kind == "incoming":
            if via in ("moved", "incoming"):
                return None
            return target, "incoming", urls
    if urls is not None and via is None:
        target = ShardMap("rebalance", tuple(urls)).shard_for(partition_key)
        if target != shard_id:
            return target, "map", urls
    return None


def describe_regions(placement: Placement) -> list[dict[str, Any]]:
    """Region, shard id and location of every shard, for the CLI."""
    return [
        {"region": region, "shard": shard_id, "store": store.describe()}
        for region, shard_id, store in placement.all_stores()
    ]
