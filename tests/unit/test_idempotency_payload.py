"""Idempotency keys and payload hashes, without a store."""

from __future__ import annotations

import dataclasses
from datetime import date
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stateshift as ss
from stateshift.events._payload import (
    DEFAULT_EXCLUDED_FIELDS,
    extract_key,
    payload_hash,
    remaining_seconds,
)


@dataclasses.dataclass
class Order:
    id: str
    placed: date


class Context:
    def get_remaining_time_in_millis(self) -> int:
        return 2500


def digest(*args: Any, **kwargs: Any) -> str:
    return payload_hash(args, kwargs, excluded=DEFAULT_EXCLUDED_FIELDS)


def test_a_dotted_path_reads_dicts_lists_attributes_and_json_bodies() -> None:
    event = {"Records": [{"body": '{"payment": {"id": "p9"}}'}]}
    assert extract_key("Records.0.body.payment.id", (event,), {}) == "p9"
    assert extract_key("id", (Order("o1", date(2030, 1, 1)),), {}) == "o1"
    assert extract_key(lambda e: e["n"], ({"n": 5},), {}) == "5"


@pytest.mark.parametrize(
    "event", [{"body": {"other": 1}}, {"body": "not json"}, {"body": {"id": ""}}]
)
def test_a_missing_or_empty_key_is_refused(event: dict[str, Any]) -> None:
    with pytest.raises(ss.InvalidKey):
        extract_key("body.id", (event,), {})


def test_a_too_long_key_is_refused() -> None:
    with pytest.raises(ss.InvalidKey, match="over 512"):
        extract_key("id", ({"id": "x" * 600},), {})


def test_delivery_metadata_at_any_depth_does_not_change_the_hash() -> None:
    first = {
        "body": "b",
        "receiptHandle": "r1",
        "attributes": {"ApproximateReceiveCount": "1"},
    }
    again = {
        "body": "b",
        "receiptHandle": "r2",
        "attributes": {"ApproximateReceiveCount": "4"},
    }
    assert digest(first) == digest(again)
    assert digest(first) != digest({**first, "body": "c"})


def test_a_platform_context_is_not_part_of_the_payload() -> None:
    assert digest({"a": 1}, Context()) == digest({"a": 1})
    assert remaining_seconds(({"a": 1}, Context()), {}) == 2.5
    assert remaining_seconds(({"a": 1},), {}) is None


def test_typed_values_hash_by_their_content() -> None:
    assert digest(Order("o1", date(2030, 1, 1))) == digest(
        {"id": "o1", "placed": "2030-01-01"}
    )
    with pytest.raises(ss.UnsupportedType):
        digest(object())


@given(
    st.dictionaries(
        st.text(min_size=1, max_size=5),
        st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.none()),
        max_size=6,
    )
)
def test_the_hash_ignores_key_order(value: dict[str, Any]) -> None:
    reordered = dict(reversed(list(value.items())))
    assert digest(value) == digest(reordered)
