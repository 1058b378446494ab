"""``stateshift analyze`` as a user runs it: a subprocess on real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from stateshift.analyze import SCHEMA_FILE

ROOT = Path(__file__).resolve().parents[2]
SHOP_BEFORE = ROOT / "examples" / "shop" / "before"

EXPECTED_SHOP_FINDINGS = {
    ("shop/db.py", "SS104"),
    ("shop/db.py", "SS301"),
    ("shop/mailer.py", "SS403"),
    ("shop/orders.py", "SS101"),
    ("shop/orders.py", "SS104"),
    ("shop/orders.py", "SS201"),
    ("shop/orders.py", "SS204"),
    ("shop/orders.py", "SS205"),
    ("shop/orders.py", "SS501"),
    ("shop/web.py", "SS101"),
    ("shop/web.py", "SS102"),
    ("shop/web.py", "SS103"),
    ("shop/web.py", "SS201"),
    ("shop/web.py", "SS401"),
    ("shop/web.py", "SS402"),
    ("shop/web.py", "SS501"),
}


def analyze(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "stateshift", "analyze", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_finds_the_hazards_of_the_shop_before_migration() -> None:
    result = analyze("examples/shop/before", "--format", "json")
    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    found = {
        (Path(f["path"]).relative_to("examples/shop/before").as_posix(), f["rule_id"])
        for f in document["findings"]
    }
    assert found == EXPECTED_SHOP_FINDINGS
    webhook = [
        f
        for f in document["findings"]
        if f["rule_id"] in ("SS401", "SS402") and f["path"].endswith("web.py")
    ]
    assert all("payments.charge" in f["message"] for f in webhook)


def test_text_report_of_the_shop() -> None:
    result = analyze("examples/shop/before")
    assert result.returncode == 1
    assert "examples/shop/before/shop/web.py\n" in result.stdout
    assert "What the findings mean and how to fix them:" in result.stdout
    assert result.stdout.rstrip().endswith("in 7 files.")


def test_sarif_output_file_is_schema_valid(tmp_path: Path) -> None:
    out = tmp_path / "shop.sarif"
    result = analyze("examples/shop/before", "--format", "sarif", "--output", str(out))
    assert result.returncode == 1 and result.stdout == ""
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    document = json.loads(out.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema, cls=jsonschema.Draft4Validator)
    assert len(document["runs"][0]["results"]) == 18


@pytest.mark.parametrize(
    ("options", "code"),
    [
        (["--fail-on", "never"], 0),
        (["--select", "SS2,SS5", "--fail-on", "error"], 1),
        (["--select", "SS204,SS205,SS501"], 0),
        (["--select", "SS204,SS205,SS501", "--fail-on", "warning"], 1),
        (["--ignore", "SS1", "--ignore", "SS2,SS3,SS4,SS5"], 0),
    ],
)
def test_exit_code_follows_the_threshold(options: list[str], code: int) -> None:
    assert analyze("examples/shop/before", *options).returncode == code


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = analyze(str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "no such file or directory" in missing.stderr
    assert analyze(str(tmp_path), "--select", "XX9").returncode == 2
    assert analyze(str(tmp_path), "--format", "xml").returncode == 2
    bad = tmp_path / "bad.toml"
    bad.write_text('[tool.stateshift.analyze]\nfail-on = "maybe"\n', encoding="utf-8")
    assert analyze(str(tmp_path), "--config", str(bad)).returncode == 2


def test_syntax_error_is_reported_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n", encoding="utf-8")
    (tmp_path / "fine.py").write_text("X = 1\n", encoding="utf-8")
    result = analyze(".", cwd=tmp_path)
    assert result.returncode == 1
    assert "SS000" in result.stdout and "Traceback" not in result.stderr


def test_configuration_in_the_nearest_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.stateshift.analyze]\nfail-on = "never"\nexclude = ["gen/*"]\n',
        encoding="utf-8",
    )
    (tmp_path / "gen").mkdir()
    (tmp_path / "gen" / "x.py").write_text("CARTS = {}\ndef f(u):\n    CARTS[u] = 1\n")
    (tmp_path / "app.py").write_text("import time\ndef f():\n    time.sleep(900)\n")
    result = analyze(".", "--format", "json", cwd=tmp_path)
    assert result.returncode == 0
    document = json.loads(result.stdout)
    assert [f["rule_id"] for f in document["findings"]] == ["SS204"]
    assert analyze(".", "--fail-on", "warning", cwd=tmp_path).returncode == 1


def test_clean_code_exits_0(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("def add(a, b):\n    return a + b\n")
    result = analyze(str(tmp_path))
    assert result.returncode == 0
    assert result.stdout == "No findings in 1 file.\n"
