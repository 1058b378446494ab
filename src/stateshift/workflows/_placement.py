"""Workflows on shards: where a workflow is written, found, claimed and run.

* **Start.** A workflow's partition key is its id unless ``partition_key=``
  is given. The start is checked against the residency policy (refused and
  audited before anything is written), then the row goes to the shard the
  key picks in the tag's home region. Children inherit their parent's
  partition key, tag and data subject, so a parent and its children share
  one shard (their counters are settled in one transaction).
* **Lookup by id.** ``status``, ``send_event``, ``cancel`` and ``resume``
  know only the workflow id. The shard it hashes to in each region is
  asked first (the local region first), then the shard of its parent's id
  for a child id like ``parent/3``, then every other shard. A workflow
  started with another partition key is therefore found by asking each
  shard in turn; the process that started it remembers where it put it.
  The row's tag is checked before anything but its id and tag is read.
  A row under a rebalance's ``incoming`` mark is a copy, which answers
  only once its old shard no longer has the row. A lookup that misses
  everywhere learns the shards that rebalances published in their map
  markers, and asks those shards as well.
* **Claims.** A worker claims from every shard of its own region (those
  learned from a rebalance too). A row
  whose tag its region may not process is refused at claim, audited, and
  left ``blocked`` with the violation as its error, so no worker of this
  region takes it again; ``app.resume`` after the policy allows it.
* **Running.** While a workflow runs, :func:`stateshift.placement.scope.current_home`
  names its shard: the engine writes there, and the state layer keeps the
  steps' writes there. A workflow started inside ``app.data_subject(...)``
  records the subject and runs inside it, so its checkpoints and result are
  sealed with the subject's key too.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from stateshift.errors import ConfigError, ResidencyViolation, WorkflowNotFound
from stateshift.placement.erasure import current_subject, data_subject
from stateshift.placement.policy import UNTAGGED, AuditRecord
from stateshift.placement.registry import Attached, TableSpec, register_table
from stateshift.placement.scope import Home, current_home, home_scope, inherited_tag
from stateshift.store import Store

if TYPE_CHECKING:
    from stateshift.placement.router import Placement
    from stateshift.store.base import Tx
    from stateshift.workflows._engine import Claim, Engine
    from stateshift.workflows.api import WorkflowsMixin

__all__ = [
    "Placed",
    "claim_homes",
    "locate",
    "on_located",
    "placed_columns",
    "placed_of",
    "read_placed",
    "start_home",
    "workflow_scope",
]

T = TypeVar("T")
_STORING = frozenset({"write", "start"})
_REMEMBERED = 10_000
_PLACED_SQL = (
    "SELECT partition_key, residency, data_subject FROM {p}workflows "
    "WHERE workflow_id = ?"
)
# The same, with the forwarding row of the workflow's partition key: one
# statement sees a rebalance's switch whole.
_PROBE_SQL = (
    "SELECT w.partition_key, w.residency, w.data_subject, f.kind, f.shard_id "
    "FROM {p}workflows w LEFT JOIN {p}placement_forward f "
    "ON f.partition_key = w.partition_key WHERE w.workflow_id = ?"
)


@dataclass(frozen=True)
class Placed:
    """A workflow's placement columns, as stored."""

    partition_key: str
    residency: str
    """``""`` when untagged."""
    data_subject: str | None


def _tag(stored: str) -> str | None:
    return stored or None


def _stored(tag: str) -> str:
    return "" if tag == UNTAGGED else tag


# --- starting -----------------------------------------------------------------


def start_home(
    app: WorkflowsMixin,
    workflow_id: str,
    residency: str | None,
    tenant: str | None,
    partition_key: str | None,
) -> Home:
    """Check a start and return the shard the new workflow goes to.

    Raises:
        ResidencyViolation: the policy refuses it (audited, nothing written).
    """
    placement = _placement(app)
    key = workflow_id if partition_key is None else partition_key
    if not isinstance(key, str) or not key:
        raise ValueError("partition_key must be a non-empty string")
    if residency is None and tenant is None:
        # As state writes and messages do: a start inside a step takes the
        # workflow's tag, inside ``app.data_subject(..., residency=)`` the
        # block's.
        residency = inherited_tag(current_home())
    tag, region = placement.check(key, residency, tenant=tenant, operation="start")
    shard_id = placement.maps[region].shard_for(key)
    home = Home(
        placement.shard_store(region, shard_id),
        region,
        shard_id,
        tag,
        key,
        f"workflow {workflow_id!r}",
    )
    _remember(app, workflow_id, region, shard_id)
    return home


