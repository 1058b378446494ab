"""``stateshift residency``: the audit log of violations, and the residency proof."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from typing import Any

from stateshift.config import load_settings
from stateshift.errors import ConfigError
from stateshift.placement.checker import check_residency
from stateshift.placement.router import Placement


def register(subparsers: Any) -> None:
    """Add ``residency audit`` and ``residency check``."""
    parser = subparsers.add_parser(
        "residency", help="data residency: audit log and proof"
    )
    actions = parser.add_subparsers(dest="residency_command", metavar="ACTION")
    actions.required = True

    audit = actions.add_parser("audit", help="list refused operations")
    placement_options(audit)
    audit.add_argument(
        "--since", type=float, default=None, help="only the last SECONDS seconds"
    )
    audit.add_argument("--limit", type=int, default=1000, help="at most N records")
    audit.add_argument("--json", action="store_true", help="print JSON lines")
    audit.set_defaults(func=run_audit)

    check = actions.add_parser(
        "check", help="scan every shard: no row lives outside its allowed regions"
    )
    placement_options(check)
    check.add_argument("--json", action="store_true", help="print JSON")
    check.set_defaults(func=run_check)


def placement_options(parser: argparse.ArgumentParser) -> None:
    """Options naming the regions and shards (else ``[regions]`` of the toml)."""
    parser.add_argument(
        "--shard",
        action="append",
        metavar="REGION=URL",
        help="a shard of a region (repeat; default: [regions] of stateshift.toml)",
    )
    parser.add_argument("--region", help="the region this command runs in")
    parser.add_argument("--schema", help="PostgreSQL schema (default: stateshift)")


def open_placement(args: argparse.Namespace) -> Placement:
    """The placement described by the command line and ``stateshift.toml``."""
    settings = load_settings({"schema": args.schema})
    regions: dict[str, list[str]] | None = None
    if args.shard:
        regions = {}
        for entry in args.shard:
            name, sep, url = entry.partition("=")
            if not sep or not url:
                raise ConfigError("--shard", f"{entry!r} is not REGION=URL")
            regions.setdefault(name.strip(), []).append(url.strip())
    configured = regions or settings.extra.get("regions") or None
    region = args.region
    if region is None and configured:
        region = next(iter(configured))
    return Placement(settings, regions=configured, region=region)


def run_audit(args: argparse.Namespace) -> int:
    """Print the audit records of every region, oldest first."""
    placement = open_placement(args)
    try:
        since = 0.0 if args.since is None else time.time() - args.since
        records = placement.audit_log.records(since=since, limit=args.limit)
    finally:
        placement.close()
    for record in records:
        if args.json:
            print(json.dumps(asdict(record)))
            continue
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.at))
        target = f" -> {record.target_region}" if record.target_region else ""
        print(
            f"{stamp}  {record.operation:<10} {record.tag:<8} key={record.key!r} "
            f"from={record.region}{target}  (logged in {record.home_region})"
        )
    if not records and not args.json:
        print("no residency violations recorded", file=sys.stderr)
    return 0


def run_check(args: argparse.Namespace) -> int:
    """Scan every shard; exit 1 when a row lives where its tag forbids."""
    placement = open_placement(args)
    try:
        report = check_residency(placement)
    finally:
        placement.close()
    if args.json:
        payload = {
            "ok": report.ok,
            "shards": report.shards,
            "rows": report.rows,
            "tables": report.tables,
            "findings": [asdict(finding) for finding in report.findings],
        }
        print(json.dumps(payload, indent=2))
        return 0 if report.ok else 1
    for finding in report.findings:
        print(
            f"OUT OF PLACE  {finding.region}/{finding.shard_id}  {finding.table} "
            f"{finding.row_key!r}: {finding.problem}"
        )
    verdict = "ok" if report.ok else f"{len(report.findings)} rows out of place"
    print(f"scanned {report.rows} rows in {report.shards} shards: {verdict}")
    return 0 if report.ok else 1
