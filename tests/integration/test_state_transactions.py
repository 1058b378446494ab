"""``app.transaction()`` and units of work on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.state.transactions import commit_unit
from stateshift.unit import Unit, unit_scope


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config)
    yield application
    application.close()


def test_writes_to_several_namespaces_commit_together(app: ss.App) -> None:
    with app.transaction() as tx:
        tx.state("orders").put("o1", {"cents": 500})
        app.state("stock").put("sku-1", 9)
        assert app.state("orders").get("o1").value == {"cents": 500}  # type: ignore[union-attr]
    assert app.state("orders").get("o1").version == 1  # type: ignore[union-attr]
    assert app.state("stock").get("sku-1").value == 9  # type: ignore[union-attr]


def test_nothing_is_visible_outside_before_the_block_ends(app: ss.App) -> None:
    orders = app.state("orders")
    with app.transaction():
        orders.put("o1", 1)
        with app.store.read() as raw:
            assert raw.fetchone("SELECT COUNT(*) FROM {p}state_items") == (0,)


def test_an_exception_in_the_block_writes_nothing(app: ss.App) -> None:
    with pytest.raises(RuntimeError):
        with app.transaction():
            app.state("a").put("k", 1)
            raise RuntimeError("boom")
    assert app.state("a").get("k") is None


def test_one_failed_version_check_writes_nothing_at_all(app: ss.App) -> None:
    accounts = app.state("accounts")
    accounts.put("alice", 100)
    accounts.put("bob", 0)
    with pytest.raises(ss.ConflictError) as caught:
        with app.transaction():
            alice = accounts.get("alice")
            assert alice is not None
            accounts.put("alice", alice.value - 30)
            accounts.put("bob", 30)
            accounts.put("carol", 1, expected_version=0)
            # Someone else changes alice before the commit.
            other = Unit()
            with unit_scope(other):
                accounts.put("alice", 999)
            commit_unit(app.store, other)
    assert caught.value.key == "alice"
    assert accounts.get("alice").value == 999  # type: ignore[union-attr]
    assert accounts.get("bob").value == 0  # type: ignore[union-attr]
    assert accounts.get("carol") is None


def test_a_concurrent_change_to_a_key_read_fails_the_commit(app: ss.App) -> None:
    config = app.state("config")
    config.put("limit", 10)
    unit = Unit()
    with unit_scope(unit):
        config.get("limit")
        app.state("out").put("x", 1)
    config.put("limit", 11)  # outside the unit, committed at once
    with pytest.raises(ss.ConflictError):
        commit_unit(app.store, unit)
    assert app.state("out").get("x") is None


def test_reads_see_the_units_own_writes_and_deletes(app: ss.App) -> None:
    ns = app.state("ns")
    ns.put("a", 1)
    ns.put("b", 2)
    with app.transaction():
        assert ns.put("a", 10) == 2
        assert ns.put("a", 11) == 3
        assert ns.delete("b") is True
        ns.put("c", 3)
        assert ns.get("a").value == 11  # type: ignore[union-attr]
        assert ns.get("b") is None
        assert sorted(ns.get_many(["a", "b", "c"])) == ["a", "c"]
        assert [(i.key, i.value) for i in ns.scan().items] == [("a", 11), ("c", 3)]
    assert ns.get("a").version == 3  # type: ignore[union-attr]
    assert ns.get("b") is None
    assert ns.put("a", 12, expected_version=3) == 4


def test_a_stale_expected_version_inside_a_unit_raises_at_once(app: ss.App) -> None:
    ns = app.state("ns")
    ns.put("a", 1)
    with pytest.raises(ss.ConflictError):
        with app.transaction():
            ns.put("a", 2, expected_version=5)


def test_an_inner_transaction_joins_the_outer_one(app: ss.App) -> None:
    ns = app.state("ns")
    with pytest.raises(RuntimeError):
        with app.transaction():
            with app.transaction():
                ns.put("inner", 1)
            assert app.state("ns").get("inner") is not None
            raise RuntimeError("the outer block fails")
    assert ns.get("inner") is None


def test_update_inside_a_unit_runs_once_and_commits_with_it(app: ss.App) -> None:
    ns = app.state("counter")
    calls: list[int] = []

    def bump(value: int | None) -> int:
        calls.append(1)
        return (value or 0) + 1

    with app.transaction():
        ns.update("n", bump)
        ns.update("n", bump)
    assert calls == [1, 1]
    assert ns.get("n").value == 2  # type: ignore[union-attr]


def test_an_empty_transaction_touches_nothing(app: ss.App) -> None:
    with app.transaction() as tx:
        assert tx.unit.empty
