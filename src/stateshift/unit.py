"""Units of work: writes buffered by user code, committed in one transaction.

No database transaction stays open while user code runs (SQLite has one
writer, and a step may call a slow service). Instead, state writes, outbox
messages, inbox marks and idempotency records made inside a step or an
``app.transaction()`` block are buffered in the current :class:`Unit`. Its
owner (the workflow engine at a step's checkpoint, or the transaction block
on exit) opens one short write transaction and calls :meth:`Unit.apply`,
which replays every buffered operation in order. An operation that finds a
stale version raises :class:`~stateshift.errors.ConflictError`; the whole
transaction then rolls back and the owner decides whether to run again.

Participants keep their read-your-writes caches in :attr:`Unit.cache` under
keys of their own (for example ``("state", store_id, namespace, key)``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from stateshift.store.base import Store, Tx

__all__ = ["Unit", "current_unit", "unit_scope"]

Operation = Callable[[Tx], None]


class Unit:
    """Buffered operations for one atomic commit to one store."""

    __slots__ = ("store", "operations", "cache", "after_commit")

    def __init__(self, store: Store | None = None) -> None:
        self.store = store
        """The store the unit commits to, once a participant has chosen one."""
        self.operations: list[Operation] = []
        """Callbacks run in order inside the commit transaction."""
        self.cache: dict[Any, Any] = {}
        """Participants' read-your-writes state, under their own keys."""
        self.after_commit: list[Callable[[], None]] = []
        """Callbacks run after a successful commit (cache invalidation...)."""

    def add(self, operation: Operation) -> None:
        """Buffer ``operation`` to run inside the commit transaction."""
        self.operations.append(operation)

    def bind(self, store: Store) -> None:
        """Commit to ``store``; a unit never spans two stores (shards)."""
        if self.store is None:
            self.store = store
        elif self.store is not store:
            from stateshift.errors import StoreError

            raise StoreError(
                "one step or transaction wrote to two different stores "
                f"({self.store.describe()} and {store.describe()}): it commits in "
                "one transaction on one shard. Keep data that changes together "
                "under one partition key (partition_key=)"
            )

    @property
    def empty(self) -> bool:
        """True when nothing was buffered."""
        return not self.operations

    def apply(self, tx: Tx) -> None:
        """Run every buffered operation in ``tx`` (the owner commits)."""
        for operation in self.operations:
            operation(tx)

    def committed(self) -> None:
        """Run the after-commit callbacks; call once the transaction committed."""
        for callback in self.after_commit:
            callback()


_current: ContextVar[Unit | None] = ContextVar("stateshift_unit", default=None)


def current_unit() -> Unit | None:
    """The unit buffering writes in this context, if any."""
    return _current.get()


@contextmanager
def unit_scope(unit: Unit) -> Iterator[Unit]:
    """Make ``unit`` current for the code inside the block."""
    token = _current.set(unit)
    try:
        yield unit
    finally:
        _current.reset(token)
