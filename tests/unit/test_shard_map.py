"""The shard map: stable, balanced, and adding a shard moves about 1/N keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stateshift.errors import ConfigError
from stateshift.placement.shards import ShardMap, plan, shard_ids_for

keys = st.lists(st.text(min_size=1, max_size=30), min_size=1, max_size=200)
counts = st.integers(min_value=1, max_value=12)


def make_map(count: int) -> ShardMap:
    return ShardMap("eu", tuple(f"s{i}" for i in range(count)))


@given(keys, counts)
def test_adding_a_shard_moves_keys_only_onto_the_new_shard(
    partition_keys: list[str], count: int
) -> None:
    old, new = make_map(count), make_map(count).with_shard(f"s{count}")
    for move in plan(old, new, partition_keys):
        assert move.target == f"s{count}"


@given(keys, st.integers(min_value=2, max_value=12), st.data())
def test_removing_a_shard_moves_only_its_own_keys(
    partition_keys: list[str], count: int, data: st.DataObject
) -> None:
    old = make_map(count)
    gone = data.draw(st.sampled_from(old.shard_ids))
    new = old.without_shard(gone)
    moves = plan(old, new, partition_keys)
    assert {m.partition_key for m in moves} == {
        k for k in partition_keys if old.shard_for(k) == gone
    }


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=1, max_value=15))
def test_about_one_in_n_plus_one_keys_move_when_a_shard_is_added(
    count: int,
) -> None:
    sample = [f"customer-{i}" for i in range(6000)]
    old = make_map(count)
    moved = len(plan(old, old.with_shard("extra"), sample)) / len(sample)
    expected = 1 / (count + 1)
    assert abs(moved - expected) < 0.25 * expected + 0.01


@given(keys, st.permutations([f"s{i}" for i in range(6)]))
def test_the_order_of_shards_in_the_configuration_does_not_matter(
    partition_keys: list[str], order: list[str]
) -> None:
    base, shuffled = make_map(6), ShardMap("eu", tuple(order))
    assert [base.shard_for(k) for k in partition_keys] == [
        shuffled.shard_for(k) for k in partition_keys
    ]


def test_keys_spread_evenly_over_shards() -> None:
    shard_map = make_map(4)
    tally: dict[str, int] = {}
    for i in range(8000):
        shard = shard_map.shard_for(f"order-{i}")
        tally[shard] = tally.get(shard, 0) + 1
    assert min(tally.values()) > 1700 and max(tally.values()) < 2300


def test_shard_ids_come_from_positions_or_names() -> None:
    assert shard_ids_for(["sqlite:///a.db", "sqlite:///b.db"]) == {
        "s0": "sqlite:///a.db",
        "s1": "sqlite:///b.db",
    }
    assert shard_ids_for({"blue": "sqlite:///a.db"}) == {"blue": "sqlite:///a.db"}
    assert shard_ids_for("sqlite:///a.db") == {"s0": "sqlite:///a.db"}


@pytest.mark.parametrize(
    "bad",
    [[], {"Bad Name": "sqlite:///a.db"}, ["sqlite:///a.db", "sqlite:///a.db"]],
)
def test_bad_shard_lists_are_refused(bad: object) -> None:
    with pytest.raises(ConfigError):
        shard_ids_for(bad)  # type: ignore[arg-type]
