"""The residency audit log: refused operations, kept in the data's home region.

A record says what was tried, on which key, from which region and when;
it never holds the data. It is written in its own short transaction on a
shard of the home region (the one the key hashes to), before the
violation is raised, so a refused write leaves exactly one audit row and
nothing else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stateshift.errors import StoreError
from stateshift.placement.policy import AuditRecord

if TYPE_CHECKING:
    from stateshift.placement.router import Placement

__all__ = ["AuditLog"]

logger = logging.getLogger(__name__)


class AuditLog:
    """Appends and lists audit records across a placement's shards."""

    def __init__(self, placement: Placement) -> None:
        self._placement = placement

    def append(self, record: AuditRecord) -> None:
        """Write ``record`` to a shard of its home region.

        A failure to audit is logged and swallowed: the operation is refused
        either way, and the caller's error must stay the violation.
        """
        placement = self._placement
        region = record.home_region
        if region not in placement.maps:
            region = placement.region
        shard_id = placement.maps[region].shard_for(record.key)
        store = placement.shard_store(region, shard_id)
        logger.warning(
            "residency violation: %s of %r tagged %s from region %s",
            record.operation,
            record.key,
            record.tag,
            record.region,
            extra={"event": "placement.violation"},
        )
        try:
            with store.transaction() as tx:
                tx.execute(
                    store.queries("placement")["audit_append"],
                    (
                        record.at,
                        record.tag,
                        record.region,
                        record.operation,
                        record.key,
                        record.home_region,
                        record.target_region,
                    ),
                )
        except StoreError:
            logger.exception(
                "could not write the audit record of a residency violation to %s",
                store.describe(),
                extra={"event": "placement.audit_failed"},
            )

    def records(
        self, *, since: float = 0.0, limit: int = 1000, region: str | None = None
    ) -> list[AuditRecord]:
        """Audit records of every shard (or one region's), oldest first."""
        found: list[AuditRecord] = []
        for shard_region, _, store in self._placement.all_stores():
            if region is not None and shard_region != region:
                continue
            with store.read() as tx:
                rows = tx.fetchall(
                    store.queries("placement")["audit_list"], (since, limit)
                )
            found.extend(
                AuditRecord(
                    at=float(row[0]),
                    tag=str(row[1]),
                    region=str(row[2]),
                    operation=str(row[3]),
                    key=str(row[4]),
                    home_region=str(row[5]),
                    target_region=str(row[6]),
                )
                for row in rows
            )
        found.sort(key=lambda record: record.at)
        return found[:limit]
