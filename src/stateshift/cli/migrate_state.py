"""``stateshift migrate-state``: backfill a namespace from a legacy source."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from typing import Any

from stateshift.migrate.backfill import (
    DEFAULT_BATCH_SIZE,
    EXISTING_CHOICES,
    Backfill,
    Counts,
    backfill_worker_id,
    dry_run,
    run_backfill,
)
from stateshift.migrate.sources import SourceSpec, open_source
from stateshift.migrate.verify import verify_backfill


def register(subparsers: Any) -> None:
    """Add ``migrate-state``."""
    parser = subparsers.add_parser(
        "migrate-state",
        help="copy state from a legacy source into a namespace, resumably, verified",
        description=(
            "Copy records from a JSON Lines or CSV file, a SQL table or query, or "
            "a Redis keyspace into a namespace, as a durable workflow: run it "
            "again with the same --id after a crash and it continues where it "
            "stopped. Then verify counts and per-item checksums."
        ),
    )
    parser.add_argument(
        "source",
        help="a .jsonl/.csv file, sqlite:///legacy.db, postgresql://..., redis://...",
    )
    parser.add_argument("--namespace", required=True, help="the target namespace")
    parser.add_argument(
        "--store",
        help="target store URL (default: STATESHIFT_STORE, else ./stateshift.db)",
    )
    parser.add_argument("--schema", help="PostgreSQL schema of the target store")
    parser.add_argument("--table-prefix", help="prefix of the target store's tables")

    parser.add_argument("--key-field", help="field or column holding each key")
    parser.add_argument("--table", help="SQL: the table to copy")
    parser.add_argument("--query", help="SQL: a query to copy instead of a table")
    parser.add_argument("--match", help="Redis: key pattern, like 'legacy:cart:*'")
    parser.add_argument("--format", choices=("jsonl", "csv"), help="file format")
    parser.add_argument(
        "--redis-values",
        choices=("auto", "json", "text"),
        default="auto",
        help="Redis strings: JSON when they parse (auto), always JSON, or text",
    )
    parser.add_argument(
        "--transform", help="module:function mapping a record to (key, value) or None"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help="records per checkpointed step",
    )
    parser.add_argument(
        "--existing",
        choices=EXISTING_CHOICES,
        default="overwrite",
        help="an item that already holds another value: overwrite or keep it",
    )
    parser.add_argument(
        "--id",
        dest="backfill_id",
        help="the backfill's workflow id (default: derived from the options); "
        "the same id resumes",
    )

    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", action="store_true", help="read and transform, write nothing"
    )
    mode.add_argument(
        "--verify-only", action="store_true", help="only compare source and namespace"
    )
    mode.add_argument(
        "--no-verify", action="store_true", help="skip the verification pass"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON report")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the backfill, then the verification pass; 1 on any mismatch."""
    # A --transform module next to the caller must import as with python -m.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    plan = Backfill(
        SourceSpec(
            url=args.source,
            key_field=args.key_field,
            table=args.table,
            query=args.query,
            match=args.match,
            format=args.format,
            redis_values=args.redis_values,
        ),
        args.namespace,
        batch_size=args.batch_size,
        transform=args.transform,
        existing=args.existing,
    )
    backfill_id = args.backfill_id or default_id(plan)
    app = _open_app(args, backfill_id)
    report: dict[str, Any] = {"id": backfill_id, "namespace": plan.namespace}
    try:
        progress = None if args.quiet else _Progress(_total(plan))
        if args.dry_run:
            counts = dry_run(app, plan, progress=progress)
            _end_line(progress)
            report["dry_run"] = counts.as_dict()
        elif not args.verify_only:
            started = time.monotonic()
            counts = run_backfill(app, plan, workflow_id=backfill_id, progress=progress)
            _end_line(progress)
            report["backfill"] = counts.as_dict()
            report["seconds"] = round(time.monotonic() - started, 3)
        clean = True
        if not (args.dry_run or args.no_verify):
            verified = verify_backfill(app, plan)
            report["verify"] = verified.as_dict()
            clean = verified.clean
    finally:
        app.close()

    _print(report, as_json=args.json)
    return 0 if clean else 1


def default_id(plan: Backfill) -> str:
    """An id derived from the options: the same command resumes the same run."""
    text = json.dumps(plan.to_input(), sort_keys=True)
    return f"backfill-{plan.namespace}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def _open_app(args: argparse.Namespace, backfill_id: str) -> Any:
    from stateshift.app import App

    settings: dict[str, Any] = {"worker_id": backfill_worker_id(backfill_id)}
    for name in ("schema", "table_prefix"):
        if getattr(args, name):
            settings[name] = getattr(args, name)
    if args.dry_run or args.verify_only:
        # Looking must not create the target's schema.
        settings["auto_migrate"] = False
    return App(args.store, **settings)


def _total(plan: Backfill) -> int | None:
    source = open_source(plan.source)
    try:
        return source.count()
    finally:
        source.close()


def _print(report: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    for part in ("dry_run", "backfill"):
        counts = report.get(part)
        if counts is not None:
            label = "dry run" if part == "dry_run" else "backfill"
            verb = "would write" if part == "dry_run" else "wrote"
            seconds = f" in {report['seconds']} s" if "seconds" in report else ""
            print(
                f"{label} {report['id']}: read {counts['read']}, {verb} "
                f"{counts['written']}, unchanged {counts['unchanged']}, kept "
                f"{counts['kept']}, skipped {counts['skipped']}{seconds}"
            )
    verified = report.get("verify")
    if verified is not None:
        print(
            f"verify {report['namespace']}: {verified['matched']} matched of "
            f"{verified['source_items']} source items, "
            f"{verified['namespace_items']} in the namespace"
        )
        for kind in ("missing", "different", "extra"):
            for key in verified[kind]:
                print(f"  {kind:<9} {key}")
        print("verify: clean" if verified["clean"] else "verify: MISMATCHES")


class _Progress:
    """``[####....] read/total records`` on standard error, 10 redraws/s at most."""

    def __init__(self, total: int | None, width: int = 30) -> None:
        self.total = total
        self.width = width
        self._last = 0.0
        self.drawn = False

    def __call__(self, counts: Counts) -> None:
        now = time.monotonic()
        finished = self.total is not None and counts.read >= self.total
        if not finished and now - self._last < 0.1:
            return
        self._last = now
        self.drawn = True
        if self.total:
            filled = min(self.width, self.width * counts.read // self.total)
            bar = "#" * filled + "." * (self.width - filled)
            head = f"[{bar}] {counts.read}/{self.total}"
        else:
            head = f"{counts.read}"
        print(
            f"\r{head} records, {counts.written} written",
            end="",
            file=sys.stderr,
            flush=True,
        )


def _end_line(progress: _Progress | None) -> None:
    if progress is not None and progress.drawn:
        print(file=sys.stderr)
