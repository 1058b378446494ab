"""SQLite refuses places where its file is unsafe or does not survive."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateshift.config import load_settings
from stateshift.errors import ConfigError, SchemaError
from stateshift.store.sqlite import SQLiteStore, filesystem_type, path_from_url


def test_urls_with_three_slashes_are_relative_and_four_absolute() -> None:
    assert path_from_url("sqlite:///data/shop.db") == Path("data/shop.db")
    assert path_from_url("sqlite:////var/shop.db") == Path("/var/shop.db")


@pytest.mark.parametrize("url", ["sqlite:///:memory:", "sqlite:///", "sqlite://x.db"])
def test_memory_and_malformed_urls_are_refused(url: str) -> None:
    with pytest.raises(ConfigError):
        path_from_url(url)


def test_the_file_system_type_is_read_from_the_longest_mount(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"/dev/vda / ext4 rw 0 0\nserver:/export {tmp_path}/nfs nfs4 rw 0 0\n"
    )
    (tmp_path / "nfs").mkdir()
    assert filesystem_type(tmp_path / "nfs" / "x.db", str(mounts)) == "nfs4"
    assert filesystem_type(tmp_path / "x.db", str(mounts)) == "ext4"


def test_a_file_on_a_network_file_system_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("stateshift.store.sqlite.filesystem_type", lambda path: "nfs4")
    with pytest.raises(SchemaError, match="network file system"):
        SQLiteStore(load_settings({"store": f"sqlite:///{tmp_path}/x.db"}))


@pytest.mark.parametrize(
    "variable", ["AWS_LAMBDA_FUNCTION_NAME", "K_SERVICE", "FUNCTIONS_WORKER_RUNTIME"]
)
def test_sqlite_on_a_serverless_platform_is_refused_unless_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "shop")
    url = f"sqlite:///{tmp_path}/x.db"
    with pytest.raises(ConfigError, match="loses its file"):
        SQLiteStore(load_settings({"store": url}))
    SQLiteStore(load_settings({"store": url, "allow_sqlite_on_serverless": True}))


def test_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    store = SQLiteStore(load_settings({"store": f"sqlite:///{tmp_path}/no/x.db"}))
    with pytest.raises(ConfigError, match="does not exist"):
        store.ensure_schema()
