"""``stateshift migrate-state`` on the command line: dry run, report, exit codes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.cli.main import main

pytestmark = pytest.mark.timeout(60)


def _source(tmp_path: Path) -> Path:
    path = tmp_path / "legacy.csv"
    rows = "\n".join(f"k{i},{i}" for i in range(30))
    path.write_text(f"key,total\n{rows}\n")
    return path


def _args(store: str, source: Path, *extra: str) -> list[str]:
    return [
        "migrate-state",
        str(source),
        "--namespace",
        "totals",
        "--key-field",
        "key",
        "--store",
        store,
        "--batch-size",
        "8",
        *extra,
    ]


def test_a_dry_run_reports_counts_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'new.db'}"

    code = main(_args(store, _source(tmp_path), "--dry-run", "--json"))

    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dry_run"]["read"] == 30 and report["dry_run"]["written"] == 30
    assert not (tmp_path / "new.db").exists() or _count(store) == 0


def _count(store: str) -> int:
    with ss.App(store) as app:
        return len(app.state("totals").scan(limit=1000).items)


def test_a_backfill_shows_progress_then_a_clean_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'new.db'}"

    code = main(_args(store, _source(tmp_path), "--id", "cli-1"))

    out, err = capsys.readouterr()
    assert code == 0
    assert "30/30 records" in err
    assert "read 30, wrote 30" in out and "verify: clean" in out
    assert _count(store) == 30


def test_mismatches_are_listed_one_per_line_and_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = f"sqlite:///{tmp_path / 'new.db'}"
    source = _source(tmp_path)
    assert main(_args(store, source, "--quiet")) == 0
    with ss.App(store) as app:
        app.state("totals").put("k3", {"key": "k3", "total": "changed"})
        app.state("totals").delete("k4")
        app.state("totals").put("stray", 1)
    capsys.readouterr()

    code = main(_args(store, source, "--verify-only"))

    out = capsys.readouterr().out
    assert code == 1
    assert "  missing   k4" in out
    assert "  different k3" in out
    assert "  extra     stray" in out
    assert out.rstrip().endswith("verify: MISMATCHES")


def test_a_transform_hook_is_imported_from_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "reshape_totals", raising=False)
    (tmp_path / "reshape_totals.py").write_text(
        "def run(record):\n"
        "    if record['key'] == 'k0':\n"
        "        return None\n"
        "    return 'total:' + record['key'], int(record['total'])\n"
    )
    store = f"sqlite:///{tmp_path / 'new.db'}"

    code = main(
        _args(store, _source(tmp_path), "--transform", "reshape_totals:run", "--json")
    )

    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["backfill"]["skipped"] == 1
    with ss.App(store) as app:
        assert app.state("totals").get("total:k7").value == 7  # type: ignore[union-attr]
