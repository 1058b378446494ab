"""The migration analyzer: finds what breaks when a service moves to serverless.

It reads Python source with :mod:`ast` and runs nothing. Each finding names
a rule (``SS101``...), a place, a severity, why it matters and which
stateshift pattern fixes it. Only the standard library is imported here.

Example::

    from pathlib import Path
    from stateshift.analyze import AnalyzeConfig, analyze_paths, render

    report = analyze_paths([Path("src")], AnalyzeConfig())
    print(render(report, "text"))
"""

from __future__ import annotations

from stateshift.analyze._config import AnalyzeConfig, find_pyproject, load_config
from stateshift.analyze._context import Options
from stateshift.analyze._engine import Report, all_rules, analyze_paths, analyze_source
from stateshift.analyze._formats import render_json, render_text
from stateshift.analyze._model import Finding, RuleInfo, Severity
from stateshift.analyze._sarif import SCHEMA_FILE, render_sarif

FORMATS = ("text", "json", "sarif")
"""Output formats :func:`render` accepts."""


def render(report: Report, output_format: str) -> str:
    """Render a report as ``text``, ``json`` or ``sarif``.

    Raises:
        ValueError: for any other format.
    """
    if output_format == "text":
        return render_text(report)
    if output_format == "json":
        return render_json(report)
    if output_format == "sarif":
        return render_sarif(report)
    raise ValueError(f"unknown format {output_format!r}; use one of {FORMATS}")


__all__ = [
    "FORMATS",
    "SCHEMA_FILE",
    "AnalyzeConfig",
    "Finding",
    "Options",
    "Report",
    "RuleInfo",
    "Severity",
    "all_rules",
    "analyze_paths",
    "analyze_source",
    "find_pyproject",
    "load_config",
    "render",
    "render_json",
    "render_sarif",
    "render_text",
]
