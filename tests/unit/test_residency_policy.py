"""The residency policy: rules from code and from stateshift.toml, decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from stateshift.config import load_settings
from stateshift.errors import ConfigError, ResidencyViolation
from stateshift.placement.policy import UNTAGGED, AuditRecord, ResidencyPolicy

TOML = """
[residency]
default = { store = ["*"], process = ["*"] }

[residency.tags.EU]
store = ["eu"]
process = ["eu"]

[residency.tags.US]
store = ["us"]
process = ["us", "eu"]

[residency.tenants]
acme = "EU"
"""


def test_a_policy_loads_from_stateshift_toml(tmp_path: Path) -> None:
    (tmp_path / "stateshift.toml").write_text(TOML)
    settings = load_settings(directory=tmp_path)
    policy = ResidencyPolicy.from_config(settings.extra["residency"])
    assert policy.allows("EU", "eu", "write", "eu")
    assert not policy.allows("EU", "us", "read")
    assert policy.allows("US", "eu", "read", "us")
    assert policy.resolve(tenant="acme") == "EU"
    assert policy.resolve(tenant="unknown") == UNTAGGED


def test_storing_needs_an_allowed_store_and_processing_region() -> None:
    policy = ResidencyPolicy({"US": {"store": ["us"], "process": ["us", "eu"]}})
    assert policy.allows("US", "eu", "write", "us")
    assert not policy.allows("US", "eu", "write", "eu")
    assert not policy.allows("US", "ap", "write", "us")
    assert policy.allows("US", "ap", "copy", "us")
    assert not policy.allows("US", "us", "copy", "eu")


def test_untagged_data_follows_the_default_rule() -> None:
    strict = ResidencyPolicy(default={"store": ["eu"], "process": ["eu"]})
    assert strict.allows(UNTAGGED, "eu", "write", "eu")
    assert not strict.allows(UNTAGGED, "us", "claim")
    assert ResidencyPolicy().allows(UNTAGGED, "us", "write", "us")


def test_the_home_region_prefers_the_local_one() -> None:
    policy = ResidencyPolicy({"EU": {"store": ["eu", "ch"], "process": ["*"]}})
    assert policy.home_region("EU", "ch", ["eu", "ch", "us"]) == "ch"
    assert policy.home_region("EU", "us", ["us", "eu", "ch"]) == "eu"
    with pytest.raises(ConfigError):
        policy.home_region("EU", "us", ["us"])


def test_check_audits_then_raises_a_violation_naming_the_key() -> None:
    policy = ResidencyPolicy({"EU": {"store": ["eu"], "process": ["eu"]}})
    records: list[AuditRecord] = []
    with pytest.raises(ResidencyViolation) as caught:
        policy.check("EU", "us", "read", "cart-7", audit=records.append)
    assert caught.value.key == "cart-7" and caught.value.region == "us"
    assert [(r.tag, r.region, r.operation, r.key) for r in records] == [
        ("EU", "us", "read", "cart-7")
    ]
    policy.check("EU", "eu", "read", "cart-7", audit=records.append)
    assert len(records) == 1


def test_a_resolver_callable_maps_tenants_to_tags() -> None:
    policy = ResidencyPolicy(
        {"EU": {"store": ["eu"]}}, tenant_resolver=lambda t: "EU" if t else None
    )
    assert policy.resolve(tenant="x") == "EU"
    assert policy.resolve(residency="EU", tenant="") == "EU"


@pytest.mark.parametrize(
    "section",
    [
        {"tags": {"eu": {"store": ["eu"]}}},
        {"tags": {"EU": {"store": ["EU"]}}},
        {"tags": {"EU": {"process": ["eu"]}}},
        {"tags": {"EU": {"store": ["eu"], "where": 1}}},
        {"unknown": 1},
    ],
)
def test_malformed_policies_are_refused(section: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        ResidencyPolicy.from_config(section)


def test_an_unknown_tag_is_refused_with_the_known_ones() -> None:
    policy = ResidencyPolicy({"EU": {"store": ["eu"]}})
    with pytest.raises(ConfigError, match="EU"):
        policy.resolve(residency="CN")
