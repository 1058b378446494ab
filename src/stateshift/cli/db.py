"""``stateshift db``: upgrade the schema and describe the store."""

from __future__ import annotations

import argparse
import json
from typing import Any

from stateshift.config import load_settings
from stateshift.store import open_store
from stateshift.store.migrate import current_version, latest_version, migrate


def register(subparsers: Any) -> None:
    """Add ``db upgrade``, ``db info`` and ``db copy``."""
    parser = subparsers.add_parser("db", help="manage the store's schema")
    db_commands = parser.add_subparsers(
        dest="db_command", metavar="ACTION", required=True
    )

    upgrade = db_commands.add_parser("upgrade", help="apply pending schema migrations")
    _store_option(upgrade)
    upgrade.set_defaults(func=run_upgrade)

    info = db_commands.add_parser("info", help="backend, schema version, row counts")
    _store_option(info)
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=run_info)

    from stateshift.cli.db_copy import register_copy

    register_copy(db_commands)


def _store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store", help="store URL (default: STATESHIFT_STORE, else ./stateshift.db)"
    )
    parser.add_argument("--schema", help="PostgreSQL schema (default: stateshift)")
    parser.add_argument("--table-prefix", help="prefix of table names")


def _open(args: argparse.Namespace) -> Any:
    settings = load_settings(
        {
            "store": args.store,
            "schema": args.schema,
            "table_prefix": args.table_prefix,
            "auto_migrate": False,
        }
    )
    return open_store(settings)


def run_upgrade(args: argparse.Namespace) -> int:
    """Apply pending migrations and say which."""
    store = _open(args)
    try:
        applied = migrate(store)
    finally:
        store.close()
    if not applied:
        print(f"{store.describe()}: schema is up to date")
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    """Print the backend, schema versions and row counts."""
    store = _open(args)
    try:
        report = describe(store)
    finally:
        store.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"backend:        {report['backend']}")
    print(f"location:       {report['location']}")
    print(
        f"schema version: {report['schema_version']} (code: {report['code_version']})"
    )
    for table, count in report["rows"].items():
        print(f"  {table:<28} {count:>10}")
    return 0


def describe(store: Any) -> dict[str, Any]:
    """Backend, location, schema versions and row count per table."""
    with store.raw_transaction(write=False) as tx:
        tables = store.list_tables(tx)
        version = current_version(tx) if "schema_migrations" in tables else 0
        rows = {
            table: int(tx.fetchone(f"SELECT COUNT(*) FROM {{p}}{table}")[0])
            for table in tables
        }
    return {
        "backend": store.dialect,
        "location": store.describe(),
        "schema_version": version,
        "code_version": latest_version(store.dialect),
        "rows": rows,
    }
