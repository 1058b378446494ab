"""``stateshift workflows``: list, show, cancel, resume, send-event."""

from __future__ import annotations

import argparse
import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

from stateshift.cli._appref import add_store_options, open_app
from stateshift.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add ``workflows`` and its actions."""
    parser = subparsers.add_parser("workflows", help="look at and steer workflows")
    actions = parser.add_subparsers(dest="workflows_command", metavar="ACTION")
    actions.required = True

    listing = actions.add_parser("list", help="workflows, newest first")
    add_store_options(listing)
    listing.add_argument("--status", action="append", help="filter (repeatable)")
    listing.add_argument("--name", help="only workflows of this name")
    listing.add_argument("--parent", help="only children of this workflow")
    listing.add_argument("--limit", type=int, default=50, help="most rows shown")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    show = actions.add_parser("show", help="one workflow with its steps")
    add_store_options(show)
    show.add_argument("workflow_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_show)

    cancel = actions.add_parser("cancel", help="cancel a workflow and its children")
    add_store_options(cancel)
    cancel.add_argument("workflow_id", metavar="ID")
    cancel.set_defaults(func=run_cancel)

    resume = actions.add_parser(
        "resume", help="run a dead, blocked or compensation-failed workflow again"
    )
    add_store_options(resume)
    resume.add_argument("workflow_id", metavar="ID")
    resume.set_defaults(func=run_resume)

    send = actions.add_parser("send-event", help="send an event to a workflow")
    add_store_options(send)
    send.add_argument("workflow_id", metavar="ID")
    send.add_argument("name", metavar="NAME")
    send.add_argument("payload", metavar="PAYLOAD_JSON", nargs="?", default="null")
    send.add_argument("--event-id", help="drop the event if this id was seen")
    send.set_defaults(func=run_send_event)


def when(epoch_seconds: float | None) -> str:
    """An epoch time as readable UTC, or ``-``."""
    if epoch_seconds is None:
        return "-"
    moment = datetime.fromtimestamp(epoch_seconds, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def run_list(args: argparse.Namespace) -> int:
    """Print a table (or JSON) of workflows."""
    app = open_app(args)
    try:
        rows = app.list_workflows(
            status=args.status, name=args.name, parent_id=args.parent, limit=args.limit
        )
    finally:
        app.close()
    if args.json:
        print(json.dumps([_plain(dataclasses.asdict(r)) for r in rows], indent=2))
        return 0
    if not rows:
        print("no workflows")
        return 0
    print(f"{'WORKFLOW ID':<40} {'STATUS':<20} {'NAME':<30} {'CREATED (UTC)':<19}")
    for row in rows:
        print(
            f"{row.workflow_id:<40} {row.status.value:<20} {row.name:<30} "
            f"{when(row.created_at):<19}"
        )
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Print one workflow: status, what it waits for, steps, result or error."""
    app = open_app(args)
    try:
        info = app.status(args.workflow_id)
    finally:
        app.close()
    if args.json:
        print(json.dumps(_plain(dataclasses.asdict(info)), indent=2))
        return 0
    print(f"workflow:  {info.workflow_id}")
    print(f"name:      {info.name}")
    print(f"status:    {info.status.value}")
    if info.waiting_for:
        print(f"waits for: {info.waiting_for}")
    if info.due_at is not None:
        print(f"due at:    {when(info.due_at)} UTC")
    print(f"created:   {when(info.created_at)} UTC")
    print(f"updated:   {when(info.updated_at)} UTC")
    if info.finished_at is not None:
        print(f"finished:  {when(info.finished_at)} UTC")
    if info.parent_id:
        print(f"parent:    {info.parent_id}")
    if info.recoveries:
        print(f"recovered: {info.recoveries} time(s) from crashed workers")
    if info.steps:
        print("steps:")
        for step in info.steps:
            took = ""
            if step.started_at is not None and step.finished_at is not None:
                took = f" {1000 * (step.finished_at - step.started_at):.1f} ms"
            line = (
                f"  {step.seq:>4} {step.kind:<6} {step.name:<30} {step.status:<9} "
                f"attempts={step.attempts}{took}"
            )
            if step.error is not None:
                line += f"  {step.error.type}: {step.error.message}"
            print(line)
    if info.status.value == "succeeded":
        print(f"result:    {json.dumps(info.result, default=str)}")
    if info.error is not None:
        print(f"error:     {info.error.type}: {info.error.message}")
    return 0


def run_cancel(args: argparse.Namespace) -> int:
    """Cancel; exit 1 when the workflow had already ended."""
    app = open_app(args)
    try:
        cancelled = app.cancel(args.workflow_id)
    finally:
        app.close()
    print("cancel requested" if cancelled else "already finished: nothing to cancel")
    return 0 if cancelled else 1


def run_resume(args: argparse.Namespace) -> int:
    """Resume; exit 1 when the workflow was not dead, blocked or parked."""
    app = open_app(args)
    try:
        resumed = app.resume(args.workflow_id)
    finally:
        app.close()
    print("resumed: due now" if resumed else "not dead, blocked or compensation-failed")
    return 0 if resumed else 1


def run_send_event(args: argparse.Namespace) -> int:
    """Send; exit 1 when nothing was delivered."""
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise ConfigError("payload", f"not valid JSON: {exc}") from None
    app = open_app(args)
    try:
        delivery = app.send_event(
            args.workflow_id, args.name, payload, event_id=args.event_id
        )
    finally:
        app.close()
    print(
        f"{'delivered' if delivery.delivered else 'not delivered'}: {delivery.reason}"
    )
    return 0 if delivery.delivered else 1
