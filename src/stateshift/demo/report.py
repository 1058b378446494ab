"""The demo's checks and its report.

Every number comes from durable state read after the run: the workflows'
statuses (``app.status``), the shop's namespaces, and the ledgers of the
simulated provider and carrier, which sit outside the shop's commits and so
would show any charge made twice. An invariant that fails is listed in
``violations`` and makes ``stateshift demo`` exit with status 1.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import stateshift as ss
from stateshift.demo.customers import CATALOGUE, Plan
from stateshift.demo.shop import NOTICES, ORDERS_TOPIC
from stateshift.demo.world import World

__all__ = ["Report", "build_report"]


@dataclass
class Report:
    """What the demo did, and whether its invariants held."""

    orders: int
    completed: int
    compensated: int
    compensated_by_reason: dict[str, int]
    waiting: int
    lost: int
    lost_orders: list[str]
    duplicate_charges: int
    duplicate_refunds: int
    charge_requests: int
    charges: int
    refunds: int
    webhook_deliveries: int
    webhooks_credited: int
    webhooks_in_progress: int
    double_credits: int
    order_events: int
    order_events_delivered: int
    duplicate_event_deliveries: int
    late_approvals_sent: int
    late_approvals_refused: int
    residency_refused: int
    residency_audited: int
    misplaced_rows: int
    kills: int
    recoveries: int
    simulated_hours: float
    elapsed_seconds: float
    backend: str
    store: str
    features: dict[str, str]
    violations: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every invariant held."""
        return not self.violations

    def to_json(self) -> dict[str, Any]:
        """The report as plain data (``stateshift demo --json``)."""
        data = asdict(self)
        data["ok"] = self.ok
        return data

    def _residency_line(self) -> str:
        if self.features["residency"] != "on":
            return "  residency violations refused " + self.features["residency"]
        return (
            f"  residency violations refused {self.residency_refused}  (EU checkouts "
            f"sent to the US deployment; {self.residency_audited} audited); EU/US "
            f"data outside its region's store: {self.misplaced_rows} (must be 0)"
        )

    def render(self) -> str:
        """The report as text for a terminal."""
        reasons = ", ".join(
            f"{count} {reason}"
            for reason, count in sorted(self.compensated_by_reason.items())
        )
        lines = [
            f"stateshift demo: {self.orders} orders on {self.backend} in "
            f"{self.elapsed_seconds:.1f} s ({self.simulated_hours:.0f} h of simulated "
            "shop time)",
            "",
            f"  completed                    {self.completed}",
            f"  compensated                  {self.compensated}  ({reasons or 'none'})",
            f"  waiting for approval         {self.waiting}",
            f"  lost orders                  {self.lost}  (must be 0)",
            f"  duplicate charges            {self.duplicate_charges}  (must be 0)",
            f"  duplicate refunds            {self.duplicate_refunds}  (must be 0)",
            f"  charge requests / charges    {self.charge_requests} / {self.charges}"
            "  (retries absorbed by idempotency keys)",
            f"  refunds                      {self.refunds}",
            f"  webhook deliveries           {self.webhook_deliveries} for "
            f"{self.webhooks_credited} payments, {self.double_credits} credited "
            "twice (must be 0)",
            f"  webhooks in progress         {self.webhooks_in_progress}  (a "
            "duplicate racing the first delivery, or a payment held by a killed "
            "worker until its record expires; sent again later)",
            f"  order events                 {self.order_events_delivered} of "
            f"{self.order_events} delivered, {self.duplicate_event_deliveries} "
            "delivered twice (must be 0)",
            f"  late approvals refused       {self.late_approvals_refused} of "
            f"{self.late_approvals_sent}",
            f"  worker processes killed      {self.kills}  (SIGKILL mid-invocation; "
            f"{self.recoveries} workflow takeovers)",
            self._residency_line(),
            "",
            "  store: " + self.store,
            "  checkout: " + self.features["saga"],
            "  payment webhook: " + self.features["webhook"],
            "  order events: " + self.features["events"],
            "  time: the shop's clock is real time plus jumps of 6 h and 43 h, so "
            "the 48-hour approval timeout fires in seconds",
        ]
        if self.violations:
            lines += ["", "INVARIANTS BROKEN:"] + [f"  - {v}" for v in self.violations]
        else:
            lines += ["", "all invariants held"]
        return "\n".join(lines)


