"""``stateshift demo``: the shop, migrated, run under crashes and duplicates."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from stateshift.demo import DemoOptions, run_demo


def register(subparsers: Any) -> None:
    """Add ``demo``."""
    defaults = DemoOptions()
    parser = subparsers.add_parser(
        "demo",
        help="run the example shop under kills, duplicates and flaky services",
        description=(
            "Run the example shop on stateshift with simulated customers, random "
            "SIGKILLs of worker processes, duplicate webhooks, a flaky payment "
            "provider and late approvals; then check that no order was lost and "
            "no card charged twice. Exits 1 if an invariant broke."
        ),
    )
    parser.add_argument(
        "--orders", type=int, default=defaults.orders, help="orders to place"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed, help="random seed")
    parser.add_argument(
        "--store",
        help="a PostgreSQL URL (a fresh schema is used and dropped); default: a "
        "temporary SQLite file",
    )
    parser.add_argument(
        "--eu-store",
        help="with --store: a second PostgreSQL database for the EU region, so "
        "that residency is exercised",
    )
    parser.add_argument(
        "--workers", type=int, default=defaults.workers, help="worker processes"
    )
    parser.add_argument(
        "--kill-rate",
        type=float,
        default=defaults.kill_rate,
        help="worker kills per second",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the store afterwards, to look at"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="draw the progress bar even when stderr is not a terminal",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo, print its report; 1 if an invariant broke."""
    if args.orders < 1 or args.workers < 1 or args.kill_rate < 0:
        print(
            "stateshift demo: --orders and --workers must be at least 1, "
            "--kill-rate at least 0",
            file=sys.stderr,
        )
        return 2
    options = DemoOptions(
        orders=args.orders,
        seed=args.seed,
        store=args.store,
        eu_store=args.eu_store,
        workers=args.workers,
        kill_rate=args.kill_rate,
        keep=args.keep,
        progress=args.progress,
    )
    if not args.verbose:
        # Steps failing on purpose (a flaky provider, sold-out stock) are the
        # demo's story; the report tells it, the log need not.
        for name in ("stateshift.workflows", "stateshift.placement.audit"):
            logging.getLogger(name).setLevel(logging.ERROR)
    report = run_demo(options)
    if args.json:
        print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    else:
        print(report.render())
    return 0 if report.ok else 1
