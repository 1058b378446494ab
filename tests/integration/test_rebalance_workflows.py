"""A rebalance moves a key's idle workflows with its state, and skips busy keys.

Each region's shards are separate SQLite files or separate PostgreSQL
databases; a shard is added to ``eu``. Workflows share a partition key
(the customer) with their state items, so after the move the next step of
a sleeping workflow runs on the new shard, co-located with its items.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_placement_support import POLICY, drop_extra, extra_shard_url, placement
from test_placement_support import shard_urls as make_shard_urls

import stateshift as ss
from stateshift.app import App
from stateshift.errors import StoreError
from stateshift.placement import Placement
from stateshift.placement.rebalance import Rebalancer, finish
from stateshift.placement.shards import Move, ShardMap
from stateshift.workflows.clock import ManualClock

Urls = dict[str, list[str]]


@pytest.fixture
def region(backend: str, tmp_path: Path) -> Iterator[tuple[Urls, str]]:
    with make_shard_urls(backend, tmp_path, {"eu": 2}) as urls:
        extra = extra_shard_url(backend, tmp_path, urls)
        try:
            yield urls, extra
        finally:
            drop_extra(backend, extra)


def new_app(urls: Urls, clock: ManualClock) -> App:
    return App(
        regions=urls,
        region="eu",
        residency_policy=POLICY,
        clock=clock,
        default_retry=ss.RetryPolicy(max_attempts=1),
    )


def rows_by_shard(
    app: App | Placement, table: str, column: str
) -> dict[str, list[str]]:
    """Values of ``column`` in ``table``, by the shard that holds them."""
    where = app.placement if isinstance(app, App) else app
    found: dict[str, list[str]] = {}
    for _, shard_id, store in where.all_stores():
        with store.read() as tx:
            rows = tx.fetchall(f"SELECT {column} FROM {{p}}{table} ORDER BY {column}")
        found[shard_id] = [str(row[0]) for row in rows]
    return found


def shards_of(app: App | Placement, table: str, column: str) -> dict[str, list[str]]:
    """Each value of ``column`` to the shards that hold it (once, if all is well)."""
    where: dict[str, list[str]] = {}
    for shard_id, values in rows_by_shard(app, table, column).items():
        for value in values:
            where.setdefault(value, []).append(shard_id)
    return where


def held_rows(app: App | Placement) -> int:
    where = app.placement if isinstance(app, App) else app
    total = 0
    for _, _, store in where.all_stores():
        with store.read() as tx:
            total += int(tx.fetchone("SELECT COUNT(*) FROM {p}placement_held")[0])
    return total


def define(app: App) -> tuple[Any, Any]:
    carts = app.state("carts")

    @app.step()
    def remember(customer: str, notes: list[int]) -> int:
        carts.put(f"{customer}/cart", {"notes": notes}, partition_key=customer)
        return len(notes)

    @app.workflow(name="visit")
    def visit(customer: str) -> list[int]:
        remember(customer, [])
        ss.sleep(60)
        notes = [ss.wait_for_event("note") for _ in range(3)]
        remember(customer, notes)
        return notes

    @app.workflow(name="order")
    def order(customer: str) -> int:
        return remember(customer, [0])

    return visit, order


def test_waiting_and_finished_workflows_move_with_their_state_and_finish_there(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    clock = ManualClock(1_000_000.0)
    old = new_app(urls, clock)
    visit, order = define(old)
    customers = [f"cust-{i}" for i in range(30)]
    for customer in customers:
        old.start(
            visit, customer, workflow_id=f"visit-{customer}", partition_key=customer
        )
        old.run(
            order, customer, workflow_id=f"order-{customer}", partition_key=customer
        )
    old.run_until_idle()
    for customer in customers:
        # Two notes queue before the move (while it sleeps), one after it.
        for note in (1, 2):
            old.send_event(f"visit-{customer}", "note", note, event_id=f"n{note}")

    operator = placement(urls, "eu")
    try:
        result = Rebalancer(operator, "eu", [*urls["eu"], extra]).run()
    finally:
        operator.close()
    assert result.skipped == []
    assert result.total > 3 and result.moved == result.total

    new = new_app({"eu": [*urls["eu"], extra]}, clock)
    define(new)
    try:
        moved = [c for c in customers if new.placement.maps["eu"].shard_for(c) == "s2"]
        assert {move.partition_key for move in result.moves} == set(moved)
        workflows = shards_of(new, "workflows", "workflow_id")
        for customer in customers:
            home = new.placement.maps["eu"].shard_for(customer)
            assert workflows[f"visit-{customer}"] == [home]
            assert workflows[f"order-{customer}"] == [home]
        steps = rows_by_shard(new, "workflow_steps", "workflow_id")
        events = rows_by_shard(new, "workflow_events", "workflow_id")
        for customer in moved:
            assert f"visit-{customer}" in steps["s2"]
            assert events["s2"].count(f"visit-{customer}") == 2
            assert all(f"visit-{customer}" not in events[s] for s in ("s0", "s1"))
        assert held_rows(new) == 0

        # A process still on the old shard list finds them by id.
        for customer in customers:
            assert old.status(f"order-{customer}").status is ss.WorkflowStatus.SUCCEEDED
            delivery = old.send_event(f"visit-{customer}", "note", 3, event_id="n3")
            assert delivery.delivered
            assert old.send_event(f"visit-{customer}", "note", 3, event_id="n3") == (
                ss.EventDelivery(False, "duplicate")
            )

        clock.advance(61)
        new.run_until_idle()
        for customer in customers:
            info = new.status(f"visit-{customer}")
            assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
            assert info.result == [1, 2, 3]
            assert new.state("carts").get(
                f"{customer}/cart", partition_key=customer
            ).value == {"notes": [1, 2, 3]}
        items = shards_of(new, "state_items", "key")
        for customer in customers:
            home = new.placement.maps["eu"].shard_for(customer)
            assert items[f"{customer}/cart"] == [home]
        assert finish(new.placement, "eu", result.rebalance_id) > 0
    finally:
        new.close()
        old.close()


def test_a_key_with_a_running_workflow_is_skipped_reported_and_moved_later(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    clock = ManualClock(1_000_000.0)
    app = new_app(urls, clock)
    carts = app.state("carts")
    new_map = [*urls["eu"], extra]
    grown = ShardMap("eu", ("s0", "s1", "s2"))
    busy = next(f"cust-{i}" for i in range(200) if grown.shard_for(f"cust-{i}") == "s2")
    entered, release = threading.Event(), threading.Event()

    @app.step()
    def slow(customer: str) -> int:
        entered.set()
        assert release.wait(60)
        return carts.put(f"{customer}/cart", {"paid": True}, partition_key=customer)

    @app.workflow(name="pay")
    def pay(customer: str) -> int:
        return slow(customer)

    carts.put(f"{busy}/cart", {"paid": False}, partition_key=busy)
    runner = threading.Thread(
        target=app.run,
        args=(pay, busy),
        kwargs={"workflow_id": "pay", "partition_key": busy},
    )
    runner.start()
    operator = placement(urls, "eu")
    try:
        assert entered.wait(60)
        first = Rebalancer(operator, "eu", new_map).run(
            busy_rounds=2, busy_wait_seconds=0
        )
        assert first.skipped == [busy]
        assert first.moved == first.total - 1
        with pytest.raises(StoreError, match="has not moved 1 key"):
            finish(operator, "eu", first.rebalance_id)
        # The key stays whole on its old shard: its state and its workflow.
        source = app.placement.maps["eu"].shard_for(busy)
        assert shards_of(app, "workflows", "workflow_id")["pay"] == [source]
        assert carts.get(f"{busy}/cart", partition_key=busy).value == {"paid": False}

        release.set()
        runner.join(60)
        assert app.status("pay").status is ss.WorkflowStatus.SUCCEEDED
        assert carts.get(f"{busy}/cart", partition_key=busy).value == {"paid": True}

        again = Rebalancer(operator, "eu", new_map).run(busy_wait_seconds=0)
        assert again.skipped == [] and again.moved == 1
        grown_placement = placement({"eu": new_map}, "eu")
        try:
            assert shards_of(grown_placement, "workflows", "workflow_id")["pay"] == [
                "s2"
            ]
            items = shards_of(grown_placement, "state_items", "key")
            assert items[f"{busy}/cart"] == ["s2"]
        finally:
            grown_placement.close()
        # The process on the old shard list still finds it, and its state.
        assert app.status("pay").result == 2
        assert carts.get(f"{busy}/cart", partition_key=busy).value == {"paid": True}
        assert finish(operator, "eu", first.rebalance_id) > 0
    finally:
        release.set()
        runner.join(60)
        operator.close()
        app.close()


TICKS = 12


def define_collect(app: App) -> Any:
    @app.workflow(name="collect")
    def collect(customer: str) -> list[int]:
        return [ss.wait_for_event("tick") for _ in range(TICKS)]

    return collect


def test_events_sent_and_workflows_run_during_a_rebalance_lose_and_repeat_nothing(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    clock = ManualClock(1_000_000.0)
    app = new_app(urls, clock)
    collect = define_collect(app)

    customers = [f"cust-{i}" for i in range(24)]
    for customer in customers:
        app.start(collect, customer, workflow_id=customer)
    app.run_until_idle()

    stop = threading.Event()
    problems: list[str] = []
    sent = {customer: 0 for customer in customers}

    def sender(seed: int) -> None:
        rng = random.Random(seed)
        mine = customers[seed::2]
        while not stop.is_set():
            customer = rng.choice(mine)
            if sent[customer] >= TICKS - 1:
                continue
            n = sent[customer]
            try:
                app.send_event(customer, "tick", n, event_id=f"t{n}")
            except Exception as error:  # noqa: BLE001 - every failure is reported
                problems.append(f"send to {customer}: {error!r}")
                return
            sent[customer] = n + 1

    def runner() -> None:
        while not stop.is_set():
            try:
                app.run_until_idle()
            except Exception as error:  # noqa: BLE001 - every failure is reported
                problems.append(f"run: {error!r}")
                return

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=runner))
    for thread in threads:
        thread.start()
    operator = placement(urls, "eu")
    try:
        result = Rebalancer(operator, "eu", [*urls["eu"], extra]).run(
            batch_size=5, busy_rounds=50, busy_wait_seconds=0.05
        )
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
        operator.close()
    assert problems == []
    rest = result.skipped
    # Anything still busy at the end is retried once everything is idle.
    if rest:
        app.run_until_idle()
        operator = placement(urls, "eu")
        try:
            assert Rebalancer(operator, "eu", [*urls["eu"], extra]).run().skipped == []
        finally:
            operator.close()

    new = new_app({"eu": [*urls["eu"], extra]}, clock)
    define_collect(new)
    try:
        for customer in customers:
            for n in range(sent[customer], TICKS):
                new.send_event(customer, "tick", n, event_id=f"t{n}")
        new.run_until_idle()
        workflows = shards_of(new, "workflows", "workflow_id")
        events = shards_of(new, "workflow_events", "workflow_id")
        for customer in customers:
            home = new.placement.maps["eu"].shard_for(customer)
            assert workflows[customer] == [home]
            assert events[customer] == [home] * TICKS
            info = new.status(customer)
            assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
            assert info.result == list(range(TICKS))
        assert held_rows(new) == 0
    finally:
        new.close()
        app.close()


def test_a_rebalance_resumed_after_a_crash_copies_each_workflow_once(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    clock = ManualClock(1_000_000.0)
    app = new_app(urls, clock)
    visit, _ = define(app)
    customers = [f"cust-{i}" for i in range(30)]
    for customer in customers:
        app.start(
            visit, customer, workflow_id=f"visit-{customer}", partition_key=customer
        )
    app.run_until_idle()
    for customer in customers:
        app.send_event(f"visit-{customer}", "note", 1, event_id="n1")

    new_list = [*urls["eu"], extra]
    operator = placement(urls, "eu")
    try:
        crashed = Rebalancer(operator, "eu", new_list)
        keys = crashed.publish_moves()
        assert len(keys) >= 3
        copied, switched = (keys[0], *keys[2:]), keys[1]
        states = crashed.move_states()
        # One key cut after its copy, one after its switch (before its
        # copies were let due), the rest never started.
        cut = Move(copied[0], *states[copied[0]][:2])
        crashed._copy(cut)
        crashed._set_state(cut, "copied")
        done = Move(switched, *states[switched][:2])
        crashed._switch(done, crashed._copy(done))
        crashed._set_state(done, "switched")
        grown = placement({"eu": new_list}, "eu")
        try:
            assert held_rows(grown) == 2
        finally:
            grown.close()

        result = Rebalancer(operator, "eu", new_list).run()
        assert result.skipped == [] and result.total == len(keys)
    finally:
        operator.close()

    new = new_app({"eu": new_list}, clock)
    define(new)
    try:
        assert held_rows(new) == 0
        workflows = shards_of(new, "workflows", "workflow_id")
        steps = shards_of(new, "workflow_steps", "workflow_id")
        events = shards_of(new, "workflow_events", "workflow_id")
        for customer in customers:
            home = new.placement.maps["eu"].shard_for(customer)
            assert workflows[f"visit-{customer}"] == [home]
            assert events[f"visit-{customer}"] == [home]
            assert set(steps[f"visit-{customer}"]) == {home}
        clock.advance(61)
        for customer in customers:
            for note in (2, 3):
                new.send_event(f"visit-{customer}", "note", note, event_id=f"n{note}")
        new.run_until_idle()
        for customer in customers:
            info = new.status(f"visit-{customer}")
            assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
            assert info.result == [1, 2, 3]
    finally:
        new.close()
        app.close()


def define_family(app: App) -> Any:
    carts = app.state("carts")

    @app.step()
    def note(customer: str, text: str) -> int:
        cart = carts.get(f"{customer}/cart", partition_key=customer)
        seen = [] if cart is None else cart.value["seen"]
        return carts.put(
            f"{customer}/cart", {"seen": [*seen, text]}, partition_key=customer
        )

    @app.workflow(name="child")
    def child(customer: str, seconds: int) -> str:
        note(customer, "child started")
        ss.sleep(seconds)
        note(customer, "child woke")
        return f"{customer} done"

    @app.workflow(name="parent")
    def parent(customer: str, seconds: int) -> list[str]:
        results = ss.wait_all([ss.start_child(child, customer, seconds)])
        note(customer, "parent woke")
        return list(results)

    return parent


def test_a_parent_waiting_on_its_sleeping_child_moves_with_it_and_is_woken_there(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    new_list = [*urls["eu"], extra]
    grown = ShardMap("eu", ("s0", "s1", "s2"))
    moving = [f"fam-{i}" for i in range(200) if grown.shard_for(f"fam-{i}") == "s2"]
    # One family is run on by a process still on the old shard list (which
    # learns the new shard by a lookup), then the other by one with the new
    # list; their children sleep 60 and 120 s.
    by_old, by_new = moving[:2]
    sleeps = {by_old: 60, by_new: 120}
    clock = ManualClock(1_000_000.0)
    old = new_app(urls, clock)
    parent = define_family(old)
    for customer in (by_new, by_old):
        old.start(parent, customer, sleeps[customer], workflow_id=customer)
    old.run_until_idle()
    for customer in (by_new, by_old):
        assert old.status(customer).status is ss.WorkflowStatus.WAITING
        assert old.status(f"{customer}/0").status is ss.WorkflowStatus.WAITING

    operator = placement(urls, "eu")
    try:
        result = Rebalancer(operator, "eu", new_list).run(busy_rounds=0)
    finally:
        operator.close()
    assert result.skipped == []
    assert {by_new, by_old} <= {move.partition_key for move in result.moves}

    new = new_app({"eu": new_list}, clock)
    define_family(new)
    try:
        workflows = shards_of(new, "workflows", "workflow_id")
        items = shards_of(new, "state_items", "key")
        for customer in (by_new, by_old):
            assert workflows[customer] == workflows[f"{customer}/0"] == ["s2"]
            assert items[f"{customer}/cart"] == ["s2"]
        assert held_rows(new) == 0

        clock.advance(61)
        # The old-list process's lookup misses the old shards, learns s2
        # from the map marker, and from then on claims there too.
        assert old.status(by_old).status is ss.WorkflowStatus.WAITING
        old.run_until_idle()
        info = old.status(by_old)
        assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
        assert info.result == [f"{by_old} done"]
        assert new.status(by_new).status is ss.WorkflowStatus.WAITING

        clock.advance(60)
        new.run_until_idle()
        info = new.status(by_new)
        assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
        assert info.result == [f"{by_new} done"]

        for customer in (by_new, by_old):
            assert new.state("carts").get(
                f"{customer}/cart", partition_key=customer
            ).value == {"seen": ["child started", "child woke", "parent woke"]}
        # Every row, steps and events included, lives on s2 only.
        for table, column in (
            ("workflows", "workflow_id"),
            ("workflow_steps", "workflow_id"),
            ("state_items", "key"),
        ):
            where = shards_of(new, table, column)
            for customer in (by_new, by_old):
                for value, shards in where.items():
                    if value.startswith(customer):
                        assert set(shards) == {"s2"}, (table, value, shards)
    finally:
        new.close()
        old.close()


def test_a_worker_paused_past_its_lease_cannot_write_after_its_workflow_moved(
    region: tuple[Urls, str],
) -> None:
    urls, extra = region
    new_list = [*urls["eu"], extra]
    grown = ShardMap("eu", ("s0", "s1", "s2"))
    key = next(f"cust-{i}" for i in range(200) if grown.shard_for(f"cust-{i}") == "s2")
    old_shard = ShardMap("eu", ("s0", "s1")).shard_for(key)
    clock = ManualClock(1_000_000.0)
    entered, release = threading.Event(), threading.Event()

    def define_pay(app: App) -> Any:
        carts = app.state("carts")

        @app.step()
        def charge(customer: str) -> int:
            worker = threading.current_thread().name
            if worker == "worker-a":
                entered.set()
                assert release.wait(60)
            return carts.put(f"{customer}/cart", {"by": worker}, partition_key=customer)

        @app.workflow(name="pay")
        def pay(customer: str) -> str:
            charge(customer)
            ss.sleep(60)
            return "done"

        return pay

    apps = [
        App(
            regions=urls,
            region="eu",
            residency_policy=POLICY,
            clock=clock,
            default_retry=ss.RetryPolicy(max_attempts=1),
            worker_id=worker,
        )
        for worker in ("a", "b")
    ]
    a, b = apps
    pay = define_pay(a)
    define_pay(b)
    outcome: list[BaseException | str] = []

    def run_a() -> None:
        try:
            a.run(pay, key, workflow_id="pay", partition_key=key)
            outcome.append("returned")
        except BaseException as error:  # noqa: BLE001 - the test reads it
            outcome.append(error)

    worker_a = threading.Thread(target=run_a, name="worker-a")
    worker_a.start()
    try:
        assert entered.wait(60)
        # A is paused inside its step, past its lease: make the lease run out.
        store = a.placement.shard_store("eu", old_shard)
        with store.transaction() as tx:
            tx.execute(
                "UPDATE {p}workflows SET lease_expires_at = lease_expires_at - 3600 "
                "WHERE workflow_id = ?",
                ("pay",),
            )
        # B takes the workflow over (epoch 2), runs the step and sleeps, so
        # the key is idle and moves, the workflow with it.
        b.run_until_idle()
        assert b.status("pay").status is ss.WorkflowStatus.WAITING
        operator = placement(urls, "eu")
        try:
            result = Rebalancer(operator, "eu", new_list).run(busy_rounds=0)
        finally:
            operator.close()
        assert result.skipped == [] and key in {m.partition_key for m in result.moves}
    finally:
        release.set()
        worker_a.join(60)

    # A woke up and tried to commit its step: refused, nothing written.
    assert len(outcome) == 1
    # Its commit went to the old shard, where the workflow row is gone.
    assert isinstance(outcome[0], ss.LeaseLost), outcome
    assert "worker 'a' lost its claim on workflow 'pay' (epoch 1)" in str(outcome[0])
    grown_placement = placement({"eu": new_list}, "eu")
    try:
        assert shards_of(grown_placement, "workflows", "workflow_id") == {"pay": ["s2"]}
        assert shards_of(grown_placement, "state_items", "key") == {
            f"{key}/cart": ["s2"]
        }
        steps = rows_by_shard(grown_placement, "workflow_steps", "workflow_id")
        assert steps[old_shard] == [] and steps["s2"] == ["pay", "pay"]
        with grown_placement.shard_store("eu", "s2").read() as tx:
            row = tx.fetchone(
                "SELECT status, epoch, lease_owner FROM {p}workflows "
                "WHERE workflow_id = ?",
                ("pay",),
            )
        assert tuple(row) == ("waiting", 2, None)
    finally:
        grown_placement.close()

    new = new_app({"eu": new_list}, clock)
    define_pay(new)
    try:
        clock.advance(61)
        new.run_until_idle()
        info = new.status("pay")
        assert info.status is ss.WorkflowStatus.SUCCEEDED, info.error
        assert info.result == "done"
        item = new.state("carts").get(f"{key}/cart", partition_key=key)
        assert (item.value, item.version) == ({"by": "MainThread"}, 1)
    finally:
        new.close()
        for app in apps:
            app.close()
