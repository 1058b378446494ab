"""The demo's driver: customers, managers, a clock, and a worker killer.

The driver plays everyone outside the shop. It fills carts and places
orders; it starts worker processes and SIGKILLs them at random; it answers
approvals (at once, after six simulated hours, too late, or never); and it
moves the shop's clock forward so that 48 hours pass in a second. When all
is quiet it stops the workers, delivers the provider's last webhooks,
relays the last order events and hands over to :mod:`stateshift.demo.report`
for the checks.

Phases, each starting when the previous one is quiet (every order either
finished or waiting for its approval):

1. shopping: every order of the main wave is placed; quick decisions are
   sent as soon as an order waits for one;
2. +6 h: the clock moves six hours on; the slower approvals arrive;
3. +49 h: the clock moves past the 48-hour limit; unanswered orders time
   out and are compensated; the too-late approvals are sent and refused;
4. late shoppers: a few large orders arrive and are left waiting.
"""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import stateshift
from stateshift.demo.customers import (
    CATALOGUE,
    Decision,
    Plan,
    PlannedOrder,
    plan_orders,
)
from stateshift.demo.report import Report, build_report
from stateshift.demo.shop import (
    APPROVAL_THRESHOLD_CENTS,
    ORDERS_TOPIC,
    WORKFLOW_NAME,
)
from stateshift.demo.simulated import create_tables
from stateshift.demo.world import World, build_world
from stateshift.errors import ResidencyViolation

__all__ = ["DemoOptions", "run_demo"]

logger = logging.getLogger(__name__)

HOUR_SECONDS = 3_600.0
MISROUTED_SHARE = 0.2
"""EU checkouts that reach the US deployment first (and must be refused)."""
POLL_SECONDS = 0.05
QUIET_TIMEOUT_SECONDS = 240.0
"""A phase that is not quiet after this long counts its orders as lost."""
DRAIN_TIMEOUT_SECONDS = 30.0
"""How long the last webhooks and order events may take after the run."""
DRAIN_RETRY_SECONDS = 0.25
"""Pause between rounds of redelivering webhooks still answered "in progress"."""


@dataclass(frozen=True)
class DemoOptions:
    """What ``stateshift demo`` runs."""

    orders: int = 300
    """Customer orders placed."""
    seed: int = 1
    """Seed of customers, carts and decisions."""
    store: str | None = None
    """A PostgreSQL URL; ``None``: fresh SQLite files in a temporary folder
    (one per region)."""
    eu_store: str | None = None
    """With ``store``: a second PostgreSQL database for the EU region."""
    workers: int = 2
    """Worker processes."""
    kill_rate: float = 1.0
    """Worker kills per second (SIGKILL, at random moments)."""
    keep: bool = False
    """Keep the store afterwards (the SQLite folder, the PostgreSQL schema)."""
    progress: bool | None = None
    """Draw a progress bar (``None``: when stderr is a terminal)."""


@dataclass
class _Run:
    """What the driver tracks while the demo runs."""

    options: DemoOptions
    worlds: dict[str | None, World]
    """The shop of each region (key ``None``: the one store without regions)."""
    config: dict[str, Any]
    plan: Plan
    rng: random.Random
    workers: dict[str, tuple[str | None, subprocess.Popen[bytes]]] = field(
        default_factory=dict
    )
    placed: list[str] = field(default_factory=list)
    decided: set[str] = field(default_factory=set)
    statuses: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    kills: int = 0
    residency_refused: int = 0
    residency_accepted: list[str] = field(default_factory=list)
    late_refused: int = 0
    late_sent: int = 0
    simulated_hours: float = 0.0
    phase: str = "shopping"

    def world_of(self, order: PlannedOrder) -> World:
        """The deployment that holds ``order``: its customer's region."""
        return self.worlds.get(order.region) or self.worlds[None]

    @property
    def clock(self) -> Any:
        return next(iter(self.worlds.values())).clock


