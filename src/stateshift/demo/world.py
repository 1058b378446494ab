"""The demo's world in one process: the shop and the services around it.

The driver and every worker process build the same world from the same
configuration (plain JSON, passed on the worker's command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stateshift as ss
from stateshift.demo.shop import Shop, register
from stateshift.demo.simulated import Carrier, Flakiness, PaymentProvider, SharedClock

__all__ = ["World", "build_world"]


@dataclass
class World:
    """The shop and the simulated services around it, in one process."""

    app: ss.App
    shop: Shop
    provider: PaymentProvider
    carrier: Carrier
    clock: SharedClock


def build_world(config: dict[str, Any], worker_id: str | None = None) -> World:
    """Build the shop on the store named by ``config`` (see the driver)."""
    clock = SharedClock(config["clock_file"])
    settings: dict[str, Any] = {"lease_seconds": config.get("lease_seconds", 5.0)}
    if config.get("schema"):
        settings["schema"] = config["schema"]
    if worker_id:
        settings["worker_id"] = worker_id
    app = ss.App(config["store"], clock=clock, **settings)
    flakiness = Flakiness(**config.get("flakiness", {}))
    provider = PaymentProvider(app.store, flakiness, int(config["seed"]))
    carrier = Carrier(app.store, flakiness, int(config["seed"]))
    shop = register(
        app,
        provider,
        carrier,
        approval_threshold_cents=int(config["approval_threshold_cents"]),
    )
    return World(app, shop, provider, carrier, clock)
