"""``stateshift worker APP`` and ``stateshift tick APP``: run due work."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stateshift.cli._appref import add_store_options, open_app
from stateshift.workflows.telemetry import install_log_filter


def register(subparsers: Any) -> None:
    """Add ``worker`` and ``tick``."""
    worker = subparsers.add_parser(
        "worker", help="run due work until SIGTERM (a loop of ticks)"
    )
    add_store_options(worker, app_required=True)
    worker.add_argument(
        "--concurrency", type=int, default=1, help="workflows run at once"
    )
    worker.add_argument(
        "--max-sleep",
        type=float,
        default=1.0,
        help="longest idle sleep between looks, in seconds",
    )
    worker.add_argument(
        "--shutdown-timeout",
        type=float,
        default=30.0,
        help="how long a stop waits for steps in flight, in seconds",
    )
    worker.set_defaults(func=run_worker)

    tick = subparsers.add_parser("tick", help="run due work within a time budget")
    add_store_options(tick, app_required=True)
    tick.add_argument(
        "--budget", type=float, default=10.0, help="time budget in seconds"
    )
    tick.add_argument("--json", action="store_true", help="print JSON")
    tick.set_defaults(func=run_tick)


def run_worker(args: argparse.Namespace) -> int:
    """Run the worker; exit 0 after a graceful stop."""
    install_log_filter()
    app = open_app(args)
    try:
        app.worker(
            concurrency=args.concurrency,
            max_sleep=args.max_sleep,
            shutdown_timeout=args.shutdown_timeout,
        )
    finally:
        app.close()
    return 0


def run_tick(args: argparse.Namespace) -> int:
    """Run one tick and print what it did."""
    app = open_app(args)
    try:
        summary = app.tick(budget=args.budget)
    finally:
        app.close()
    if args.json:
        print(json.dumps(summary.__dict__))
        return 0
    print(
        f"ran {summary.ran} (finished {summary.finished}, waiting "
        f"{summary.suspended}, handed back {summary.released}); next wake-up: "
        f"{summary.next_wake_at if summary.next_wake_at is not None else 'none'}"
    )
    return 0