def run_demo(options: DemoOptions, progress_stream: IO[str] | None = None) -> Report:
    """Run the demo and return its report (``report.ok`` tells if it held)."""
    if options.orders < 1 or options.workers < 1 or options.kill_rate < 0:
        raise ValueError("orders and workers must be at least 1, kill_rate at least 0")
    stream = progress_stream or sys.stderr
    draw = options.progress if options.progress is not None else stream.isatty()
    folder = Path(tempfile.mkdtemp(prefix="stateshift-demo-"))
    config = _config(options, folder)
    regions: list[str | None] = list(config.get("regions") or [None])
    worlds = {
        r: build_world(config, region=r, worker_id=f"demo-driver-{r}") for r in regions
    }
    started = time.monotonic()
    plan = plan_orders(options.orders, options.seed)
    run = _Run(options, worlds, config, plan, random.Random(options.seed))
    try:
        _prepare(run)
        progress = _Progress(stream, draw, options.orders)
        try:
            _drive(run, progress)
        finally:
            _stop_workers(run)
            progress.close()
        _drain(run)
        return build_report(
            worlds,
            plan,
            kills=run.kills,
            residency_refused=run.residency_refused,
            residency_accepted=run.residency_accepted,
            late_approvals_sent=run.late_sent,
            late_approvals_refused=run.late_refused,
            simulated_hours=run.simulated_hours,
            elapsed_seconds=time.monotonic() - started,
            store=_describe_store(config, options.keep),
        )
    finally:
        _clean_up(run, folder, options.keep)


# --- set-up and tear-down ----------------------------------------------------


def _config(options: DemoOptions, folder: Path) -> dict[str, Any]:
    config: dict[str, Any] = {
        "clock_file": str(folder / "clock"),
        "seed": options.seed,
        "approval_threshold_cents": APPROVAL_THRESHOLD_CENTS,
        # Short leases: a killed worker's replacement reclaims its own leases
        # at once, but a worker that stays dead leaves them to expire.
        "lease_seconds": 3.0,
    }
    if options.store is None:
        # Each region a store of its own, as two deployments would have.
        config["regions"] = {
            "eu": f"sqlite:///{folder / 'shop-eu.db'}",
            "us": f"sqlite:///{folder / 'shop-us.db'}",
        }
        config["services_store"] = f"sqlite:///{folder / 'services.db'}"
        return config
    schema = f"stateshift_demo_{uuid.uuid4().hex[:10]}"
    config["schema"] = schema
    config["services_store"] = options.store
    config["services_schema"] = f"{schema}_services"
    if options.eu_store:
        config["regions"] = {"eu": options.eu_store, "us": options.store}
    else:
        config["store"] = options.store
    return config


def _prepare(run: _Run) -> None:
    create_tables(next(iter(run.worlds.values())).provider.store)
    for world in run.worlds.values():
        world.app.store.ensure_schema()
        stock = world.app.state("stock")
        with world.app.transaction():
            for sku, (_, quantity) in CATALOGUE.items():
                stock.put(sku, quantity)


def _describe_store(config: dict[str, Any], keep: bool) -> str:
    if config.get("regions"):
        where = ", ".join(f"{r}: {url}" for r, url in config["regions"].items())
    else:
        where = str(config["store"])
    if config.get("schema"):
        where += f" (schema {config['schema']})"
    if not keep:
        where += "; removed afterwards (--keep keeps it)"
    return where


def _clean_up(run: _Run, folder: Path, keep: bool) -> None:
    config = run.config
    if not keep and config.get("schema"):
        services = next(iter(run.worlds.values())).provider.store
        stores = [(w.app.store, config["schema"]) for w in run.worlds.values()]
        stores.append((services, config["services_schema"]))
        for store, schema in stores:
            try:
                with store.transaction() as tx:
                    tx.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except Exception:
                logger.warning("could not drop the demo schema %s", schema)
    for world in run.worlds.values():
        world.close()
    if not keep:
        shutil.rmtree(folder, ignore_errors=True)


# --- workers -----------------------------------------------------------------


def _spawn(run: _Run, worker_id: str, region: str | None) -> None:
    # The child imports the same stateshift as this process, installed or not.
    package_root = str(Path(stateshift.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (package_root, env.get("PYTHONPATH", "")) if p
    )
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stateshift.demo.worker",
            json.dumps(run.config),
            worker_id,
            region or "",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
    )
    run.workers[worker_id] = (region, process)


