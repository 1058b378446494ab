"""Entry point of the ``stateshift`` command.

Each subcommand lives in its own module under :mod:`stateshift.cli` and
exposes ``register(subparsers)``, which adds its parser and sets
``func(args) -> int`` as the default. Modules are imported only when the
command line is parsed, so ``import stateshift`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from stateshift import __version__
from stateshift.errors import StateshiftError

# Subcommand modules, in the order ``--help`` lists them.
COMMAND_MODULES = (
    "stateshift.cli.db",
    "stateshift.cli.queues",
    "stateshift.cli.analyze",
    "stateshift.cli.residency",
    "stateshift.cli.shards",
    "stateshift.cli.workflows",
    "stateshift.cli.worker",
    "stateshift.cli.doctor",
    "stateshift.cli.demo",
    "stateshift.cli.dev",
    "stateshift.cli.migrate_state",
)

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every subcommand that can be imported."""
    parser = argparse.ArgumentParser(
        prog="stateshift",
        description="Move stateful services onto serverless compute safely.",
    )
    parser.add_argument(
        "--version", action="version", version=f"stateshift {__version__}"
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log debug messages"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return int(func(args) or 0)
    except StateshiftError as exc:
        print(f"stateshift: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
