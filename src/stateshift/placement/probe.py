"""The probe table: tagged rows written and read through the router.

``placement_probe`` holds small keyed values under a partition key. It lets
operators verify a deployment's routing (``stateshift residency probe``),
and gives the tests and benchmarks a table that goes through exactly the
path every feature's rows take: the policy check, the shard choice and the
forwarding rows of a rebalance.
"""

from __future__ import annotations

from stateshift.placement.policy import UNTAGGED
from stateshift.placement.router import Placement

__all__ = ["probe_get", "probe_put"]


def probe_put(
    placement: Placement,
    partition_key: str,
    item_key: str,
    value: bytes,
    *,
    residency: str | None = None,
    tenant: str | None = None,
    region: str | None = None,
) -> int:
    """Write one probe item; return its new version."""
    with placement.transaction(
        partition_key, residency, tenant=tenant, region=region
    ) as routed:
        queries = routed.store.queries("placement")
        tag = "" if routed.tag == UNTAGGED else routed.tag
        routed.tx.execute(queries["probe_put"], (partition_key, item_key, tag, value))
        row = routed.tx.fetchone(queries["probe_get"], (partition_key, item_key))
    assert row is not None
    return int(row[1])


def probe_get(
    placement: Placement,
    partition_key: str,
    item_key: str,
    *,
    residency: str | None = None,
    tenant: str | None = None,
    region: str | None = None,
) -> tuple[bytes, int] | None:
    """Read one probe item as ``(value, version)``, or None."""
    with placement.transaction(
        partition_key, residency, tenant=tenant, operation="read", region=region
    ) as routed:
        row = routed.tx.fetchone(
            routed.store.queries("placement")["probe_get"], (partition_key, item_key)
        )
    return None if row is None else (bytes(row[0]), int(row[1]))
