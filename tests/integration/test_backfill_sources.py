"""Backfills from each kind of source, dry runs and the verification report."""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from conftest import POSTGRES_URL, require_postgres
from stateshift.migrate import Backfill, SourceSpec, run_backfill, verify_backfill
from stateshift.migrate.backfill import backfill_worker_id, dry_run
from stateshift.migrate.sources import CsvSource, open_source

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    with ss.App(**store_config, worker_id=backfill_worker_id("t")) as opened:
        yield opened


def _all(app: ss.App, namespace: str) -> dict[str, ss.Item[Any]]:
    page = app.state(namespace).scan(limit=10_000)
    assert page.cursor is None
    return {item.key: item for item in page.items}


def _jsonl(folder: Path, count: int) -> Path:
    path = folder / "carts.jsonl"
    lines = [json.dumps({"id": f"c{i:03d}", "items": [i, i * 2]}) for i in range(count)]
    path.write_text("\n".join(lines) + "\n\n")
    return path


def test_a_jsonl_file_is_copied_and_verifies_clean(app: ss.App, tmp_path: Path) -> None:
    plan = Backfill(
        SourceSpec(str(_jsonl(tmp_path, 25)), key_field="id"), "carts", batch_size=7
    )

    counts = run_backfill(app, plan, workflow_id="jsonl")

    assert (counts.read, counts.written, counts.batches) == (25, 25, 4)
    items = _all(app, "carts")
    assert items["c004"].value == {"id": "c004", "items": [4, 8]}
    assert verify_backfill(app, plan).clean


def test_running_a_finished_backfill_again_under_a_new_id_writes_nothing(
    app: ss.App, tmp_path: Path
) -> None:
    plan = Backfill(SourceSpec(str(_jsonl(tmp_path, 10)), key_field="id"), "carts")
    run_backfill(app, plan, workflow_id="first")

    counts = run_backfill(app, plan, workflow_id="second")

    assert (counts.written, counts.unchanged) == (0, 10)
    assert {item.version for item in _all(app, "carts").values()} == {1}


def test_a_csv_file_with_a_quoted_multiline_field_resumes_at_exact_offsets(
    app: ss.App, tmp_path: Path
) -> None:
    path = tmp_path / "users.csv"
    path.write_text('user,name,note\nu1,Ann,"two\nlines"\nu2,Bob,plain\nu3,Cy,""\n')
    source = CsvSource(path, "user")
    first = source.read(None, 1)
    second = source.read(first.position, 1)
    assert first.records == [{"user": "u1", "name": "Ann", "note": "two\nlines"}]
    assert second.records[0]["user"] == "u2" and not second.done
    assert [r["user"] for r in source.records(limit=2)] == ["u1", "u2", "u3"]
    assert source.count() == 3

    plan = Backfill(SourceSpec(str(path), key_field="user"), "users", batch_size=1)
    run_backfill(app, plan, workflow_id="csv")
    assert _all(app, "users")["u1"].value["note"] == "two\nlines"
    assert verify_backfill(app, plan).clean


def _legacy_sqlite(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "CREATE TABLE carts (cart_id INTEGER PRIMARY KEY, owner TEXT, data BLOB)"
        )
        connection.executemany(
            "INSERT INTO carts VALUES (?, ?, ?)",
            [(i, f"user{i}", bytes([i])) for i in range(1, 31)],
        )
    connection.close()
    return f"sqlite:///{path}"


def test_a_sqlite_table_is_read_in_key_order_by_ranges(
    app: ss.App, tmp_path: Path
) -> None:
    url = _legacy_sqlite(tmp_path / "legacy.db")
    plan = Backfill(
        SourceSpec(url, key_field="cart_id", table="carts"), "carts", batch_size=8
    )

    counts = run_backfill(app, plan, workflow_id="sqlite")

    assert counts.written == 30
    item = _all(app, "carts")["12"]
    assert item.value == {"cart_id": 12, "owner": "user12", "data": b"\x0c"}
    assert verify_backfill(app, plan).clean


def test_a_sqlite_query_can_reshape_rows(app: ss.App, tmp_path: Path) -> None:
    url = _legacy_sqlite(tmp_path / "legacy.db")
    query = "SELECT 'cart-' || cart_id AS k, owner FROM carts WHERE cart_id <= 5"
    plan = Backfill(SourceSpec(url, key_field="k", query=query), "carts", batch_size=2)

    run_backfill(app, plan, workflow_id="query")

    assert sorted(_all(app, "carts")) == [f"cart-{i}" for i in range(1, 6)]


