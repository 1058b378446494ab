"""Settings come from arguments, STATESHIFT_* variables and stateshift.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateshift.config import DEFAULT_STORE, load_settings
from stateshift.errors import ConfigError


def test_with_nothing_configured_the_store_is_a_local_sqlite_file(
    tmp_path: Path,
) -> None:
    assert load_settings(environ={}, directory=tmp_path).store == DEFAULT_STORE


def test_arguments_beat_the_environment_which_beats_the_files(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text('store = "sqlite:///from-file.db"\n')
    environ = {"STATESHIFT_STORE": "sqlite:///from-env.db"}
    assert load_settings(directory=tmp_path, environ={}).store.endswith("from-file.db")
    assert load_settings(directory=tmp_path, environ=environ).store.endswith(
        "from-env.db"
    )
    chosen = load_settings(
        {"store": "sqlite:///from-args.db"}, directory=tmp_path, environ=environ
    )
    assert chosen.store.endswith("from-args.db")


def test_pyproject_tool_table_is_read_and_feature_sections_are_kept(
    tmp_path: Path,
) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.stateshift]\nmax-value-bytes = 1000\n"
        "[tool.stateshift.analyze]\nignore = ['SS101']\n"
    )
    settings = load_settings(environ={}, directory=tmp_path)
    assert settings.max_value_bytes == 1000
    assert settings.extra["analyze"] == {"ignore": ["SS101"]}


def test_environment_values_are_parsed_by_the_setting_type(tmp_path: Path) -> None:
    settings = load_settings(
        environ={"STATESHIFT_AUTO_MIGRATE": "off", "STATESHIFT_LEASE_SECONDS": "2.5"},
        directory=tmp_path,
    )
    assert settings.auto_migrate is False
    assert settings.lease_seconds == 2.5


@pytest.mark.parametrize(
    ("overrides", "setting"),
    [
        ({"store": "mysql://x"}, "store"),
        ({"schema": "Robert'); DROP"}, "schema"),
        ({"table_prefix": "has space"}, "table_prefix"),
        ({"max_value_bytes": 0}, "max_value_bytes"),
        ({"lease_seconds": -1}, "lease_seconds"),
        ({"no_such_setting": 1}, "no_such_setting"),
        ({"pool_size": "many"}, "pool_size"),
        ({"auto_migrate": "perhaps"}, "auto_migrate"),
    ],
)
def test_an_invalid_setting_fails_naming_it(
    tmp_path: Path, overrides: dict[str, object], setting: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides, environ={}, directory=tmp_path)
    assert caught.value.setting == setting
    assert setting in str(caught.value)


def test_an_unknown_key_in_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text("stor = 'sqlite:///typo.db'\n")
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(environ={}, directory=tmp_path)


def test_a_malformed_toml_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text("store = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(environ={}, directory=tmp_path)
