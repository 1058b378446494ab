"""What one app knows in memory: its tasks, queues and topic subscriptions.

Stored messages name a task by its registered name only; nothing read from
the store is ever imported or looked up outside this registry, so data can
never choose which code runs.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stateshift.errors import QueueError

if TYPE_CHECKING:
    from stateshift.app import AppBase
    from stateshift.events.queues import Queue
    from stateshift.events.topics import Subscription

TASK_ATTRIBUTE = "__stateshift_task__"


class Registry:
    """Tasks by name, queues by name, subscriptions by topic."""

    def __init__(self) -> None:
        self.tasks: dict[str, Callable[..., Any]] = {}
        self.queues: dict[str, Queue] = {}
        self.subscriptions: dict[str, list[Subscription]] = {}
        self.starts: dict[str, Callable[..., Any]] = {}
        """Workflow functions, by the name of the task that starts them."""
        self.lock = threading.Lock()

    def register_task(
        self, fn: Callable[..., Any], name: str | None = None
    ) -> Callable[..., Any]:
        """Make ``fn`` runnable from queue messages under ``name``.

        The workflow engine registers a workflow here with a runner that
        starts it, so enqueueing a workflow function starts that workflow.
        """
        name = name or task_name(fn)
        with self.lock:
            known = self.tasks.get(name)
            if known is not None and known is not fn:
                raise ValueError(
                    f"two different functions are registered as task {name!r}; "
                    "give one of them name="
                )
            self.tasks[name] = fn
        try:
            setattr(fn, TASK_ATTRIBUTE, name)
        except (AttributeError, TypeError):
            pass
        return fn

    def name_of(self, fn: Callable[..., Any]) -> str:
        """The registered name of ``fn``.

        Raises:
            QueueError: ``fn`` was never registered with this app.
        """
        name = getattr(fn, TASK_ATTRIBUTE, None)
        if isinstance(name, str) and self.tasks.get(name) is fn:
            return name
        for known, registered in self.tasks.items():
            if registered is fn:
                return known
        raise QueueError(
            f"{task_name(fn)} is not a registered task of this app: decorate it "
            "with @queue.task (or another app decorator) before enqueueing it"
        )


def task_name(fn: Callable[..., Any]) -> str:
    """The default name of a task: its module and qualified name."""
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)}"


def registry_of(app: AppBase) -> Registry:
    """The registry of ``app``, created on first use."""
    registry: Registry | None = app.__dict__.get("_events_registry")
    if registry is None:
        registry = app.__dict__.setdefault("_events_registry", Registry())
    return registry
