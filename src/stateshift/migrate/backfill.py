"""State backfill: copy a legacy source into a namespace, as a durable workflow.

The backfill is a workflow whose steps each copy one batch. A step reads
the batch from the position the previous step recorded, maps each record
to ``(key, value)`` (the source's default, or a transform hook), and puts
the items in the namespace. Those writes are buffered in the step's unit
and commit in the same transaction as the step's checkpoint, which
records the next position: after a crash at any instruction, a batch is
either copied and checkpointed, or neither, and a resumed run continues
from the last checkpoint. Nothing is copied twice.

An item that already holds the same value (by checksum) is left alone, so
running a finished backfill again, or reading a key twice (a Redis scan
may), writes nothing.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateshift.errors import (
    CodecError,
    ConfigError,
    InvalidKey,
    SchemaError,
    WorkflowError,
)
from stateshift.migrate._checksum import value_digest
from stateshift.migrate.sources import Source, SourceSpec, open_source
from stateshift.state._keys import check_key
from stateshift.workflows import RetryPolicy, WorkflowStatus

if TYPE_CHECKING:
    from stateshift.app import App

__all__ = [
    "Backfill",
    "BackfillFailed",
    "Counts",
    "Transform",
    "backfill_worker_id",
    "backfill_workflow",
    "dry_run",
    "load_transform",
    "run_backfill",
]

logger = logging.getLogger(__name__)

WORKFLOW_NAME = "stateshift.migrate.backfill"
STEP_NAME = "stateshift.migrate.copy_batch"
DEFAULT_BATCH_SIZE = 500
EXISTING_CHOICES = ("overwrite", "keep")

Transform = Callable[[Any], "tuple[str, Any] | None"]
"""A hook that maps a source record to ``(key, value)``, or ``None`` to skip it."""

_BATCH_RETRY = RetryPolicy(
    max_attempts=5,
    initial_interval=0.5,
    max_interval=10.0,
    non_retryable=(ConfigError, CodecError, InvalidKey, TypeError, ValueError),
)

# Set by run_backfill for the workflow code running in this thread: the
# progress callback is not durable state, only a view of it.
_observer: ContextVar[Callable[[Counts], None] | None] = ContextVar(
    "stateshift_backfill_observer", default=None
)


@dataclass(frozen=True)
class Backfill:
    """What to copy where; the workflow's input."""

    source: SourceSpec
    namespace: str
    batch_size: int = DEFAULT_BATCH_SIZE
    """Records per step (one checkpoint each)."""
    transform: str | None = None
    """``module:function`` reshaping each record; see :data:`Transform`."""
    existing: str = "overwrite"
    """An item that already differs: ``overwrite`` it, or ``keep`` it."""

    def __post_init__(self) -> None:
        check_key(self.namespace, what="namespace")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int):
            raise TypeError("batch_size must be an int")
        if not 1 <= self.batch_size <= 10_000:
            raise ValueError("batch_size must be between 1 and 10000")
        if self.existing not in EXISTING_CHOICES:
            raise ValueError(f"existing must be one of {EXISTING_CHOICES}")

    def to_input(self) -> dict[str, Any]:
        """A plain dict: the workflow input, compared on resume."""
        data: dict[str, Any] = {
            "source": self.source.as_dict(),
            "namespace": self.namespace,
            "batch_size": self.batch_size,
            "existing": self.existing,
        }
        if self.transform is not None:
            data["transform"] = self.transform
        return data

    @classmethod
    def from_input(cls, data: dict[str, Any]) -> Backfill:
        """The inverse of :meth:`to_input`."""
        fields = dict(data)
        fields["source"] = SourceSpec.from_dict(fields["source"])
        return cls(**fields)


@dataclass
class Counts:
    """Records seen and what became of them."""

    read: int = 0
    """Records read from the source."""
    written: int = 0
    """Items put in the namespace (new or changed)."""
    unchanged: int = 0
    """Items already holding the same value, left alone."""
    kept: int = 0
    """Items holding another value, left alone (``existing="keep"``)."""
    skipped: int = 0
    """Records the transform (or the source) skipped."""
    batches: int = 0
    """Steps that copied a batch."""

    def add(self, other: dict[str, int]) -> None:
        for name in ("read", "written", "unchanged", "kept", "skipped"):
            setattr(self, name, getattr(self, name) + int(other.get(name, 0)))
        self.batches += 1

    def as_dict(self) -> dict[str, int]:
        return {
            "read": self.read,
            "written": self.written,
            "unchanged": self.unchanged,
            "kept": self.kept,
            "skipped": self.skipped,
            "batches": self.batches,
        }


