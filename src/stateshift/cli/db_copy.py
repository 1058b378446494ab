"""``stateshift db copy SRC DST``: move a whole store to another database."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from stateshift.config import load_settings
from stateshift.migrate.store_copy import DEFAULT_BATCH_ROWS, CopyReport, copy_store
from stateshift.store import Store, open_store


def register_copy(db_commands: Any) -> None:
    """Add ``copy`` to the ``db`` subcommands."""
    parser = db_commands.add_parser(
        "copy",
        help="copy a whole store (workflows in flight included) to another database",
        description=(
            "Copy every stateshift table from SRC to DST, for example from the "
            "embedded SQLite file to PostgreSQL, then compare row counts and "
            "checksums per table. Stop the workers first; point them at DST after."
        ),
    )
    parser.add_argument("source", metavar="SRC", help="the store URL to copy from")
    parser.add_argument("destination", metavar="DST", help="the store URL to copy to")
    parser.add_argument("--src-schema", help="PostgreSQL schema of SRC")
    parser.add_argument("--dst-schema", help="PostgreSQL schema of DST")
    parser.add_argument("--table-prefix", help="prefix of table names (both stores)")
    parser.add_argument(
        "--batch-size", type=int, default=DEFAULT_BATCH_ROWS, help="rows per commit"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="copy into a store that holds rows (same keys are overwritten); "
        "also how to finish an interrupted copy",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.set_defaults(func=run_copy)


def _open(url: str, schema: str | None, prefix: str | None, *, migrate: bool) -> Store:
    settings = load_settings(
        {
            "store": url,
            "schema": schema,
            "table_prefix": prefix,
            "auto_migrate": migrate,
        }
    )
    return open_store(settings)


def run_copy(args: argparse.Namespace) -> int:
    """Copy, verify, print the report; 1 when a table differs."""
    source = _open(args.source, args.src_schema, args.table_prefix, migrate=False)
    destination = _open(
        args.destination, args.dst_schema, args.table_prefix, migrate=True
    )
    started = time.monotonic()
    try:
        report = copy_store(
            source,
            destination,
            batch_rows=args.batch_size,
            force=args.force,
            progress=None if args.quiet else _progress,
        )
    finally:
        source.close()
        destination.close()
    if not args.quiet:
        print(file=sys.stderr)
    _print(report, time.monotonic() - started, as_json=args.json)
    return 0 if report.clean else 1


def _progress(table: str, done: int, total: int) -> None:
    print(f"\r{table}: {done}/{total} rows", end="\x1b[K", file=sys.stderr, flush=True)


def _print(report: CopyReport, seconds: float, *, as_json: bool) -> None:
    if as_json:
        data = {
            "source": report.source,
            "destination": report.destination,
            "seconds": round(seconds, 3),
            "copied": report.copied,
            "clean": report.clean,
            "tables": [vars(table) for table in report.tables],
        }
        print(json.dumps(data, indent=2))
        return
    print(f"copied {report.source} -> {report.destination} in {seconds:.1f} s")
    for table in report.tables:
        state = "ok" if table.matched else "DIFFERS"
        print(
            f"  {table.table:<24} {table.source_rows:>9} -> "
            f"{table.destination_rows:>9}  {state}"
        )
        for kind in ("missing", "different", "extra"):
            for key in getattr(table, kind):
                print(f"    {kind:<9} {key}")
    print("verify: clean" if report.clean else "verify: MISMATCHES")
