"""Shadow reads: the legacy value is served, the namespace's counted against it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import stateshift as ss
from stateshift.migrate import ShadowNamespace, safe_to_switch

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def app(store_config: dict[str, Any]) -> Iterator[ss.App]:
    with ss.App(**store_config) as opened:
        yield opened


LEGACY = {
    "a": {"items": [1, 2], "owner": "ann"},
    "b": {"items": []},
    "c": {"items": [3]},
    "gone": {"items": [9]},
}


def test_the_legacy_value_is_served_and_each_outcome_counted(
    app: ss.App, caplog: pytest.LogCaptureFixture
) -> None:
    carts = app.state("carts")
    carts.put("a", {"owner": "ann", "items": (1, 2)})  # same value, other order
    carts.put("b", {"items": ["stale"]})
    carts.put("new-only", {"items": []})
    shadow = ShadowNamespace(LEGACY.get, carts)

    with caplog.at_level(logging.INFO, logger="stateshift.migrate.shadow"):
        served = [shadow.get(key) for key in ("a", "b", "gone", "new-only", "none")]

    assert served == [LEGACY["a"], LEGACY["b"], LEGACY["gone"], None, None]
    stats = shadow.stats()
    assert (stats.reads, stats.matches, stats.mismatches) == (5, 2, 1)
    assert (stats.missing, stats.unexpected, stats.errors) == (1, 1, 0)
    assert stats.mismatch_rate == pytest.approx(3 / 5)
    logged = {(r.key, r.outcome) for r in caplog.records}  # type: ignore[attr-defined]
    assert logged == {
        ("b", "mismatches"),
        ("gone", "missing"),
        ("new-only", "unexpected"),
    }
    assert all(r.event == "migrate.shadow_mismatch" for r in caplog.records)  # type: ignore[attr-defined]


def test_a_failing_namespace_read_is_counted_never_raised(app: ss.App) -> None:
    def hostile(key: str) -> str:
        return "\x00" + key  # an invalid key: the namespace read raises

    shadow = ShadowNamespace(LEGACY.get, app.state("carts"), key_map=hostile)

    assert shadow.get("a") == LEGACY["a"]
    assert shadow.stats().errors == 1


def test_switching_is_safe_once_enough_reads_agree(app: ss.App) -> None:
    carts = app.state("carts")
    for key, value in LEGACY.items():
        carts.put(key, value)
    shadow = ShadowNamespace(LEGACY.get, carts)
    for _ in range(5):
        for key in LEGACY:
            shadow.get(key)

    assert not safe_to_switch(shadow, min_reads=100)
    assert safe_to_switch(shadow, min_reads=20)
    carts.put("c", {"items": ["drifted"]})
    for _ in range(5):
        shadow.get("c")
    assert not safe_to_switch(shadow, min_reads=20)
    assert safe_to_switch(shadow, min_reads=20, max_mismatch_rate=0.25)
    shadow.reset()
    assert shadow.stats().reads == 0
    with pytest.raises(ValueError):
        safe_to_switch(shadow, max_mismatch_rate=2.0)
