"""Entities on SQLite and PostgreSQL: load, run, save with a version check."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

import stateshift as ss


class Cart:
    def __init__(self) -> None:
        self.items: dict[str, int] = {}

    def add(self, sku: str, quantity: int = 1) -> int:
        self.items[sku] = self.items.get(sku, 0) + quantity
        return self.items[sku]

    def count(self) -> int:
        return sum(self.items.values())

    def remember(self, value: Any) -> None:
        self.items["odd"] = value

    def _private(self) -> None:
        raise AssertionError("not an operation")


@dataclass
class Counter:
    value: int = 0
    history: list[int] = field(default_factory=list)

    def increment(self, by: int = 1) -> int:
        self.value += by
        self.history.append(by)
        return self.value


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    application.entity(Cart)
    application.entity(name="counter")(Counter)
    yield application
    application.close()


def test_an_operation_loads_runs_and_saves(app: ss.App) -> None:
    cart = app.entity(Cart, "u42")
    assert cart.add("sku-1", 2) == 2
    assert cart.add("sku-1") == 3
    assert app.entity(Cart, "u42").count() == 3
    stored = app.state("entity:Cart").get("u42")
    assert stored is not None and stored.version == 2
    assert stored.value == {"items": {"sku-1": 3}}


def test_a_read_only_operation_writes_nothing(app: ss.App) -> None:
    cart = app.entity(Cart, "u1")
    cart.add("a")
    assert cart.count() == 1
    assert cart.count() == 1
    assert app.state("entity:Cart").get("u1").version == 1  # type: ignore[union-attr]
    assert app.entity(Cart, "never-written").count() == 0
    assert app.state("entity:Cart").get("never-written") is None


def test_a_dataclass_entity_keeps_its_fields(app: ss.App) -> None:
    counter = app.entity(Counter, "c1")
    counter.increment()
    counter.increment(by=5)
    state = counter.get()
    assert isinstance(state, Counter)
    assert (state.value, state.history) == (6, [1, 5])
    assert app.state("entity:counter").get("c1").version == 2  # type: ignore[union-attr]


def test_keys_are_separate_entities(app: ss.App) -> None:
    app.entity(Counter, "a").increment()
    assert app.entity(Counter, "b").get().value == 0


def test_an_unknown_operation_is_a_clear_error(app: ss.App) -> None:
    cart = app.entity(Cart, "u1")
    with pytest.raises(AttributeError, match="no operation 'remove'.*add, count"):
        cart.remove("x")
    with pytest.raises(AttributeError):
        cart._private()


def test_a_state_that_cannot_be_encoded_is_a_clear_error(app: ss.App) -> None:
    cart = app.entity(Cart, "u1")
    cart.add("a")
    with pytest.raises(TypeError):
        cart.remember(object())
    assert cart.count() == 1


def test_an_unregistered_class_is_refused(app: ss.App) -> None:
    class Stranger:
        def poke(self) -> None: ...

    with pytest.raises(TypeError, match="@app.entity"):
        app.entity(Stranger, "k")


def test_a_class_that_needs_arguments_is_refused_at_decoration(app: ss.App) -> None:
    class NeedsArgs:
        def __init__(self, owner: str) -> None:
            self.owner = owner

    with pytest.raises(TypeError, match="without arguments"):
        app.entity(NeedsArgs)


def test_an_operation_retries_on_a_conflict_and_loses_no_update(app: ss.App) -> None:
    runs: list[int] = []

    class Racy:
        def __init__(self) -> None:
            self.n = 0

        def bump(self) -> int:
            runs.append(self.n)
            if len(runs) == 1:
                # Another writer commits between this load and its save.
                app.state("entity:Racy").put("k", {"n": 10})
            self.n += 1
            return self.n

    app.entity(name="Racy")(Racy)
    assert app.entity(Racy, "k").bump() == 11
    assert runs == [0, 10]
    assert app.state("entity:Racy").get("k").value == {"n": 11}  # type: ignore[union-attr]


def test_an_operation_gives_up_after_its_attempts(app: ss.App) -> None:
    class Hopeless:
        def __init__(self) -> None:
            self.n = 0

        def bump(self) -> None:
            app.state("entity:Hopeless").update(
                "k", lambda s: {"n": (s or {"n": 0})["n"] + 1}
            )
            self.n = -1

    app.entity(name="Hopeless", attempts=3)(Hopeless)
    with pytest.raises(ss.ConflictError):
        app.entity(Hopeless, "k").bump()
    assert app.state("entity:Hopeless").get("k").value == {"n": 3}  # type: ignore[union-attr]


def test_an_operation_inside_a_transaction_commits_with_it(app: ss.App) -> None:
    with pytest.raises(RuntimeError):
        with app.transaction() as tx:
            tx.entity(Cart, "u1").add("a")
            assert tx.entity(Cart, "u1").count() == 1
            raise RuntimeError("rolled back")
    assert app.entity(Cart, "u1").count() == 0
    with app.transaction() as tx:
        tx.entity(Cart, "u1").add("a")
        app.state("orders").put("o1", "placed")
    assert app.entity(Cart, "u1").count() == 1


def test_an_engine_hook_wraps_each_operation_as_a_step(app: ss.App) -> None:
    calls: list[tuple[str, str]] = []

    def as_step(name: str, key: str, run: Any) -> Any:
        calls.append((name, key))
        return run()

    app._entity_operation_step = as_step  # type: ignore[attr-defined]
    assert app.entity(Cart, "u9").add("x") == 1
    assert calls == [("Cart.add", "u9")]


def test_two_classes_with_one_name_are_refused(app: ss.App) -> None:
    class Cart2:
        pass

    with pytest.raises(ValueError, match="named 'Cart'"):
        app.entity(name="Cart")(Cart2)
