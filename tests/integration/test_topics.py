"""Subscribers and the inbox: each message's effects happen once per consumer."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import stateshift as ss
from stateshift.events import Message
from stateshift.unit import current_unit


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, pool_size=4)
    with application.store.transaction() as tx:
        tx.execute("CREATE TABLE {p}t_effects (k TEXT PRIMARY KEY, n INTEGER)")
    yield application
    application.close()


def bump(key: str) -> None:
    unit = current_unit()
    assert unit is not None

    def write(tx: Any) -> None:
        if not tx.execute("UPDATE {p}t_effects SET n = n + 1 WHERE k = ?", (key,)):
            tx.execute("INSERT INTO {p}t_effects (k, n) VALUES (?, 1)", (key,))

    unit.add(write)


def effects(app: ss.App, key: str) -> int:
    with app.store.read() as tx:
        row = tx.fetchone("SELECT n FROM {p}t_effects WHERE k = ?", (key,))
    return int(row[0]) if row else 0


def message(app: ss.App, n: int, payload: Any = None) -> Message:
    """A message as a broker would hand it over."""
    body = {"n": n} if payload is None else payload
    message_id = f"m{n}"
    encoded = app.codec.encode(body, what="test message", aad=message_id.encode())
    return Message(message_id, "orders", None, encoded)


def test_each_group_handles_each_message_once(app: ss.App) -> None:
    @app.subscribe("orders", group="billing")
    def bill(order: dict[str, Any]) -> None:
        bump("billing")

    @app.subscribe("orders", group="shipping")
    def ship(order: dict[str, Any], message: Message) -> None:
        assert message.topic == "orders"
        bump("shipping")

    app.publish("orders", {"id": 1})
    app.publish("elsewhere", {"id": 2})
    assert app.relay_outbox() == 2
    app.deliver(message(app, 1))
    app.deliver(message(app, 1))
    assert effects(app, "billing") == effects(app, "shipping") == 2


def test_a_subscriber_publishes_in_the_same_commit_as_its_effects(
    app: ss.App,
) -> None:
    got = []

    @app.subscribe("orders")
    def on_order(order: dict[str, Any]) -> None:
        bump("orders")
        app.publish("invoices", {"for": order["n"]})

    @app.subscribe("invoices")
    def on_invoice(invoice: dict[str, Any]) -> None:
        got.append(invoice)

    app.deliver(message(app, 5))
    app.deliver(message(app, 5))
    app.relay_outbox()
    assert got == [{"for": 5}]


def test_a_failing_subscriber_retries_then_gives_up_while_others_flow(
    app: ss.App,
) -> None:
    @app.subscribe("orders", max_attempts=3)
    def handle(order: dict[str, Any]) -> None:
        bump("attempted")
        if order["n"] == 13:
            raise ValueError("poison")
        bump("ok")

    for attempt in range(3):
        if attempt < 2:
            with pytest.raises(ValueError):
                app.deliver(message(app, 13))
        else:
            app.deliver(message(app, 13))  # the last failure dead-letters it
        app.deliver(message(app, attempt))
    app.deliver(message(app, 13))
    assert effects(app, "ok") == 3
    assert effects(app, "attempted") == 3, "failed attempts rolled back"
    with app.store.read() as tx:
        row = tx.fetchone(
            "SELECT status, attempts, last_error FROM {p}inbox WHERE message_id = ?",
            ("m13",),
        )
    assert row == ("dead", 3, "ValueError: poison")


def test_thousand_messages_delivered_three_times_have_effects_once(
    app: ss.App,
) -> None:
    """Each message arrives at once (racing), during and after."""
    release, blocked = threading.Event(), []

    @app.subscribe("orders")
    def handle(order: dict[str, Any]) -> None:
        if order["n"] == 0 and not blocked:
            blocked.append(1)
            release.wait(10)  # a slow first delivery, duplicated meanwhile
        bump(f"k{order['n'] % 20}")

    messages = [message(app, n) for n in range(1000)]
    with ThreadPoolExecutor(4) as pool:
        slow = pool.submit(app.deliver, messages[0])
        while not blocked:
            threading.Event().wait(0.01)
        list(pool.map(app.deliver, [m for m in messages[1:] for _ in range(2)]))
        app.deliver(messages[0])  # during the slow one
        release.set()
        slow.result(10)
        list(pool.map(app.deliver, messages))  # after
    assert sum(effects(app, f"k{i}") for i in range(20)) == 1000


def test_a_message_id_reused_for_another_payload_changes_nothing(
    app: ss.App,
) -> None:
    @app.subscribe("orders")
    def handle(order: dict[str, Any]) -> None:
        bump(str(order["n"]))

    app.deliver(message(app, 1))
    app.deliver(message(app, 1, {"n": 99}))
    assert effects(app, "1") == 1 and effects(app, "99") == 0


def test_async_adapters_publish_relay_and_run_queues(app: ss.App) -> None:
    import asyncio

    got = []

    @app.subscribe("orders")
    async def on_order(order: dict[str, Any]) -> None:
        got.append(order)

    q = app.queue("q")

    @q.task
    def task() -> None:
        bump("task")

    async def main() -> tuple[int, int]:
        await app.publish_async("orders", {"n": 1})
        q.enqueue(task)
        return await app.relay_outbox_async(), await app.run_queues_async(5)

    assert asyncio.run(main()) == (1, 1)
    assert got == [{"n": 1}] and effects(app, "task") == 1


def test_inbox_state_and_outbox_commit_together(app: ss.App) -> None:
    orders = app.state("orders")
    relayed = []

    @app.subscribe("payments")
    def on_payment(payment: dict[str, Any]) -> None:
        item = orders.get(payment["order"])
        paid = (item.value if item else 0) + payment["cents"]
        orders.put(payment["order"], paid)
        app.publish("receipts", {"order": payment["order"], "paid": paid})

    @app.subscribe("receipts")
    def on_receipt(receipt: dict[str, Any]) -> None:
        relayed.append(receipt)

    payment = app.codec.encode({"order": "o1", "cents": 250}, aad=b"pay-1")
    for _ in range(3):
        app.deliver(Message("pay-1", "payments", None, payment))
    app.relay_outbox()
    item = orders.get("o1")
    assert item is not None and (item.value, item.version) == (250, 1)
    assert relayed == [{"order": "o1", "paid": 250}]


def test_a_rolled_back_transaction_publishes_nothing(app: ss.App) -> None:
    carts = app.state("carts")
    got = []

    @app.subscribe("carts")
    def on_cart(event: dict[str, Any]) -> None:
        got.append(event)

    with pytest.raises(RuntimeError):
        with app.transaction():
            carts.put("u1", {"items": 1})
            app.publish("carts", {"user": "u1"})
            raise RuntimeError("abandon")
    with app.transaction():
        carts.put("u2", {"items": 2})
        app.publish("carts", {"user": "u2"})
    app.relay_outbox()
    assert got == [{"user": "u2"}]
    assert carts.get("u1") is None
