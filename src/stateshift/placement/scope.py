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

from stateshift.placement.erasure import current_subject
from stateshift.store import Store

__all__ = ["Home", "current_home", "home_scope", "inherited_tag"]


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


def inherited_tag(home: Home | None) -> str | None:
    """The tag an access that names none takes from the work around it.

    The running workflow's (``home``), else the ``residency=`` of the
    enclosing ``app.data_subject(...)`` block, else none. State writes,
    workflow starts and queue messages inherit in this order, so what one
    block or one step writes carries one tag.
    """
    # Imported here: the policy module is not needed before the first run.
    from stateshift.placement.policy import UNTAGGED

    if home is not None:
        return None if home.tag == UNTAGGED else home.tag
    subject = current_subject()
    return None if subject is None else subject[1]
