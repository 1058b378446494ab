"""``stateshift shards``: list shards, plan and run a rebalance."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from stateshift.cli.residency import open_placement, placement_options
from stateshift.errors import ConfigError
from stateshift.placement.rebalance import Rebalancer, finish, plan_keys
from stateshift.placement.router import Placement, describe_regions
from stateshift.placement.shards import ShardMap


def register(subparsers: Any) -> None:
    """Add ``shards list``, ``shards plan`` and ``shards rebalance``."""
    parser = subparsers.add_parser("shards", help="shards: list, plan, rebalance")
    actions = parser.add_subparsers(dest="shards_command", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="every shard of every region")
    placement_options(listing)
    listing.set_defaults(func=run_list)

    for name, func, text in (
        ("plan", run_plan, "show which keys move"),
        ("rebalance", run_rebalance, "move them online (a resumable workflow)"),
    ):
        action = actions.add_parser(name, help=text)
        placement_options(action)
        change = action.add_mutually_exclusive_group(required=True)
        change.add_argument("--add", metavar="URL", help="add a shard with this URL")
        change.add_argument("--remove", metavar="SHARD", help="remove this shard id")
        action.add_argument("--json", action="store_true", help="print JSON")
        action.set_defaults(func=func)
    rebalance = actions.choices["rebalance"]
    rebalance.add_argument(
        "--finish",
        action="store_true",
        help="also drop the forwarding rows (once every process has the new list)",
    )
    rebalance.add_argument(
        "--batch-size",
        type=int,
        default=100,
        metavar="N",
        help="keys moved per durable step (a rerun resumes at the cut batch)",
    )
    rebalance.add_argument(
        "--busy-rounds",
        type=int,
        default=5,
        metavar="N",
        help="rounds that retry keys whose workflows are running (default 5)",
    )
    rebalance.add_argument(
        "--busy-wait",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="wait between those rounds (default 1)",
    )


def _new_shards(placement: Placement, args: argparse.Namespace) -> dict[str, str]:
    region = placement.region
    current = dict(placement.urls[region])
    if args.add:
        current[f"s{len(current)}"] = args.add
        if len(set(current.values())) != len(current):
            raise ConfigError("--add", f"{args.add!r} is already a shard of {region}")
        return current
    if args.remove not in current:
        raise ConfigError("--remove", f"no shard {args.remove!r} in {region}")
    del current[args.remove]
    if not current:
        raise ConfigError("--remove", "a region keeps at least one shard")
    return current


def run_list(args: argparse.Namespace) -> int:
    """Print each shard's region, id and location."""
    placement = open_placement(args)
    try:
        for row in describe_regions(placement):
            print(f"{row['region']:<10} {row['shard']:<8} {row['store']}")
    finally:
        placement.close()
    return 0


def run_plan(args: argparse.Namespace) -> int:
    """Print the keys that change shard."""
    placement = open_placement(args)
    try:
        new = _new_shards(placement, args)
        moves = plan_keys(
            placement, placement.region, ShardMap(placement.region, tuple(new))
        )
    finally:
        placement.close()
    if args.json:
        print(json.dumps([move.__dict__ for move in moves], indent=2))
        return 0
    for move in moves:
        print(f"{move.partition_key!r}: {move.source} -> {move.target}")
    print(f"{len(moves)} keys move; new shards: {', '.join(new)}")
    return 0


def run_rebalance(args: argparse.Namespace) -> int:
    """Move the keys as a durable workflow, with a progress bar on standard error.

    Run the same command again to resume a rebalance that was interrupted,
    or to move keys it skipped (exit status 1) because workflows of theirs
    were running.
    """
    placement = open_placement(args)
    try:
        new = _new_shards(placement, args)
        rebalancer = Rebalancer(
            placement, placement.region, new, progress=_ProgressBar()
        )
        result = rebalancer.run(
            batch_size=args.batch_size,
            busy_rounds=args.busy_rounds,
            busy_wait_seconds=args.busy_wait,
        )
        # Skipped keys are still found through the forwarding rows, so
        # --finish must not drop them: it is refused until they have moved.
        dropped = None
        if args.finish and not result.skipped:
            dropped = finish(placement, placement.region, result.rebalance_id)
    finally:
        placement.close()
    print(file=sys.stderr)
    summary = {
        "rebalance_id": result.rebalance_id,
        "moved": result.moved,
        "total": result.total,
        "recopied": result.recopied,
        "skipped": result.skipped,
        "shards": new,
        "finished": dropped is not None,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        hint = (
            ""
            if dropped is not None
            else " and, once every process runs with them, run again with --finish"
        )
        print(
            f"{result.rebalance_id}: moved {result.moved} of {result.total} keys "
            f"({result.recopied} copied again after a concurrent write); configure "
            f"region {placement.region} with shards {new}{hint}"
        )
        if result.skipped:
            print(
                f"skipped {len(result.skipped)} key(s) whose workflows were running "
                f"(they stay on their old shard for now): {', '.join(result.skipped)}"
                "; run the same command again to move them"
            )
        if dropped is not None:
            print(f"finished: dropped {dropped} forwarding rows")
    if args.finish and result.skipped:
        print(
            f"--finish refused: {len(result.skipped)} key(s) of rebalance "
            f"{result.rebalance_id} have not moved yet and are found only through "
            "their forwarding rows; run the same command again once their "
            "workflows are idle",
            file=sys.stderr,
        )
    # Skipped keys are unfinished work: scripts must not take this run as done.
    return 1 if result.skipped else 0


class _ProgressBar:
    """``[#####.....] done/total`` on standard error, redrawn at most 10 times/s."""

    def __init__(self, width: int = 30) -> None:
        self.width = width
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done != total and now - self._last < 0.1:
            return
        self._last = now
        filled = self.width if total == 0 else self.width * done // total
        bar = "#" * filled + "." * (self.width - filled)
        print(f"\r[{bar}] {done}/{total} keys", end="", file=sys.stderr, flush=True)
