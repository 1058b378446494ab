"""The rebalance as a durable workflow on the engine.

A rebalance is a workflow named ``stateshift.rebalance`` whose id is the
rebalance id. Its first step publishes the new shard list and records the
moves; then each batch of keys is one step that copies, verifies, switches
and deletes every key of the batch; a last step records the end. A run
killed at any instruction is resumed by running the same rebalance again:
the recorded steps replay from their checkpoints, and the batch that was
cut short runs once more, skipping the keys its move records mark done.

The workflow's own rows live in the coordinator shard's database under a
table prefix of their own (``<prefix>rebalance_``), so that running due
work there claims rebalances only, never the app's workflows. The engine
app has a stable worker id, so a rerun on the same host takes its lease
back at once instead of waiting for it to expire. Run one rebalance
process at a time.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

from stateshift.errors import StoreError
from stateshift.placement.policy import ResidencyPolicy

if TYPE_CHECKING:
    from stateshift.app import App
    from stateshift.placement.rebalance import Rebalancer, RebalanceResult

__all__ = ["WORKFLOW_NAME", "run_on_engine"]

WORKFLOW_NAME = "stateshift.rebalance"
_REGION = "rebalance"


def _engine_app(rebalancer: Rebalancer) -> App:
    from stateshift.app import App

    settings = rebalancer.placement.settings
    url = rebalancer.placement.urls[rebalancer.region][rebalancer.old.shard_ids[0]]
    return App(
        url,
        regions={_REGION: [url]},
        region=_REGION,
        residency_policy=ResidencyPolicy(default={"store": ["*"], "process": ["*"]}),
        schema=settings.schema,
        table_prefix=f"{settings.table_prefix}rebalance_",
        worker_id=f"rebalance@{socket.gethostname()}",
        lease_seconds=settings.lease_seconds,
        encryption_keys="",
    )


def _define(app: App, rebalancer: Rebalancer, counts: dict[str, int]) -> Any:
    @app.step(name="rebalance.publish")
    def publish(batch_size: int) -> list[list[str]]:
        keys = rebalancer.publish_moves()
        return [keys[i : i + batch_size] for i in range(0, len(keys), batch_size)]

    @app.step(name="rebalance.move_batch")
    def move_batch(keys: list[str]) -> int:
        moved, recopied = rebalancer.move_keys(keys)
        counts["moved"] += moved
        counts["recopied"] += recopied
        return moved

    @app.step(name="rebalance.complete")
    def complete() -> int:
        return rebalancer.complete()

    @app.workflow(name=WORKFLOW_NAME)
    def rebalance(batch_size: int) -> dict[str, int]:
        batches = publish(batch_size)
        for batch in batches:
            move_batch(batch)
        total = complete()
        return {"batches": len(batches), "total": total}

    return rebalance


def run_on_engine(rebalancer: Rebalancer, batch_size: int) -> RebalanceResult:
    """Start (or resume) the rebalance workflow and run it here to the end."""
    from stateshift.placement.rebalance import RebalanceResult
    from stateshift.placement.shards import Move

    counts = {"moved": 0, "recopied": 0}
    app = _engine_app(rebalancer)
    try:
        flow = _define(app, rebalancer, counts)
        handle = app.start(flow, batch_size, workflow_id=rebalancer.rebalance_id)
        outcome = handle.result()
    except Exception as error:
        raise StoreError(
            f"rebalance {rebalancer.rebalance_id} stopped: {error}; fix the cause "
            "and run the same rebalance again to resume it"
        ) from error
    finally:
        app.close()

    states = rebalancer.move_states()
    return RebalanceResult(
        rebalancer.rebalance_id,
        moved=counts["moved"],
        total=int(outcome["total"]),
        recopied=counts["recopied"],
        moves=[Move(k, s, t) for k, (s, t, _) in sorted(states.items())],
    )
