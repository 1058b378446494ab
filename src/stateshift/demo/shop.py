"""The shop, on stateshift: the service that ``stateshift demo`` runs.

This is the "after" half of ``examples/shop`` (the "before" half is the same
shop as an ordinary stateful web service). Nothing lives in process memory:

* a customer's **cart** is an entity (``Cart``), saved with a version check;
* **checkout** is a durable workflow and a saga (``ss.Saga``): reserve
  stock, charge the card, wait for a manager's approval when the order is
  large (at most 48 hours), book the shipment, confirm. Each forward step
  registers its compensation; when a step fails for good, or the approval
  is refused or never comes, the saga runs them newest first, each exactly
  once (cancel the shipment, refund the charge, release the stock);
* the **payment webhook** is ``@app.idempotent`` on the payment id: the
  completed idempotency record commits in the same transaction as the
  credit, so a redelivery changes nothing, and a delivery racing the first
  gets ``ss.IdempotencyInProgress`` and is sent again later;
* **order events** (``orders`` topic: completed, cancelled) are published
  with ``app.publish`` inside the step that decides them, so the outbox row
  commits with that step's checkpoint; ``app.relay_outbox()`` hands them to
  the subscriber (``order_notices``), whose effects commit with its inbox
  row, once per message id.

The payment provider and the carrier are outside services: the shop only
knows their :class:`Payments` and :class:`Carrier` interfaces and passes
them an idempotency key (``ss.current().idempotency_key``) that is the same
on every retry, so a call repeated after a crash is not a second charge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import stateshift as ss

__all__ = [
    "APPROVAL_THRESHOLD_CENTS",
    "APPROVAL_TIMEOUT",
    "NOTICES",
    "ORDERS_TOPIC",
    "Carrier",
    "CarrierUnavailable",
    "Cart",
    "OrderCancelled",
    "OutOfStock",
    "PaymentDeclined",
    "Payments",
    "ProviderUnavailable",
    "Shop",
    "ShippingRefused",
    "register",
]

APPROVAL_THRESHOLD_CENTS = 50_000
"""Orders of this total or more wait for a manager's approval."""

APPROVAL_TIMEOUT = timedelta(hours=48)
"""How long an order waits for its approval before it is cancelled."""

WORKFLOW_NAME = "shop.checkout"
"""The stored name of the checkout workflow; stable across deploys."""

ORDERS_TOPIC = "orders"
"""The topic of order events (``completed``, ``cancelled``)."""

NOTICES = "order-notices"
"""The namespace the order-event subscriber writes, one key per message id."""

WEBHOOK_IN_PROGRESS_SECONDS = 3.0
"""How long a webhook call holds its payment id before a retry may take it:
a worker killed mid-call blocks redeliveries only this long."""


# --- the outside world -----------------------------------------------------


class OutOfStock(Exception):
    """Not enough stock for an order; nothing to undo."""


class PaymentDeclined(Exception):
    """The card was declined; retrying will not help."""


class ProviderUnavailable(Exception):
    """The payment provider failed or timed out; worth retrying."""


class ShippingRefused(Exception):
    """The carrier will not take the parcel (address, weight...)."""


class CarrierUnavailable(Exception):
    """The carrier's API failed; worth retrying."""


class OrderCancelled(Exception):
    """The order was refused or its approval never came."""


class Payments(Protocol):
    """A payment provider that deduplicates calls by idempotency key."""

    def charge(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        customer: str,
        cents: int,
        region: str,
    ) -> str:
        """Charge the customer and return the payment id.

        ``region`` names the shop deployment whose webhook hears of it.

        Raises:
            PaymentDeclined: for good.
            ProviderUnavailable: maybe after charging; retry with the same key.
        """

    def refund(self, *, idempotency_key: str, payment_id: str, cents: int) -> str:
        """Refund a payment and return the refund id."""


