"""Adding a shard under concurrent writes and reads loses and duplicates nothing.

Writers and readers keep working through the router (configured with the
old shard list) while a rebalance moves keys onto a new shard. Readers
must never see a key go missing or an older version than one already
acknowledged; at the end every key is stored once, with its last version,
and a router configured with the new shard list finds all of them.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import (
    POLICY,
    drop_extra,
    extra_shard_url,
    placement,
    shard_urls,
)

from stateshift.app import App
from stateshift.errors import StoreError
from stateshift.placement import Placement
from stateshift.placement.probe import probe_get, probe_put
from stateshift.placement.rebalance import Rebalancer, finish, plan_keys
from stateshift.placement.shards import ShardMap
from stateshift.state.namespace import Item


@pytest.fixture
def region(backend: str, tmp_path: Path) -> Iterator[tuple[dict[str, list[str]], str]]:
    with shard_urls(backend, tmp_path, {"eu": 2}) as urls:
        extra = extra_shard_url(backend, tmp_path, urls)
        try:
            yield urls, extra
        finally:
            drop_extra(backend, extra)


def rows_per_item(placement: Placement) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for _, _, store in placement.all_stores():
        with store.read() as tx:
            for key, item, version in tx.fetchall(
                "SELECT partition_key, item_key, version FROM {p}placement_probe"
            ):
                found.setdefault((key, item), []).append(int(version))
    return found


def test_adding_a_shard_under_concurrent_writes_loses_and_duplicates_nothing(
    region: tuple[dict[str, list[str]], str],
) -> None:
    urls, extra = region
    old = placement(urls, "eu")
    operator = placement(urls, "eu")
    keys = [f"cust-{i}" for i in range(120)]
    acked: dict[str, int] = {}
    lock = threading.Lock()
    for key in keys:
        acked[key] = probe_put(old, key, "cart", key.encode())

    stop = threading.Event()
    problems: list[str] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        fresh = 0
        while not stop.is_set():
            if rng.random() < 0.2:
                key = f"new-{seed}-{fresh}"
                fresh += 1
            else:
                key = rng.choice(keys)
            version = probe_put(old, key, "cart", f"{key}@{seed}".encode())
            with lock:
                acked[key] = max(acked.get(key, 0), version)

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            key = rng.choice(keys)
            with lock:
                floor = acked[key]
            found = probe_get(old, key, "cart")
            if found is None:
                problems.append(f"{key} missing")
            elif found[1] < floor:
                problems.append(f"{key} stale: {found[1]} < {floor}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=reader, args=(10 + i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        progress: list[tuple[int, int]] = []
        rebalancer = Rebalancer(
            operator,
            "eu",
            [*urls["eu"], extra],
            progress=lambda done, total: progress.append((done, total)),
        )
        result = rebalancer.run()
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)

    assert problems == []
    assert result.total > 10 and result.moved == result.total
    assert progress[-1] == (result.total, result.total)

    new = placement({"eu": [*urls["eu"], extra]}, "eu")
    try:
        copies = rows_per_item(new)
        assert {key for key, _ in copies} == set(acked)
        assert all(len(versions) == 1 for versions in copies.values())
        for key, version in acked.items():
            assert probe_get(new, key, "cart") is not None
            assert copies[(key, "cart")] == [version]
            assert probe_get(old, key, "cart") == probe_get(new, key, "cart")
        new_map = ShardMap("eu", ("s0", "s1", "s2"))
        for (key, _), _versions in copies.items():
            shard = new.maps["eu"].shard_for(key)
            assert shard == new_map.shard_for(key)
            with new.shard_store("eu", shard).read() as tx:
                assert tx.fetchone(
                    "SELECT 1 FROM {p}placement_probe WHERE partition_key = ?", (key,)
                )

        assert plan_keys(new, "eu", new_map) == []
        assert Rebalancer(operator, "eu", [*urls["eu"], extra]).run().moved == 0
        assert finish(new, "eu", result.rebalance_id) > 0
        for key in acked:
            assert probe_get(new, key, "cart") is not None
    finally:
        for each in (old, operator, new):
            each.close()


def state_rows(placement: Placement) -> dict[tuple[str, str], list[int]]:
    found: dict[tuple[str, str], list[int]] = {}
    for _, _, store in placement.all_stores():
        with store.read() as tx:
            for namespace, key, version in tx.fetchall(
                "SELECT namespace, key, version FROM {p}state_items"
            ):
                found.setdefault((namespace, key), []).append(int(version))
    return found


def blobs_where_their_items_are(placement: Placement) -> int:
    """Check each shard holds exactly the blobs its items name; count them."""
    total = 0
    for _, _, store in placement.all_stores():
        with store.read() as tx:
            named = {
                str(row[0])
                for row in tx.fetchall(
                    "SELECT blob_ref FROM {p}state_items WHERE blob_ref IS NOT NULL"
                )
            }
            rows = tx.fetchall("SELECT blob_ref FROM {p}state_blobs")
            held = {str(row[0]) for row in rows}
        assert named == held
        total += len(held)
    return total


def test_state_reads_writes_and_blobs_follow_a_rebalance_that_adds_a_shard(
    region: tuple[dict[str, list[str]], str],
) -> None:
    urls, extra = region
    # Values over 100 bytes go to the blob table: about half of the writes.
    app = App(
        regions=urls, region="eu", residency_policy=POLICY, blob_threshold_bytes=100
    )
    carts = app.state("carts")
    keys = [f"cust-{i}" for i in range(100)]
    acked: dict[str, int] = {}
    lock = threading.Lock()
    for key in keys:
        acked[key] = carts.put(key, {"key": key, "n": 0})

    stop = threading.Event()
    problems: list[str] = []

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        fresh = 0
        while not stop.is_set():
            if rng.random() < 0.2:
                key = f"new-{seed}-{fresh}"
                fresh += 1
            else:
                key = rng.choice(keys)
            pad = "x" * rng.choice((0, 300))
            version = carts.put(key, {"key": key, "n": seed, "pad": pad})
            with lock:
                acked[key] = max(acked.get(key, 0), version)

    def check(key: str, floor: int, item: Item[Any] | None) -> None:
        if item is None:
            problems.append(f"{key} missing")
        elif item.version < floor:
            problems.append(f"{key} stale: {item.version} < {floor}")
        elif item.value["key"] != key:
            problems.append(f"{key} holds {item.value!r}")

    def reader(seed: int) -> None:
        rng = random.Random(seed)
        while not stop.is_set():
            wanted = rng.sample(keys, 3)
            with lock:
                floors = {key: acked[key] for key in wanted}
            check(wanted[0], floors[wanted[0]], carts.get(wanted[0]))
            many = carts.get_many(wanted)
            for key in wanted:
                check(key, floors[key], many.get(key))

    scans: list[int] = []

    def scanner() -> None:
        while not stop.is_set():
            with lock:
                floors = {key: acked[key] for key in keys}
            seen: dict[str, list[Item[Any]]] = {}
            cursor = None
            while True:
                page = carts.scan(prefix="cust-", limit=40, cursor=cursor)
                for item in page.items:
                    seen.setdefault(item.key, []).append(item)
                cursor = page.cursor
                if cursor is None:
                    break
            for key, floor in floors.items():
                if len(seen.get(key, [])) > 1:
                    problems.append(f"scan returned {key} twice")
                check(key, floor, seen[key][0] if key in seen else None)
            scans.append(len(seen))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    threads += [threading.Thread(target=reader, args=(10 + i,)) for i in range(2)]
    threads.append(threading.Thread(target=scanner))
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.2)
        operator = placement(urls, "eu")
        result = Rebalancer(operator, "eu", [*urls["eu"], extra]).run(batch_size=10)
        time.sleep(0.2)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        operator.close()

    assert problems == []
    assert len(scans) > 1
    assert result.total > 10 and result.moved == result.total
    new_app = App(
        regions={"eu": [*urls["eu"], extra]},
        region="eu",
        residency_policy=POLICY,
        blob_threshold_bytes=100,
    )
    try:
        assert blobs_where_their_items_are(new_app.placement) > 0
        copies = state_rows(new_app.placement)
        assert {key for _, key in copies} == set(acked)
        for key, version in acked.items():
            assert copies[("carts", key)] == [version]
            found = new_app.state("carts").get(key)
            assert found is not None and found.version == version
            assert carts.get(key) == found
    finally:
        new_app.close()
        app.close()


def test_a_transaction_on_the_old_shard_list_is_refused_for_a_moved_item(
    region: tuple[dict[str, list[str]], str],
) -> None:
    urls, extra = region
    app = App(regions=urls, region="eu", residency_policy=POLICY)
    carts = app.state("carts")
    keys = [f"cust-{i}" for i in range(30)]
    for key in keys:
        carts.put(key, {"n": 1})
    operator = placement(urls, "eu")
    try:
        result = Rebalancer(operator, "eu", [*urls["eu"], extra]).run()
    finally:
        operator.close()
    moved = [move.partition_key for move in result.moves]
    assert moved

    with pytest.raises(StoreError, match="moved off shard"):
        with app.transaction():
            carts.put(moved[0], {"n": 2})
    assert carts.get(moved[0]) is not None
    assert carts.get(moved[0]).value == {"n": 1}  # type: ignore[union-attr]
    everywhere = placement({"eu": [*urls["eu"], extra]}, "eu")
    assert sorted(state_rows(everywhere).values()) == [[1]] * len(keys)
    everywhere.close()

    staying = next(key for key in keys if key not in moved)
    with app.transaction():
        carts.put(staying, {"n": 2})
    assert carts.get(staying).value == {"n": 2}  # type: ignore[union-attr]
    app.close()
