"""The outside world of the demo: a flaky payment provider, a carrier, a clock.

The provider and the carrier stand for other companies' systems. They keep
their own ledgers in tables of their own (``demo_*``), written at once in
their own transactions, never inside the shop's commits: a charge is an
outside effect that happens when the provider says so, whatever becomes of
the step that asked. Like real providers, they deduplicate requests by
idempotency key, which is what keeps a retried or re-run step from being a
second charge. The ledgers are what the demo's report counts.

The provider fails at random, before charging (the request never arrived)
or after (the charge was made but the answer was lost), and sends a
webhook for each charge that is delivered at least once: twice in a row
now and then, again when a delivery is not acknowledged, and again later
when the shop answers that the same payment is being handled
(``IdempotencyInProgress``), as real webhook senders retry a 409.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from stateshift.demo.shop import (
    CarrierUnavailable,
    PaymentDeclined,
    ProviderUnavailable,
    ShippingRefused,
)
from stateshift.errors import IdempotencyInProgress
from stateshift.store import Store

if TYPE_CHECKING:
    from stateshift.app import App

__all__ = ["Carrier", "Flakiness", "PaymentProvider", "SharedClock", "create_tables"]

BUSY_RETRY_SECONDS = 0.5
"""How long the provider waits before resending a webhook answered "in progress"."""

_TABLES = (
    """CREATE TABLE IF NOT EXISTS {p}demo_charges (
        idempotency_key TEXT PRIMARY KEY,
        payment_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        cents INTEGER NOT NULL,
        requests INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {p}demo_refunds (
        idempotency_key TEXT PRIMARY KEY,
        refund_id TEXT NOT NULL,
        payment_id TEXT NOT NULL,
        cents INTEGER NOT NULL,
        requests INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS {p}demo_webhooks (
        payment_id TEXT PRIMARY KEY,
        order_id TEXT NOT NULL,
        region TEXT NOT NULL,
        cents INTEGER NOT NULL,
        deliveries INTEGER NOT NULL,
        busy INTEGER NOT NULL,
        done INTEGER NOT NULL,
        retry_at DOUBLE PRECISION NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS {p}demo_shipments (
        idempotency_key TEXT PRIMARY KEY,
        shipment_id TEXT NOT NULL,
        order_id TEXT NOT NULL,
        cancelled INTEGER NOT NULL,
        requests INTEGER NOT NULL
    )""",
)


def create_tables(store: Store) -> None:
    """Create the provider's and the carrier's ledgers (if missing)."""
    if getattr(store, "_demo_tables_ready", False):
        return
    with store.transaction() as tx:
        for statement in _TABLES:
            tx.execute(statement)
    store._demo_tables_ready = True  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Flakiness:
    """How badly the outside world behaves (each a probability)."""

    fail_before: float = 0.15
    """A charge or refund request fails before the provider acts."""
    fail_after: float = 0.08
    """The provider charges, then the answer is lost."""
    declined: float = 0.03
    """An order's card is declined (decided per order, the same every time)."""
    carrier_down: float = 0.08
    """A booking request to the carrier fails."""
    shipping_refused: float = 0.03
    """The carrier refuses an order's parcel (per order)."""
    duplicate_webhook: float = 0.3
    """A webhook is delivered twice in a row."""
    webhook_unacknowledged: float = 0.15
    """A delivery is not acknowledged, so it is delivered again later."""


def _chance(seed: int, what: str, key: str) -> float:
    # The same draw on every attempt and in every process: a declined card
    # stays declined when the step is retried.
    digest = hashlib.sha256(f"{seed}:{what}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class PaymentProvider:
    """A simulated card processor with idempotency keys and webhooks."""

    def __init__(self, services: App, flakiness: Flakiness, seed: int) -> None:
        self.services = services
        self.flakiness = flakiness
        self.seed = seed
        self.rng = random.Random(f"{seed}:{os.getpid()}")

    @property
    def store(self) -> Store:
        """The provider's own database (its ledgers created on first use)."""
        store = self.services.store
        create_tables(store)
        return store

    def close(self) -> None:
        """Close the provider's database connections."""
        self.services.close()

    def charge(
        self,
        *,
        idempotency_key: str,
        order_id: str,
        customer: str,
        cents: int,
        region: str,
    ) -> str:
        """Charge once per idempotency key; fail now and then."""
        time.sleep(self.rng.uniform(0.0, 0.004))
        if self.rng.random() < self.flakiness.fail_before:
            raise ProviderUnavailable("payment provider: 503 before charging")
        if _chance(self.seed, "declined", order_id) < self.flakiness.declined:
            raise PaymentDeclined(f"card of {customer} declined")
        payment_id = f"pay_{uuid.uuid4().hex[:16]}"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO {p}demo_charges (idempotency_key, payment_id, order_id,"
                " cents, requests) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (idempotency_key, payment_id, order_id, cents),
            )
            tx.execute(
                "UPDATE {p}demo_charges SET requests = requests + 1"
                " WHERE idempotency_key = ?",
                (idempotency_key,),
            )
            row = tx.fetchone(
                "SELECT payment_id FROM {p}demo_charges WHERE idempotency_key = ?",
                (idempotency_key,),
            )
            assert row is not None
            payment_id = str(row[0])
            tx.execute(
                "INSERT INTO {p}demo_webhooks (payment_id, order_id, region, cents,"
                " deliveries, busy, done) VALUES (?, ?, ?, ?, 0, 0, 0)"
                " ON CONFLICT (payment_id) DO NOTHING",
                (payment_id, order_id, region, cents),
            )
        if self.rng.random() < self.flakiness.fail_after:
            raise ProviderUnavailable("payment provider: timed out after charging")
        return payment_id

    def refund(self, *, idempotency_key: str, payment_id: str, cents: int) -> str:
        """Refund once per idempotency key; fail now and then."""
        if self.rng.random() < self.flakiness.fail_before:
            raise ProviderUnavailable("payment provider: 503 before refunding")
        refund_id = f"re_{uuid.uuid4().hex[:16]}"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO {p}demo_refunds (idempotency_key, refund_id, payment_id,"
                " cents, requests) VALUES (?, ?, ?, ?, 0)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (idempotency_key, refund_id, payment_id, cents),
            )
            tx.execute(
                "UPDATE {p}demo_refunds SET requests = requests + 1"
                " WHERE idempotency_key = ?",
                (idempotency_key,),
            )
            row = tx.fetchone(
                "SELECT refund_id FROM {p}demo_refunds WHERE idempotency_key = ?",
                (idempotency_key,),
            )
        assert row is not None
        return str(row[0])

    def pending_webhooks(self, region: str | None, limit: int) -> list[dict[str, Any]]:
        """Webhooks to ``region``'s shop (``None``: any) not acknowledged yet."""
        with self.store.read() as tx:
            rows = tx.fetchall(
                "SELECT payment_id, order_id, cents FROM {p}demo_webhooks"
                " WHERE done = 0 AND (region = ? OR ? = '') AND retry_at <= ?"
                " ORDER BY payment_id LIMIT ?",
                (region or "", region or "", time.time(), limit * 3),
            )
        picked = self.rng.sample(rows, min(limit, len(rows)))
        return [
            {
                "type": "charge.succeeded",
                "payment_id": r[0],
                "order_id": r[1],
                "cents": int(r[2]),
            }
            for r in picked
        ]

    def unacknowledged(self, region: str | None) -> int:
        """Webhooks not acknowledged yet, backing off or not."""
        with self.store.read() as tx:
            row = tx.fetchone(
                "SELECT COUNT(*) FROM {p}demo_webhooks"
                " WHERE done = 0 AND (region = ? OR ? = '')",
                (region or "", region or ""),
            )
        return int(row[0]) if row else 0

    def delivered(
        self, payment_id: str, *, acknowledged: bool, busy: bool = False
    ) -> None:
        """Count one delivery; an acknowledged one is not sent again.

        ``busy``: the shop answered that the payment is being handled.
        """
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE {p}demo_webhooks SET deliveries = deliveries + 1,"
                " busy = busy + ?, retry_at = ?,"
                " done = CASE WHEN ? = 1 THEN 1 ELSE done END WHERE payment_id = ?",
                (
                    1 if busy else 0,
                    # A sender backs off from a payment answered "in progress".
                    time.time() + BUSY_RETRY_SECONDS if busy else 0.0,
                    1 if acknowledged else 0,
                    payment_id,
                ),
            )

    def deliver_webhooks(
        self, region: str | None, handler: Any, limit: int = 10
    ) -> int:
        """Deliver some of ``region``'s webhooks to ``handler``, at least once."""
        events = self.pending_webhooks(region, limit)
        for event in events:
            copies = 2 if self.rng.random() < self.flakiness.duplicate_webhook else 1
            for _ in range(copies):
                try:
                    handler(event)
                except IdempotencyInProgress:
                    # Another delivery of this payment is running (or its
                    # worker died mid-call): leave it unacknowledged, so
                    # it is sent again on a later round.
                    self.delivered(event["payment_id"], acknowledged=False, busy=True)
                    continue
                acknowledged = (
                    self.rng.random() >= self.flakiness.webhook_unacknowledged
                )
                self.delivered(event["payment_id"], acknowledged=acknowledged)
        return len(events)


class Carrier:
    """A simulated carrier with idempotent bookings."""

    def __init__(self, services: App, flakiness: Flakiness, seed: int) -> None:
        self.services = services
        self.flakiness = flakiness
        self.seed = seed
        self.rng = random.Random(f"carrier:{seed}:{os.getpid()}")

    @property
    def store(self) -> Store:
        """The carrier's own database (its ledger created on first use)."""
        store = self.services.store
        create_tables(store)
        return store

    def book(self, *, idempotency_key: str, order_id: str, region: str) -> str:
        """Book a pickup once per idempotency key."""
        if self.rng.random() < self.flakiness.carrier_down:
            raise CarrierUnavailable("carrier: 502 from the booking API")
        if _chance(self.seed, "refused", order_id) < self.flakiness.shipping_refused:
            raise ShippingRefused(f"carrier refuses the parcel of {order_id}")
        shipment_id = f"shp_{region}_{uuid.uuid4().hex[:12]}"
        with self.store.transaction() as tx:
            tx.execute(
                "INSERT INTO {p}demo_shipments (idempotency_key, shipment_id,"
                " order_id, cancelled, requests) VALUES (?, ?, ?, 0, 0)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                (idempotency_key, shipment_id, order_id),
            )
            tx.execute(
                "UPDATE {p}demo_shipments SET requests = requests + 1"
                " WHERE idempotency_key = ?",
                (idempotency_key,),
            )
            row = tx.fetchone(
                "SELECT shipment_id FROM {p}demo_shipments WHERE idempotency_key = ?",
                (idempotency_key,),
            )
        assert row is not None
        return str(row[0])

    def cancel(self, *, idempotency_key: str, shipment_id: str) -> None:
        """Cancel a booking (cancelling twice is harmless)."""
        with self.store.transaction() as tx:
            tx.execute(
                "UPDATE {p}demo_shipments SET cancelled = 1 WHERE shipment_id = ?",
                (shipment_id,),
            )


class SharedClock:
    """The shop's timer clock: real time plus an offset kept in a file.

    Worker processes read the offset; the demo's driver moves it forward to
    let 48 hours pass in a second. Timers and event timeouts read this
    clock (``ss.App(clock=...)``); leases keep the database's real clock.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._offset = 0.0
        self._read_at = -1.0

    def offset(self) -> float:
        """Seconds of simulated time added to the real time."""
        now = time.monotonic()
        # A cached offset at most 50 ms old: a timer may fire that much late.
        if now - self._read_at > 0.05:
            try:
                with open(self.path) as handle:
                    self._offset = float(handle.read() or 0.0)
            except FileNotFoundError:
                self._offset = 0.0
            self._read_at = now
        return self._offset

    def __call__(self) -> float:
        return time.time() + self.offset()

    def advance(self, seconds: float) -> None:
        """Move simulated time forward by ``seconds`` (for every process)."""
        offset = self.offset() + seconds
        temporary = f"{self.path}.{os.getpid()}"
        with open(temporary, "w") as handle:
            handle.write(repr(offset))
        os.replace(temporary, self.path)
        self._offset = offset
        self._read_at = time.monotonic()
