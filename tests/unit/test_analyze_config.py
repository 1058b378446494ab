"""Settings from pyproject.toml, command-line overrides and suppression comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateshift.analyze import (
    AnalyzeConfig,
    Severity,
    analyze_paths,
    analyze_source,
    load_config,
)
from stateshift.errors import ConfigError

HAZARDS = """\
import time
CARTS = {}
def add(user, sku):
    CARTS[user] = [sku]
def later():
    time.sleep(600)
"""


def write_project(tmp_path: Path, table: str) -> Path:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(f"[tool.stateshift.analyze]\n{table}\n", encoding="utf-8")
    return pyproject


def ids(findings: object) -> list[str]:
    return [f.rule_id for f in findings]  # type: ignore[attr-defined]


def test_defaults_without_a_table(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\nname = 'x'\n", encoding="utf-8")
    config = load_config(pyproject)
    assert config.fail_on is Severity.ERROR
    assert config.enabled("SS101") and not config.select


def test_select_ignore_and_prefixes(tmp_path: Path) -> None:
    config = load_config(
        write_project(tmp_path, 'select = ["SS1", "SS2"]\nignore = ["SS204"]')
    )
    assert config.enabled("SS101")
    assert not config.enabled("SS204")
    assert not config.enabled("SS402")
    assert ids(analyze_source(HAZARDS, "m.py", config)) == ["SS101"]


def test_severity_override_and_fail_on(tmp_path: Path) -> None:
    table = 'fail-on = "warning"\n[tool.stateshift.analyze.severity]\nSS101 = "note"'
    config = load_config(write_project(tmp_path, table))
    findings = analyze_source(HAZARDS, "m.py", config)
    by_rule = {f.rule_id: f.severity for f in findings}
    assert by_rule == {"SS101": Severity.NOTE, "SS204": Severity.WARNING}
    assert config.fails(Severity.WARNING) and not config.fails(Severity.NOTE)


def test_fail_on_never(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, 'fail-on = "never"'))
    assert config.fail_on is None and not config.fails(Severity.ERROR)


def test_sleep_threshold(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, "sleep-threshold-seconds = 3600"))
    assert "SS204" not in ids(analyze_source(HAZARDS, "m.py", config))


def test_exclude_globs_are_relative_to_the_pyproject(tmp_path: Path) -> None:
    config = load_config(write_project(tmp_path, 'exclude = ["legacy/*"]'))
    (tmp_path / "legacy").mkdir()
    (tmp_path / "legacy" / "old.py").write_text(HAZARDS, encoding="utf-8")
    (tmp_path / "app.py").write_text(HAZARDS, encoding="utf-8")
    report = analyze_paths([tmp_path], config)
    assert report.files_checked == 1
    assert {Path(f.path).name for f in report.findings} == {"app.py"}


@pytest.mark.parametrize(
    "table",
    [
        'fail-on = "sometimes"',
        'select = "SS1" \nbogus = 1',
        '[tool.stateshift.analyze.severity]\nSS101 = "fatal"',
        'sleep-threshold-seconds = "long"',
        "exclude = [1, 2]",
    ],
)
def test_bad_settings_raise_config_error(tmp_path: Path, table: str) -> None:
    with pytest.raises(ConfigError):
        load_config(write_project(tmp_path, table))


def test_unreadable_toml_raises_config_error(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.stateshift.analyze\n", encoding="utf-8")
    with pytest.raises(ConfigError):
        load_config(pyproject)


def test_command_line_wins_over_file() -> None:
    config = AnalyzeConfig(ignore=("SS2",), fail_on=Severity.ERROR)
    merged = config.with_command_line(select=["SS1"], ignore=["SS102"], fail_on="note")
    assert merged.select == ("SS1",)
    assert merged.ignore == ("SS2", "SS102")
    assert merged.fail_on is Severity.NOTE


SUPPRESSED = """\
import time
CARTS = {}
def add(user, sku):
    CARTS[user] = [sku]  # stateshift: ignore[SS101]
def remove(user):
    del CARTS[user]  # stateshift: ignore[SS204, SS101]
def clear(user):
    CARTS.pop(user)  # stateshift: ignore
def later():
    time.sleep(600)  # stateshift: ignore[SS101]
def reset(user):
    CARTS[user] = []  # stateshift:ignore[ss101]
"""


def test_suppression_comments() -> None:
    findings = analyze_source(SUPPRESSED, "m.py")
    assert [(f.rule_id, f.line) for f in findings] == [("SS204", 10)]


def test_suppression_on_a_decorated_function() -> None:
    source = (
        "@app.post('/webhooks/psp')  # stateshift: ignore[SS401]\n"
        "def hook():\n"
        "    db.mark_paid(request.json['id'])\n"
    )
    assert analyze_source(source, "m.py") == []


def test_suppression_text_inside_a_string_does_not_count() -> None:
    source = 'CARTS = {}\ndef add(u):\n    CARTS[u] = "# stateshift: ignore"\n'
    assert ids(analyze_source(source, "m.py")) == ["SS101"]