def placed_columns(workflow_id: str) -> tuple[str, str, str | None]:
    """``(partition_key, residency, data_subject)`` of a row being inserted.

    Inside a running workflow (a child being started) they are the
    parent's; at a start, those of :func:`start_home`'s home.
    """
    home = current_home()
    subject = current_subject()
    name = None if subject is None else subject[0]
    if home is None:
        return workflow_id, "", name
    return home.partition_key, _stored(home.tag), name


# --- finding by id ------------------------------------------------------------


def read_placed(tx: Tx, workflow_id: str) -> Placed | None:
    """The placement columns of one workflow in ``tx``'s store."""
    row = tx.fetchone(_PLACED_SQL, (workflow_id,))
    if row is None:
        return None
    return placed_of(workflow_id, row)


def locate(
    app: WorkflowsMixin, workflow_id: str, operation: str
) -> tuple[Home, Placed]:
    """Find the shard of ``workflow_id`` and check ``operation`` on it.

    Raises:
        WorkflowNotFound: no shard of any region has it.
        ResidencyViolation: this region may not do ``operation`` on it.
    """
    if not isinstance(workflow_id, str) or not workflow_id:
        raise WorkflowNotFound(str(workflow_id))
    placement = _placement(app)
    for region, shard_id in _candidates(app, placement, workflow_id):
        found = _answering(placement, region, shard_id, workflow_id)
        if found is None:
            continue
        shard_id, store, placed = found
        _remember(app, workflow_id, region, shard_id)
        tag, _ = placement.check(
            placed.partition_key,
            _tag(placed.residency),
            operation=operation,
            target_region=region if operation in _STORING else None,
        )
        home = Home(
            store,
            region,
            shard_id,
            tag,
            placed.partition_key,
            f"workflow {workflow_id!r}",
        )
        return home, placed
    raise WorkflowNotFound(workflow_id)


def on_located(
    app: WorkflowsMixin,
    workflow_id: str,
    operation: str,
    act: Callable[[Home, Placed], T],
) -> T:
    """Locate ``workflow_id`` and run ``act`` on its shard.

    A rebalance may move the workflow between the lookup and ``act``: its
    row is then gone from that shard, ``act`` raises ``WorkflowNotFound``,
    and the workflow is looked up once more.
    """
    home, placed = locate(app, workflow_id, operation)
    try:
        return act(home, placed)
    except WorkflowNotFound:
        _memory(app).pop(workflow_id, None)
        again, placed = locate(app, workflow_id, operation)
        if again.store is home.store:
            raise
        return act(again, placed)


def _probe(store: Store, workflow_id: str) -> tuple[Placed, str | None] | None:
    """The row's placement here, and the shard its ``incoming`` mark names."""
    with store.read() as tx:
        row = tx.fetchone(_PROBE_SQL, (workflow_id,))
    if row is None:
        return None
    source = str(row[4]) if row[3] == "incoming" else None
    return placed_of(workflow_id, row[:3]), source


def _answering(
    placement: Placement, region: str, shard_id: str, workflow_id: str
) -> tuple[str, Store, Placed] | None:
    """The shard that answers for a workflow found on ``shard_id``, if any.

    A row under an ``incoming`` mark is a rebalance's copy: the old shard
    answers as long as it still has the row (read in one statement with
    its forwarding row, so a switch is seen whole), the copy once the
    switch has deleted it there.
    """
    store = placement.shard_store(region, shard_id)
    found = _probe(store, workflow_id)
    if found is None:
        return None
    placed, source = found
    if source is not None and source in placement.urls[region]:
        source_store = placement.shard_store(region, source)
        there = _probe(source_store, workflow_id)
        if there is not None:
            return source, source_store, there[0]
    return shard_id, store, placed


