"""Erasure by crypto-shredding, across regions of separate databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_placement_support import POLICY, shard_urls

from stateshift.app import App
from stateshift.errors import DataErased, EncryptionError
from stateshift.placement.erasure import envelope_subject


@pytest.fixture
def apps(backend: str, tmp_path: Path) -> Iterator[dict[str, App]]:
    with shard_urls(backend, tmp_path, {"eu": 2, "us": 1}) as urls:
        opened = {
            region: App(regions=urls, region=region, residency_policy=POLICY)
            for region in urls
        }
        try:
            yield opened
        finally:
            for app in opened.values():
                app.close()


def test_forgetting_a_subject_makes_every_value_of_theirs_unreadable(
    apps: dict[str, App],
) -> None:
    eu, us = apps["eu"], apps["us"]
    with eu.data_subject("alice", residency="EU"):
        order = eu.codec.encode({"card": "4111"}, aad=b"orders/1")
        checkpoint = eu.codec.encode(["step", 3], aad=b"wf/1/3")
    with eu.data_subject("bob", residency="EU"):
        other = eu.codec.encode({"card": "5500"})
    shared = eu.codec.encode({"sku": "A-1"})
    assert envelope_subject(order) == "alice"
    assert eu.codec.decode(order, aad=b"orders/1") == {"card": "4111"}

    report = us.forget("alice")
    assert report.regions == ("eu",)

    for stored, aad in ((order, b"orders/1"), (checkpoint, b"wf/1/3")):
        with pytest.raises(DataErased) as caught:
            eu.codec.decode(stored, aad=aad)
        assert caught.value.subject == "alice"
    assert eu.codec.decode(other) == {"card": "5500"}
    assert eu.codec.decode(shared) == {"sku": "A-1"}
    assert us.forget("alice").regions == ("eu",)


def test_a_subject_key_lives_in_the_subject_home_region(
    apps: dict[str, App],
) -> None:
    us = apps["us"]
    with us.data_subject("carol", residency="EU"):
        us.codec.encode("x")
    with us.data_subject("dave"):
        us.codec.encode("y")
    where = {}
    for region, _, store in us.placement.all_stores():
        with store.read() as tx:
            for (subject,) in tx.fetchall("SELECT subject FROM {p}subject_keys"):
                where[subject] = region
    assert where == {"carol": "eu", "dave": "us"}


def test_a_sealed_value_moved_to_another_row_fails_authentication(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]
    with eu.data_subject("erin", residency="EU"):
        sealed = eu.codec.encode(1, aad=b"row-1")
    with pytest.raises(EncryptionError):
        eu.codec.decode(sealed, aad=b"row-2")


def test_values_without_a_subject_are_unchanged_by_erasure_support(
    apps: dict[str, App],
) -> None:
    eu = apps["eu"]
    encoded = eu.codec.encode({"a": 1})
    assert encoded == App("sqlite:///plain.db").codec.encode({"a": 1})
