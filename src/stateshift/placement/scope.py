"""The home of the work in progress: the shard, tag and key a workflow runs on.

While a workflow runs (its steps included), :func:`current_home` tells the
other patterns where its rows live. The workflow engine writes to that
store, and the state layer uses it to keep a step's writes on the same
shard (co-location) and to refuse a step that would carry the workflow's
data to a store its tag may not live in.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from stateshift.store import Store

__all__ = ["Home", "current_home", "home_scope"]


@dataclass(frozen=True)
class Home:
    """Where one workflow's rows live."""

    store: Store
    """The shard's store."""

    region: str
    """The shard's region."""

    shard_id: str
    """The shard's id inside its region."""

    tag: str
    """The residency tag of the workflow (``UNTAGGED`` when it has none)."""

    partition_key: str
    """The partition key that chose the shard."""

    owner: str
    """What lives there, for error messages (``workflow 'order-42'``)."""

    def describe(self) -> str:
        """Region, shard and owner, for error messages."""
        return f"{self.owner} on shard {self.shard_id} of region {self.region}"


_home: ContextVar[Home | None] = ContextVar("stateshift_home", default=None)


def current_home() -> Home | None:
    """The home of the workflow running in this context, if any."""
    return _home.get()


@contextmanager
def home_scope(home: Home | None) -> Iterator[Home | None]:
    """Make ``home`` current for the code inside the block."""
    token = _home.set(home)
    try:
        yield home
    finally:
        _home.reset(token)
