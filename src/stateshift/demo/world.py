"""The demo's world in one process: the shop and the services around it.

The driver and every worker process build worlds from the same
configuration (plain JSON, passed on the worker's command line). With two
regions each region is a deployment of its own, with its own store: an
``eu`` world's app has the EU store as its own and refuses EU data nowhere;
a ``us`` world's app refuses to start EU work. The payment provider and the
carrier keep their ledgers in a database of their own, as outside services
do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import stateshift as ss
from stateshift.demo.shop import Shop, register
from stateshift.demo.simulated import Carrier, Flakiness, PaymentProvider, SharedClock
from stateshift.placement import ResidencyPolicy

__all__ = ["RESIDENCY_POLICY", "World", "build_world"]

RESIDENCY_POLICY = ResidencyPolicy(
    {
        # EU customers' data is stored and processed in the EU only.
        "EU": {"store": ["eu"], "process": ["eu"]},
        "US": {"store": ["us"], "process": ["us"]},
    }
)
"""Where the shop's customers' data may live and be processed."""


@dataclass
class World:
    """The shop of one region and the simulated services around it."""

    app: ss.App
    shop: Shop
    provider: PaymentProvider
    carrier: Carrier
    clock: SharedClock
    region: str | None
    """The deployment's region, or ``None`` with a single store."""

    def close(self) -> None:
        """Close the shop's and the services' connections."""
        self.app.close()
        self.provider.close()


def build_world(
    config: dict[str, Any], region: str | None = None, worker_id: str | None = None
) -> World:
    """Build the shop of ``region`` on the stores named by ``config``."""
    clock = SharedClock(config["clock_file"])
    settings: dict[str, Any] = {"lease_seconds": config.get("lease_seconds", 5.0)}
    if config.get("schema"):
        settings["schema"] = config["schema"]
    if worker_id:
        settings["worker_id"] = worker_id
    regions = config.get("regions")
    if regions:
        app = ss.App(
            regions={name: [url] for name, url in regions.items()},
            region=region,
            residency_policy=RESIDENCY_POLICY,
            clock=clock,
            **settings,
        )
    else:
        app = ss.App(config["store"], clock=clock, **settings)
    flakiness = Flakiness(**config.get("flakiness", {}))
    seed = int(config["seed"])
    services = ss.App(config["services_store"], schema=config.get("services_schema"))
    provider = PaymentProvider(services, flakiness, seed)
    carrier = Carrier(services, flakiness, seed)
    shop = register(
        app,
        provider,
        carrier,
        approval_threshold_cents=int(config["approval_threshold_cents"]),
    )
    return World(app, shop, provider, carrier, clock, region if regions else None)