class Carrier(Protocol):
    """A carrier that deduplicates bookings by idempotency key."""

    def book(self, *, idempotency_key: str, order_id: str, region: str) -> str:
        """Book a pickup and return the shipment id.

        Raises:
            ShippingRefused: for good.
            CarrierUnavailable: retry with the same key.
        """

    def cancel(self, *, idempotency_key: str, shipment_id: str) -> None:
        """Cancel a booked shipment."""


# --- state -------------------------------------------------------------------


class Cart:
    """A customer's cart: an entity, one key per customer."""

    def __init__(self) -> None:
        self.items: dict[str, int] = {}
        self.prices: dict[str, int] = {}
        self.region: str = ""

    def add(self, sku: str, quantity: int, price_cents: int, region: str) -> int:
        """Put ``quantity`` of ``sku`` in the cart; return the cart's total."""
        if quantity < 1:
            raise ValueError("quantity must be at least 1")
        self.items[sku] = self.items.get(sku, 0) + quantity
        self.prices[sku] = price_cents
        self.region = region
        return self.total()

    def total(self) -> int:
        """The cart's total, in cents."""
        return sum(self.prices[sku] * n for sku, n in self.items.items())

    def order(self, order_id: str, customer: str) -> dict[str, Any]:
        """The order this cart makes (the cart itself is unchanged)."""
        return {
            "order_id": order_id,
            "customer": customer,
            "region": self.region,
            "items": dict(self.items),
            "cents": self.total(),
        }

    def clear(self) -> None:
        """Empty the cart (after a confirmed order)."""
        self.items = {}
        self.prices = {}


@dataclass(frozen=True)
class Shop:
    """The shop's entry points on one app."""

    app: ss.App
    """The app the shop is registered on."""
    checkout: Callable[[dict[str, Any]], dict[str, Any]]
    """The checkout workflow; start it with ``app.start(shop.checkout, order)``."""
    on_payment_webhook: Callable[[dict[str, Any]], dict[str, Any]]
    """The payment provider's webhook (``@app.idempotent`` on the payment id).

    Returns the credit made by the first delivery, on every delivery.

    Raises:
        IdempotencyInProgress: another delivery of the same payment is
            running; send it again later.
    """
    approval_threshold_cents: int
    """Orders of this total or more wait for an approval."""

    def cart(self, customer: str) -> ss.EntityRef[Cart]:
        """The cart of ``customer``."""
        return self.app.entity(Cart, customer)

    def place_order(
        self, customer: str, order_id: str, residency: str | None = None
    ) -> ss.WorkflowHandle[Any]:
        """Check the customer's cart out: start its checkout workflow.

        Idempotent on ``order_id``: a retried request gets the same workflow.
        ``residency`` (``"EU"``) pins the order to its jurisdiction's store.

        Raises:
            ResidencyViolation: this deployment may not hold the order.
        """
        order = self.cart(customer).get().order(order_id, customer)
        return self.start_order(order, residency)

    def start_order(
        self, order: dict[str, Any], residency: str | None = None
    ) -> ss.WorkflowHandle[Any]:
        """Start the checkout of ``order`` (see :meth:`place_order`)."""
        handle: ss.WorkflowHandle[Any]
        if residency is None:
            handle = self.app.start(self.checkout, order, workflow_id=order["order_id"])
        else:
            handle = self.app.start(
                self.checkout, order, workflow_id=order["order_id"], residency=residency
            )
        return handle

    def approve(self, order_id: str, approved: bool, by: str) -> ss.EventDelivery:
        """A manager's decision on a large order."""
        return self.app.send_event(
            order_id,
            "approval",
            {"approved": approved, "by": by},
            event_id=f"approval:{order_id}",
        )


# --- the service ----------------------------------------------------------


