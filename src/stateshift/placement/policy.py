"""The residency policy: where data of each tag may be stored and processed.

A residency tag is a jurisdiction or classification in capitals (``EU``).
Each tag has a rule with two sets of regions (deployment names in lower
case): where rows may be *stored*, and where workers may *process* them
(read, claim, write). Untagged data follows the default rule, which allows
everything unless configured otherwise. ``"*"`` stands for every region.

In ``stateshift.toml``::

    [residency]
    default = { store = ["*"], process = ["*"] }

    [residency.tags.EU]
    store = ["eu"]
    process = ["eu"]

    [residency.tenants]      # a static tenant resolver
    acme = "EU"

The decision is a pure function (:meth:`ResidencyPolicy.allows`), so tests
can use it as an oracle; :meth:`ResidencyPolicy.check` raises
:class:`~stateshift.errors.ResidencyViolation` and hands an
:class:`AuditRecord` to a sink before raising.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from stateshift.errors import ConfigError, ResidencyViolation

__all__ = [
    "ANY_REGION",
    "OPERATIONS",
    "UNTAGGED",
    "AuditRecord",
    "ResidencyPolicy",
    "ResidencyRule",
    "check_region_name",
    "check_tag",
]

ANY_REGION = "*"
"""In a rule, stands for every region."""

UNTAGGED = "UNTAGGED"
"""The tag reported for data that carries none (it follows the default rule)."""

OPERATIONS = frozenset({"write", "start", "enqueue", "copy", "read", "claim"})
"""What a check is about. The first four store data, the last two process it."""

_STORING = frozenset({"write", "start", "enqueue", "copy"})
_TAG = re.compile(r"^[A-Z][A-Z0-9_-]{0,31}$")
_REGION = re.compile(r"^[a-z][a-z0-9-]{0,31}$")

TenantResolver = Callable[[str], "str | None"]
AuditSink = Callable[["AuditRecord"], None]


def check_tag(tag: str) -> str:
    """Return ``tag`` if it is a valid residency tag, else raise ConfigError."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ConfigError(
            "residency",
            f"residency tag {tag!r} must be capitals, digits, '-' or '_' (like EU)",
        )
    return tag


def check_region_name(region: str) -> str:
    """Return ``region`` if it is a valid region name, else raise ConfigError."""
    if not isinstance(region, str) or not _REGION.match(region):
        raise ConfigError(
            "regions",
            f"region name {region!r} must be lower-case letters, digits and '-' "
            "(like eu or us-east)",
        )
    return region


def _regions(value: Any, what: str) -> frozenset[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, Iterable):
        raise ConfigError("residency", f"{what} must be a list of region names")
    names = frozenset(str(v) for v in value)
    for name in names:
        if name != ANY_REGION:
            check_region_name(name)
    return names


@dataclass(frozen=True)
class ResidencyRule:
    """Where the data of one tag may live and be worked on."""

    store_regions: frozenset[str]
    """Regions whose stores may hold the data (``*`` for any)."""

    process_regions: frozenset[str]
    """Regions whose workers may read, claim or write the data (``*`` for any)."""

    def may_store(self, region: str) -> bool:
        """True when a store of ``region`` may hold the data."""
        return ANY_REGION in self.store_regions or region in self.store_regions

    def may_process(self, region: str) -> bool:
        """True when a worker of ``region`` may handle the data."""
        return ANY_REGION in self.process_regions or region in self.process_regions

    @classmethod
    def parse(cls, value: Any, what: str) -> ResidencyRule:
        """Build a rule from ``{"store": [...], "process": [...]}``."""
        if isinstance(value, ResidencyRule):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(
                "residency", f"{what} must be a table with 'store' and 'process'"
            )
        unknown = set(value) - {"store", "process"}
        if unknown:
            raise ConfigError("residency", f"{what} has unknown keys {sorted(unknown)}")
        if "store" not in value:
            raise ConfigError("residency", f"{what} needs 'store' (a list of regions)")
        store = _regions(value["store"], f"{what}.store")
        process = _regions(value.get("process", value["store"]), f"{what}.process")
        return cls(store, process)


ALLOW_ALL = ResidencyRule(frozenset({ANY_REGION}), frozenset({ANY_REGION}))


@dataclass(frozen=True)
class AuditRecord:
    """One refused operation: what, which key, from where, when; never data."""

    tag: str
    """Residency tag of the data concerned."""

    region: str
    """The region that tried the operation."""

    operation: str
    """One of :data:`OPERATIONS`, or ``forged-region``."""

    key: str
    """The partition key, workflow id or item key concerned."""

    home_region: str
    """The region whose audit log receives the record."""

    target_region: str = ""
    """Where the data would have been stored, for storing operations."""

    at: float = field(default_factory=time.time)
    """When, in epoch seconds."""


