"""Text, JSON and SARIF renderings; SARIF validates against the OASIS schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from stateshift.analyze import (
    SCHEMA_FILE,
    AnalyzeConfig,
    Report,
    all_rules,
    analyze_paths,
    render,
)

SOURCE = """\
import time
CARTS = {}
def add(user, sku):
    CARTS[user] = [sku]
def later():
    time.sleep(600)
"""


@pytest.fixture
def report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Report:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "cart.py").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "pkg" / "broken.py").write_text("def f(:\n", encoding="utf-8")
    (tmp_path / "pkg" / "clean.py").write_text("X = 1\n", encoding="utf-8")
    return analyze_paths([Path("pkg")], AnalyzeConfig())


def test_text_groups_findings_by_file_and_explains_rules(report: Report) -> None:
    text = render(report, "text")
    lines = text.splitlines()
    assert lines[0] == "pkg/broken.py"
    assert lines[1].split()[:3] == ["1:7", "error", "SS000"]
    assert "pkg/cart.py" in lines
    assert any(line.split()[:3] == ["4:5", "error", "SS101"] for line in lines)
    assert any(line.split()[:3] == ["6:5", "warning", "SS204"] for line in lines)
    assert "SS101 module-state-mutated:" in text and "  fix: " in text
    assert lines[-1] == "3 findings (2 errors, 1 warning) in 3 files."


def test_text_without_findings(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("X = 1\n", encoding="utf-8")
    text = render(analyze_paths([tmp_path], AnalyzeConfig()), "text")
    assert text == "No findings in 1 file.\n"


def test_json_document(report: Report) -> None:
    document = json.loads(render(report, "json"))
    assert document["version"] == 1
    assert document["summary"]["by_severity"] == {"note": 0, "warning": 1, "error": 2}
    assert document["summary"]["failed"] is True
    first = next(f for f in document["findings"] if f["rule_id"] == "SS101")
    assert (first["path"], first["line"], first["column"]) == ("pkg/cart.py", 4, 5)
    assert first["why"] and first["fix"] and first["example"]
    assert {r["id"] for r in document["rules"]} == {"SS000", "SS101", "SS204"}


def test_sarif_is_valid_against_the_official_schema(report: Report) -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = json.loads(render(report, "sarif"))
    jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)

    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.rule_id for r in all_rules()]
    result = next(r for r in run["results"] if r["ruleId"] == "SS101")
    assert rules[result["ruleIndex"]]["id"] == "SS101"
    assert result["level"] == "error"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {
        "uri": "pkg/cart.py",
        "uriBaseId": "%SRCROOT%",
    }
    assert location["region"]["startLine"] == 4
    assert location["region"]["startColumn"] == 5


def test_sarif_schema_rejects_a_broken_log() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    broken = {"version": "2.1.0", "runs": [{"results": []}]}  # no tool
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema, cls=jsonschema.Draft4Validator)


def test_unknown_format_is_refused(report: Report) -> None:
    with pytest.raises(ValueError, match="unknown format"):
        render(report, "xml")


def test_importing_the_analyzer_loads_only_the_standard_library() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import stateshift.analyze, stateshift.cli.analyze\n"
        "names = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "print('\\n'.join(sorted(names - set(sys.stdlib_module_names))))\n"
    )
    src = Path(__file__).resolve().parents[2] / "src"
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(src)},
        check=True,
    )
    assert set(result.stdout.split()) <= {"stateshift", "__main__"}


def test_docs_describe_every_rule() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "analyzer.md"
    text = docs.read_text(encoding="utf-8")
    for rule in all_rules():
        assert f"### {rule.rule_id} " in text, rule.rule_id
