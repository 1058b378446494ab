"""The App's placement methods: regions, residency policy, erasure."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from stateshift.codec import Codec, Keyring
from stateshift.placement.erasure import SubjectKeyring, data_subject

# The router, the policy and the shard map are imported when the placement
# is first built: an app on one store with no policy never needs them.
if TYPE_CHECKING:
    from stateshift.placement.erasure import ForgetReport, SubjectKeys
    from stateshift.placement.policy import ResidencyPolicy
    from stateshift.placement.router import Placement, RegionsConfig

__all__ = ["PlacementMixin"]


class PlacementMixin:
    """Adds ``regions=``, ``region=``, ``residency_policy=`` and erasure to App.

    With ``regions=`` and no store URL, the app's own store (used by features
    that keep one store) is the first shard of the local region.
    """

    settings: Any

    def __init__(
        self,
        store: str | None = None,
        *,
        regions: RegionsConfig | None = None,
        region: str | None = None,
        residency_policy: ResidencyPolicy | None = None,
        **settings: Any,
    ) -> None:
        if regions is not None and store is None and "store" not in settings:
            from stateshift.placement.shards import shard_ids_for

            local = region if region is not None else next(iter(regions), None)
            if local is not None and local in regions:
                store = next(iter(shard_ids_for(regions[local]).values()))
        super().__init__(store, **settings)  # type: ignore[call-arg]
        # Values written inside ``app.data_subject(...)`` are sealed with the
        # subject's key; every other value goes to the app's keyring as before.
        codec: Codec = cast(Any, self).codec
        subject_keyring = SubjectKeyring(
            lambda: self.subject_keys, fallback=codec.keyring
        )
        cast(Any, self).codec = Codec(
            codec.max_value_bytes,
            cast(Keyring, subject_keyring),
            allow_plaintext=codec.allow_plaintext,
        )
        self._regions_config = regions
        self._region = region
        self._residency_policy = residency_policy
        self._placement: Placement | None = None
        self._subject_keys: SubjectKeys | None = None
        self._placement_lock = threading.RLock()

    @property
    def placement(self) -> Placement:
        """Regions, shards and residency policy (built on first use)."""
        placement = self._placement
        if placement is None:
            with self._placement_lock:
                if self._placement is None:
                    from stateshift.placement.router import Placement

                    self._placement = Placement(
                        self.settings,
                        regions=self._regions_config,
                        region=self._region,
                        policy=self._residency_policy,
                        known_stores={self.settings.store: cast(Any, self).store},
                    )
                placement = self._placement
        return placement

    @property
    def subject_keys(self) -> SubjectKeys:
        """Per-subject data keys, for crypto-shredding."""
        keys = self._subject_keys
        if keys is None:
            with self._placement_lock:
                if self._subject_keys is None:
                    from stateshift.placement.erasure import SubjectKeys

                    self._subject_keys = SubjectKeys(self.placement)
                keys = self._subject_keys
        return keys

    @contextmanager
    def data_subject(self, subject: str, residency: str | None = None) -> Iterator[str]:
        """Seal values written inside the block with ``subject``'s own key."""
        with data_subject(subject, residency) as current:
            yield current

    def forget(self, subject: str) -> ForgetReport:
        """Forget a data subject: every stored value of theirs becomes unreadable.

        Their data key is destroyed in every region; reading one of their
        values then raises :class:`~stateshift.errors.DataErased`.
        """
        return self.subject_keys.forget(subject)

    def close(self) -> None:
        """Close the store and every shard's connections."""
        with self._placement_lock:
            placement, self._placement = self._placement, None
            self._subject_keys = None
        if placement is not None:
            placement.close()
        super().close()  # type: ignore[misc]
