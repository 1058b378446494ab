"""The shop of ``examples/shop/after`` (``stateshift.demo.shop``), step by step.

Each hazard of the migration, on both backends: a checkout completes; a
large order waits for its approval, and is cancelled and compensated when
none comes in 48 hours; a refused approval compensates too; sold-out stock
cancels with nothing to undo; a duplicate payment webhook credits once;
order events reach the subscriber through the outbox, once each.
"""

from __future__ import annotations

import runpy
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.demo.shop import APPROVAL_THRESHOLD_CENTS, NOTICES, Shop, register
from stateshift.demo.simulated import (
    BUSY_RETRY_SECONDS,
    Carrier,
    Flakiness,
    PaymentProvider,
)
from stateshift.workflows.clock import ManualClock

CALM = Flakiness(
    fail_before=0.0,
    fail_after=0.0,
    declined=0.0,
    carrier_down=0.0,
    shipping_refused=0.0,
)
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop" / "after" / "app.py"


@pytest.fixture
def shop(store_config: dict[str, Any], tmp_path: Path) -> Any:
    clock = ManualClock()
    app = ss.App(**store_config, clock=clock)
    services = ss.App(f"sqlite:///{tmp_path / 'services.db'}")
    provider = PaymentProvider(services, CALM, seed=1)
    the_shop = register(app, provider, Carrier(services, CALM, seed=1))
    app.state("stock").put("book", 10)
    app.state("stock").put("piano", 1)
    yield the_shop, clock, provider
    app.close()
    services.close()


def order(shop: Shop, customer: str, sku: str, cents: int, quantity: int = 1) -> str:
    shop.cart(customer).add(sku, quantity, cents, "eu")
    order_id = f"order-{customer}"
    shop.place_order(customer, order_id)
    shop.app.run_until_idle()
    return order_id


def charges(provider: PaymentProvider, order_id: str) -> int:
    with provider.store.read() as tx:
        row = tx.fetchone(
            "SELECT COUNT(*) FROM {p}demo_charges WHERE order_id = ?", (order_id,)
        )
    assert row is not None
    return int(row[0])


def refunds(provider: PaymentProvider) -> int:
    with provider.store.read() as tx:
        row = tx.fetchone("SELECT COUNT(*) FROM {p}demo_refunds")
    assert row is not None
    return int(row[0])


def test_a_small_order_completes_and_empties_the_cart(shop: Any) -> None:
    the_shop, _, provider = shop
    order_id = order(the_shop, "c1", "book", 1_500, quantity=2)
    info = the_shop.app.status(order_id)
    assert info.result == {"order_id": order_id, "outcome": "completed"}
    assert the_shop.cart("c1").get().items == {}
    assert the_shop.app.state("stock").get("book").value == 8
    assert charges(provider, order_id) == 1
    assert [n["kind"] for n in notices(the_shop, order_id)] == ["completed"]


def notices(shop: Shop, order_id: str) -> list[dict[str, Any]]:
    """The subscriber's notices of ``order_id``, after relaying the outbox."""
    shop.app.relay_outbox()
    with shop.app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT message_id FROM {p}outbox WHERE msg_key = ?", (order_id,)
        )
    found = shop.app.state(NOTICES).get_many([str(r[0]) for r in rows])
    assert len(found) == len(rows), "an order event was never delivered"
    return [item.value for item in found.values()]


def test_a_large_order_waits_and_is_compensated_after_48_hours(shop: Any) -> None:
    the_shop, clock, provider = shop
    order_id = order(the_shop, "c2", "piano", APPROVAL_THRESHOLD_CENTS)
    info = the_shop.app.status(order_id)
    assert info.status is ss.WorkflowStatus.WAITING
    assert the_shop.app.state("stock").get("piano").value == 0

    clock.advance(timedelta(hours=47))
    the_shop.app.run_until_idle()
    assert the_shop.app.status(order_id).status is ss.WorkflowStatus.WAITING
    clock.advance(timedelta(hours=2))
    the_shop.app.run_until_idle()

    result = the_shop.app.status(order_id).result
    assert result["outcome"] == "compensated"
    assert result["reason"] == "approval timed out"
    assert the_shop.app.state("stock").get("piano").value == 1
    assert refunds(provider) == 1
    late = the_shop.approve(order_id, True, by="manager")
    assert late.delivered is False


