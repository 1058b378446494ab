"""The examples the README shows run as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import subprocess_env

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_the_quickstart_runs_and_is_idempotent_when_run_again(tmp_path: Path) -> None:
    for expected in ("after start: waiting", "after start: succeeded"):
        result = subprocess.run(
            [sys.executable, str(EXAMPLES / "quickstart.py")],
            cwd=tmp_path,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout
        assert "'approved': True" in result.stdout
