"""SARIF 2.1.0 output, for code-scanning services and editors.

The document validates against the OASIS schema shipped in
``stateshift/analyze/schemas/sarif-2.1.0.json``. Paths are relative to
``%SRCROOT%`` (the working directory) when they are inside it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from stateshift import __version__
from stateshift.analyze._engine import Report, all_rules
from stateshift.analyze._model import Finding, RuleInfo

SARIF_SCHEMA_URI = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/"
    "sarif-schema-2.1.0.json"
)
SCHEMA_FILE = Path(__file__).with_name("schemas") / "sarif-2.1.0.json"
"""The official schema, shipped so that tests validate without a network."""


def render_sarif(report: Report) -> str:
    """The report as a SARIF 2.1.0 log with one run."""
    rules = list(all_rules())
    index = {rule.rule_id: i for i, rule in enumerate(rules)}
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "stateshift-analyze",
                "semanticVersion": __version__,
                "rules": [_descriptor(rule) for rule in rules],
            }
        },
        "invocations": [{"executionSuccessful": True}],
        "originalUriBaseIds": {
            "%SRCROOT%": {"uri": Path.cwd().resolve().as_uri() + "/"}
        },
        "columnKind": "unicodeCodePoints",
        "results": [_result(f, index[f.rule_id]) for f in report.findings],
    }
    document = {"$schema": SARIF_SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(document, indent=2) + "\n"


def _descriptor(rule: RuleInfo) -> dict[str, Any]:
    markdown = (
        f"**Why:** {rule.why}\n\n**Fix:** {rule.fix}\n\n```python\n{rule.example}\n```"
    )
    return {
        "id": rule.rule_id,
        "name": _pascal(rule.name),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.why},
        "help": {"text": f"{rule.fix}\n\n{rule.example}", "markdown": markdown},
        "defaultConfiguration": {"level": rule.severity.value},
        "properties": {"tags": ["serverless", "state"]},
    }


def _result(finding: Finding, rule_index: int) -> dict[str, Any]:
    location: dict[str, Any] = {"uri": finding.path}
    if not Path(finding.path).is_absolute():
        location["uriBaseId"] = "%SRCROOT%"
    else:
        location = {"uri": Path(finding.path).as_uri()}
    return {
        "ruleId": finding.rule_id,
        "ruleIndex": rule_index,
        "level": finding.severity.value,
        "message": {"text": f"{finding.message}. Fix: {finding.rule.fix}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": location,
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.column,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_column,
                    },
                }
            }
        ],
    }


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))