def _candidates(
    app: WorkflowsMixin, placement: Placement, workflow_id: str
) -> Iterator[tuple[str, str]]:
    seen: set[tuple[str, str]] = set()
    regions = [placement.region, *(r for r in placement.maps if r != placement.region)]
    remembered = _memory(app).get(workflow_id)
    first = [] if remembered is None else [remembered]
    root = workflow_id.split("/", 1)[0]
    for key in dict.fromkeys((workflow_id, root)):
        first.extend(
            (region, placement.maps[region].shard_for(key)) for region in regions
        )
    for _ in range(2):
        rest = [
            (region, shard_id)
            for region in regions
            for shard_id in list(placement.urls[region])
        ]
        for candidate in (*first, *rest):
            if candidate not in seen and candidate[0] in placement.maps:
                seen.add(candidate)
                yield candidate
        # Not found anywhere: a process still on the old shard list learns
        # the new shards from the map markers a rebalance left, and asks them.
        if not _learn_new_shards(placement, regions):
            return


def _learn_new_shards(placement: Placement, regions: list[str]) -> bool:
    """Learn shard URLs published by rebalances; True when one was new."""
    learned = False
    for region in regions:
        for shard_id in list(placement.maps[region].shard_ids):
            store = placement.shard_store(region, shard_id)
            with store.read() as tx:
                row = tx.fetchone(
                    "SELECT shard_id FROM {p}placement_forward WHERE partition_key = ?",
                    ("*",),
                )
            if row is None:
                continue
            urls: dict[str, str] = json.loads(str(row[0]))
            if set(urls) - set(placement.urls[region]):
                learned = True
                placement._learn(region, urls)
    return learned


def _memory(app: WorkflowsMixin) -> OrderedDict[str, tuple[str, str]]:
    memory: OrderedDict[str, tuple[str, str]] | None = app.__dict__.get(
        "_workflow_homes"
    )
    if memory is None:
        memory = app.__dict__.setdefault("_workflow_homes", OrderedDict())
    return memory


def _remember(
    app: WorkflowsMixin, workflow_id: str, region: str, shard_id: str
) -> None:
    memory = _memory(app)
    memory[workflow_id] = (region, shard_id)
    memory.move_to_end(workflow_id)
    while len(memory) > _REMEMBERED:
        memory.popitem(last=False)


# --- claiming and running -----------------------------------------------------


def claim_homes(app: WorkflowsMixin) -> list[Home]:
    """One home per shard of this region, to claim due work from."""
    placement = _placement(app)
    region = placement.region
    return [
        Home(
            placement.shard_store(region, shard_id),
            region,
            shard_id,
            UNTAGGED,
            "",
            f"shard {shard_id} of region {region}",
        )
        # Shards learned from a rebalance's map marker too: workflows moved
        # there are claimed by processes still on the old shard list.
        for shard_id in list(placement.urls[region])
    ]


def placed_of(workflow_id: str, columns: Sequence[Any]) -> Placed:
    """The placement of a row from its three columns, as a claim returns them."""
    partition_key, residency, subject = columns
    return Placed(str(partition_key or workflow_id), str(residency or ""), subject)


def admit_claim(engine: Engine, tx: Tx, claim: Claim, placed: Placed) -> Placed | None:
    """Check a claimed row against the policy; ``None`` when refused.

    ``placed`` comes back from the claim itself (no read of its own). A
    refused row is audited and parked ``blocked`` in the same transaction,
    its lease dropped, so this region never runs it.
    """
    placement = _placement(engine.app)
    # The audit record is written in a transaction of its own, which may
    # need this very shard: it is held back until the claim has committed.
    held: list[AuditRecord] = engine.app.__dict__.setdefault("_held_audits", [])
    try:
        placement.policy.check(
            _tag(placed.residency) or UNTAGGED,
            placement.region,
            "claim",
            placed.partition_key,
            home_region=_audit_home(placement, placed),
            audit=held.append,
        )
    except ResidencyViolation as violation:
        tx.execute(
            engine.q["park"],
            (
                "blocked",
                "stateshift.ResidencyViolation",
                f"{violation}; it stays blocked until the policy allows it, then "
                "app.resume() it",
                None,
                engine.clock(),
                claim.workflow_id,
                claim.epoch,
            ),
        )
        return None
    return placed


def flush_audits(app: WorkflowsMixin) -> None:
    """Write the audit records of claims refused by :func:`admit_claim`."""
    held: list[AuditRecord] = app.__dict__.get("_held_audits") or []
    placement = _placement(app)
    while held:
        placement.audit(held.pop(0))


def _audit_home(placement: Placement, placed: Placed) -> str:
    tag = _tag(placed.residency) or UNTAGGED
    try:
        home = placement.home_region(tag)
    except ConfigError:
        return placement.region
    return home if placement.policy.rule(tag).may_store(home) else placement.region


