"""The ``stateshift`` command: --version, db upgrade, db info."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import stateshift
from conftest import subprocess_env
from stateshift.store.migrate import available_migrations


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Any:
    environment = subprocess_env(**(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "stateshift", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"stateshift {stateshift.__version__}"


def test_db_upgrade_then_info_on_both_backends(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    options = ["--store", store_config["store"]]
    if "schema" in store_config:
        options += ["--schema", store_config["schema"]]

    upgraded = cli("db", "upgrade", *options, cwd=tmp_path)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "applied 0001_core" in upgraded.stdout

    again = cli("db", "upgrade", *options, cwd=tmp_path)
    assert "up to date" in again.stdout

    info = cli("db", "info", "--json", *options, cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    report = json.loads(info.stdout)
    assert report["schema_version"] == report["code_version"] >= 1
    # Migration numbers are reserved per feature, so they may have gaps.
    expected = len(available_migrations(report["backend"]))
    assert report["rows"]["schema_migrations"] == expected


def test_db_info_uses_stateshift_store_from_the_environment(tmp_path: Path) -> None:
    env = {"STATESHIFT_STORE": f"sqlite:///{tmp_path}/env.db"}
    assert cli("db", "upgrade", cwd=tmp_path, env=env).returncode == 0
    info = cli("db", "info", cwd=tmp_path, env=env)
    assert "env.db" in info.stdout


def test_a_bad_store_url_fails_with_a_message_naming_the_setting(
    tmp_path: Path,
) -> None:
    result = cli("db", "info", "--store", "mysql://nope", cwd=tmp_path)
    assert result.returncode == 1
    assert "invalid setting 'store'" in result.stderr


def test_without_a_command_the_help_is_shown(tmp_path: Path) -> None:
    result = cli(cwd=tmp_path)
    assert result.returncode == 2
    assert "db" in result.stdout
