"""A demo worker process: a loop of invocations on the shop's store.

``python -m stateshift.demo.worker CONFIG WORKER_ID REGION`` (``CONFIG`` is JSON)
builds the same shop as the driver and then does what a serverless platform
would: one invocation after another, each ``app.tick(budget=...)`` and
``app.relay_outbox()`` (order events to the shop's subscriber), plus
deliveries of the payment provider's webhooks. Nothing is kept between
invocations; the driver kills these processes with SIGKILL at random and
starts them again under the same worker id. Nothing imports this module:
it is only ever run.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from stateshift.demo.world import build_world

__all__ = ["main"]

TICK_BUDGET_SECONDS = 1.0
"""The time budget of one invocation."""

RELAY_BUDGET_SECONDS = 0.5
"""The time budget of one outbox relay."""


def main(argv: list[str]) -> int:
    """Run invocations until killed."""
    # Failed steps are the demo's daily bread; only real trouble is shown.
    logging.basicConfig(
        level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s"
    )
    region = argv[2] or None
    world = build_world(json.loads(argv[0]), region=region, worker_id=argv[1])
    while True:
        summary = world.app.tick(budget=TICK_BUDGET_SECONDS)
        relayed = world.app.relay_outbox(budget=RELAY_BUDGET_SECONDS)
        delivered = world.provider.deliver_webhooks(
            region, world.shop.on_payment_webhook
        )
        if summary.ran == 0 and relayed == 0 and delivered == 0:
            time.sleep(0.02)


if __name__ == "__main__":  # pragma: no cover - a process of its own
    sys.exit(main(sys.argv[1:]))