class BackfillFailed(WorkflowError):
    """The backfill workflow ended without copying everything."""


# --- the mapping from records to items --------------------------------------


def load_transform(spec: str) -> Transform:
    """Import ``module:function`` (the module must be importable here)."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ConfigError("transform", f"{spec!r}: write it as module:function")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError("transform", f"cannot import {module_name!r}: {exc}") from exc
    target: Any = module
    for part in name.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise ConfigError("transform", f"{spec!r} is not a function")
    return target  # type: ignore[no-any-return]


@dataclass
class _Mapper:
    """Turns records into items: the source's pairing, or the transform."""

    source: Source
    transform: Transform | None

    def items(self, records: list[Any]) -> tuple[dict[str, Any], int]:
        """Items by key (a later record wins) and the number skipped."""
        items: dict[str, Any] = {}
        skipped = 0
        for record in records:
            pair = (
                self.source.pair(record)
                if self.transform is None
                else self.transform(record)
            )
            if pair is None:
                skipped += 1
                continue
            if not isinstance(pair, tuple) or len(pair) != 2:
                raise ConfigError(
                    "transform",
                    f"must return (key, value) or None, returned {pair!r:.120}",
                )
            key, value = pair
            items[check_key(key)] = value
        return items, skipped


def open_mapper(plan: Backfill) -> _Mapper:
    """The source and transform of ``plan``; close ``mapper.source`` after."""
    transform = load_transform(plan.transform) if plan.transform else None
    return _Mapper(open_source(plan.source), transform)


# --- the workflow ------------------------------------------------------------


