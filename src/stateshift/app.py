"""The runtime object: :class:`App` holds settings, the store and registrations.

Each pattern adds its methods through a mixin defined next to its code
(``workflows/api.py``, ``state/api.py``...), so this module stays small and
the features stay apart. Nothing connects to a database until first use.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter
from typing import Any

from stateshift.codec import Codec, Keyring
from stateshift.config import Settings, load_settings
from stateshift.events.api import EventsMixin
from stateshift.placement.api import PlacementMixin
from stateshift.runtime.api import RuntimeMixin
from stateshift.state.api import StateMixin
from stateshift.store import Store, open_store
from stateshift.workflows.api import WorkflowsMixin
from stateshift.workflows.operations import OperationsMixin

logger = logging.getLogger(__name__)


class AppBase:
    """Settings, store and codec shared by every pattern mixin."""

    def __init__(self, store: str | None = None, **settings: Any) -> None:
        """Create an app.

        Args:
            store: the store URL; else ``STATESHIFT_STORE``; else
                ``sqlite:///./stateshift.db``.
            **settings: any field of :class:`stateshift.config.Settings`.
        """
        overrides = dict(settings)
        if store is not None:
            overrides["store"] = store
        self.settings: Settings = load_settings(overrides)
        self.worker_id = self.settings.worker_id or _default_worker_id()
        keyring = (
            Keyring.from_string(self.settings.encryption_keys)
            if self.settings.encryption_keys
            else None
        )
        self.codec = Codec(
            max_value_bytes=self.settings.max_value_bytes, keyring=keyring
        )
        self._store: Store | None = None
        self._store_lock = threading.Lock()

    @property
    def store(self) -> Store:
        """The store, opened on first use (its schema migrated then, too)."""
        store = self._store
        if store is None:
            with self._store_lock:
                if self._store is None:
                    self._store = open_store(self.settings)
                store = self._store
        return store

    def _run_due_messages(
        self, budget_seconds: float | None
    ) -> tuple[int, Counter[str]]:
        """Run due queue messages; the events layer overrides this hook.

        Returns:
            The messages run, and the outcomes of the workflows started from
            messages and run in the same pass.
        """
        return 0, Counter()

    def close(self) -> None:
        """Close the store's connections. The app can be used again later."""
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def __enter__(self) -> AppBase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<stateshift.App {self.settings.store!r}>"


def _default_worker_id() -> str:
    # Stable across restarts of the same process slot on the same host, so a
    # restarted worker reclaims its own leases without waiting for them.
    # os.uname() is what socket.gethostname() reads, without importing socket.
    if hasattr(os, "uname"):
        host = os.uname().nodename
    else:  # pragma: no cover - Windows
        import socket

        host = socket.gethostname()
    return f"{host}:{os.getpid()}"


class App(
    OperationsMixin,
    RuntimeMixin,
    PlacementMixin,
    WorkflowsMixin,
    EventsMixin,
    StateMixin,
    AppBase,
):
    """A stateshift application: register steps, workflows and handlers on it."""