def build_report(
    worlds: dict[str | None, World],
    plan: Plan,
    *,
    kills: int,
    residency_refused: int,
    residency_accepted: list[str],
    late_approvals_sent: int,
    late_approvals_refused: int,
    simulated_hours: float,
    elapsed_seconds: float,
    store: str,
) -> Report:
    """Check every invariant on the stores after a run."""
    violations: list[str] = []
    outcomes, lost, recoveries = _outcomes(worlds, plan, violations)
    any_world = next(iter(worlds.values()))
    charges, refunds, requests, webhooks = _ledgers(any_world)
    regional = None not in worlds
    report = Report(
        orders=len(plan.orders),
        completed=sum(1 for o in outcomes.values() if o[0] == "completed"),
        compensated=sum(1 for o in outcomes.values() if o[0] == "compensated"),
        compensated_by_reason=dict(
            Counter(o[1] for o in outcomes.values() if o[0] == "compensated")
        ),
        waiting=sum(1 for o in outcomes.values() if o[0] == "waiting"),
        lost=len(lost),
        lost_orders=lost,
        duplicate_charges=sum(max(0, len(c) - 1) for c in charges.values()),
        duplicate_refunds=sum(
            max(0, n - 1) for n in Counter(refunds.values()).values()
        ),
        charge_requests=requests,
        charges=sum(len(c) for c in charges.values()),
        refunds=len(refunds),
        webhook_deliveries=sum(d for d, _, _ in webhooks.values()),
        webhooks_credited=len(webhooks),
        webhooks_in_progress=sum(b for _, b, _ in webhooks.values()),
        double_credits=0,
        order_events=0,
        order_events_delivered=0,
        duplicate_event_deliveries=0,
        late_approvals_sent=late_approvals_sent,
        late_approvals_refused=late_approvals_refused,
        residency_refused=residency_refused,
        residency_audited=_audited(worlds) if regional else 0,
        misplaced_rows=_misplaced(worlds, plan) if regional else 0,
        kills=kills,
        recoveries=recoveries,
        simulated_hours=simulated_hours,
        elapsed_seconds=elapsed_seconds,
        backend=any_world.app.store.dialect,
        store=store,
        features=_features(regional),
        violations=violations,
    )
    if report.duplicate_charges:
        violations.append(f"{report.duplicate_charges} duplicate charges")
    if report.duplicate_refunds:
        violations.append(f"{report.duplicate_refunds} duplicate refunds")
    if lost:
        violations.append(f"{len(lost)} lost orders: {', '.join(lost[:10])}")
    if residency_accepted:
        violations.append(
            f"the US deployment accepted EU orders: {', '.join(residency_accepted)}"
        )
    if report.misplaced_rows:
        violations.append(f"{report.misplaced_rows} rows outside their region's store")
    for region, world in worlds.items():
        mine = Plan(tuple(o for o in plan.orders if _home(worlds, o.region) == region))
        here = {
            o.order_id: outcomes[o.order_id]
            for o in mine.orders
            if o.order_id in outcomes
        }
        _check_money(world, here, charges, refunds, report, violations)
        _check_stock(world, here, mine, violations)
        _check_records(world, here, report, violations)
    if report.duplicate_event_deliveries:
        violations.append(
            f"{report.duplicate_event_deliveries} order events delivered twice"
        )
    return report


def _home(worlds: dict[str | None, World], region: str) -> str | None:
    return region if region in worlds else None


