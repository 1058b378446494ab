"""Migrating from zero gives exactly the declared schema, on both backends."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

from conftest import drop_schema, new_store_config
from stateshift.config import load_settings
from stateshift.store import Store, open_store
from stateshift.store.migrate import migrate, split_statements


def declared_schema(dialect: str) -> str:
    return (
        resources.files("stateshift.store")
        .joinpath("schema", f"{dialect}.sql")
        .read_text("utf-8")
    )


def catalog(store: Store) -> dict[str, Any]:
    """Tables with their columns, and indexes, in a comparable form."""
    with store.raw_transaction(write=False) as tx:
        if store.dialect == "sqlite":
            tables = {}
            for (name,) in tx.fetchall(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            ):
                tables[name] = tx.fetchall(f'PRAGMA table_info("{name}")')
            indexes = sorted(
                (name, re.sub(r"\s+", " ", sql or ""))
                for name, sql in tx.fetchall(
                    "SELECT name, sql FROM sqlite_master WHERE type = 'index'"
                )
            )
            return {"tables": tables, "indexes": indexes}
        schema = store.settings.schema
        columns = tx.fetchall(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = ? "
            "ORDER BY table_name, column_name",
            (schema,),
        )
        indexes = tx.fetchall(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = ? "
            "ORDER BY indexname",
            (schema,),
        )
        normalized = sorted(
            (name, definition.replace(f'"{schema}".', "").replace(f"{schema}.", ""))
            for name, definition in indexes
        )
        return {"columns": columns, "indexes": normalized}


def test_migrations_from_zero_match_the_declared_schema(
    backend: str, tmp_path: Path
) -> None:
    migrated_config = new_store_config(backend, tmp_path)
    declared_config = new_store_config(backend, tmp_path)
    migrated = open_store(load_settings({**migrated_config, "auto_migrate": False}))
    declared = open_store(load_settings({**declared_config, "auto_migrate": False}))
    try:
        migrate(migrated)
        with declared.raw_transaction(write=True) as tx:
            if backend == "postgresql":
                tx.execute(f'CREATE SCHEMA "{declared.settings.schema}"')
            for statement in split_statements(declared_schema(backend)):
                tx.execute(statement)
        assert catalog(migrated) == catalog(declared)
    finally:
        migrated.close()
        declared.close()
        for config in (migrated_config, declared_config):
            if "schema" in config:
                drop_schema(config["schema"])
