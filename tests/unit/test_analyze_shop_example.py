"""The shop "before" example runs, and shows its double-charge hazard."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SHOP_ROOT = Path(__file__).resolve().parents[2] / "examples" / "shop" / "before"


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("SHOP_DB", str(tmp_path / "shop.db"))
    monkeypatch.setenv("SHOP_ORDER_LOG", str(tmp_path / "orders.log"))
    monkeypatch.syspath_prepend(str(SHOP_ROOT))
    import shop.web as web

    try:
        yield web
    finally:
        web.db.conn.close()
        for name in [m for m in sys.modules if m == "shop" or m.startswith("shop.")]:
            del sys.modules[name]


def test_a_retried_payment_webhook_charges_twice(
    shop: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    charges: list[tuple[Any, ...]] = []
    receipts: list[str] = []
    monkeypatch.setattr(
        shop.payments,
        "charge",
        lambda *a, **k: charges.append(a) or f"ch_{len(charges)}",
    )
    monkeypatch.setattr(shop.mailer, "send_receipt", lambda to, *a: receipts.append(to))
    monkeypatch.setattr(shop.orders, "cancel_if_unpaid", lambda order_id: None)
    client = shop.app.test_client()

    token = client.post("/login", json={"user_id": "u1", "email": "a@b.c"}).json[
        "token"
    ]
    headers = {"X-Session": token}
    client.post("/cart/items", json={"sku": "mug"}, headers=headers)
    client.post("/cart/items", json={"sku": "tee"}, headers=headers)
    assert client.get("/cart", headers=headers).json == {
        "items": ["mug", "tee"],
        "cents": 3700,
    }
    order = client.post(
        "/checkout",
        json={"card_token": "tok_1", "address": "Main St 1"},
        headers=headers,
    ).json
    assert order["status"] == "pending_payment"

    event = {"order_id": order["order_id"], "email": "a@b.c"}
    for _ in range(2):  # the provider retries a webhook it saw time out
        assert client.post("/webhooks/payment-authorized", json=event).json == {
            "ok": True
        }

    assert charges == [("tok_1", 3700), ("tok_1", 3700)]
    assert receipts == ["a@b.c", "a@b.c"]
    assert shop.orders.ORDER_QUEUE.qsize() == 2
    status = client.get(f"/orders/{order['order_id']}").json["status"]
    assert status == "paid"


def test_the_order_log_is_a_local_file(shop: ModuleType, tmp_path: Path) -> None:
    shop.orders.log_order("o1", "shipped")
    assert '"order": "o1"' in (tmp_path / "orders.log").read_text(encoding="utf-8")