def test_an_approved_large_order_completes(shop: Any) -> None:
    the_shop, clock, _ = shop
    order_id = order(the_shop, "c3", "piano", APPROVAL_THRESHOLD_CENTS)
    clock.advance(timedelta(hours=6))
    assert the_shop.approve(order_id, True, by="manager").delivered
    assert not the_shop.approve(order_id, True, by="manager").delivered
    the_shop.app.run_until_idle()
    assert the_shop.app.status(order_id).result["outcome"] == "completed"


def test_a_refused_order_is_refunded_and_its_stock_released(shop: Any) -> None:
    the_shop, _, provider = shop
    order_id = order(the_shop, "c4", "piano", APPROVAL_THRESHOLD_CENTS)
    the_shop.approve(order_id, False, by="manager")
    the_shop.app.run_until_idle()
    result = the_shop.app.status(order_id).result
    assert result == {
        "order_id": order_id,
        "outcome": "compensated",
        "reason": "refused by manager",
        "compensations": 2,
    }
    assert the_shop.app.state("stock").get("piano").value == 1
    assert refunds(provider) == 1
    assert the_shop.app.state("orders").get(order_id).value["status"] == "cancelled"
    steps = [c.name for c in the_shop.app.status(order_id).compensations]
    assert steps == ["shop.refund", "shop.release_stock"]
    assert [n["kind"] for n in notices(the_shop, order_id)] == ["cancelled"]


def test_sold_out_stock_cancels_with_nothing_to_undo(shop: Any) -> None:
    the_shop, _, provider = shop
    order_id = order(the_shop, "c5", "book", 1_500, quantity=11)
    result = the_shop.app.status(order_id).result
    assert result["reason"] == "out of stock" and result["compensations"] == 0
    assert charges(provider, order_id) == 0
    assert the_shop.app.state("stock").get("book").value == 10


def test_a_duplicate_payment_webhook_credits_once(shop: Any) -> None:
    the_shop, _, provider = shop
    order_id = order(the_shop, "c6", "book", 1_500)
    (event,) = provider.pending_webhooks(None, 10)
    first = the_shop.on_payment_webhook(event)
    assert the_shop.on_payment_webhook(event) == first
    assert first["credited"] == 1_500
    assert the_shop.app.state("ledger").get(order_id).value == 1_500


def test_a_webhook_answered_in_progress_is_sent_again_later(shop: Any) -> None:
    the_shop, _, provider = shop
    order_id = order(the_shop, "c7", "book", 1_500)

    def busy(event: dict[str, Any]) -> dict[str, Any]:
        raise ss.IdempotencyInProgress(event["payment_id"], "another delivery runs")

    assert provider.deliver_webhooks(None, busy) == 1
    # The provider backs off from a payment answered "in progress"...
    assert provider.pending_webhooks(None, 10) == []
    assert provider.unacknowledged(None) == 1
    time.sleep(BUSY_RETRY_SECONDS)
    # ...then sends it again.
    (event,) = provider.pending_webhooks(None, 10)
    assert event["order_id"] == order_id
    while provider.deliver_webhooks(None, the_shop.on_payment_webhook):
        pass
    assert the_shop.app.state("ledger").get(order_id).value == 1_500


def test_the_example_runs_the_packaged_shop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STATESHIFT_STORE", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv("SHOP_SERVICES_STORE", f"sqlite:///{tmp_path / 's.db'}")
    namespace = runpy.run_path(str(EXAMPLE))
    try:
        assert namespace["checkout"].__module__ == "stateshift.demo.shop"
        namespace["main"]()
    finally:
        namespace["app"].close()
        namespace["services"].close()