def backfill_workflow(app: App) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The backfill workflow, registered on ``app`` once (by its stable name)."""
    registered: Callable[[dict[str, Any]], dict[str, Any]] | None = app.__dict__.get(
        "_stateshift_backfill"
    )
    if registered is not None:
        return registered

    @app.step(name=STEP_NAME, retry=_BATCH_RETRY)
    def copy_batch(job: dict[str, Any], position: Any) -> dict[str, Any]:
        plan = Backfill.from_input(job)
        # Opened per batch: a step may run in any process, and a failed
        # backfill must not leave connections behind.
        mapper = open_mapper(plan)
        try:
            batch = mapper.source.read(position, plan.batch_size)
            items, skipped = mapper.items(batch.records)
        finally:
            mapper.source.close()

        namespace = app.state(plan.namespace)
        existing = namespace.get_many(items)
        written = unchanged = kept = 0
        for key, value in items.items():
            item = existing.get(key)
            if item is not None:
                if value_digest(item.value) == value_digest(value):
                    unchanged += 1
                    continue
                if plan.existing == "keep":
                    kept += 1
                    continue
            namespace.put(key, value)
            written += 1
        return {
            "position": batch.position,
            "done": batch.done,
            "read": len(batch.records),
            "written": written,
            "unchanged": unchanged,
            "kept": kept,
            "skipped": skipped,
        }

    @app.workflow(name=WORKFLOW_NAME)
    def backfill(job: dict[str, Any]) -> dict[str, Any]:
        counts = Counts()
        position: Any = None
        while True:
            outcome = copy_batch(job, position)
            counts.add(outcome)
            observer = _observer.get()
            if observer is not None:
                observer(counts)
            if outcome["done"]:
                return counts.as_dict()
            position = outcome["position"]

    app.__dict__["_stateshift_backfill"] = backfill
    return backfill


def run_backfill(
    app: App,
    plan: Backfill,
    *,
    workflow_id: str,
    progress: Callable[[Counts], None] | None = None,
) -> Counts:
    """Run (or resume) the backfill ``workflow_id`` here until it ends.

    The app should have a worker id of its own for this backfill (see
    :func:`backfill_worker_id`): after a crash, the next run takes its
    lease back at once instead of waiting for it to expire.

    Raises:
        BackfillFailed: the workflow failed, was cancelled or is stuck.
        WorkflowConflict: ``workflow_id`` ran another backfill (other input).
    """
    workflow = backfill_workflow(app)
    with _observing(progress):
        while True:
            app.run(workflow, plan.to_input(), workflow_id=workflow_id)
            info = app.status(workflow_id)
            if info.status is WorkflowStatus.SUCCEEDED:
                counts = Counts()
                for name, value in info.result.items():
                    setattr(counts, name, value)
                return counts
            if info.status is WorkflowStatus.RUNNING:
                if not _take_back_own_lease(app, workflow_id):
                    raise BackfillFailed(
                        workflow_id,
                        f"backfill {workflow_id!r} is running in another process "
                        f"(worker {app.worker_id!r} does not hold it); wait for it, "
                        "or run with the same worker id",
                    )
                continue
            if info.status in (WorkflowStatus.PENDING, WorkflowStatus.WAITING):
                # A batch failed and waits for its retry.
                delay = 0.05 if info.due_at is None else info.due_at - app.clock()
                time.sleep(min(max(delay, 0.0), 10.0))
                continue
            error = f": {info.error.message}" if info.error else ""
            raise BackfillFailed(
                workflow_id,
                f"backfill {workflow_id!r} is {info.status.value}{error}. Items "
                "already copied stay; after fixing the cause, run again with a new "
                "--id (unchanged items are skipped)",
            )


def backfill_worker_id(workflow_id: str) -> str:
    """A worker id stable across runs of one backfill."""
    return f"stateshift-migrate:{workflow_id}"


def _take_back_own_lease(app: App, workflow_id: str) -> bool:
    """Claim a workflow this worker id held when its process died; run it."""
    from stateshift.workflows._context import Invocation
    from stateshift.workflows._runner import run_claim

    # With a worker id made for this backfill, the only lease the engine's
    # "take my leases back" claim can find is this workflow's.
    claim = app._workflow_engine.take_back_own_lease()
    if claim is None:
        return False
    if claim.workflow_id != workflow_id:
        app._workflow_engine.drop(claim.workflow_id)
        raise BackfillFailed(
            workflow_id,
            f"worker id {app.worker_id!r} also held workflow {claim.workflow_id!r}; "
            "give each backfill its own worker id",
        )
    logger.info(
        "taking backfill %s back from a previous run of this worker",
        workflow_id,
        extra={"event": "migrate.resume", "workflow_id": workflow_id},
    )
    run_claim(app, claim, Invocation())
    return True


@contextmanager
def _observing(progress: Callable[[Counts], None] | None) -> Iterator[None]:
    token = _observer.set(progress)
    try:
        yield
    finally:
        _observer.reset(token)


# --- dry run -----------------------------------------------------------------


def dry_run(
    app: App, plan: Backfill, *, progress: Callable[[Counts], None] | None = None
) -> Counts:
    """Read and map every record and compare with the namespace; write nothing.

    ``written`` counts the items a real run would write (new or changed).
    A store without a schema yet counts as an empty namespace.
    """
    mapper = open_mapper(plan)
    namespace = app.state(plan.namespace)
    counts = Counts()
    store_ready = True
    position: Any = None
    try:
        while True:
            batch = mapper.source.read(position, plan.batch_size)
            items, skipped = mapper.items(batch.records)
            existing: dict[str, Any] = {}
            if store_ready and items:
                try:
                    existing = namespace.get_many(items)
                except SchemaError:
                    store_ready = False
            outcome = {"read": len(batch.records), "skipped": skipped}
            for key, value in items.items():
                item = existing.get(key)
                if item is None:
                    outcome["written"] = outcome.get("written", 0) + 1
                elif value_digest(item.value) == value_digest(value):
                    outcome["unchanged"] = outcome.get("unchanged", 0) + 1
                elif plan.existing == "keep":
                    outcome["kept"] = outcome.get("kept", 0) + 1
                else:
                    outcome["written"] = outcome.get("written", 0) + 1
            counts.add(outcome)
            if progress is not None:
                progress(counts)
            if batch.done:
                return counts
            position = batch.position
    finally:
        mapper.source.close()
