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
2. **copy** - copy every row of the key to the new shard.
3. **verify, switch** - on the old shard, under an exclusive lock on the
   key: read the rows again, copy them again if a writer changed them,
   check the new shard holds exactly them, delete them, and leave a
   ``moved`` row pointing to the new shard. Readers and writers that
   arrive later follow it.
4. **delete** the ``incoming`` mark on the new shard.

Routing through :meth:`Placement.transaction` reads the forwarding rows in
the same transaction as the data, so at every instant exactly one shard
answers for a key. The forwarding rows stay until :func:`finish` is run,
once every process uses the new shard list.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from stateshift.errors import ConfigError, StoreError
from stateshift.placement.registry import Attached, TableSpec, registered_tables
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


def _movable() -> list[TableSpec]:
    return [spec for spec in registered_tables() if spec.movable]


def _keys_on(tx: Tx, tables: set[str]) -> set[str]:
    keys: set[str] = set()
    for spec in _movable():
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

    def run(self, *, batch_size: int = 100) -> RebalanceResult:
        """Run (or resume) the rebalance to the end, as a durable workflow.

        Each batch of ``batch_size`` keys is one step of the workflow
        (see :mod:`stateshift.placement._rebalance_flow`).
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        from stateshift.placement._rebalance_flow import run_on_engine

        return run_on_engine(self, batch_size)

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
            if state in ("planned", "copied"):
                rows = self._copy(move)
                self._set_state(move, "copied")
                if self._switch(move, rows):
                    recopied += 1
                self._set_state(move, "switched")
            self._clear_incoming(move)
            self._set_state(move, "done")
            moved += 1
            self._done += 1
            self._report(self._done, len(states))
        return moved, recopied

    def complete(self) -> int:
        """Record the rebalance as done; return how many keys it moved."""
        self._record_state("done")
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

    def _copy(self, move: Move) -> dict[str, list[tuple[Any, ...]]]:
        source = self._store(move.source)
        with source.read() as tx:
            rows = _read_rows(tx, move.partition_key, set(source.list_tables(tx)))
        self._write_rows(move, rows)
        return rows

    def _write_rows(self, move: Move, rows: dict[str, list[tuple[Any, ...]]]) -> None:
        target = self._store(move.target)
        with target.transaction() as tx:
            for spec in _movable():
                if spec.table not in rows:
                    continue
                # A copy made earlier (before a writer changed the key, or by
                # a run that crashed) is replaced whole, its blobs included.
                _delete_rows(tx, spec, move.partition_key)
                _insert(tx, spec.table, spec.columns, rows[spec.table])
                for attached in spec.attached:
                    _insert(
                        tx, attached.table, attached.columns, rows[_at(spec, attached)]
                    )

    def _switch(self, move: Move, copied: dict[str, list[tuple[Any, ...]]]) -> bool:
        """Verify and switch one key; True when it had to be copied again."""
        source = self._store(move.source)
        target = self._store(move.target)
        recopied = False
        with source.transaction() as tx:
            if source.dialect == "postgresql":
                tx.execute(
                    "SELECT pg_advisory_xact_lock(?)",
                    (key_lock_id(move.partition_key),),
                )
            current = _read_rows(tx, move.partition_key, set(copied) or _table_set())
            if current != copied:
                self._write_rows(move, current)
                recopied = True
            with target.read() as target_tx:
                there = _read_rows(target_tx, move.partition_key, set(current))
            if there != current:
                raise StoreError(
                    f"rebalance {self.rebalance_id}: the copy of {move.partition_key!r}"
                    f" on shard {move.target!r} differs from its source; resume it"
                )
            for spec in _movable():
                if spec.table in current:
                    _delete_rows(tx, spec, move.partition_key)
            tx.execute(
                source.queries("placement")["forward_put"],
                (move.partition_key, "moved", move.target, self.rebalance_id),
            )
        return recopied

    def _clear_incoming(self, move: Move) -> None:
        target = self._store(move.target)
        with target.transaction() as tx:
            tx.execute(
                target.queries("placement")["forward_delete"],
                (move.partition_key, "incoming"),
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


def _table_set() -> set[str]:
    return {spec.table for spec in _movable()}


def _read_rows(
    tx: Tx, partition_key: str, tables: set[str]
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``partition_key`` in the movable tables among ``tables``.

    Rows attached to them (their blobs) are listed under
    ``"<table>/<attached table>"``.
    """
    found: dict[str, list[tuple[Any, ...]]] = {}
    for spec in _movable():
        if spec.table not in tables:
            continue
        order = ", ".join(spec.primary_key)
        rows = tx.fetchall(
            f"SELECT {', '.join(spec.columns)} FROM {{p}}{spec.table} "
            f"WHERE {spec.partition_column} = ? ORDER BY {order}",
            (partition_key,),
        )
        found[spec.table] = [_plain(row) for row in rows]
        for attached in spec.attached:
            refs = _refs(spec, attached, found[spec.table])
            found[_at(spec, attached)] = _attached_rows(tx, attached, refs)
    return found


def _at(spec: TableSpec, attached: Attached) -> str:
    return f"{spec.table}/{attached.table}"


def _refs(
    spec: TableSpec, attached: Attached, rows: list[tuple[Any, ...]]
) -> list[Any]:
    column = spec.columns.index(attached.via)
    return sorted({row[column] for row in rows if row[column] is not None})


def _attached_rows(
    tx: Tx, attached: Attached, refs: list[Any]
) -> list[tuple[Any, ...]]:
    if not refs:
        return []
    marks = ", ".join("?" for _ in refs)
    rows = tx.fetchall(
        f"SELECT {', '.join(attached.columns)} FROM {{p}}{attached.table} "
        f"WHERE {attached.key} IN ({marks}) ORDER BY {attached.key}",
        tuple(refs),
    )
    return [_plain(row) for row in rows]


def _delete_rows(tx: Tx, spec: TableSpec, partition_key: str) -> None:
    """Delete the rows of ``partition_key`` in ``spec``'s table, and their blobs."""
    if spec.attached:
        where = f"WHERE {spec.partition_column} = ?"
        for attached in spec.attached:
            tx.execute(
                f"DELETE FROM {{p}}{attached.table} WHERE {attached.key} IN "
                f"(SELECT {attached.via} FROM {{p}}{spec.table} {where})",
                (partition_key,),
            )
    tx.execute(
        f"DELETE FROM {{p}}{spec.table} WHERE {spec.partition_column} = ?",
        (partition_key,),
    )


def _insert(
    tx: Tx, table: str, columns: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    if rows:
        marks = ", ".join("?" for _ in columns)
        tx.executemany(
            f"INSERT INTO {{p}}{table} ({', '.join(columns)}) VALUES ({marks})", rows
        )


def _plain(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple(bytes(v) if isinstance(v, memoryview | bytearray) else v for v in row)


def finish(placement: Placement, region: str, rebalance_id: str) -> int:
    """Drop a finished rebalance's forwarding rows; return how many.

    Run it only once every process uses the new shard list: a process still
    on the old list finds moved keys through these rows.
    """
    removed = 0
    for shard_region, _, store in placement.all_stores():
        if shard_region != region:
            continue
        with store.transaction() as tx:
            removed += tx.execute(
                store.queries("placement")["forward_clear"], (rebalance_id,)
            )
    return removed
