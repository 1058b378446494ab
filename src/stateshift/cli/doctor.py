"""``stateshift doctor``: find (and repair) workflows nothing will wake."""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

from stateshift.cli._appref import add_store_options, open_app


def register(subparsers: Any) -> None:
    """Add ``doctor``."""
    parser = subparsers.add_parser(
        "doctor", help="check that every unfinished workflow can wake up"
    )
    add_store_options(parser)
    parser.add_argument(
        "--repair", action="store_true", help="make stuck workflows due now"
    )
    parser.add_argument(
        "--overdue",
        type=float,
        default=300.0,
        help="report workflows due for longer than this, in seconds",
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.set_defaults(func=run_doctor)


def run_doctor(args: argparse.Namespace) -> int:
    """Print the findings; exit 1 while stuck workflows remain unrepaired."""
    app = open_app(args)
    try:
        report = app.doctor(repair=args.repair, overdue=args.overdue)
    finally:
        app.close()
    unrepaired = [f for f in report.stuck if not f.repaired]
    if args.json:
        findings = [dataclasses.asdict(f) for f in report.findings]
        print(json.dumps({"healthy": not unrepaired, "findings": findings}, indent=2))
        return 1 if unrepaired else 0
    if not report.findings:
        print("every unfinished workflow has a wake-up source")
        return 0
    for finding in report.findings:
        mark = "repaired" if finding.repaired else finding.problem
        print(f"{mark:<22} {finding.workflow_id}  [{finding.status}] {finding.detail}")
    stuck = len(report.stuck)
    print(f"{stuck} stuck, {stuck - len(unrepaired)} repaired")
    return 1 if unrepaired else 0
