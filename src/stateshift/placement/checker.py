"""``residency check``: scan every shard and prove each row may live there.

Every table declared in :mod:`stateshift.placement.registry` with a
residency column is read on every shard of every region; a row whose tag
may not be stored in the shard's region, or whose tag the policy does not
know, is a finding. An empty list of findings is the proof.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stateshift.errors import ConfigError
from stateshift.placement.policy import UNTAGGED
from stateshift.placement.registry import registered_tables

if TYPE_CHECKING:
    from stateshift.placement.router import Placement

__all__ = ["CheckReport", "Finding", "check_residency"]


@dataclass(frozen=True)
class Finding:
    """One row that lives where its residency tag forbids."""

    region: str
    """The region of the shard that holds the row."""

    shard_id: str
    """The shard that holds it."""

    table: str
    """The table, without prefix."""

    row_key: str
    """The row's primary key values, joined with ``/``."""

    tag: str
    """Its residency tag."""

    problem: str
    """Why it may not be there."""


@dataclass
class CheckReport:
    """What a scan covered and what it found."""

    shards: int = 0
    """Shards scanned."""

    rows: int = 0
    """Rows checked."""

    tables: dict[str, int] = field(default_factory=dict)
    """Rows checked per table."""

    findings: list[Finding] = field(default_factory=list)
    """Rows out of place; empty when every row is where it may be."""

    @property
    def ok(self) -> bool:
        """True when no row is out of place."""
        return not self.findings


def check_residency(placement: Placement) -> CheckReport:
    """Scan every shard of every region against the placement's policy."""
    report = CheckReport()
    specs = [spec for spec in registered_tables() if spec.residency_column]
    for region, shard_id, store in placement.all_stores():
        report.shards += 1
        with store.read() as tx:
            present = set(store.list_tables(tx))
            for spec in specs:
                if spec.table not in present:
                    continue
                columns = ", ".join((*spec.primary_key, str(spec.residency_column)))
                rows = tx.fetchall(f"SELECT {columns} FROM {{p}}{spec.table}")
                report.rows += len(rows)
                report.tables[spec.table] = report.tables.get(spec.table, 0) + len(rows)
                for row in rows:
                    problem = _problem(placement, str(row[-1] or ""), region)
                    if problem:
                        report.findings.append(
                            Finding(
                                region=region,
                                shard_id=shard_id,
                                table=spec.table,
                                row_key="/".join(str(v) for v in row[:-1]),
                                tag=str(row[-1] or UNTAGGED),
                                problem=problem,
                            )
                        )
    return report


def _problem(placement: Placement, stored_tag: str, region: str) -> str | None:
    tag = stored_tag or UNTAGGED
    try:
        rule = placement.policy.rule(tag)
    except ConfigError:
        return f"tag {tag} is not in the residency policy"
    if not rule.may_store(region):
        allowed = ", ".join(sorted(rule.store_regions))
        return f"data tagged {tag} may be stored only in {allowed}"
    return None
