"""The shop's deploy entry points (``examples/shop/after``) work on their adapters.

Each is loaded as its platform loads it, like ``test_deploy_examples``: the
Lambda module is called with API Gateway and EventBridge events and a
context; the Cloud Functions source is served by functions-framework's own
app. One order goes through each: the cart over HTTP, the checkout start,
ticks until it completes, the payment webhook twice, and the relay of its
order event to the shop's subscriber.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stateshift.workflows")

from integration.test_deploy_examples import Context, load  # noqa: E402
from runtime_support.aws_shapes import http_event, scheduled_event  # noqa: E402

AFTER = Path(__file__).resolve().parents[2] / "examples" / "shop" / "after"
TOKEN = "shop-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
Call = Callable[[str, str, Any], tuple[int, Any]]


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("STATESHIFT_STORE", f"sqlite:///{tmp_path / 'shop.db'}")
    monkeypatch.setenv("SHOP_SERVICES_STORE", f"sqlite:///{tmp_path / 's.db'}")
    monkeypatch.setenv("STATESHIFT_API_TOKEN", TOKEN)
    monkeypatch.setenv("STATESHIFT_ALLOW_SQLITE_ON_SERVERLESS", "1")
    # The entry points import their neighbour ``app`` as the platforms do,
    # from the function's folder.
    monkeypatch.syspath_prepend(str(AFTER))
    yield
    shop_app = sys.modules.pop("app", None)
    if shop_app is not None:
        shop_app.app.close()
        shop_app.services.close()


def one_order(call: Call, tick: Callable[[], None], order_id: str) -> Any:
    """Fill a cart and check it out over HTTP; tick until it completes."""
    import app as shop_app

    shop_app.app.state("stock").put("book-01", 10)
    customer = f"customer-{order_id}"
    status, body = call(
        "POST",
        f"/entities/shop.Cart/{customer}/add",
        {"args": ["book-01", 2, 1_750, "us"]},
    )
    assert status == 200, body
    status, body = call(
        "POST", f"/entities/shop.Cart/{customer}/order", {"args": [order_id, customer]}
    )
    assert status == 200, body
    order = body["result"]
    status, body = call(
        "POST",
        "/workflows/shop.checkout/start",
        {"args": [order], "workflow_id": order_id},
    )
    assert status in (200, 202), body

    # The provider fails now and then; retries wait on durable timers.
    deadline = time.monotonic() + 20
    while not shop_app.app.status(order_id).status.finished:
        assert time.monotonic() < deadline, shop_app.app.status(order_id)
        tick()
        time.sleep(0.05)
    assert shop_app.app.status(order_id).result["outcome"] == "completed"
    return shop_app


def notices(shop_app: Any, order_id: str) -> list[str]:
    with shop_app.app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT message_id FROM {p}outbox WHERE msg_key = ?", (order_id,)
        )
    found = shop_app.app.state("order-notices").get_many([str(r[0]) for r in rows])
    return sorted(str(n.value["kind"]) for n in found.values())


def test_the_shop_on_lambda() -> None:
    module = load(AFTER / "lambda_function.py")

    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        answer = module.lambda_handler(
            http_event(method, path, body, headers=AUTH), Context()
        )
        return int(answer["statusCode"]), json.loads(answer["body"] or "null")

    def tick() -> None:
        module.lambda_handler(scheduled_event(), Context())

    shop_app = one_order(call, tick, "order-aws")

    (event,) = _webhooks(shop_app)
    first = module.webhook_handler(
        http_event("POST", "/webhooks/payment", event), Context()
    )
    again = module.webhook_handler(
        http_event("POST", "/webhooks/payment", event), Context()
    )
    assert first["statusCode"] == again["statusCode"] == 200
    assert json.loads(first["body"]) == json.loads(again["body"])
    assert shop_app.app.state("ledger").get("order-aws").value == 3_500

    assert module.relay_handler(scheduled_event(), Context())["relayed"] >= 1
    assert notices(shop_app, "order-aws") == ["completed"]


def test_the_shop_on_cloud_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions_framework import create_app

    # create_app writes these into os.environ; monkeypatch takes them back.
    for name in (
        "FUNCTION_TARGET",
        "FUNCTION_SIGNATURE_TYPE",
        "FUNCTION_TRIGGER_TYPE",
        "FUNCTION_NAME",
    ):
        monkeypatch.setenv(name, "")
    source = str(AFTER / "main.py")
    api = create_app("api", source).test_client()

    def call(method: str, path: str, body: Any) -> tuple[int, Any]:
        answer = api.open(path, method=method, json=body, headers=AUTH)
        return answer.status_code, answer.get_json()

    def tick() -> None:
        assert api.post("/tick", headers=AUTH).status_code == 200

    shop_app = one_order(call, tick, "order-gcp")

    (event,) = _webhooks(shop_app)
    webhook = create_app("webhook", source).test_client()
    first = webhook.post("/", json=event)
    again = webhook.post("/", json=event)
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json()
    assert shop_app.app.state("ledger").get("order-gcp").value == 3_500

    relay = create_app("relay", source).test_client()
    assert relay.post("/").get_json()["relayed"] >= 1
    assert notices(shop_app, "order-gcp") == ["completed"]


def _webhooks(shop_app: Any) -> list[dict[str, Any]]:
    return list(shop_app.provider.pending_webhooks(None, 10))
