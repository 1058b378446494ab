"""Residency of queue messages and outbox rows: tagged, checked, claimed by region.

A message carries the residency tag it was written with, as a workflow or
a state item does: ``residency=`` on ``enqueue`` or ``publish``, or the
tag of ``tenant=``, or, when neither is given, the tag of the work that
writes it. That is the running workflow's (a step's output is the
workflow's data), else the running queue message's or subscriber
message's, else the one of the ``app.data_subject(..., residency=...)``
block. The write is checked with :meth:`Placement.check` (operation
``enqueue``) against the region of the store the queues and the outbox
live in, the app's own; a refused write is audited in the data's home
region and raises :class:`~stateshift.errors.ResidencyViolation` before
anything is stored or buffered.

Claims and relays filter in the query they already make: a worker claims,
and a relay hands to its sink, only messages whose tag their region may
process. Without a policy the filter is ``'*'`` (everything), so the hot
path costs nothing more.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from stateshift.placement.erasure import current_subject
from stateshift.placement.policy import UNTAGGED, ResidencyRule
from stateshift.placement.registry import TableSpec, register_table
from stateshift.placement.scope import current_home

if TYPE_CHECKING:
    from stateshift.app import AppBase
    from stateshift.placement.router import Placement

__all__ = [
    "EVERY_TAG",
    "message_scope",
    "message_tag",
    "processable_tags",
    "running_tag",
    "store_region",
]

EVERY_TAG = "*"
"""The claim filter that lets every tag through (no policy restricts this region)."""

_running_tag: ContextVar[str] = ContextVar("stateshift_message_tag", default="")


def running_tag() -> str | None:
    """The tag of the queue or topic message being handled here, if any."""
    return _running_tag.get() or None


@contextmanager
def message_scope(stored_tag: str) -> Iterator[None]:
    """Handle a message of ``stored_tag``: what it writes inherits the tag."""
    token = _running_tag.set(stored_tag)
    try:
        yield
    finally:
        _running_tag.reset(token)


def _inherited_tag() -> str | None:
    home = current_home()
    if home is not None:
        return None if home.tag == UNTAGGED else home.tag
    running = _running_tag.get()
    if running:
        return running
    subject = current_subject()
    return None if subject is None else subject[1]


def store_region(app: AppBase) -> str:
    """The region of the app's own store, where its queues and outbox live.

    The region whose shard list names the store's URL (the local region's
    first shard by default), else the local region.
    """
    placement = _placement(app)
    cached: tuple[Placement, str] | None = app.__dict__.get("_events_region")
    if cached is not None and cached[0] is placement:
        return cached[1]
    url = app.settings.store
    region = next(
        (name for name, shards in placement.urls.items() if url in shards.values()),
        placement.region,
    )
    app.__dict__["_events_region"] = (placement, region)
    return region


def message_tag(
    app: AppBase, audit_key: str, residency: str | None, tenant: str | None
) -> str:
    """Check writing a message to the app's store; return its tag as stored.

    ``audit_key`` names the message in the audit record and the error.

    Raises:
        ResidencyViolation: the policy refuses it (audited, nothing written).
        ConfigError: the tag is not in the policy.
    """
    if residency is None and tenant is None:
        residency = _inherited_tag()
    placement = _placement(app)
    target = store_region(app)
    tag, _ = placement.check(
        audit_key,
        residency,
        tenant=tenant,
        operation="enqueue",
        target_region=target,
    )
    home = current_home()
    if home is not None and home.tag not in (UNTAGGED, tag):
        # A workflow's message is the workflow's data whatever it is tagged:
        # it may only go where the workflow's own tag may live.
        placement.check(audit_key, home.tag, operation="copy", target_region=target)
    return "" if tag == UNTAGGED else tag


def processable_tags(app: AppBase, *also: str | None) -> str | None:
    """The claim filter of this process's region (and of the regions ``also``).

    :data:`EVERY_TAG` when the policy lets the regions process everything
    they could meet, else the tags every one of them may process, as
    ``,EU,US,`` (``,,`` stands for untagged), or ``None`` for no tag at all.
    """
    placement = _placement(app)
    policy = placement.policy
    regions = {placement.region, *(region for region in also if region)}

    def processable(rule: ResidencyRule) -> bool:
        return all(rule.may_process(region) for region in regions)

    if not policy.rules and processable(policy.default):
        return EVERY_TAG
    # Listed, not excluded: a row with a tag the policy does not know (a
    # forged one) is claimed by nobody, and `residency check` reports it.
    allowed = [tag for tag, rule in policy.rules.items() if processable(rule)]
    if processable(policy.default):
        allowed.append("")
    if not allowed:
        return None
    return "," + ",".join(allowed) + ","


def _placement(app: Any) -> Placement:
    placement: Placement = app.placement
    return placement


register_table(
    TableSpec(
        "queue_messages",
        columns=("id", "queue", "task", "status", "residency"),
        primary_key=("queue", "id"),
        residency_column="residency",
    )
)
register_table(
    TableSpec(
        "outbox",
        columns=("message_id", "topic", "msg_key", "residency"),
        primary_key=("topic", "message_id"),
        residency_column="residency",
    )
)
