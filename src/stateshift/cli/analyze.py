"""``stateshift analyze``: report state hazards in a Python codebase.

Exit status: 0 when no finding reaches the ``--fail-on`` severity, 1 when
one does, 2 for a usage error (a path that does not exist, a bad option
or configuration).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from stateshift.analyze import (
    FORMATS,
    AnalyzeConfig,
    all_rules,
    analyze_paths,
    find_pyproject,
    load_config,
    render,
)
from stateshift.errors import ConfigError

USAGE_ERROR = 2


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    parser = subparsers.add_parser(
        "analyze",
        help="find what breaks when this code runs on serverless compute",
        description=(
            "Read Python code (without running it) and report state that "
            "breaks or misbehaves on serverless compute, with the stateshift "
            "pattern that fixes each finding."
        ),
    )
    parser.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        type=Path,
        help="files or directories to check",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="output format (default: text)",
    )
    parser.add_argument(
        "--output",
        "-o",
        type=Path,
        metavar="FILE",
        help="write the report to FILE instead of standard output",
    )
    parser.add_argument(
        "--fail-on",
        choices=("error", "warning", "note", "never"),
        help="lowest severity that makes the exit status 1 (default: error)",
    )
    parser.add_argument(
        "--select",
        action="append",
        default=[],
        metavar="RULES",
        help="only these rule ids or prefixes, comma separated",
    )
    parser.add_argument(
        "--ignore",
        action="append",
        default=[],
        metavar="RULES",
        help="skip these rule ids or prefixes, comma separated",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="PYPROJECT",
        help="pyproject.toml to read [tool.stateshift.analyze] from "
        "(default: the nearest one above the first PATH)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Check the paths, write the report, return the exit status."""
    try:
        config = _config(args)
    except ConfigError as exc:
        return _usage_error(str(exc))
    missing = [str(p) for p in args.paths if not p.exists()]
    if missing:
        return _usage_error(f"no such file or directory: {', '.join(missing)}")

    report = analyze_paths(args.paths, config)
    text = render(report, args.format)
    if args.output is None:
        sys.stdout.write(text)
    else:
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:
            return _usage_error(f"cannot write {args.output}: {exc}")
    return 1 if report.failed else 0


def _config(args: argparse.Namespace) -> AnalyzeConfig:
    if args.config is not None and not args.config.is_file():
        raise ConfigError("--config", f"no such file: {args.config}")
    pyproject = args.config or find_pyproject(args.paths[0])
    config = load_config(pyproject)
    select = _rule_list(args.select, "--select")
    ignore = _rule_list(args.ignore, "--ignore")
    return config.with_command_line(select=select, ignore=ignore, fail_on=args.fail_on)


def _rule_list(values: list[str], option: str) -> list[str]:
    known = [rule.rule_id for rule in all_rules()]
    rules = [
        v.strip().upper() for value in values for v in value.split(",") if v.strip()
    ]
    for rule in rules:
        if not any(rule_id.startswith(rule) for rule_id in known):
            raise ConfigError(option, f"no rule id starts with {rule!r}")
    return rules


def _usage_error(message: str) -> int:
    print(f"stateshift analyze: error: {message}", file=sys.stderr)
    return USAGE_ERROR
