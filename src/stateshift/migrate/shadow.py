"""Shadow reads: serve the legacy value, compare the new one, count the difference.

During a dual-run period the legacy store stays the source of truth while
the new namespace is filled (by a backfill and by dual writes). Wrap reads
in a :class:`ShadowNamespace`: each ``get`` returns what the legacy store
says, reads the namespace too, and counts whether the two agree. When the
counts show that enough reads agree (:func:`safe_to_switch`), reads can
move to the namespace.

Values are compared by checksum of their canonical encoded form, so field
order and tuple-versus-list do not count as differences. A failure of the
namespace read is counted and logged, never raised: the legacy read is
what the caller asked for.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from stateshift.migrate._checksum import value_digest
from stateshift.state.namespace import Namespace

__all__ = ["ShadowNamespace", "ShadowStats", "safe_to_switch"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class ShadowStats:
    """Counts of shadow reads since the wrapper was made (or reset)."""

    reads: int
    matches: int
    """Both sides hold the same value (or both lack the key)."""
    mismatches: int
    """Both hold a value, and they differ."""
    missing: int
    """The legacy store has the key, the namespace does not."""
    unexpected: int
    """The namespace has the key, the legacy store does not."""
    errors: int
    """The namespace read (or the comparison) failed."""

    @property
    def disagreements(self) -> int:
        """Reads where the namespace would have answered otherwise."""
        return self.mismatches + self.missing + self.unexpected + self.errors

    @property
    def mismatch_rate(self) -> float:
        """Disagreements per read (0.0 before any read)."""
        return self.disagreements / self.reads if self.reads else 0.0


class ShadowNamespace(Generic[T]):
    """Reads from a legacy getter, compared with a namespace on every read.

    Args:
        legacy_get: returns the legacy value of a key, or ``None`` when absent.
        namespace: the new namespace (``app.state("carts")``).
        key_map: turns the caller's key into the namespace's, when they differ.
    """

    def __init__(
        self,
        legacy_get: Callable[[str], T | None],
        namespace: Namespace[Any],
        *,
        key_map: Callable[[str], str] | None = None,
    ) -> None:
        if not callable(legacy_get):
            raise TypeError("legacy_get must be a function of the key")
        if not isinstance(namespace, Namespace):
            raise TypeError("namespace must be a stateshift Namespace")
        self.legacy_get = legacy_get
        self.namespace = namespace
        self.key_map = key_map
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(
            ("reads", "matches", "mismatches", "missing", "unexpected", "errors"), 0
        )

    def get(self, key: str) -> T | None:
        """The legacy value of ``key``; the namespace's is compared and counted."""
        legacy = self.legacy_get(key)
        outcome = self._compare(key, legacy)
        with self._lock:
            self._counts["reads"] += 1
            self._counts[outcome] += 1
        return legacy

    def _compare(self, key: str, legacy: T | None) -> str:
        target = self.key_map(key) if self.key_map is not None else key
        try:
            item = self.namespace.get(target)
            if legacy is None and item is None:
                return "matches"
            if item is None:
                outcome = "missing"
            elif legacy is None:
                outcome = "unexpected"
            elif value_digest(legacy) == value_digest(item.value):
                return "matches"
            else:
                outcome = "mismatches"
        except Exception as exc:
            logger.warning(
                "shadow read of %s/%s failed: %s",
                self.namespace.name,
                target,
                exc,
                extra={
                    "event": "migrate.shadow_error",
                    "namespace": self.namespace.name,
                    "key": target,
                },
            )
            return "errors"
        logger.info(
            "shadow read of %s/%s: %s",
            self.namespace.name,
            target,
            outcome,
            extra={
                "event": "migrate.shadow_mismatch",
                "namespace": self.namespace.name,
                "key": target,
                "outcome": outcome,
                "version": None if item is None else item.version,
            },
        )
        return outcome

    def stats(self) -> ShadowStats:
        """The counts so far."""
        with self._lock:
            return ShadowStats(**self._counts)

    def reset(self) -> None:
        """Start counting afresh (after fixing a cause of mismatches)."""
        with self._lock:
            for name in self._counts:
                self._counts[name] = 0


def safe_to_switch(
    stats: ShadowStats | ShadowNamespace[Any],
    *,
    min_reads: int = 1000,
    max_mismatch_rate: float = 0.0,
) -> bool:
    """Whether enough reads agreed to move reads to the namespace.

    Args:
        stats: the counts, or the wrapper to take them from.
        min_reads: how many reads the decision needs at least.
        max_mismatch_rate: the largest tolerated share of disagreements.
    """
    if isinstance(stats, ShadowNamespace):
        stats = stats.stats()
    if min_reads < 1:
        raise ValueError("min_reads must be at least 1")
    if not 0.0 <= max_mismatch_rate <= 1.0:
        raise ValueError("max_mismatch_rate must be between 0 and 1")
    return stats.reads >= min_reads and stats.mismatch_rate <= max_mismatch_rate
