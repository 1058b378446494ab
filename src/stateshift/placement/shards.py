"""The shard map: which shard of a region holds a partition key.

Keys are placed by rendezvous (highest random weight) hashing: every shard
scores the key with a keyed hash of ``(shard id, key)`` and the highest
score wins. Adding a shard moves exactly the keys the new shard now wins,
about 1/N of them, and removing one moves only the keys it held. Scores
depend on shard *ids*, never on list positions, so reordering the URLs in a
configuration moves nothing.

Shard ids are explicit names (``{"a": url, "b": url}``) or, for a plain
list of URLs, ``s0``, ``s1``... by position: appending a URL is safe, while
inserting one in the middle of a list renames the ones after it (use names
then).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from stateshift.errors import ConfigError

__all__ = ["Move", "ShardMap", "plan", "shard_ids_for"]

_SHARD_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


def _score(shard_id: str, partition_key: str) -> int:
    digest = hashlib.blake2b(
        partition_key.encode("utf-8"), digest_size=8, key=shard_id.encode("utf-8")
    ).digest()
    return int.from_bytes(digest, "big")


def shard_ids_for(urls: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """Shard id to URL, from a list (ids by position) or a mapping (named)."""
    if isinstance(urls, Mapping):
        named = {str(k): str(v) for k, v in urls.items()}
    elif isinstance(urls, str):
        named = {"s0": urls}
    else:
        named = {f"s{index}": str(url) for index, url in enumerate(urls)}
    if not named:
        raise ConfigError("regions", "a region needs at least one store URL")
    for shard_id in named:
        if not _SHARD_ID.match(shard_id):
            raise ConfigError(
                "regions",
                f"shard id {shard_id!r} must be 1 to 40 lower-case letters, digits, "
                "'-' or '_'",
            )
    if len(set(named.values())) != len(named):
        raise ConfigError("regions", "two shards of a region share one store URL")
    return named


@dataclass(frozen=True)
class ShardMap:
    """The shards of one region, by id."""

    region: str
    """The region these shards belong to."""

    shard_ids: tuple[str, ...]
    """Every shard id, in configuration order."""

    def __post_init__(self) -> None:
        if not self.shard_ids:
            raise ConfigError("regions", f"region {self.region!r} has no shard")
        if len(set(self.shard_ids)) != len(self.shard_ids):
            raise ConfigError("regions", f"region {self.region!r} repeats a shard id")

    def shard_for(self, partition_key: str) -> str:
        """The id of the shard that holds ``partition_key``."""
        if len(self.shard_ids) == 1:
            return self.shard_ids[0]
        return max(self.shard_ids, key=lambda shard_id: _score(shard_id, partition_key))

    def with_shard(self, shard_id: str) -> ShardMap:
        """This map with one more shard."""
        return ShardMap(self.region, (*self.shard_ids, shard_id))

    def without_shard(self, shard_id: str) -> ShardMap:
        """This map with one shard less."""
        if shard_id not in self.shard_ids:
            raise ConfigError("shards", f"no shard {shard_id!r} in {self.region!r}")
        return ShardMap(self.region, tuple(s for s in self.shard_ids if s != shard_id))


@dataclass(frozen=True)
class Move:
    """One partition key that changes shard between two maps."""

    partition_key: str
    """The key that moves, with every row stored under it."""

    source: str
    """The shard that holds it under the old map."""

    target: str
    """The shard that holds it under the new map."""


def plan(old: ShardMap, new: ShardMap, keys: Iterable[str]) -> list[Move]:
    """The keys of ``keys`` whose shard differs between ``old`` and ``new``."""
    moves = []
    for key in keys:
        source, target = old.shard_for(key), new.shard_for(key)
        if source != target:
            moves.append(Move(key, source, target))
    return moves
