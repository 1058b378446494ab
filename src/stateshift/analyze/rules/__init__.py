"""The analyzer's rules, one small module per pattern.

Ids are grouped by the stateshift pattern that fixes the hazard:

- SS1xx externalized state (``app.state``, entities, sessions)
- SS2xx orchestration (workflows, ``ss.sleep``, ``ss.wait_for_event``, queues)
- SS3xx connections
- SS4xx idempotency (``@app.idempotent``, step idempotency keys, outbox)
- SS5xx sagas (``ss.Saga``)
"""

from __future__ import annotations

from stateshift.analyze.rules._base import Hit, Rule
from stateshift.analyze.rules.background import BackgroundWork, FireAndForget, Scheduler
from stateshift.analyze.rules.clients import ClientPerCall, ConnectionAtImport
from stateshift.analyze.rules.files import LocalFileWrite
from stateshift.analyze.rules.idempotency import (
    EmailWithoutKey,
    HandlerWithoutIdempotency,
    PaymentWithoutKey,
)
from stateshift.analyze.rules.sagas import WritesWithoutCompensation
from stateshift.analyze.rules.state import (
    InMemorySession,
    InProcessCache,
    ModuleStateMutated,
)
from stateshift.analyze.rules.waiting import LongSleep, PollingLoop

ALL_RULES: tuple[type[Rule], ...] = (
    ModuleStateMutated,
    InProcessCache,
    InMemorySession,
    LocalFileWrite,
    BackgroundWork,
    Scheduler,
    FireAndForget,
    LongSleep,
    PollingLoop,
    ConnectionAtImport,
    ClientPerCall,
    HandlerWithoutIdempotency,
    PaymentWithoutKey,
    EmailWithoutKey,
    WritesWithoutCompensation,
)
"""Every rule, in id order."""

__all__ = ["ALL_RULES", "Hit", "Rule"]