def _outcomes(
    worlds: dict[str | None, World], plan: Plan, violations: list[str]
) -> tuple[dict[str, tuple[str, str]], list[str], int]:
    """Each order's outcome (completed, compensated, waiting), and the lost."""
    outcomes: dict[str, tuple[str, str]] = {}
    lost: list[str] = []
    recoveries = 0
    for order in plan.orders:
        app = worlds[_home(worlds, order.region)].app
        try:
            info = app.status(order.order_id)
        except ss.WorkflowNotFound:
            lost.append(order.order_id)
            continue
        recoveries += info.recoveries
        if info.status is ss.WorkflowStatus.SUCCEEDED:
            result = info.result
            outcomes[order.order_id] = (result["outcome"], result.get("reason", ""))
        elif info.status is ss.WorkflowStatus.WAITING and "approval" in (
            info.waiting_for or ""
        ):
            outcomes[order.order_id] = ("waiting", "")
            if not order.late:
                violations.append(f"{order.order_id} still waits after 48 h")
        else:
            lost.append(order.order_id)
    return outcomes, lost, recoveries


def _ledgers(
    world: World,
) -> tuple[
    dict[str, list[tuple[str, int]]],
    dict[str, str],
    int,
    dict[str, tuple[int, int, int]],
]:
    with world.provider.store.read() as tx:
        charge_rows = tx.fetchall(
            "SELECT order_id, payment_id, cents, requests FROM {p}demo_charges"
        )
        refund_rows = tx.fetchall("SELECT refund_id, payment_id FROM {p}demo_refunds")
        webhook_rows = tx.fetchall(
            "SELECT payment_id, deliveries, busy, done FROM {p}demo_webhooks"
        )
    charges: dict[str, list[tuple[str, int]]] = {}
    for order_id, payment_id, cents, _ in charge_rows:
        charges.setdefault(str(order_id), []).append((str(payment_id), int(cents)))
    refunds = {str(r[0]): str(r[1]) for r in refund_rows}
    requests = sum(int(r[3]) for r in charge_rows)
    webhooks = {str(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in webhook_rows}
    return charges, refunds, requests, webhooks


def _check_money(
    world: World,
    outcomes: dict[str, tuple[str, str]],
    charges: dict[str, list[tuple[str, int]]],
    refunds: dict[str, str],
    report: Report,
    violations: list[str],
) -> None:
    """Completed and waiting orders paid once; compensated ones refunded."""
    refunded = Counter(refunds.values())
    ledger = world.app.state("ledger")
    credited = {k: int(i.value) for k, i in ledger.get_many(list(outcomes)).items()}
    for order_id, (outcome, reason) in outcomes.items():
        paid = charges.get(order_id, [])
        kept = [p for p, _ in paid if not refunded.get(p)]
        expected = 0 if outcome == "compensated" else 1
        if outcome != "compensated" and not paid:
            violations.append(f"{order_id} is {outcome} but was never charged")
        if len(kept) != expected and len(paid) <= 1:
            violations.append(
                f"{order_id} is {outcome} ({reason}) with {len(kept)} charges kept"
            )
        settled = sum(cents for _, cents in paid)
        if credited.get(order_id, 0) > settled:
            report.double_credits += 1
        if credited.get(order_id, 0) != settled:
            violations.append(
                f"{order_id}: webhooks credited {credited.get(order_id, 0)}, "
                f"provider charged {settled}"
            )


def _check_stock(
    world: World,
    outcomes: dict[str, tuple[str, str]],
    plan: Plan,
    violations: list[str],
) -> None:
    """Stock taken equals what completed and waiting orders hold."""
    stock = world.app.state("stock").get_many(list(CATALOGUE))
    held: Counter[str] = Counter()
    for order in plan.orders:
        if outcomes.get(order.order_id, ("", ""))[0] in ("completed", "waiting"):
            for sku, quantity in order.items:
                held[sku] += quantity
    for sku, (_, initial) in CATALOGUE.items():
        available = int(stock[sku].value)
        if available < 0:
            violations.append(f"stock of {sku} is negative: {available}")
        if initial - available != held[sku]:
            violations.append(
                f"stock of {sku}: {initial - available} taken, {held[sku]} held by "
                "orders"
            )


def _check_records(
    world: World,
    outcomes: dict[str, tuple[str, str]],
    report: Report,
    violations: list[str],
) -> None:
    """The order records and events agree with the workflows.

    Every order event in the outbox must have reached the subscriber, whose
    notice (one per message id) counts its deliveries: exactly one each.
    """
    orders = world.app.state("orders").get_many(list(outcomes))
    published = _published(world, list(outcomes))
    notices = world.app.state(NOTICES).get_many(
        [m for ids in published.values() for m in ids]
    )
    expected_status = {
        "completed": "completed",
        "compensated": "cancelled",
        "waiting": "awaiting approval",
    }
    expected_event = {"completed": ["completed"], "compensated": ["cancelled"]}
    for order_id, (outcome, _) in outcomes.items():
        record = orders.get(order_id)
        status = None if record is None else record.value.get("status")
        if status != expected_status[outcome]:
            violations.append(f"{order_id} is {outcome} but its record says {status}")
        message_ids = published.get(order_id, [])
        report.order_events += len(message_ids)
        delivered = [notices[m].value for m in message_ids if m in notices]
        report.order_events_delivered += len(delivered)
        report.duplicate_event_deliveries += sum(
            max(0, int(n["deliveries"]) - 1) for n in delivered
        )
        if len(delivered) < len(message_ids):
            violations.append(
                f"{order_id}: {len(message_ids) - len(delivered)} order events "
                "never delivered"
            )
        kinds = sorted(str(n["kind"]) for n in delivered)
        if kinds != expected_event.get(outcome, []):
            violations.append(f"{order_id} is {outcome} with events {kinds}")


def _published(world: World, order_ids: list[str]) -> dict[str, list[str]]:
    """The outbox message ids of each order's events, in this world's store."""
    published: dict[str, list[str]] = {}
    with world.app.store.read() as tx:
        rows = tx.fetchall(
            "SELECT message_id, msg_key FROM {p}outbox WHERE topic = ?",
            (ORDERS_TOPIC,),
        )
    wanted = set(order_ids)
    for message_id, order_id in rows:
        if order_id in wanted:
            published.setdefault(str(order_id), []).append(str(message_id))
    return published


def _audited(worlds: dict[str | None, World]) -> int:
    """Audit records of refused EU accesses, in the EU's audit log."""
    records = worlds["eu"].app.placement.audit_log.records(limit=100_000, region="eu")
    return sum(1 for record in records if record.tag == "EU")


def _misplaced(worlds: dict[str | None, World], plan: Plan) -> int:
    """Rows of a region's customers found in another region's store."""
    found = 0
    for region, world in worlds.items():
        strangers = [o for o in plan.orders if o.region != region]
        ids = [o.order_id for o in strangers]
        # Rows in this region's own stores: app.status() would find a
        # stranger's workflow in its home region (and refuse the read).
        for store in world.app.placement.local_stores():
            with store.read() as tx:
                for order_id in ids:
                    if tx.fetchone(
                        "SELECT 1 FROM {p}workflows WHERE workflow_id = ?", (order_id,)
                    ):
                        found += 1
        for name in ("orders", "reservations", "ledger"):
            found += len(world.app.state(name).get_many(ids))
        found += sum(len(m) for m in _published(world, ids).values())
        carts = world.app.state("entity:shop.Cart")
        found += len(carts.get_many([o.customer for o in strangers]))
    return found


def _features(regional: bool) -> dict[str, str]:
    """How each pattern is done in this build, said plainly."""
    return {
        "saga": "a saga (ss.Saga); each compensation a durable step run "
        "once, newest first",
        "webhook": "@app.idempotent on the payment id; the credit commits "
        "with the idempotency record",
        "events": "app.publish in the deciding step (outbox); "
        "app.relay_outbox to an @app.subscribe handler (inbox)",
        "residency": "on"
        if regional
        else "not exercised (one store; give PostgreSQL a second database with "
        "--eu-store)",
    }
