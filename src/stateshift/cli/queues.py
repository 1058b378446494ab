"""``stateshift queues``: list queues, show one, redrive dead messages."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stateshift.cli.db import _store_option
from stateshift.config import load_settings
from stateshift.events.queues import dead_messages, queue_counts, redrive
from stateshift.store import Store, open_store

STATUSES = ("ready", "in_flight", "done", "dead")


def register(subparsers: Any) -> None:
    """Add ``queues list``, ``queues show NAME`` and ``queues redrive NAME``."""
    parser = subparsers.add_parser("queues", help="inspect durable queues")
    actions = parser.add_subparsers(
        dest="queues_command", metavar="ACTION", required=True
    )

    listing = actions.add_parser("list", help="every queue with its message counts")
    _store_option(listing)
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", help="one queue: counts and dead messages")
    _store_option(show)
    show.add_argument("name", help="the queue")
    show.add_argument("--limit", type=int, default=20, help="dead messages to show")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    again = actions.add_parser("redrive", help="send dead messages back to ready")
    _store_option(again)
    again.add_argument("name", help="the queue")
    again.add_argument("--id", help="only this message")
    again.set_defaults(func=run_redrive)


def _open(args: argparse.Namespace) -> Store:
    settings = load_settings(
        {"store": args.store, "schema": args.schema, "table_prefix": args.table_prefix}
    )
    return open_store(settings)


def run_list(args: argparse.Namespace) -> int:
    """Print each queue and its messages per status."""
    store = _open(args)
    try:
        counts = queue_counts(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(counts, indent=2, sort_keys=True))
        return 0
    if not counts:
        print("no queue has messages")
        return 0
    print(f"{'queue':<30}" + "".join(f"{s:>11}" for s in STATUSES))
    for name, by_status in counts.items():
        print(f"{name:<30}" + "".join(f"{by_status.get(s, 0):>11}" for s in STATUSES))
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one queue's counts and its dead messages with their last error."""
    store = _open(args)
    try:
        counts = queue_counts(store).get(args.name, {})
        dead = dead_messages(store, args.name, args.limit)
    finally:
        store.close()
    if args.json:
        print(
            json.dumps({"queue": args.name, "counts": counts, "dead": dead}, indent=2)
        )
        return 0
    print(f"queue {args.name}")
    for status in STATUSES:
        print(f"  {status:<10} {counts.get(status, 0):>10}")
    if dead:
        print("dead messages (oldest first):")
    for message in dead:
        print(
            f"  {message['id']}  {message['task']}  attempts={message['attempts']}"
            f"  key={message['key']}\n    {message['last_error']}"
        )
    return 0


def run_redrive(args: argparse.Namespace) -> int:
    """Move dead messages back to ``ready`` with fresh attempts."""
    store = _open(args)
    try:
        moved = redrive(store, args.name, args.id)
    finally:
        store.close()
    print(f"redrove {moved} message{'s' if moved != 1 else ''} of queue {args.name}")
    return 0 if moved or args.id is None else 1
