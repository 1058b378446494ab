"""``stateshift dev app:app``: the HTTP API, a tick loop and workers, locally."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from stateshift.errors import ConfigError


def register(subparsers: Any) -> None:
    """Add ``dev``."""
    parser = subparsers.add_parser(
        "dev",
        help="serve an app locally: HTTP API, tick loop, workers",
        description=(
            "Serve the HTTP API of an app and run its due work, on its store. "
            "--ephemeral runs every invocation in a fresh process and --chaos "
            "kills some, to show that nothing lives in memory."
        ),
    )
    parser.add_argument("target", help="the app, as module:attribute (app:app)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--workers", type=int, default=2, help="tick loops beside the API"
    )
    parser.add_argument(
        "--tick", type=float, default=1.0, help="longest idle pause, in seconds"
    )
    parser.add_argument(
        "--budget", type=float, default=10.0, help="seconds per invocation"
    )
    parser.add_argument(
        "--ephemeral",
        action="store_true",
        help="run every invocation in a fresh process",
    )
    parser.add_argument(
        "--chaos",
        type=float,
        default=0.0,
        metavar="P",
        help="kill each invocation with probability P (implies --ephemeral)",
    )
    parser.add_argument("--seed", type=int, help="seed of the chaos")
    parser.add_argument(
        "--token",
        default=os.environ.get("STATESHIFT_API_TOKEN") or None,
        help="bearer token for changes (default: STATESHIFT_API_TOKEN; none: open)",
    )
    parser.set_defaults(func=run_dev)


def run_dev(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    try:
        import uvicorn  # noqa: F401
    except ModuleNotFoundError:
        raise ConfigError(
            "dev", "the dev server needs uvicorn: pip install 'stateshift[server]'"
        ) from None
    from stateshift.runtime.dev import DevOptions, DevServer

    options = DevOptions(
        target=args.target,
        host=args.host,
        port=args.port,
        workers=args.workers,
        tick_interval_seconds=args.tick,
        budget_seconds=args.budget,
        ephemeral=args.ephemeral,
        chaos=args.chaos,
        token=args.token,
        seed=args.seed,
    )
    server = DevServer(options)
    mode = "ephemeral" if options.ephemeral or options.chaos else "in-process"
    print(
        f"stateshift dev: http://{options.host}:{options.port} ({mode}, "
        f"{options.workers} workers, chaos {options.chaos})",
        file=sys.stderr,
    )
    server.serve()
    return 0