@contextmanager
def workflow_scope(
    home: Home, placed: Placed | None, workflow_id: str
) -> Iterator[Home]:
    """Run a workflow on its shard, as its data subject when it has one."""
    own = Home(
        home.store,
        home.region,
        home.shard_id,
        (placed.residency or UNTAGGED) if placed is not None else home.tag,
        placed.partition_key if placed is not None else home.partition_key,
        f"workflow {workflow_id!r}",
    )
    subject = placed.data_subject if placed is not None else None
    sealing = (
        data_subject(subject, None if own.tag == UNTAGGED else own.tag)
        if subject
        else nullcontext(subject)
    )
    with home_scope(own), sealing:
        yield own


def next_wake_at(app: WorkflowsMixin) -> float | None:
    """The earliest due time over this region's shards."""
    engine = app._workflow_engine
    found: list[float] = []
    for home in claim_homes(app):
        with home_scope(home):
            at = engine.next_wake_at()
        if at is not None:
            found.append(at)
    return min(found, default=None)


@contextmanager
def claiming(app: WorkflowsMixin, home: Home) -> Iterator[None]:
    """Claim on ``home``'s shard (the engine keeps, per shard, whether its
    old leases were taken back)."""
    try:
        with home_scope(home):
            yield
    finally:
        flush_audits(app)


def fail_unreadable(app: WorkflowsMixin, claim: Claim, error: BaseException) -> None:
    """End a claimed workflow whose input cannot be read (its subject forgotten)."""
    from stateshift.workflows._context import Invocation, WorkflowContext
    from stateshift.workflows._steps import error_row

    definition = app._workflow_definitions[claim.name]
    ctx = WorkflowContext(
        app._workflow_engine,
        definition,
        claim.workflow_id,
        claim.epoch,
        [],
        cancel_requested=False,
        deadline_at=None,
        parent_id=claim.parent_id,
        invocation=Invocation(),
    )
    app._workflow_engine.finish(ctx, "failed", None, error_row(error))


def _placement(app: Any) -> Placement:
    placement: Placement = app.placement
    return placement


def store_of(home: Home | None, default: Store) -> Store:
    """The store of ``home``, else ``default`` (the app's own)."""
    return default if home is None else home.store


# Every column of the three tables (a column added by a migration is added
# here too, or a rebalance would leave it behind). A partition key moves
# with its workflows only while none of them is held by a worker; the copy
# gets no due time until the switch, so no worker claims it early.
_WORKFLOW_COLUMNS = (
    "workflow_id",
    "name",
    "input",
    "input_hash",
    "status",
    "app_version",
    "parent_id",
    "notify_parent",
    "epoch",
    "lease_owner",
    "lease_expires_at",
    "due_at",
    "deadline_at",
    "waiting_for",
    "wait_event",
    "wait_count",
    "recoveries",
    "cancel_requested",
    "result",
    "error_type",
    "error_message",
    "error_traceback",
    "created_at",
    "updated_at",
    "finished_at",
    "partition_key",
    "residency",
    "data_subject",
)
register_table(
    TableSpec(
        "workflows",
        columns=_WORKFLOW_COLUMNS,
        primary_key=("workflow_id",),
        partition_column="partition_key",
        residency_column="residency",
        attached=(
            Attached(
                "workflow_steps",
                columns=(
                    "workflow_id",
                    "seq",
                    "kind",
                    "name",
                    "status",
                    "attempts",
                    "output",
                    "error_type",
                    "error_message",
                    "error_traceback",
                    "started_at",
                    "finished_at",
                ),
                key="workflow_id",
                via="workflow_id",
                order=("workflow_id", "seq"),
            ),
            # ``position`` is left out: the new shard numbers the events
            # again, inserted in their old order (first in, first out).
            Attached(
                "workflow_events",
                columns=(
                    "workflow_id",
                    "name",
                    "event_id",
                    "payload",
                    "consumed_seq",
                    "created_at",
                ),
                key="workflow_id",
                via="workflow_id",
                order=("workflow_id", "position"),
            ),
        ),
        busy_when=(
            "status = 'running' OR lease_owner IS NOT NULL "
            "OR lease_expires_at IS NOT NULL"
        ),
        held_column="due_at",
        held_applies=(
            "status IN ('pending', 'waiting') AND lease_owner IS NULL "
            "AND lease_expires_at IS NULL"
        ),
    )
)