def _start_workers(run: _Run) -> None:
    regions = list(run.worlds)
    # Every region needs a worker of its own: a US worker may not run EU work.
    count = max(run.options.workers, len(regions))
    for index in range(count):
        region = regions[index % len(regions)]
        _spawn(run, f"demo-worker-{index + 1}", region)


def _maybe_kill(run: _Run, elapsed: float) -> None:
    if not run.workers or run.rng.random() >= run.options.kill_rate * elapsed:
        return
    worker_id = run.rng.choice(sorted(run.workers))
    region, process = run.workers[worker_id]
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
        run.kills += 1
    process.wait()
    # Same worker id: the new process takes its predecessor's leases back
    # at once, as a restarted serverless slot would.
    _spawn(run, worker_id, region)


def _stop_workers(run: _Run) -> None:
    for _, process in run.workers.values():
        if process.poll() is None:
            process.kill()
    for _, process in run.workers.values():
        process.wait()


def _drain(run: _Run) -> None:
    """Deliver every webhook and relay every order event left at the end."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    for region, world in run.worlds.items():
        # The provider keeps redelivering until each webhook is acknowledged;
        # a payment still held by a killed worker's call answers "in
        # progress" until that call's record expires.
        handler = world.shop.on_payment_webhook
        while time.monotonic() < deadline:
            if world.provider.deliver_webhooks(region, handler, limit=50):
                # Some may have been answered "in progress": give the
                # holder's record a moment (it expires within
                # WEBHOOK_IN_PROGRESS_SECONDS) instead of spinning on it.
                time.sleep(DRAIN_RETRY_SECONDS)
                continue
            if world.provider.unacknowledged(region):
                # Only webhooks the provider is backing off from are left.
                time.sleep(DRAIN_RETRY_SECONDS)
                continue
            world.app.relay_outbox()
            # A killed worker's relay lease keeps this relay out until it
            # expires: wait for every order event to be delivered.
            if not _undelivered(world):
                break
            time.sleep(0.1)


def _undelivered(world: World) -> int:
    with world.app.store.read() as tx:
        row = tx.fetchone(
            "SELECT COUNT(*) FROM {p}outbox o WHERE o.topic = ? AND NOT EXISTS"
            " (SELECT 1 FROM {p}outbox_deliveries d WHERE d.sink = 'local'"
            " AND d.message_id = o.message_id AND d.status = 'delivered')",
            (ORDERS_TOPIC,),
        )
    return 0 if row is None else int(row[0])


# --- the phases --------------------------------------------------------------


def _drive(run: _Run, progress: _Progress) -> None:
    _start_workers(run)
    main_wave = run.plan.main_wave
    last = time.monotonic()
    phase_started = last
    next_order = 0
    while True:
        time.sleep(POLL_SECONDS)
        now = time.monotonic()
        _maybe_kill(run, now - last)
        last = now
        if next_order < len(main_wave):
            batch = max(1, len(main_wave) // 60)
            for order in main_wave[next_order : next_order + batch]:
                _place(run, order)
            next_order += batch
        _poll(run)
        progress.draw(run)
        if not _quiet(run) or next_order < len(main_wave):
            if now - phase_started > QUIET_TIMEOUT_SECONDS:
                logger.warning("phase %s never became quiet", run.phase)
                return
            continue
        if not _next_phase(run):
            return
        phase_started = time.monotonic()


def _next_phase(run: _Run) -> bool:
    """Start the next phase; False when the last one is over."""
    if run.phase == "shopping":
        _advance(run, 6)
        _decide(run, Decision.APPROVE_LATER)
        run.phase = "+6 h"
    elif run.phase == "+6 h":
        # Past the 48-hour limit: the unanswered orders time out.
        _advance(run, 43)
        run.phase = "+49 h"
    elif run.phase == "+49 h":
        run.late_sent, run.late_refused = _decide(run, Decision.TOO_LATE)
        for order in run.plan.late_wave:
            _place(run, order)
        run.phase = "late shoppers"
    else:
        return False
    return True


def _advance(run: _Run, hours: float) -> None:
    run.clock.advance(hours * HOUR_SECONDS)
    run.simulated_hours += hours


def _place(run: _Run, order: PlannedOrder) -> None:
    shop = run.world_of(order).shop
    cart = shop.cart(order.customer)
    for sku, quantity in order.items:
        cart.add(sku, quantity, CATALOGUE[sku][0], order.region)
    residency = order.region.upper() if order.region in run.worlds else None
    if residency == "EU" and run.rng.random() < MISROUTED_SHARE:
        _misrouted(run, cart.get().order(order.order_id, order.customer))
    shop.place_order(order.customer, order.order_id, residency)
    run.placed.append(order.order_id)


def _misrouted(run: _Run, order: dict[str, Any]) -> None:
    """An EU checkout that reached the US deployment: it must be refused."""
    try:
        run.worlds["us"].shop.start_order(order, "EU")
    except ResidencyViolation:
        run.residency_refused += 1
    else:
        run.residency_accepted.append(order["order_id"])


def _decide(run: _Run, decision: Decision) -> tuple[int, int]:
    """Send the approvals of ``decision``; return (sent, refused)."""
    sent = refused = 0
    for order in run.plan.orders:
        if order.decision is not decision or order.order_id not in run.placed:
            continue
        if order.cents < APPROVAL_THRESHOLD_CENTS:
            continue
        if order.order_id in run.decided:
            continue
        run.decided.add(order.order_id)
        sent += 1
        shop = run.world_of(order).shop
        delivery = shop.approve(order.order_id, True, by="manager-2")
        if not delivery.delivered:
            refused += 1
    return sent, refused


def _poll(run: _Run) -> None:
    rows: list[Any] = []
    for world in run.worlds.values():
        with world.app.store.read() as tx:
            rows += tx.fetchall(
                "SELECT workflow_id, status, wait_event, due_at FROM {p}workflows"
                " WHERE name = ?",
                (WORKFLOW_NAME,),
            )
    # A wait whose deadline has passed is work not yet done: its timeout is
    # due and some worker will take it up.
    now = run.clock()
    run.statuses = {
        str(r[0]): (
            str(r[1]),
            r[2] if r[3] is None or float(r[3]) > now else "(due)",
        )
        for r in rows
    }
    by_id = {o.order_id: o for o in run.plan.orders}
    for workflow_id, (status, wait_event) in run.statuses.items():
        if status != "waiting" or wait_event != "approval":
            continue
        order = by_id[workflow_id]
        if order.decision in (Decision.APPROVE, Decision.REFUSE):
            if workflow_id not in run.decided:
                run.decided.add(workflow_id)
                approved = order.decision is Decision.APPROVE
                shop = run.world_of(order).shop
                shop.approve(workflow_id, approved, by="manager-1")


def _quiet(run: _Run) -> bool:
    """Every placed order has finished or waits for a decision not yet due."""
    for order_id in run.placed:
        status, wait_event = run.statuses.get(order_id, ("pending", None))
        if status == "succeeded":
            continue
        if status == "waiting" and wait_event == "approval":
            # A decision sent but not yet taken in is still work to do.
            if order_id not in run.decided:
                continue
        return False
    return True


class _Progress:
    """A one-line progress bar on a terminal; phase lines otherwise."""

    def __init__(self, stream: IO[str], draw: bool, total: int) -> None:
        self.stream = stream
        self.enabled = draw
        self.total = total
        self.phase = ""
        self.drawn_at = 0.0
        self.started = time.monotonic()

    def draw(self, run: _Run) -> None:
        if run.phase != self.phase:
            self.phase = run.phase
            if not self.enabled:
                elapsed = time.monotonic() - self.started
                print(
                    f"stateshift demo: {elapsed:5.1f} s  {run.phase}",
                    file=self.stream,
                    flush=True,
                )
        if not self.enabled or time.monotonic() - self.drawn_at < 0.1:
            return
        self.drawn_at = time.monotonic()
        values = list(run.statuses.values())
        finished = sum(1 for status, _ in values if status == "succeeded")
        waiting = sum(1 for s, w in values if s == "waiting" and w == "approval")
        width = 30
        filled = int(width * (finished + waiting) / max(1, self.total))
        bar = "#" * filled + "." * (width - filled)
        line = (
            f"\r[{bar}] {finished + waiting:>4}/{self.total} settled"
            f"  placed {len(run.placed)}  waiting {waiting}"
            f"  kills {run.kills}  clock +{run.simulated_hours:.0f} h  {run.phase:<14}"
        )
        self.stream.write(line)
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
