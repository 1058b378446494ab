"""Placement: shards, co-location, data residency and erasure.

* :mod:`~stateshift.placement.shards` - the shard map (rendezvous hashing);
* :mod:`~stateshift.placement.policy` - the residency policy and its checks;
* :mod:`~stateshift.placement.router` - :class:`Placement`, which owns a
  store per shard and routes every access through the policy;
* :mod:`~stateshift.placement.audit` and :mod:`~stateshift.placement.checker`
  - the audit log of violations, and the scan that proves residency;
* :mod:`~stateshift.placement.rebalance` - online, resumable key moves;
* :mod:`~stateshift.placement.erasure` - per-subject keys (crypto-shredding).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from stateshift._lazy import lazy_getattr

if TYPE_CHECKING:
    from stateshift.placement.policy import AuditRecord, ResidencyPolicy, ResidencyRule
    from stateshift.placement.registry import TableSpec, register_table
    from stateshift.placement.router import Placement, Routed
    from stateshift.placement.shards import Move, ShardMap, plan

# Each name is imported on first use (see stateshift._lazy).
_HOMES = {
    "AuditRecord": "stateshift.placement.policy",
    "Move": "stateshift.placement.shards",
    "Placement": "stateshift.placement.router",
    "ResidencyPolicy": "stateshift.placement.policy",
    "ResidencyRule": "stateshift.placement.policy",
    "Routed": "stateshift.placement.router",
    "ShardMap": "stateshift.placement.shards",
    "TableSpec": "stateshift.placement.registry",
    "plan": "stateshift.placement.shards",
    "register_table": "stateshift.placement.registry",
}
__getattr__ = lazy_getattr(__name__, globals(), _HOMES)

__all__ = [
    "AuditRecord",
    "Move",
    "Placement",
    "ResidencyPolicy",
    "ResidencyRule",
    "Routed",
    "ShardMap",
    "TableSpec",
    "plan",
    "register_table",
]
