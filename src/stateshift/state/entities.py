"""Entities: a class whose attributes are state and whose methods operate on it.

::

    @app.entity
    class Cart:
        def __init__(self) -> None:
            self.items: dict[str, int] = {}

        def add(self, sku: str, quantity: int) -> int:
            self.items[sku] = self.items.get(sku, 0) + quantity
            return self.items[sku]

    app.entity(Cart, "u42").add("sku-1", 2)

An operation loads the state of its key (a fresh instance when there is
none), runs the method and saves the attributes with a version check. On a
conflict it runs again from a fresh load, a bounded number of times, so an
operation may run more than once and must have no outside effects (publish
through the outbox). Operations on different keys touch different rows and
run in parallel where the backend allows. An operation that changes no
attribute writes nothing. Inside a unit of work (a step, a transaction) it
runs once and its write joins the unit.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from stateshift.errors import ConflictError
from stateshift.state._keys import check_key
from stateshift.state.namespace import Item, backoff
from stateshift.unit import current_unit

if TYPE_CHECKING:
    from stateshift.state.api import StateMixin
    from stateshift.state.namespace import Namespace

__all__ = ["EntityRef", "EntityType"]

E = TypeVar("E")


class EntityType(Generic[E]):
    """A registered entity class: its name, namespace and operations."""

    def __init__(self, cls: type[E], *, name: str | None = None, attempts: int) -> None:
        if not inspect.isclass(cls):
            raise TypeError(f"@app.entity decorates a class, not {cls!r}")
        try:
            inspect.signature(cls).bind()
        except (TypeError, ValueError):
            raise TypeError(
                f"entity class {cls.__qualname__} must be constructible without "
                "arguments: a new key starts from {cls.__qualname__}()"
            ) from None
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.cls = cls
        self.name = name or cls.__qualname__
        self.namespace = check_key(f"entity:{self.name}", what="namespace")
        self.attempts = attempts
        self.operations = _operations(cls)

    def operation(self, name: str) -> Callable[..., Any]:
        """The method of operation ``name``; ``AttributeError`` if unknown."""
        method = self.operations.get(name)
        if method is None:
            known = ", ".join(sorted(self.operations)) or "none"
            raise AttributeError(
                f"entity {self.name} has no operation {name!r} (operations: {known})"
            )
        return method

    def load(self, item: Item[Any] | None) -> E:
        """An instance holding the state of ``item`` (defaults if ``None``)."""
        if item is None:
            return self.cls()
        value = item.value
        if isinstance(value, self.cls):
            return value
        if not isinstance(value, dict):
            raise TypeError(
                f"the stored state of entity {self.name}/{item.key!r} is a "
                f"{type(value).__name__}, not a mapping of attributes"
            )
        validate = getattr(self.cls, "model_validate", None)
        if callable(validate):
            return validate(value)  # type: ignore[no-any-return]
        # Start from a fresh instance, so attributes added to the class since
        # the state was saved get their defaults.
        instance = self.cls()
        for attribute, attribute_value in value.items():
            object.__setattr__(instance, attribute, attribute_value)
        return instance

    def state_of(self, instance: E) -> dict[str, Any]:
        """The attributes of ``instance`` that make up its state."""
        if dataclasses.is_dataclass(instance):
            return {
                f.name: getattr(instance, f.name) for f in dataclasses.fields(instance)
            }
        model_fields = getattr(type(instance), "model_fields", None)
        if isinstance(model_fields, dict):
            return {name: getattr(instance, name) for name in model_fields}
        try:
            return dict(vars(instance))
        except TypeError:
            raise TypeError(
                f"entity {self.name} keeps no attributes in __dict__; use a plain "
                "class, a dataclass or a pydantic model"
            ) from None


class EntityRef(Generic[E]):
    """One entity, ``app.entity(Cart, "u42")``: call its operations on it."""

    def __init__(
        self,
        app: StateMixin,
        entity: EntityType[E],
        key: str,
        *,
        residency: str | None = None,
        partition_key: str | None = None,
    ) -> None:
        self._app = app
        self._entity = entity
        self.key = check_key(key)
        self.residency = residency
        """The residency tag of the entity's state."""
        self.partition_key = partition_key
        """The key its state is placed by (its own key when ``None``)."""

    def __repr__(self) -> str:
        return f"<stateshift.EntityRef {self._entity.name}/{self.key!r}>"

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        method = self._entity.operation(name)

        def operation(*args: Any, **kwargs: Any) -> Any:
            return self._call(name, method, args, kwargs)

        operation.__name__ = name
        operation.__doc__ = method.__doc__
        return operation

    def get(self) -> E:
        """The current state, as an instance (a fresh one if never written)."""
        return self._entity.load(
            self._namespace().get(self.key, partition_key=self.partition_key)
        )

    def _namespace(self) -> Namespace[Any]:
        hint = self._entity.cls if _typed(self._entity.cls) else None
        return self._app.state(
            self._entity.namespace, type=hint, residency=self.residency
        )

    def _call(
        self,
        name: str,
        method: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        def run() -> Any:
            return self._run(method, args, kwargs)

        # The workflow engine, when present, makes a call from workflow code
        # (outside any step) a checkpointed step of its own.
        as_step = getattr(self._app, "_entity_operation_step", None)
        if as_step is not None:
            return as_step(f"{self._entity.name}.{name}", self.key, run)
        return run()

    def _run(
        self, method: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        namespace = self._namespace()
        inside = current_unit() is not None
        attempts = 1 if inside else self._entity.attempts
        for attempt in range(attempts):
            item = namespace.get(self.key, partition_key=self.partition_key)
            instance = self._entity.load(item)
            before = copy.deepcopy(self._entity.state_of(instance))
            result = method(instance, *args, **kwargs)
            after = self._entity.state_of(instance)
            if _same(before, after):
                return result
            expected = 0 if item is None else item.version
            try:
                namespace.put(
                    self.key,
                    after,
                    expected_version=expected,
                    partition_key=self.partition_key,
                )
            except ConflictError:
                if inside or attempt == attempts - 1:
                    raise
                backoff(attempt)
                continue
            return result
        raise AssertionError("unreachable: the last attempt raises or returns")


def _operations(cls: type) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for klass in reversed(cls.__mro__[:-1]):
        for name, member in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(member, staticmethod | classmethod | property):
                found.pop(name, None)
                continue
            if inspect.isfunction(member):
                found[name] = member
    return found


def _typed(cls: type) -> bool:
    return dataclasses.is_dataclass(cls) or hasattr(cls, "model_validate")


def _same(before: dict[str, Any], after: dict[str, Any]) -> bool:
    try:
        return bool(before == after)
    except Exception:
        # An attribute whose == raises: assume it changed and write.
        return False
