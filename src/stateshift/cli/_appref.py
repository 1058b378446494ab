"""Finding the app a command works on: ``--app module:attr`` or ``--store URL``.

Commands that run workflow code (``worker``, ``tick``) need the app itself,
named like ``shop.app:app``; the module is imported with the working
directory on ``sys.path``, as ``python -m`` would. Commands that only look
at or steer rows (``workflows``, ``doctor``) can make do with a store URL.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

from stateshift.errors import ConfigError

if TYPE_CHECKING:
    from stateshift.app import App

__all__ = ["add_store_options", "load_app", "open_app"]


def load_app(reference: str) -> App:
    """Import ``module:attr`` (``attr`` may be dotted) and return the app.

    Raises:
        ConfigError: the reference is malformed, or names no app.
    """
    from stateshift.app import App

    module_name, _, attribute = reference.partition(":")
    if not module_name or not attribute:
        raise ConfigError(
            "app", f"{reference!r}: name the app as module:attribute (shop.app:app)"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        found: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module_name.startswith(exc.name):
            raise ConfigError(
                "app", f"no module named {exc.name!r} (from {reference!r})"
            ) from None
        raise
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ConfigError(
                "app", f"module {module_name!r} has no attribute {attribute!r}"
            ) from None
    if not isinstance(found, App):
        raise ConfigError(
            "app", f"{reference!r} is a {type(found).__name__}, not a stateshift.App"
        )
    return found


def add_store_options(
    parser: argparse.ArgumentParser, *, app_required: bool = False
) -> None:
    """Add ``--app`` (or a positional ``APP``) and the store options."""
    if app_required:
        parser.add_argument("app", metavar="APP", help="the app, as module:attribute")
    else:
        parser.add_argument(
            "--app", help="the app, as module:attribute (instead of --store)"
        )
    parser.add_argument(
        "--store", help="store URL (default: STATESHIFT_STORE, else ./stateshift.db)"
    )
    parser.add_argument("--schema", help="PostgreSQL schema (default: stateshift)")
    parser.add_argument("--table-prefix", help="prefix of table names")


def open_app(args: argparse.Namespace) -> App:
    """The app named by ``--app``, or one on ``--store`` without code."""
    from stateshift.app import App

    if getattr(args, "app", None):
        if args.store or args.schema or args.table_prefix:
            raise ConfigError(
                "store", "give either the app or --store/--schema/--table-prefix"
            )
        return load_app(args.app)
    return App(store=args.store, schema=args.schema, table_prefix=args.table_prefix)
