"""Rebalancing: move the keys a new shard list places elsewhere, online.

A rebalance of one region from an old shard list to a new one is a
durable workflow on the engine (:mod:`stateshift.placement._rebalance_flow`):
one step publishes, then each batch of keys is one step. Each key goes
through these stages, recorded in the ``placement_moves`` table of the
coordinator (the first shard of the old list), so a batch run again after a
crash skips the keys it already moved:

1. **publish** - on each old shard, in one transaction that writers wait
   for: list the keys whose shard changes, mark each one ``incoming`` on
   its new shard (readers there go back to the old one), and leave a
   region ``map`` marker naming the new shard list, so keys first written
   from now on go straight to their new shard.
2. **copy** - copy every row of the key to the new shard: state items
   with their blobs, workflows with their steps and events (see
   :mod:`stateshift.placement._rows`). A workflow copy has no due time
   yet, so no worker claims it there.
3. **verify, switch** - on the old shard, with the key's workflow rows
   locked (``FOR UPDATE``) and under an exclusive lock on the key: check
   that no worker holds one of its workflows, read the rows again, copy
   them again if a writer changed them, check the new shard holds exactly
   them, delete them, and leave a ``moved`` row pointing to the new
   shard. Readers and writers that arrive later follow it. A key whose
   workflows are in use is left in place (``busy``), its copy deleted,
   and tried again in a later round.
4. **activate** - on the new shard, give the workflow copies their due
   times back and delete the ``incoming`` mark, in one transaction.

Routing through :meth:`Placement.transaction` reads the forwarding rows in
the same transaction as the data, so at every instant exactly one shard
answers for a key. The forwarding rows stay until :func:`finish` is run,
once every process uses the new shard list.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from stateshift.errors import ConfigError, StoreError
from stateshift.placement._rows import (
    KeyBusy,
    Rows,
    activate,
    check_idle,
    delete_copy,
    delete_source,
    lock_source,
    movable,
    read_copy,
    read_rows,
    write_copy,
)
from stateshift.placement.router import REGION_LOCK_ID, key_lock_id
from stateshift.placement.shards import Move, ShardMap, shard_ids_for
from stateshift.store import Store, Tx

if TYPE_CHECKING:
    from stateshift.placement.router import Placement

__all__ = ["RebalanceResult", "Rebalancer", "finish", "plan_keys"]

logger = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
_MAP_MARKER = "*"


@dataclass
class RebalanceResult:
    """What a rebalance did."""

    rebalance_id: str
    """Stable id: the same old and new shard lists give the same id."""

    moved: int = 0
    """Keys moved by this run (a resumed run counts only its own)."""

    total: int = 0
    """Keys the rebalance moves in all."""

    recopied: int = 0
    """Keys copied again because a writer changed them during the copy."""

    moves: list[Move] = field(default_factory=list)
    """Every planned move."""

    skipped: list[str] = field(default_factory=list)
    """Keys left on their old shard because a worker still held one of
    their workflows after the last round; run the same rebalance again."""


def _keys_on(tx: Tx, tables: set[str]) -> set[str]:
    keys: set[str] = set()
    for spec in movable():
        if spec.table in tables:
            rows = tx.fetchall(
                f"SELECT DISTINCT {spec.partition_column} FROM {{p}}{spec.table}"
            )
            keys.update(str(row[0]) for row in rows)
    return keys


def plan_keys(placement: Placement, region: str, new: ShardMap) -> list[Move]:
    """The keys stored in ``region`` that ``new`` would place on another shard."""
    old = placement.maps[region]
    moves: list[Move] = []
    for shard_id in old.shard_ids:
        store = placement.shard_store(region, shard_id)
        with store.read() as tx:
            keys = _keys_on(tx, set(store.list_tables(tx)))
            forwarded = {
                str(row[0])
                for row in tx.fetchall(
                    "SELECT partition_key FROM {p}placement_forward WHERE kind = ?",
                    ("moved",),
                )
            }
        for key in sorted(keys - forwarded):
            target = new.shard_for(key)
            if target != shard_id:
                moves.append(Move(key, shard_id, target))
    return moves


class Rebalancer:
    """Moves one region of a placement onto a new shard list.

    Args:
        placement: the placement, configured with the *old* shard list.
        region: the region to rebalance.
        new_shards: the new shard list (URLs, or shard id to URL).
        progress: called with ``(done, total)`` after each key.
    """

    def __init__(
        self,
        placement: Placement,
        region: str,
        new_shards: list[str] | Mapping[str, str],
        *,
        progress: Progress | None = None,
    ) -> None:
        if region not in placement.maps:
            raise ConfigError("region", f"no region {region!r} is configured")
        self.placement = placement
        self.region = region
        self.old = placement.maps[region]
        self.new_urls = shard_ids_for(new_shards)
        for shard_id, url in self.new_urls.items():
            known = placement.urls[region].get(shard_id)
            if known is not None and known != url:
                raise ConfigError(
                    "shards",
                    f"shard {shard_id!r} of {region!r} has another URL in the new "
                    "list: shard ids must keep their store",
                )
        self.new = ShardMap(region, tuple(self.new_urls))
        self.progress = progress
        self._done: int | None = None
        digest = hashlib.sha256(
            json.dumps([region, list(self.old.shard_ids), self.new_urls]).encode()
        ).hexdigest()
        self.rebalance_id = f"rb-{digest[:16]}"
        placement._learn(region, self.new_urls)

    def _store(self, shard_id: str) -> Store:
        return self.placement.shard_store(self.region, shard_id)

    @property
    def coordinator(self) -> Store:
        """The store that records the rebalance's progress."""
        return self._store(self.old.shard_ids[0])

    # --- the stages ---------------------------------------------------------------

    def run(
        self,
        *,
        batch_size: int = 100,
        busy_rounds: int = 5,
        busy_wait_seconds: float = 1.0,
    ) -> RebalanceResult:
        """Run (or resume) the rebalance to the end, as a durable workflow.

        Each batch of ``batch_size`` keys is one step of the workflow
        (see :mod:`stateshift.placement._rebalance_flow`). Keys whose
        workflows were in use are tried again in up to ``busy_rounds``
        later rounds, ``busy_wait_seconds`` apart; those still in use then
        are reported in :attr:`RebalanceResult.skipped`.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if busy_rounds < 0 or busy_wait_seconds < 0:
            raise ValueError("busy_rounds and busy_wait_seconds must be >= 0")
        from stateshift.placement._rebalance_flow import run_on_engine

        result = run_on_engine(self, batch_size)
        for round_no in range(1, busy_rounds + 1):
            busy = self.busy_keys()
            if not busy:
                break
            logger.info(
                "rebalance %s: %d key(s) have workflows in use; round %d of %d "
                "tries them again in %.1f s",
                self.rebalance_id,
                len(busy),
                round_no,
                busy_rounds,
                busy_wait_seconds,
                extra={"event": "rebalance.retry", "keys": len(busy)},
            )
            time.sleep(busy_wait_seconds)
            moved, recopied = self.move_keys(busy)
            result.moved += moved
            result.recopied += recopied
        result.skipped = self.busy_keys()
        if result.skipped:
            self._record_state("incomplete")
            logger.warning(
                "rebalance %s left %d key(s) on their old shard, their workflows "
                "still in use: %s; run the same rebalance again to move them",
                self.rebalance_id,
                len(result.skipped),
                ", ".join(result.skipped[:10]),
                extra={"event": "rebalance.skipped", "keys": len(result.skipped)},
            )
        else:
            self._record_state("done")
        return result

    def publish_moves(self) -> list[str]:
        """Publish the new shard list; return the keys to move, in order.

        Run again (a resumed step), it returns the recorded moves: keys
        already switched are no longer listed on their old shard.
        """
        self._record_state("publishing")
        self._record_moves(self._publish())
        self._record_state("moving")
        states = self.move_states()
        self._done = sum(1 for _, _, state in states.values() if state == "done")
        self._report(self._done, len(states))
        return sorted(states)

    def move_keys(self, keys: list[str]) -> tuple[int, int]:
        """Copy, verify, switch and delete each of ``keys``.

        A key with a workflow a worker holds is left where it is, its
        copy deleted, and recorded ``busy`` for a later round.

        Returns:
            ``(moved, recopied)``: keys this call moved, and how many of
            them were copied again after a concurrent write.
        """
        states = self.move_states()
        if self._done is None:
            self._done = sum(1 for _, _, state in states.values() if state == "done")
        moved = recopied = 0
        for key in keys:
            source, target, state = states[key]
            if state == "done":
                continue
            move = Move(key, source, target)
            if state in ("planned", "copied", "busy"):
                try:
                    rows = self._copy(move)
                    self._set_state(move, "copied")
                    if self._switch(move, rows):
                        recopied += 1
                except KeyBusy as busy:
                    self._leave(move, busy)
                    continue
                self._set_state(move, "switched")
            self._activate(move)
            self._set_state(move, "done")
            moved += 1
            self._done += 1
            self._report(self._done, len(states))
        return moved, recopied

    def busy_keys(self) -> list[str]:
        """The keys left in place so far because their workflows were in use."""
        return sorted(k for k, (_, _, s) in self.move_states().items() if s == "busy")

    def complete(self) -> int:
        """Record the end of the first pass; return how many keys it plans."""
        self._record_state("moved" if not self.busy_keys() else "incomplete")
        total = len(self.move_states())
        self._report(total, total)
        return total

    def _publish(self) -> list[Move]:
        moves: list[Move] = []
        payload = json.dumps(self.new_urls)
        for shard_id in self.old.shard_ids:
            source = self._store(shard_id)
            with source.transaction() as tx:
                if source.dialect == "postgresql":
                    tx.execute("SELECT pg_advisory_xact_lock(?)", (REGION_LOCK_ID,))
                keys = _keys_on(tx, set(source.list_tables(tx)))
                moved = {
                    str(row[0])
                    for row in tx.fetchall(
                        "SELECT partition_key FROM {p}placement_forward WHERE kind = ?",
                        ("moved",),
                    )
                }
                shard_moves = [
                    Move(key, shard_id, self.new.shard_for(key))
                    for key in sorted(keys - moved)
                    if self.new.shard_for(key) != shard_id
                ]
                # The incoming marks go out while this shard's writers wait,
                # so no key can appear here after the listing and be missed.
                self._mark_incoming(shard_moves)
                tx.execute(
                    source.queries("placement")["forward_put"],
                    (_MAP_MARKER, "map", payload, self.rebalance_id),
                )
            moves.extend(shard_moves)
        return moves

    def _mark_incoming(self, moves: list[Move]) -> None:
        by_target: dict[str, list[Move]] = {}
        for move in moves:
            by_target.setdefault(move.target, []).append(move)
        for target_id, target_moves in by_target.items():
            target = self._store(target_id)
            with target.transaction() as tx:
                tx.executemany(
                    target.queries("placement")["forward_put"],
                    [
                        (m.partition_key, "incoming", m.source, self.rebalance_id)
                        for m in target_moves
                    ],
                )

    def _copy(self, move: Move) -> Rows:
        source = self._store(move.source)
        with source.read() as tx:
            tables = set(source.list_tables(tx))
            # A key whose workflows are in use is not copied at all; the
            # switch checks again under the lock.
            check_idle(tx, move.partition_key, tables)
            rows = read_rows(tx, move.partition_key, tables)
        self._write_copy(move, rows)
        return rows

    def _write_copy(self, move: Move, rows: Rows) -> None:
        target = self._store(move.target)
        with target.transaction() as tx:
            write_copy(tx, move.partition_key, rows)

    def _switch(self, move: Move, copied: Rows) -> bool:
        """Verify and switch one key; True when it had to be copied again.

        Raises:
            KeyBusy: a workflow of the key was claimed meanwhile; nothing
                was switched.
        """
        source = self._store(move.source)
        target = self._store(move.target)
        key = move.partition_key
        recopied = False
        with source.transaction() as tx:
            tables = set(copied) or set(source.list_tables(tx))
            lock_source(tx, source.dialect, key)
            if source.dialect == "postgresql":
                tx.execute("SELECT pg_advisory_xact_lock(?)", (key_lock_id(key),))
            check_idle(tx, key, tables)
            current = read_rows(tx, key, tables)
            if current != copied:
                self._write_copy(move, current)
                recopied = True
            with target.read() as target_tx:
                there = read_copy(target_tx, key, set(current))
            if there != current:
                raise StoreError(
                    f"rebalance {self.rebalance_id}: the copy of {key!r}"
                    f" on shard {move.target!r} differs from its source; resume it"
                )
            delete_source(tx, key, current)
            tx.execute(
                source.queries("placement")["forward_put"],
                (key, "moved", move.target, self.rebalance_id),
            )
        return recopied

    def _activate(self, move: Move) -> None:
        """Let the new shard's copy be claimed, and drop its ``incoming`` mark."""
        target = self._store(move.target)
        with target.transaction() as tx:
            activate(tx, move.partition_key, set(target.list_tables(tx)))
            tx.execute(
                target.queries("placement")["forward_delete"],
                (move.partition_key, "incoming"),
            )

    def _leave(self, move: Move, busy: KeyBusy) -> None:
        """Keep a busy key on its old shard for now, its copy deleted.

        The ``incoming`` mark stays on the new shard: it sends processes
        with the new shard list back to the old one, which still answers.
        """
        target = self._store(move.target)
        with target.transaction() as tx:
            delete_copy(tx, move.partition_key, set(target.list_tables(tx)))
        # A ``kept`` row overrides the region map marker, so the old shard
        # goes on answering for the key (steps committing there included)
        # until a later round switches it.
        source = self._store(move.source)
        with source.transaction() as tx:
            tx.execute(
                source.queries("placement")["forward_put"],
                (move.partition_key, "kept", move.source, self.rebalance_id),
            )
        self._set_state(move, "busy")
        logger.info(
            "rebalance %s: %s; it stays on shard %s for now",
            self.rebalance_id,
            busy,
            move.source,
            extra={"event": "rebalance.busy", "partition_key": move.partition_key},
        )

    # --- progress records -----------------------------------------------------------

    def _record_state(self, state: str) -> None:
        store = self.coordinator
        with store.transaction() as tx:
            tx.execute(
                store.queries("placement")["rebalance_put"],
                (
                    self.rebalance_id,
                    self.region,
                    json.dumps(list(self.old.shard_ids)),
                    json.dumps(self.new_urls),
                    state,
                ),
            )

    def _record_moves(self, moves: list[Move]) -> None:
        store = self.coordinator
        with store.transaction() as tx:
            tx.executemany(
                store.queries("placement")["move_put"],
                [
                    (self.rebalance_id, m.partition_key, m.source, m.target)
                    for m in moves
                ],
            )

    def move_states(self) -> dict[str, tuple[str, str, str]]:
        """Each recorded move's ``(source, target, state)``, by partition key."""
        store = self.coordinator
        with store.read() as tx:
            rows = tx.fetchall(
                store.queries("placement")["move_list"], (self.rebalance_id,)
            )
        return {str(r[0]): (str(r[1]), str(r[2]), str(r[3])) for r in rows}

    def _set_state(self, move: Move, state: str) -> None:
        store = self.coordinator
        with store.transaction() as tx:
            tx.execute(
                store.queries("placement")["move_state"],
                (state, self.rebalance_id, move.partition_key),
            )

    def _report(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)


def finish(placement: Placement, region: str, rebalance_id: str) -> int:
    """Drop a finished rebalance's forwarding rows; return how many.

    Run it only once every process uses the new shard list: a process still
    on the old list finds moved keys through these rows.

    Raises:
        StoreError: keys of the rebalance were skipped (their workflows
            were in use) and still sit on their old shard; nothing dropped.
    """
    stores = [s for r, _, s in placement.all_stores() if r == region]
    skipped: list[str] = []
    for store in stores:
        with store.read() as tx:
            skipped += [
                str(row[0])
                for row in tx.fetchall(
                    "SELECT partition_key FROM {p}placement_moves "
                    "WHERE rebalance_id = ? AND state = 'busy' ORDER BY partition_key",
                    (rebalance_id,),
                )
            ]
    if skipped:
        raise StoreError(
            f"rebalance {rebalance_id} has not moved {len(skipped)} key(s) yet "
            f"({', '.join(skipped[:5])}): their forwarding rows keep them found. "
            "Run the same rebalance again once their workflows are idle, then finish"
        )
    removed = 0
    for store in stores:
        with store.transaction() as tx:
            removed += tx.execute(
                store.queries("placement")["forward_clear"], (rebalance_id,)
            )
    return removed
