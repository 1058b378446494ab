"""Readable text and JSON renderings of a report."""

from __future__ import annotations

import json
import textwrap
from itertools import groupby
from typing import Any

from stateshift import __version__
from stateshift.analyze._engine import Report
from stateshift.analyze._model import Finding, RuleInfo, Severity

JSON_FORMAT_VERSION = 1


def render_text(report: Report) -> str:
    """Findings grouped by file, then what each rule found means."""
    out: list[str] = []
    for path, group in groupby(report.findings, key=lambda f: f.path):
        out.append(path)
        for finding in group:
            out.append(
                f"  {finding.line}:{finding.column}  {finding.severity.value:<7}  "
                f"{finding.rule_id}  {finding.message}"
            )
        out.append("")

    rules = _rules_found(report.findings)
    if rules:
        out.append("What the findings mean and how to fix them:")
        out.append("")
    for rule in rules:
        out.append(f"{rule.rule_id} {rule.name}: {rule.title}")
        out.extend(
            textwrap.wrap(
                rule.why, 84, initial_indent="  why: ", subsequent_indent="       "
            )
        )
        out.extend(
            textwrap.wrap(
                rule.fix, 84, initial_indent="  fix: ", subsequent_indent="       "
            )
        )
        out.extend("    " + line for line in rule.example.splitlines())
        out.append("")

    out.append(_summary_line(report))
    return "\n".join(out) + "\n"


def _summary_line(report: Report) -> str:
    counts = {s: 0 for s in Severity}
    for finding in report.findings:
        counts[finding.severity] += 1
    files = report.files_checked
    if not report.findings:
        return f"No findings in {files} file{'s' if files != 1 else ''}."
    parts = [
        f"{counts[s]} {s.value}{'s' if counts[s] != 1 else ''}"
        for s in (Severity.ERROR, Severity.WARNING, Severity.NOTE)
        if counts[s]
    ]
    total = len(report.findings)
    return (
        f"{total} finding{'s' if total != 1 else ''} ({', '.join(parts)}) "
        f"in {files} file{'s' if files != 1 else ''}."
    )


def _rules_found(findings: tuple[Finding, ...]) -> list[RuleInfo]:
    by_id = {f.rule_id: f.rule for f in findings}
    return [by_id[rule_id] for rule_id in sorted(by_id)]


def rule_dict(rule: RuleInfo) -> dict[str, Any]:
    """A rule's description as plain data."""
    return {
        "id": rule.rule_id,
        "name": rule.name,
        "title": rule.title,
        "severity": rule.severity.value,
        "why": rule.why,
        "fix": rule.fix,
        "example": rule.example,
    }


def render_json(report: Report) -> str:
    """The report as a JSON document (format version ``JSON_FORMAT_VERSION``)."""
    counts = {s.value: 0 for s in Severity}
    for finding in report.findings:
        counts[finding.severity.value] += 1
    document = {
        "version": JSON_FORMAT_VERSION,
        "tool": {"name": "stateshift", "version": __version__},
        "summary": {
            "files_checked": report.files_checked,
            "findings": len(report.findings),
            "by_severity": counts,
            "failed": report.failed,
        },
        "findings": [
            {
                "rule_id": f.rule_id,
                "severity": f.severity.value,
                "path": f.path,
                "line": f.line,
                "column": f.column,
                "end_line": f.end_line,
                "end_column": f.end_column,
                "message": f.message,
                "title": f.rule.title,
                "why": f.rule.why,
                "fix": f.rule.fix,
                "example": f.rule.example,
            }
            for f in report.findings
        ],
        "rules": [rule_dict(rule) for rule in _rules_found(report.findings)],
    }
    return json.dumps(document, indent=2) + "\n"
