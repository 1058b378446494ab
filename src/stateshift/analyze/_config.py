"""Settings of the analyzer, from ``[tool.stateshift.analyze]`` in pyproject.toml.

::

    [tool.stateshift.analyze]
    select = ["SS1", "SS4"]          # rule ids or prefixes; default: all
    ignore = ["SS302"]
    exclude = ["tests/*", "scripts/*"]
    fail-on = "warning"              # error (default), warning, note, never
    sleep-threshold-seconds = 30

    [tool.stateshift.analyze.severity]
    SS204 = "error"
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from stateshift.analyze._context import Options
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.errors import ConfigError

_SECTION = "[tool.stateshift.analyze]"
_KNOWN_KEYS = {
    "select",
    "ignore",
    "exclude",
    "fail-on",
    "severity",
    "sleep-threshold-seconds",
}


@dataclass(frozen=True)
class AnalyzeConfig:
    """What to check, where, and what makes the run fail."""

    select: tuple[str, ...] = ()
    """Rule ids or id prefixes to run; empty runs every rule."""
    ignore: tuple[str, ...] = ()
    """Rule ids or id prefixes never to report."""
    exclude: tuple[str, ...] = ()
    """Glob patterns of files to skip, relative to ``root``."""
    fail_on: Severity | None = Severity.ERROR
    """Lowest severity that fails the run; ``None`` never fails."""
    severity: Mapping[str, Severity] = field(default_factory=dict)
    """Per-rule severity overrides."""
    options: Options = field(default_factory=Options)
    root: Path | None = None
    """Directory of the pyproject.toml the settings came from."""

    def enabled(self, rule_id: str) -> bool:
        """True when ``rule_id`` is selected and not ignored."""
        if self.select and not _matches(rule_id, self.select):
            return False
        return not _matches(rule_id, self.ignore)

    def severity_of(self, rule: RuleInfo) -> Severity:
        """The severity to report ``rule`` with."""
        return self.severity.get(rule.rule_id, rule.severity)

    def fails(self, severity: Severity) -> bool:
        """True when a finding of ``severity`` should fail the run."""
        return self.fail_on is not None and severity.rank >= self.fail_on.rank

    def with_command_line(
        self,
        *,
        select: Iterable[str] = (),
        ignore: Iterable[str] = (),
        fail_on: str | None = None,
    ) -> AnalyzeConfig:
        """Options given on the command line win over the file's."""
        changes: dict[str, Any] = {}
        select = tuple(select)
        if select:
            changes["select"] = select
        ignore = tuple(ignore)
        if ignore:
            changes["ignore"] = (*self.ignore, *ignore)
        if fail_on is not None:
            changes["fail_on"] = parse_fail_on(fail_on, "--fail-on")
        return replace(self, **changes)


def _matches(rule_id: str, patterns: Iterable[str]) -> bool:
    return any(rule_id.startswith(p) for p in patterns)


def parse_fail_on(value: str, setting: str) -> Severity | None:
    """``never`` or a severity name."""
    if value.strip().lower() == "never":
        return None
    try:
        return Severity.parse(value)
    except ValueError as exc:
        raise ConfigError(setting, f"{exc} or never") from None


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml in ``start`` or a parent directory."""
    current = start.resolve()
    if current.is_file():
        current = current.parent
    for directory in (current, *current.parents):
        candidate = directory / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(pyproject: Path | None) -> AnalyzeConfig:
    """Read the analyzer's table from a pyproject.toml (defaults without one).

    Raises:
        ConfigError: when the file cannot be read or a setting is wrong.
    """
    if pyproject is None:
        return AnalyzeConfig()
    try:
        with pyproject.open("rb") as handle:
            document = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(str(pyproject), f"cannot read it: {exc}") from None
    table = document.get("tool", {}).get("stateshift", {}).get("analyze", {})
    if not isinstance(table, dict):
        raise ConfigError(_SECTION, "must be a table")
    return _from_table(table, pyproject.parent.resolve())


def _from_table(table: dict[str, Any], root: Path) -> AnalyzeConfig:
    unknown = set(table) - _KNOWN_KEYS
    if unknown:
        known = ", ".join(sorted(_KNOWN_KEYS))
        raise ConfigError(
            f"{_SECTION} {sorted(unknown)[0]}", f"unknown key; known keys: {known}"
        )
    severity: dict[str, Severity] = {}
    raw_severity = table.get("severity", {})
    if not isinstance(raw_severity, dict):
        raise ConfigError(f"{_SECTION} severity", "must be a table of rule = level")
    for rule_id, level in raw_severity.items():
        try:
            severity[str(rule_id)] = Severity.parse(str(level))
        except ValueError as exc:
            raise ConfigError(f"{_SECTION} severity.{rule_id}", str(exc)) from None
    threshold = table.get("sleep-threshold-seconds", Options.sleep_threshold_seconds)
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise ConfigError(f"{_SECTION} sleep-threshold-seconds", "must be a number")
    fail_on = parse_fail_on(str(table.get("fail-on", "error")), f"{_SECTION} fail-on")
    return AnalyzeConfig(
        select=_strings(table, "select"),
        ignore=_strings(table, "ignore"),
        exclude=_strings(table, "exclude"),
        fail_on=fail_on,
        severity=severity,
        options=Options(sleep_threshold_seconds=float(threshold)),
        root=root,
    )


def _strings(table: dict[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{_SECTION} {key}", "must be a list of strings")
    return tuple(value)
