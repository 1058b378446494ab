"""Namespaces on SQLite and PostgreSQL: versions, conflicts, expiry, scans."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import stateshift as ss
from stateshift.state import LocalDirectoryBlobStore


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    application = ss.App(**store_config, blob_threshold_bytes=1024)
    application.clock = Clock()  # type: ignore[attr-defined]
    yield application
    application.close()


def test_a_new_item_gets_version_one_and_each_write_adds_one(app: ss.App) -> None:
    carts = app.state("carts")
    assert carts.put("u42", {"items": []}) == 1
    assert carts.put("u42", {"items": ["a"]}) == 2
    item = carts.get("u42")
    assert item is not None
    assert (item.key, item.value, item.version, item.expires_at) == (
        "u42",
        {"items": ["a"]},
        2,
        None,
    )


def test_a_stale_expected_version_raises_conflict_with_the_current_one(
    app: ss.App,
) -> None:
    carts = app.state("carts")
    carts.put("u42", 1)
    carts.put("u42", 2)
    with pytest.raises(ss.ConflictError) as caught:
        carts.put("u42", 3, expected_version=1)
    assert caught.value.current_version == 2
    assert caught.value.expected_version == 1
    assert carts.get("u42").value == 2  # type: ignore[union-attr]


def test_expected_version_zero_means_the_key_must_not_exist(app: ss.App) -> None:
    carts = app.state("carts")
    assert carts.put("u1", "first", expected_version=0) == 1
    with pytest.raises(ss.ConflictError) as caught:
        carts.put("u1", "second", expected_version=0)
    assert caught.value.current_version == 1


def test_a_deleted_key_written_again_continues_its_versions(app: ss.App) -> None:
    carts = app.state("carts")
    carts.put("u1", "a")
    assert carts.delete("u1") is True
    assert carts.get("u1") is None
    assert carts.delete("u1") is False
    # A writer that read version 1 before the delete must not match the new item.
    version = carts.put("u1", "b", expected_version=0)
    assert version == 3
    with pytest.raises(ss.ConflictError):
        carts.put("u1", "stale", expected_version=1)


def test_delete_checks_the_expected_version(app: ss.App) -> None:
    carts = app.state("carts")
    carts.put("u1", "a")
    with pytest.raises(ss.ConflictError):
        carts.delete("u1", expected_version=7)
    assert carts.delete("u1", expected_version=1) is True


def test_an_expired_item_is_invisible_at_once_and_purged_later(app: ss.App) -> None:
    clock: Clock = app.clock  # type: ignore[attr-defined]
    sessions = app.state("sessions")
    sessions.put("s1", {"user": "ann"}, ttl=timedelta(seconds=30))
    sessions.put("s2", {"user": "bob"}, ttl=60)
    item = sessions.get("s1")
    assert item is not None and item.expires_at == clock.now + 30

    clock.now += 30
    assert sessions.get("s1") is None
    assert sessions.get_many(["s1", "s2"]).keys() == {"s2"}
    assert [i.key for i in sessions.scan().items] == ["s2"]
    with pytest.raises(ss.ConflictError) as caught:
        sessions.put("s1", {}, expected_version=1)
    assert caught.value.current_version == 0

    assert app.purge_expired() == 1
    assert app.purge_expired() == 0
    assert sessions.put("s1", {"user": "cy"}, expected_version=0) == 2


def test_purge_drops_tombstones_after_their_retention(app: ss.App) -> None:
    clock: Clock = app.clock  # type: ignore[attr-defined]
    carts = app.state("carts")
    carts.put("gone", 1)
    carts.delete("gone")
    assert app.purge_expired(tombstones_after=60) == 0
    clock.now += 61
    assert app.purge_expired(tombstones_after=60) == 1
    assert carts.put("gone", 2) == 1


def test_update_reads_modifies_writes_and_keeps_the_expiry(app: ss.App) -> None:
    counters = app.state("counters")
    first = counters.update("hits", lambda n: (n or 0) + 1)
    assert (first.value, first.version, first.expires_at) == (1, 1, None)
    counters.put("hits", 10, ttl=100)
    item = counters.update("hits", lambda n: n + 1)
    assert item.value == 11
    assert item.expires_at == app.clock() + 100  # type: ignore[attr-defined]


def test_get_many_returns_only_existing_items(app: ss.App) -> None:
    ns = app.state("many")
    for i in range(40):
        ns.put(f"k{i:02d}", i)
    found = ns.get_many([f"k{i:02d}" for i in range(0, 50, 2)])
    assert sorted(found) == [f"k{i:02d}" for i in range(0, 40, 2)]
    assert found["k10"].value == 10
    assert ns.get_many([]) == {}


def test_scan_pages_are_stable_while_keys_change(app: ss.App) -> None:
    ns = app.state("scan")
    for i in range(10):
        ns.put(f"item-{i}", i)
    seen: list[str] = []
    page = ns.scan(prefix="item-", limit=3)
    seen += [i.key for i in page.items]
    ns.put("item-0a", "inserted behind the cursor")
    ns.delete("item-9")
    while page.cursor is not None:
        page = ns.scan(prefix="item-", limit=3, cursor=page.cursor)
        seen += [i.key for i in page.items]
    assert seen == [f"item-{i}" for i in range(9)]


def test_a_prefix_scan_treats_like_wildcards_as_plain_characters(app: ss.App) -> None:
    ns = app.state("wild")
    for key in ["a%", "a%b", "a_", "a_b", "ab", "abc", "a", "b%"]:
        ns.put(key, key)
    assert [i.key for i in ns.scan(prefix="a%").items] == ["a%", "a%b"]
    assert [i.key for i in ns.scan(prefix="a_").items] == ["a_", "a_b"]
    assert [i.key for i in ns.scan(prefix="a\\").items] == []


def test_scans_and_keys_handle_non_ascii_and_the_largest_code_point(
    app: ss.App,
) -> None:
    ns = app.state("unicode")
    keys = ["é", "éa", "\U0010ffff", "\U0010ffffz", "\ud7ffx", "\ue000"]
    for key in keys:
        ns.put(key, 1)
    assert [i.key for i in ns.scan(prefix="é").items] == ["é", "éa"]
    assert [i.key for i in ns.scan(prefix="\U0010ffff").items] == [
        "\U0010ffff",
        "\U0010ffffz",
    ]
    assert [i.key for i in ns.scan(prefix="\ud7ff").items] == ["\ud7ffx"]
    assert len(ns.scan().items) == len(keys)


@pytest.mark.parametrize(
    "key",
    ["", "a\x00b", "x" * 1025, "é" * 513, "\ud800", 42, None],
)
def test_hostile_keys_are_refused_and_change_nothing(app: ss.App, key: Any) -> None:
    ns = app.state("keys")
    with pytest.raises(ss.InvalidKey):
        ns.put(key, 1)
    with pytest.raises(ss.InvalidKey):
        ns.get(key)
    assert ns.scan().items == []


def test_a_key_of_the_maximum_length_is_accepted(app: ss.App) -> None:
    ns = app.state("keys")
    key = "k" * 1024
    ns.put(key, 1)
    assert ns.get(key).version == 1  # type: ignore[union-attr]


def test_a_malformed_cursor_is_refused(app: ss.App) -> None:
    with pytest.raises(ss.InvalidKey):
        app.state("x").scan(cursor="!!!not a cursor")


def test_namespaces_are_separate(app: ss.App) -> None:
    app.state("one").put("k", 1)
    assert app.state("two").get("k") is None
    assert app.state("one").get("k").value == 1  # type: ignore[union-attr]


def test_large_values_go_to_the_blob_store_transparently(app: ss.App) -> None:
    docs = app.state("docs")
    big = {"text": "x" * 5000}
    docs.put("d1", big)
    assert docs.get("d1").value == big  # type: ignore[union-attr]
    with app.store.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM {p}state_blobs") == (1,)
    docs.put("d1", {"text": "small"})
    assert docs.get("d1").value == {"text": "small"}  # type: ignore[union-attr]
    docs.put("d2", big)
    docs.delete("d2")
    with app.store.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM {p}state_blobs") == (0,)


def test_an_expired_blob_is_removed_by_the_purge(app: ss.App) -> None:
    docs = app.state("docs")
    docs.put("d1", "y" * 5000, ttl=1)
    app.clock.now += 2  # type: ignore[attr-defined]
    assert app.purge_expired() == 1
    with app.store.read() as tx:
        assert tx.fetchone("SELECT COUNT(*) FROM {p}state_blobs") == (0,)


def test_a_local_directory_blob_store_keeps_files_in_step(
    app: ss.App, tmp_path: Path
) -> None:
    app.blob_store = LocalDirectoryBlobStore(tmp_path / "blobs")
    docs = app.state("docs")
    docs.put("d1", "z" * 5000)
    assert docs.get("d1").value == "z" * 5000  # type: ignore[union-attr]
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1
    docs.put("d1", "short")
    assert [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()] == []


class _UndeletableBlobs(LocalDirectoryBlobStore):
    """A directory whose files cannot be removed (a store that went away)."""

    def remove(self, tx: Any, blob_refs: Any) -> None:
        raise OSError("the blob store is unreachable")


def test_a_failed_removal_after_the_commit_leaves_an_orphan_not_an_error(
    app: ss.App, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app.blob_store = _UndeletableBlobs(tmp_path / "blobs")
    docs = app.state("docs")
    docs.put("d1", "a" * 5000)
    with caplog.at_level("WARNING", logger="stateshift.state._rows"):
        assert docs.put("d1", "b" * 5000) == 2
    assert docs.get("d1").value == "b" * 5000  # type: ignore[union-attr]
    assert "orphans" in caplog.text
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 2


def test_a_value_over_the_size_limit_is_refused(store_config: dict[str, Any]) -> None:
    with ss.App(**store_config, max_value_bytes=100) as small:
        with pytest.raises(ss.PayloadTooLarge):
            small.state("x").put("k", "v" * 200)
        assert small.state("x").get("k") is None


def test_bad_arguments_are_refused_early(app: ss.App) -> None:
    ns = app.state("x")
    with pytest.raises(TypeError):
        ns.put("k", 1, expected_version="1")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        ns.put("k", 1, ttl=-1)
    with pytest.raises(ValueError):
        ns.scan(limit=0)
    with pytest.raises(ss.InvalidKey):
        app.state("")
