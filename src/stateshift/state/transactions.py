"""``app.transaction()``: several writes, all or nothing.

The block runs with a fresh :class:`~stateshift.unit.Unit` as the current
unit, so every namespace and entity call inside it is buffered. On a clean
exit the unit is committed in one short write transaction that checks the
version of every key the block read or wrote; if one changed meanwhile,
:class:`~stateshift.errors.ConflictError` is raised and nothing is written.
An exception in the block discards every write. Inside a workflow step, or
inside another transaction, the block joins the unit already open and
commits with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from stateshift.store.base import Store
from stateshift.unit import Unit, current_unit, unit_scope

if TYPE_CHECKING:
    from stateshift.state.api import StateMixin
    from stateshift.state.entities import EntityRef
    from stateshift.state.namespace import Namespace

__all__ = ["Transaction", "commit_unit", "transaction"]


class Transaction:
    """The handle of an ``app.transaction()`` block."""

    def __init__(self, app: StateMixin, unit: Unit) -> None:
        self._app = app
        self.unit = unit
        """The unit buffering this block's writes."""

    def state(self, name: str, **options: Any) -> Namespace[Any]:
        """``app.state(name)``: the same namespace, written in this block."""
        return self._app.state(name, **options)

    def entity(self, cls: type, key: str) -> EntityRef[Any]:
        """``app.entity(cls, key)``: operations join this block."""
        return self._app.entity(cls, key)


def commit_unit(store: Store, unit: Unit) -> None:
    """Apply ``unit`` in one write transaction, then run its after-commit hooks."""
    if unit.empty:
        return
    with (unit.store or store).transaction() as tx:
        unit.apply(tx)
    unit.committed()


@contextmanager
def transaction(app: StateMixin) -> Iterator[Transaction]:
    """The body of :meth:`stateshift.state.api.StateMixin.transaction`."""
    outer = current_unit()
    if outer is not None:
        yield Transaction(app, outer)
        return
    unit = Unit()
    with unit_scope(unit):
        yield Transaction(app, unit)
    commit_unit(app.store, unit)