def register(
    app: ss.App,
    payments: Payments,
    carrier: Carrier,
    *,
    approval_threshold_cents: int = APPROVAL_THRESHOLD_CENTS,
    approval_timeout: timedelta = APPROVAL_TIMEOUT,
) -> Shop:
    """Register the shop's entity, steps, workflow, webhook and subscriber."""
    app.entity(name="shop.Cart")(Cart)
    stock = app.state("stock")
    reservations = app.state("reservations")
    orders = app.state("orders")
    ledger = app.state("ledger")
    notices = app.state(NOTICES)

    def key() -> str:
        context = ss.current()
        assert context is not None and context.idempotency_key is not None
        return context.idempotency_key

    def set_status(order: dict[str, Any], status: str, **fields: Any) -> None:
        record = orders.get(order["order_id"])
        value = dict(record.value) if record is not None else {}
        value.update(status=status, cents=order["cents"], region=order["region"])
        value.update(fields)
        orders.put(order["order_id"], value)

    def emit(order: dict[str, Any], kind: str, **fields: Any) -> None:
        # Called inside a step: the outbox row commits with the step's
        # checkpoint, so the event exists if and only if the order changed.
        body = {"order_id": order["order_id"], "kind": kind, **fields}
        app.publish(ORDERS_TOPIC, body, key=order["order_id"])

    @app.step(
        name="shop.reserve_stock", retry=ss.RetryPolicy(non_retryable=(OutOfStock,))
    )
    def reserve_stock(order: dict[str, Any]) -> None:
        # Stock and the reservation commit with this step's checkpoint, each
        # version-checked: two orders racing for the last unit re-run, never
        # both win.
        for sku, quantity in sorted(order["items"].items()):
            item = stock.get(sku)
            available = 0 if item is None else int(item.value)
            if available < quantity:
                raise OutOfStock(f"{sku}: {available} left, {quantity} wanted")
            stock.put(sku, available - quantity)
        reservations.put(
            order["order_id"], {"items": order["items"], "released": False}
        )
        set_status(order, "reserved")

    @app.step(name="shop.release_stock")
    def release_stock(order: dict[str, Any]) -> None:
        record = reservations.get(order["order_id"])
        if record is None or record.value["released"]:
            return
        for sku, quantity in sorted(record.value["items"].items()):
            item = stock.get(sku)
            stock.put(sku, (0 if item is None else int(item.value)) + quantity)
        reservations.put(order["order_id"], {**record.value, "released": True})

    payment_retry = ss.RetryPolicy(
        max_attempts=8,
        initial_interval=0.05,
        max_interval=1.0,
        non_retryable=(PaymentDeclined,),
    )

    @app.step(name="shop.charge", retry=payment_retry)
    def charge(order: dict[str, Any]) -> str:
        payment_id = payments.charge(
            idempotency_key=key(),
            order_id=order["order_id"],
            customer=order["customer"],
            cents=order["cents"],
            region=order["region"],
        )
        set_status(order, "paid", payment_id=payment_id)
        return payment_id

    # A refund must go through: a compensation that gives up leaves money
    # taken for an order that will never ship.
    refund_retry = ss.RetryPolicy(
        max_attempts=30, initial_interval=0.05, max_interval=0.5
    )

    @app.step(name="shop.refund", retry=refund_retry)
    def refund(order: dict[str, Any], payment_id: str) -> str:
        refund_id = payments.refund(
            idempotency_key=key(), payment_id=payment_id, cents=order["cents"]
        )
        set_status(order, "refunded", refund_id=refund_id)
        return refund_id

    @app.step(name="shop.note_awaiting_approval")
    def note_awaiting_approval(order: dict[str, Any]) -> None:
        set_status(order, "awaiting approval")

    shipping_retry = ss.RetryPolicy(
        max_attempts=8,
        initial_interval=0.05,
        max_interval=1.0,
        non_retryable=(ShippingRefused,),
    )

    @app.step(name="shop.book_shipping", retry=shipping_retry)
    def book_shipping(order: dict[str, Any]) -> str:
        shipment_id = carrier.book(
            idempotency_key=key(), order_id=order["order_id"], region=order["region"]
        )
        set_status(order, "shipping", shipment_id=shipment_id)
        return shipment_id

    @app.step(name="shop.cancel_shipping", retry=refund_retry)
    def cancel_shipping(order: dict[str, Any], shipment_id: str) -> None:
        carrier.cancel(idempotency_key=key(), shipment_id=shipment_id)

    @app.step(name="shop.confirm")
    def confirm(order: dict[str, Any], payment_id: str, shipment_id: str) -> None:
        set_status(order, "completed")
        emit(order, "completed", payment_id=payment_id, shipment_id=shipment_id)
        app.entity(Cart, order["customer"]).clear()

    @app.step(name="shop.cancel")
    def cancel(order: dict[str, Any], reason: str) -> None:
        set_status(order, "cancelled", reason=reason)
        emit(order, "cancelled", reason=reason)

    def wait_for_approval(order: dict[str, Any]) -> None:
        note_awaiting_approval(order)
        try:
            decision = ss.wait_for_event("approval", timeout=approval_timeout)
        except ss.EventTimeout:
            raise OrderCancelled("approval timed out") from None
        if not decision.get("approved"):
            raise OrderCancelled(f"refused by {decision.get('by', 'a manager')}")

    @app.workflow(name=WORKFLOW_NAME)
    def checkout(order: dict[str, Any]) -> dict[str, Any]:
        # Replay registers the same compensations with the same arguments
        # (recorded step results), and their checkpoints make each run once.
        done: list[str] = []
        try:
            with ss.Saga() as saga:
                reserve_stock(order)
                saga.compensate(release_stock, order)
                done.append("release_stock")
                payment_id = charge(order)
                saga.compensate(refund, order, payment_id)
                done.append("refund")
                if order["cents"] >= approval_threshold_cents:
                    wait_for_approval(order)
                shipment_id = book_shipping(order)
                saga.compensate(cancel_shipping, order, shipment_id)
                done.append("cancel_shipping")
                confirm(order, payment_id, shipment_id)
        except Exception as exc:
            # The saga has undone the steps by now and re-raised the error;
            # what is left is the shop's own record of the cancellation.
            # Suspension and cancellation are BaseExceptions: they pass.
            reason = _reason(exc)
            cancel(order, reason)
            return {
                "order_id": order["order_id"],
                "outcome": "compensated",
                "reason": reason,
                "compensations": len(done),
            }
        return {"order_id": order["order_id"], "outcome": "completed"}

    def credit_payment(event: dict[str, Any]) -> dict[str, Any]:
        # The credit is buffered and commits with the completed idempotency
        # record: a redelivery gets this result back and credits nothing.
        account = ledger.get(event["order_id"])
        credited = 0 if account is None else int(account.value)
        ledger.put(event["order_id"], credited + int(event["cents"]))
        return {"payment_id": event["payment_id"], "credited": int(event["cents"])}

    # Wrapped by a call rather than a decorator, to keep its type.
    on_payment_webhook: Callable[[dict[str, Any]], dict[str, Any]] = app.idempotent(
        credit_payment,
        key="payment_id",
        name="shop.payment_webhook",
        in_progress_expiry=WEBHOOK_IN_PROGRESS_SECONDS,
    )

    @app.subscribe(ORDERS_TOPIC, group="shop.notices")
    def order_notices(event: dict[str, Any], message: ss.Message) -> None:
        # Commits with the inbox row: one notice per message id. The count
        # would show a second delivery, which the inbox must never let by.
        notice = notices.get(message.message_id)
        count = 0 if notice is None else int(notice.value["deliveries"])
        notices.put(
            message.message_id,
            {
                "order_id": event["order_id"],
                "kind": event["kind"],
                "deliveries": count + 1,
            },
        )

    return Shop(app, checkout, on_payment_webhook, approval_threshold_cents)


def _reason(exc: Exception) -> str:
    kinds = {
        OutOfStock: "out of stock",
        PaymentDeclined: "payment declined",
        ProviderUnavailable: "payment provider down",
        ShippingRefused: "shipping refused",
        CarrierUnavailable: "carrier down",
    }
    for kind, reason in kinds.items():
        if isinstance(exc, kind):
            return reason
    if isinstance(exc, OrderCancelled):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
