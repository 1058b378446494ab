"""Moving state into stateshift: backfill, verification, store copy, shadow reads.

* :func:`~stateshift.migrate.backfill.run_backfill` copies a legacy source
  (JSON Lines, CSV, a SQL table or query, a Redis keyspace) into a
  namespace as a durable, resumable workflow;
  :func:`~stateshift.migrate.verify.verify_backfill` compares the two item
  by item. The command line is ``stateshift migrate-state``.
* ``stateshift db copy SRC DST`` moves a whole store to another backend.
* :class:`~stateshift.migrate.shadow.ShadowNamespace` serves legacy reads
  while counting where the new namespace disagrees.

See ``docs/migration.md``.
"""

from __future__ import annotations

from stateshift.migrate.backfill import Backfill, BackfillFailed, Counts, run_backfill
from stateshift.migrate.shadow import ShadowNamespace, ShadowStats, safe_to_switch
from stateshift.migrate.sources import SourceSpec
from stateshift.migrate.verify import VerifyReport, verify_backfill

__all__ = [
    "Backfill",
    "BackfillFailed",
    "Counts",
    "ShadowNamespace",
    "ShadowStats",
    "SourceSpec",
    "VerifyReport",
    "run_backfill",
    "safe_to_switch",
    "verify_backfill",
]