class ResidencyPolicy:
    """Residency rules by tag, a default for untagged data, a tenant resolver.

    Args:
        tags: tag to rule (a :class:`ResidencyRule` or a mapping with
            ``store`` and ``process`` region lists).
        default: the rule of untagged data.
        tenant_resolver: maps a tenant id to its tag (or None for untagged).
        tenants: a static tenant to tag mapping, used when no resolver is given.
    """

    def __init__(
        self,
        tags: Mapping[str, ResidencyRule | Mapping[str, Any]] | None = None,
        *,
        default: ResidencyRule | Mapping[str, Any] | None = None,
        tenant_resolver: TenantResolver | None = None,
        tenants: Mapping[str, str] | None = None,
    ) -> None:
        self.rules: dict[str, ResidencyRule] = {
            check_tag(tag): ResidencyRule.parse(rule, f"residency.tags.{tag}")
            for tag, rule in (tags or {}).items()
        }
        self.default = (
            ALLOW_ALL if default is None else ResidencyRule.parse(default, "default")
        )
        self._tenants = {str(k): check_tag(v) for k, v in (tenants or {}).items()}
        self._resolver = tenant_resolver

    @classmethod
    def from_config(
        cls,
        section: Mapping[str, Any],
        *,
        tenant_resolver: TenantResolver | None = None,
    ) -> ResidencyPolicy:
        """Build a policy from the ``[residency]`` table of ``stateshift.toml``."""
        unknown = set(section) - {"tags", "default", "tenants"}
        if unknown:
            raise ConfigError("residency", f"unknown keys {sorted(unknown)}")
        tags = section.get("tags", {})
        tenants = section.get("tenants", {})
        if not isinstance(tags, Mapping) or not isinstance(tenants, Mapping):
            raise ConfigError("residency", "'tags' and 'tenants' must be tables")
        return cls(
            tags,
            default=section.get("default"),
            tenant_resolver=tenant_resolver,
            tenants=tenants,
        )

    # --- decisions ----------------------------------------------------------

    def resolve(self, residency: str | None = None, tenant: str | None = None) -> str:
        """The tag of data written with ``residency=`` or for ``tenant``."""
        if residency is not None:
            return self._known(check_tag(residency))
        if tenant is not None:
            resolved = (
                self._resolver(tenant)
                if self._resolver is not None
                else self._tenants.get(tenant)
            )
            if resolved is not None:
                return self._known(check_tag(resolved))
        return UNTAGGED

    def rule(self, tag: str) -> ResidencyRule:
        """The rule in force for ``tag`` (the default one for untagged data)."""
        if tag == UNTAGGED:
            return self.default
        return self.rules[self._known(tag)]

    def allows(
        self, tag: str, region: str, operation: str, target_region: str | None = None
    ) -> bool:
        """Whether a worker of ``region`` may do ``operation`` on data of ``tag``.

        Storing operations (write, start, enqueue, copy) also need the store
        they write to, ``target_region``, to be one the tag may live in; a
        copy is done by an operator, so only its target counts. Reading and
        claiming need the worker's region to be allowed to process the tag.
        """
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        rule = self.rule(tag)
        if operation in _STORING:
            if target_region is None or not rule.may_store(target_region):
                return False
            return operation == "copy" or rule.may_process(region)
        if target_region is not None and not rule.may_store(target_region):
            return False
        return rule.may_process(region)

    def home_region(self, tag: str, local_region: str, regions: Iterable[str]) -> str:
        """Where data of ``tag`` is stored when written from ``local_region``.

        The local region when the tag may live there, else the first
        configured region that may hold it.

        Raises:
            ConfigError: no configured region may hold data of ``tag``.
        """
        rule = self.rule(tag)
        if rule.may_store(local_region):
            return local_region
        for region in regions:
            if rule.may_store(region):
                return region
        raise ConfigError(
            "residency",
            f"no configured region may store data tagged {tag}: add one of "
            f"{sorted(rule.store_regions)} to regions=",
        )

    def check(
        self,
        tag: str,
        region: str,
        operation: str,
        key: str,
        *,
        target_region: str | None = None,
        home_region: str | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        """Raise ResidencyViolation (after auditing) unless :meth:`allows`."""
        if self.allows(tag, region, operation, target_region):
            return
        if audit is not None:
            audit(
                AuditRecord(
                    tag=tag,
                    region=region,
                    operation=operation,
                    key=key,
                    home_region=home_region or target_region or region,
                    target_region=target_region or "",
                )
            )
        raise ResidencyViolation(tag, region, operation, key)

    def _known(self, tag: str) -> str:
        if tag not in self.rules:
            raise ConfigError(
                "residency",
                f"residency tag {tag!r} is not in the policy (it has "
                f"{', '.join(sorted(self.rules)) or 'no tags'}): add it under "
                "[residency.tags]",
            )
        return tag

    def __repr__(self) -> str:
        return f"ResidencyPolicy(tags={sorted(self.rules)!r})"
