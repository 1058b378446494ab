"""A namespace against a dict model: puts, deletes, conflicts, expiry, scans."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import stateshift as ss

KEYS = st.sampled_from(["a", "a%", "a%b", "a_", "ab", "b", "é", "éé"])
PREFIXES = st.sampled_from(["", "a", "a%", "a_", "b", "é", "z"])
VALUES = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.booleans()))


class Model:
    """What the namespace should hold: key -> (row version, value, expiry)."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, Any, float | None]] = {}

    def visible(self, key: str, now: float) -> tuple[int, Any, float | None] | None:
        row = self.rows.get(key)
        if row is None or row[1] is _GONE:
            return None
        if row[2] is not None and row[2] <= now:
            return None
        return row

    def version(self, key: str, now: float) -> int:
        row = self.visible(key, now)
        return 0 if row is None else row[0]


_GONE = object()


def _machine(app: ss.App) -> type[RuleBasedStateMachine]:
    class NamespaceMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.now = 1_000.0
            app.clock = lambda: self.now  # type: ignore[attr-defined]
            self.ns = app.state(f"m-{uuid.uuid4().hex[:8]}")
            self.model = Model()

        def _expected(self, key: str, choice: str) -> int | None:
            current = self.model.version(key, self.now)
            return {"none": None, "current": current, "stale": current + 1}[choice]

        @rule(
            key=KEYS,
            value=VALUES,
            ttl=st.none() | st.integers(1, 20),
            choice=st.sampled_from(["none", "current", "stale"]),
        )
        def put(self, key: str, value: Any, ttl: int | None, choice: str) -> None:
            expected = self._expected(key, choice)
            current = self.model.version(key, self.now)
            if expected is not None and expected != current:
                with pytest.raises(ss.ConflictError) as caught:
                    self.ns.put(key, value, ttl=ttl, expected_version=expected)
                assert caught.value.current_version == current
                return
            version = self.ns.put(key, value, ttl=ttl, expected_version=expected)
            raw = self.model.rows.get(key, (0, None, None))[0]
            assert version == raw + 1
            expiry = None if ttl is None else self.now + ttl
            self.model.rows[key] = (version, value, expiry)

        @rule(key=KEYS, choice=st.sampled_from(["none", "current", "stale"]))
        def delete(self, key: str, choice: str) -> None:
            expected = self._expected(key, choice)
            current = self.model.version(key, self.now)
            if expected is not None and expected != current:
                with pytest.raises(ss.ConflictError):
                    self.ns.delete(key, expected_version=expected)
                return
            assert self.ns.delete(key, expected_version=expected) == (current > 0)
            if current:
                self.model.rows[key] = (current + 1, _GONE, self.now)

        @rule(seconds=st.integers(1, 15))
        def advance(self, seconds: int) -> None:
            self.now += seconds

        @rule(drop_tombstones=st.booleans())
        def purge(self, drop_tombstones: bool) -> None:
            app.purge_expired(tombstones_after=0 if drop_tombstones else 86_400)
            if drop_tombstones:
                for key in list(self.model.rows):
                    if self.model.visible(key, self.now) is None:
                        del self.model.rows[key]

        @rule(prefix=PREFIXES, limit=st.integers(1, 4))
        def scan(self, prefix: str, limit: int) -> None:
            seen: list[tuple[str, Any, int]] = []
            page = self.ns.scan(prefix=prefix, limit=limit)
            seen += [(i.key, i.value, i.version) for i in page.items]
            while page.cursor is not None:
                page = self.ns.scan(prefix=prefix, limit=limit, cursor=page.cursor)
                assert len(page.items) <= limit
                seen += [(i.key, i.value, i.version) for i in page.items]
            expected = []
            for key in sorted(self.model.rows):
                row = self.model.visible(key, self.now)
                if row is not None and key.startswith(prefix):
                    expected.append((key, row[1], row[0]))
            assert seen == expected

        @invariant()
        def every_key_reads_as_the_model_says(self) -> None:
            keys = ["a", "a%", "a%b", "a_", "ab", "b", "é", "éé"]
            many = self.ns.get_many(keys)
            for key in keys:
                row = self.model.visible(key, self.now)
                item = self.ns.get(key)
                if row is None:
                    assert item is None and key not in many
                else:
                    assert item is not None
                    assert (item.value, item.version, item.expires_at) == (
                        row[1],
                        row[0],
                        row[2],
                    )
                    assert many[key] == item

    return NamespaceMachine


@pytest.mark.timeout(300)
def test_a_namespace_behaves_like_a_versioned_dict(
    store_config: dict[str, Any], tmp_path: Path
) -> None:
    with ss.App(**store_config) as app:
        machine = _machine(app)
        machine.TestCase.settings = settings(
            max_examples=25,
            stateful_step_count=25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            database=None,
        )
        machine.TestCase().runTest()
