"""Reads of one key at each stage of a rebalance that moves it.

A get is one statement outside any transaction (the item, its blob and the
key's forwarding rows in one snapshot). These tests stop a rebalance between
its stages (publish, copy, switch, activate) and check that a get, from a
process on the old shard list and from one on the new list, follows the
forwarding rows to the one shard that answers, never to a stale copy; and
that on PostgreSQL the hot path keeps its statement counts and lock order.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import POLICY, drop_extra, extra_shard_url, shard_urls

from conftest import drop_schema, new_store_config
from stateshift.app import App
from stateshift.errors import DeserializationError
from stateshift.placement.rebalance import Rebalancer
from stateshift.placement.shards import Move


@pytest.fixture
def region(backend: str, tmp_path: Path) -> Iterator[tuple[dict[str, list[str]], str]]:
    with shard_urls(backend, tmp_path, {"eu": 2}) as urls:
        extra = extra_shard_url(backend, tmp_path, urls)
        try:
            yield urls, extra
        finally:
            drop_extra(backend, extra)


def holders(app: App, key: str) -> dict[str, int]:
    """Shard id to the version of ``key``'s row there, over every shard."""
    found: dict[str, int] = {}
    for _, shard_id, store in app.placement.all_stores():
        with store.read() as tx:
            row = tx.fetchone(
                "SELECT version FROM {p}state_items WHERE namespace = ? AND key = ?",
                ("carts", key),
            )
        if row is not None:
            found[shard_id] = int(row[0])
    return found


def test_a_get_follows_each_stage_of_a_rebalance_of_its_key(
    region: tuple[dict[str, list[str]], str],
) -> None:
    urls, extra = region
    new_list = {"eu": [*urls["eu"], extra]}
    # Values over 100 bytes live in the blob table: the last write is one.
    old = App(
        regions=urls, region="eu", residency_policy=POLICY, blob_threshold_bytes=100
    )
    new = App(
        regions=new_list, region="eu", residency_policy=POLICY, blob_threshold_bytes=100
    )
    operator = App(regions=urls, region="eu", residency_policy=POLICY)
    try:
        carts = old.state("carts")
        for i in range(40):
            carts.put(f"cust-{i}", {"n": 1})
        rebalancer = Rebalancer(operator.placement, "eu", new_list["eu"])
        moving = rebalancer.publish_moves()
        assert moving
        key = moving[0]
        source, target, _ = rebalancer.move_states()[key]
        move = Move(key, source, target)
        staying = next(f"cust-{i}" for i in range(40) if f"cust-{i}" not in moving)

        def both_read(value: dict[str, Any], version: int) -> None:
            for app in (old, new):
                item = app.state("carts").get(key)
                assert item is not None and (item.value, item.version) == (
                    value,
                    version,
                )
                many = app.state("carts").get_many([staying, key])
                assert many[key] == item
                assert many[staying].value == {"n": 1}

        # Published: the new shard marks the key incoming; it is read (and
        # written) on its old shard by both shard lists.
        both_read({"n": 1}, 1)
        assert carts.put(key, {"n": 2}) == 2
        both_read({"n": 2}, 2)

        # Copied: the new shard holds a copy, made stale by a write that
        # follows; reads still answer from the old shard, never the copy.
        # (The stages are run one by one to stop between them.)
        copied = rebalancer._copy(move)
        assert holders(new, key) == {source: 2, target: 2}
        assert carts.put(key, {"n": 3}) == 3
        assert holders(new, key) == {source: 3, target: 2}
        both_read({"n": 3}, 3)

        # Switched: the old shard's rows are gone, its moved row points to
        # the new shard, which was copied again; the incoming mark is still
        # there. Both lists find the key on the new shard only.
        assert rebalancer._switch(move, copied) is True
        assert holders(new, key) == {target: 3}
        both_read({"n": 3}, 3)
        big = {"n": 4, "pad": "x" * 300}
        assert new.state("carts").put(key, big) == 4
        both_read(big, 4)

        # Activated: the incoming mark is dropped.
        rebalancer._activate(move)
        both_read(big, 4)
        assert carts.put(key, {"n": 5}) == 5
        both_read({"n": 5}, 5)
        assert holders(new, key) == {target: 5}
    finally:
        for app in (old, new, operator):
            app.close()


@pytest.fixture
def counted_app(tmp_path: Path) -> Iterator[tuple[App, list[str]]]:
    import psycopg

    config = new_store_config("postgresql", tmp_path)
    app = App(**config)
    sent: list[str] = []
    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        sent.append(str(query))
        return original(self, query, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psycopg.Cursor, "execute", execute)
        try:
            yield app, sent
        finally:
            app.close()
            drop_schema(config["schema"])


def test_state_calls_send_few_statements_on_postgresql(
    counted_app: tuple[App, list[str]],
) -> None:
    app, sent = counted_app
    carts = app.state("carts")
    carts.put("u1", {"n": 1})
    carts.put("u2", {"n": 2})

    sent.clear()
    assert carts.get("u1").value == {"n": 1}  # type: ignore[union-attr]
    assert len(sent) == 1
    assert "placement_forward" in sent[0] and "BEGIN" not in sent[0]

    sent.clear()
    assert set(carts.get_many(["u1", "u2", "absent"])) == {"u1", "u2"}
    assert len(sent) == 1

    sent.clear()
    assert carts.put("u1", {"n": 3}) == 2
    # BEGIN with the shared advisory locks; the forwarding rows with the
    # item's row lock; the write; COMMIT.
    assert len(sent) == 4
    lock, forward, write, commit = sent
    assert lock.startswith("BEGIN; SELECT pg_advisory_xact_lock_shared(")
    # The forwarding rows are read by a statement after the one that waits
    # for the lock, so its snapshot sees a switch that committed meanwhile.
    assert "placement_forward" in forward and "FOR UPDATE" in forward
    assert "pg_advisory" not in forward
    assert write.lstrip().startswith("UPDATE") and commit == "COMMIT"

    sent.clear()
    assert carts.update("u2", lambda v: {"n": v["n"] + 1}).version == 2
    assert len(sent) == 5


def test_a_get_of_a_large_value_reads_its_blob_in_the_same_statement(
    backend: str, tmp_path: Path
) -> None:
    config = new_store_config(backend, tmp_path)
    app = App(**config, blob_threshold_bytes=100)
    try:
        carts = app.state("carts")
        big = {"pad": "y" * 500, "id": uuid.uuid4().hex}
        carts.put("u1", big)
        assert carts.get("u1").value == big  # type: ignore[union-attr]
        assert carts.get_many(["u1"])["u1"].value == big
        assert [item.value for item in carts.scan().items] == [big]
        # A row naming a blob that is not there is an error, not a value.
        with app.store.transaction() as tx:
            tx.execute("DELETE FROM {p}state_blobs")
        with pytest.raises(DeserializationError, match="missing from the store"):
            carts.get("u1")
    finally:
        app.close()
        if "schema" in config:
            drop_schema(config["schema"])
