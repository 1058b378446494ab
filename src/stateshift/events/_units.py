"""Running user code in a unit of work and committing it with our own rows.

Every events pattern ends the same way: user code ran with a :class:`Unit`
current, and its buffered writes must commit in one transaction together
with a row of ours (a queue ack, an inbox mark, an idempotency record).
Our row goes first, so that a fencing check that fails (a lost lease, a
duplicate) rolls the user's writes back before they are even replayed.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from stateshift.store.base import Store, Tx
from stateshift.unit import Operation, Unit, current_unit, unit_scope


class Rejected(Exception):
    """Raised inside a commit to roll it back on purpose (duplicate, lost lease)."""


def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn``; a coroutine function runs to completion on a fresh loop."""
    if inspect.iscoroutinefunction(fn):
        import asyncio  # only async users pay for it

        return asyncio.run(fn(*args, **kwargs))
    return fn(*args, **kwargs)


@contextmanager
def fresh_unit(store: Store) -> Iterator[Unit]:
    """A new unit bound to ``store``, current inside the block."""
    unit = Unit(store)
    with unit_scope(unit):
        yield unit


def commit(store: Store, unit: Unit, first: Operation | None = None) -> None:
    """Commit ``first`` and then the unit's operations in one transaction.

    Raises:
        Rejected: ``first`` refused the commit; nothing was written.
    """
    if first is not None or not unit.empty:
        with store.transaction() as tx:
            if first is not None:
                first(tx)
            unit.apply(tx)
    unit.committed()


def add_or_run(store: Store, operation: Callable[[Tx], None]) -> None:
    """Buffer ``operation`` in the current unit, or commit it on its own."""
    unit = current_unit()
    if unit is not None:
        unit.bind(store)
        unit.add(operation)
        return
    with store.transaction() as tx:
        operation(tx)
