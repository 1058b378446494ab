"""Where a state item lives: its shard, checked against the residency policy.

An item is placed by its partition key (its own key unless one is given)
and its residency tag: :meth:`stateshift.placement.Placement.check` refuses
(and audits) an access the policy forbids before anything is read or
written, then the tag's home region and the key's shard there give the
store.

An access that names no tag (``residency=``, ``tenant=`` or the
namespace's) takes the tag of the work around it: inside a workflow step
the workflow's (a step's output is the workflow's data), else the
``residency=`` of the enclosing ``app.data_subject(...)`` block, as queue
messages do.

Inside a workflow step two more rules hold. And the write must
land on the workflow's own shard: a store in a region the workflow's tag
may not live in is refused as a residency violation (copying EU data to a
US store), any other store as a co-location error, both before anything is
buffered.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from stateshift.errors import StoreError
from stateshift.placement.policy import UNTAGGED
from stateshift.placement.registry import Attached, TableSpec, register_table
from stateshift.placement.router import ForwardRows, forward_rows, lock_keys, stays
from stateshift.placement.scope import current_home, inherited_tag
from stateshift.store import Store, Tx
from stateshift.store.base import Row
from stateshift.unit import Unit

if TYPE_CHECKING:
    from stateshift.placement.router import Placement

__all__ = [
    "ItemRoute",
    "moving_among",
    "open_item",
    "open_locked_item",
    "read_item_alone",
    "route_item",
    "stored_tag",
    "unsettled",
]

_STORING = frozenset({"write", "copy"})
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ItemRoute:
    """The shard of one state item, after the policy check."""

    store: Store
    region: str
    shard_id: str
    tag: str
    """As stored: ``""`` for untagged data."""
    partition_key: str


def stored_tag(tag: str) -> str:
    """The column value of a resolved tag (untagged data stores ``""``)."""
    return "" if tag == UNTAGGED else tag


def route_item(
    placement: Placement,
    key: str,
    *,
    residency: str | None,
    tenant: str | None,
    partition_key: str | None,
    operation: str,
    unit: Unit | None,
) -> ItemRoute:
    """Check one access to ``key`` and return the shard that holds it.

    Raises:
        ResidencyViolation: the policy refuses it (audited first).
        StoreError: inside a unit bound to another shard (co-location).
    """
    home = current_home() if unit is not None else None
    if residency is None and tenant is None:
        residency = inherited_tag(home)
    routing_key = partition_key if partition_key is not None else key
    tag, region = placement.check(
        routing_key, residency, tenant=tenant, operation=operation
    )
    shard_id = placement.maps[region].shard_for(routing_key)
    if home is not None and routing_key == home.partition_key and region == home.region:
        # A workflow and its key's items move together, so they share the
        # shard the workflow runs on, even where this process's shard list
        # says otherwise: a process still on the old list runs workflows a
        # rebalance moved to a shard it learned. The commit checks, under
        # the key's lock, that this shard answers for the key.
        shard_id = home.shard_id
    store = placement.shard_store(region, shard_id)

    if home is not None and operation in _STORING and home.tag != tag:
        # The step's output is the workflow's data whatever it is tagged:
        # it may only go where the workflow's own tag may live.
        placement.check(
            routing_key,
            None if home.tag == UNTAGGED else home.tag,
            operation="copy",
            target_region=region,
        )
    bound = unit.store if unit is not None else None
    if bound is None and home is not None:
        bound = home.store
    if bound is not None and bound is not store:
        owner = home.describe() if home is not None else "this transaction"
        raise StoreError(
            f"state item {key!r} (partition key {routing_key!r}) lives on shard "
            f"{shard_id} of region {region}, but {owner} commits to another "
            "store: one step or transaction commits to one shard. Give the item "
            "the workflow's partition key (partition_key=) so they are co-located"
        )
    if unit is not None:
        _guard_unit(placement, unit, store, region, shard_id, routing_key, key)
    return ItemRoute(store, region, shard_id, stored_tag(tag), routing_key)


def _guard_unit(
    placement: Placement,
    unit: Unit,
    store: Store,
    region: str,
    shard_id: str,
    partition_key: str,
    key: str,
) -> None:
    """Refuse, at commit, a unit's access to an item a rebalance moved away.

    A unit reads and buffers through the shard map, without following
    forwarding rows; its commit checks, under the key's lock, that this
    shard still answers for the key. Otherwise the whole commit is refused,
    rather than reading a stale copy or writing one beside the moved item.
    """
    marker = ("placement-forward", id(store), partition_key)
    if marker in unit.cache:
        return
    unit.cache[marker] = True

    def check(tx: Tx) -> None:
        lock_keys(store, tx, [partition_key])
        rows = forward_rows(tx, [partition_key])
        if not stays(rows, partition_key, shard_id):
            raise StoreError(
                f"state item {key!r} (partition key {partition_key!r}) is being "
                f"moved off shard {shard_id} of region {region} by a rebalance: "
                "a step or transaction that commits there cannot use it. Let the "
                "rebalance finish and run every process with the new shard list"
            )

    unit.add(check)


@contextmanager
def open_item(
    placement: Placement, route: ItemRoute, *, write: bool
) -> Iterator[tuple[Store, Tx]]:
    """A transaction on the shard that answers for ``route``'s item now.

    While a rebalance moves the item's partition key, that can be another
    shard than ``route.store``: the forwarding rows are followed inside the
    transaction that reads or writes the item, so a read never sees a
    missing or stale item and a write never lands beside a moved copy.
    """
    with placement.follow(
        route.region, route.shard_id, route.partition_key, tag=route.tag, write=write
    ) as routed:
        yield routed.store, routed.tx


@contextmanager
def open_locked_item(
    placement: Placement,
    route: ItemRoute,
    lock: Callable[[Store, Tx], tuple[Row | None, ForwardRows]],
) -> Iterator[tuple[Store, Tx, Row | None]]:
    """A write transaction on the shard that answers for the item, its row locked.

    Like :func:`open_item` with ``write=True``; ``lock`` locks and reads
    the item's row in the same statement as its forwarding rows (after
    the key's advisory lock, which stays a statement of its own).
    """
    with placement.follow_fetch(
        route.region,
        route.shard_id,
        route.partition_key,
        lock,
        tag=route.tag,
        write=True,
    ) as (routed, row):
        yield routed.store, routed.tx, row


def read_item_alone(
    placement: Placement,
    route: ItemRoute,
    read: Callable[[Store], tuple[T, ForwardRows]],
) -> T:
    """Run ``read`` on the shard that answers for ``route``'s item now.

    ``read`` brings the item and its forwarding rows in one snapshot (one
    statement); a shard that no longer answers is left for the next one
    (see :meth:`Placement.read_key_alone`).
    """
    return placement.read_key_alone(
        route.region, route.shard_id, route.partition_key, read
    )


def moving_among(rows: ForwardRows, routes: Sequence[ItemRoute]) -> set[str]:
    """Partition keys among ``routes`` their shard no longer answers for.

    ``rows`` are the forwarding rows of their partition keys, read in the
    snapshot the items were read in (the same statement): rows read for
    the other keys were then the current ones.
    """
    if not rows:
        return set()
    return {
        route.partition_key
        for route in routes
        if not stays(rows, route.partition_key, route.shard_id)
    }


def unsettled(
    tx: Tx, namespace: str, keys: Sequence[str], shard_id: str
) -> tuple[dict[str, str], dict[str, str]]:
    """Scanned keys this shard may not answer for, and the shards a move adds.

    Called in the scan's transaction, after the scan: a key a rebalance is
    moving (to or from this shard) must be read again by itself, following
    its forwarding rows: they come with their partition keys. The second
    value maps the shard ids of the new
    list published on this shard to their URLs (empty when none is).
    """
    if not keys or tx.fetchone("SELECT 1 FROM {p}placement_forward LIMIT 1") is None:
        return {}, {}
    marks = ", ".join("?" for _ in keys)
    placed = tx.fetchall(
        f"SELECT key, partition_key FROM {{p}}state_items "
        f"WHERE namespace = ? AND key IN ({marks})",
        (namespace, *keys),
    )
    by_key = {str(row[0]): str(row[1]) for row in placed}
    rows = forward_rows(tx, list(by_key.values()))
    marker = rows.get("*")
    urls: dict[str, str] = json.loads(marker[1]) if marker is not None else {}
    moving = {
        key: by_key.get(key, key)
        for key in keys
        if key not in by_key or not stays(rows, by_key[key], shard_id)
    }
    return moving, urls


register_table(
    TableSpec(
        "state_items",
        columns=(
            "namespace",
            "key",
            "version",
            "value",
            "blob_ref",
            "expires_at",
            "updated_at",
            "partition_key",
            "residency",
        ),
        primary_key=("namespace", "key"),
        partition_column="partition_key",
        residency_column="residency",
        # Large values live in the blob store; in the database's own blob
        # table they are rows of the shard, and move with their item.
        attached=(
            Attached(
                "state_blobs",
                columns=("blob_ref", "data", "created_at"),
                key="blob_ref",
                via="blob_ref",
            ),
        ),
    )
)