@pytest.fixture
def legacy_postgres_table() -> Iterator[str]:
    require_postgres()
    import psycopg

    table = f"legacy_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(
            f"CREATE TABLE {table} (sku TEXT PRIMARY KEY, price NUMERIC, qty INT)"
        )
        with connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {table} VALUES (%s, %s, %s)",
                [(f"sku-{i:02d}", Decimal(f"{i}.50"), i) for i in range(20)],
            )
    yield table
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"DROP TABLE {table}")


def test_a_postgresql_table_is_copied_with_its_decimals(
    app: ss.App, legacy_postgres_table: str
) -> None:
    spec = SourceSpec(POSTGRES_URL, key_field="sku", table=legacy_postgres_table)
    plan = Backfill(spec, "stock", batch_size=6)

    counts = run_backfill(app, plan, workflow_id="pg")

    assert counts.written == 20
    value = _all(app, "stock")["sku-03"].value
    assert value == {"sku": "sku-03", "price": Decimal("3.50"), "qty": 3}
    assert verify_backfill(app, plan).clean
    source = open_source(spec)
    assert source.count() == 20
    source.close()


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI requires Redis on 6379: {exc}")
        pytest.skip(f"Redis on 6379 is unreachable: {exc}")
    prefix = f"test-legacy-{uuid.uuid4().hex[:8]}:cart:"
    for i in range(40):
        client.set(f"{prefix}s{i}", json.dumps({"n": i}))
    client.hset(f"{prefix}h1", mapping={"owner": "ann", "total": "12"})
    client.set(f"{prefix}plain", "not json")
    client.rpush(f"{prefix}list", "a", "b")
    yield prefix
    for key in client.scan_iter(match=f"{prefix}*"):
        client.delete(key)
    client.close()


def test_a_redis_keyspace_is_copied_with_string_and_hash_values(
    app: ss.App, redis_prefix: str
) -> None:
    spec = SourceSpec("redis://127.0.0.1:6379/0", match=f"{redis_prefix}*")
    plan = Backfill(spec, "carts", batch_size=10)

    counts = run_backfill(app, plan, workflow_id="redis")

    items = _all(app, "carts")
    assert counts.skipped == 1  # the list
    assert items["s7"].value == {"n": 7}
    assert items["h1"].value == {"owner": "ann", "total": "12"}
    assert items["plain"].value == "not json"
    assert len(items) == 42
    assert verify_backfill(app, plan).clean


def test_a_dry_run_counts_what_would_change_and_writes_nothing(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    plan = Backfill(SourceSpec(str(_jsonl(tmp_path, 12)), key_field="id"), "carts")
    with ss.App(**store_config, auto_migrate=False) as looking:
        counts = dry_run(looking, plan)
    assert (counts.read, counts.written) == (12, 12)

    with ss.App(**store_config) as app:
        app.state("carts").put("c000", {"id": "c000", "items": ["other"]})
        app.state("carts").put("c001", {"id": "c001", "items": [1, 2]})
        counts = dry_run(app, plan)
        assert (counts.written, counts.unchanged) == (11, 1)
        assert len(_all(app, "carts")) == 2


def test_the_verify_report_lists_every_missing_different_and_extra_key(
    app: ss.App, tmp_path: Path
) -> None:
    plan = Backfill(SourceSpec(str(_jsonl(tmp_path, 6)), key_field="id"), "carts")
    run_backfill(app, plan, workflow_id="v")
    carts = app.state("carts")
    carts.delete("c001")
    carts.put("c002", {"id": "c002", "items": ["changed"]})
    carts.put("zzz", {"new": True})

    report = verify_backfill(app, plan)

    assert not report.clean
    assert (report.missing, report.different, report.extra) == (
        ["c001"],
        ["c002"],
        ["zzz"],
    )
    assert (report.source_items, report.namespace_items, report.matched) == (6, 6, 4)


def test_keep_leaves_items_that_the_new_system_already_changed(
    app: ss.App, tmp_path: Path
) -> None:
    app.state("carts").put("c003", {"written": "by the new system"})
    plan = Backfill(
        SourceSpec(str(_jsonl(tmp_path, 5)), key_field="id"), "carts", existing="keep"
    )

    counts = run_backfill(app, plan, workflow_id="keep")

    assert (counts.written, counts.kept) == (4, 1)
    assert _all(app, "carts")["c003"].value == {"written": "by the new system"}


def test_a_bad_record_fails_the_backfill_with_its_reason(
    app: ss.App, tmp_path: Path
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"id": "a"}\n{"name": "no id"}\n')
    plan = Backfill(SourceSpec(str(path), key_field="id"), "carts")

    with pytest.raises(ss.WorkflowError, match="no field 'id'"):
        run_backfill(app, plan, workflow_id="bad")
    assert app.status("bad").status is ss.WorkflowStatus.FAILED
