"""The analyzer's vocabulary: severities, rule descriptions and findings."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Severity(enum.Enum):
    """How bad a finding is; ordered, so a CI gate can compare them."""

    NOTE = "note"
    WARNING = "warning"
    ERROR = "error"

    @property
    def rank(self) -> int:
        """0 for a note, 1 for a warning, 2 for an error."""
        return _RANKS[self]

    @classmethod
    def parse(cls, text: str) -> Severity:
        """Read ``error``, ``warning`` or ``note`` (any case).

        Raises:
            ValueError: for any other text.
        """
        try:
            return cls(text.strip().lower())
        except ValueError:
            choices = ", ".join(s.value for s in cls)
            raise ValueError(
                f"unknown severity {text!r}; use one of: {choices}"
            ) from None


_RANKS = {Severity.NOTE: 0, Severity.WARNING: 1, Severity.ERROR: 2}


@dataclass(frozen=True)
class RuleInfo:
    """What a rule looks for and what to do about it."""

    rule_id: str
    """Stable id such as ``SS101``; the hundreds group rules by pattern."""
    name: str
    """Short kebab-case name, e.g. ``module-state-mutated``."""
    title: str
    """One line saying what was found."""
    severity: Severity
    """Default severity; configuration may override it."""
    why: str
    """Why this breaks or misbehaves on serverless compute."""
    fix: str
    """Which stateshift pattern fixes it."""
    example: str
    """A short code example of the fix."""


@dataclass(frozen=True)
class Finding:
    """One hazard at one place in one file."""

    rule: RuleInfo
    severity: Severity
    path: str
    """The file as it should be shown: relative to the working directory
    when inside it, with forward slashes."""
    line: int
    """1-based line."""
    column: int
    """1-based column, counted in characters."""
    end_line: int
    end_column: int
    message: str
    """What was found here, naming the code involved."""

    @property
    def rule_id(self) -> str:
        """The id of the rule that produced this finding."""
        return self.rule.rule_id

    def sort_key(self) -> tuple[str, int, int, str]:
        """Order by file, then position, then rule."""
        return (self.path, self.line, self.column, self.rule.rule_id)


PARSE_ERROR = RuleInfo(
    rule_id="SS000",
    name="parse-error",
    title="File could not be parsed",
    severity=Severity.ERROR,
    why=(
        "The analyzer reads code without running it; a file it cannot parse "
        "(a syntax error, an unknown encoding) is not checked at all."
    ),
    fix="Fix the syntax error, or exclude the file in [tool.stateshift.analyze].",
    example='[tool.stateshift.analyze]\nexclude = ["legacy/py2/*"]',
)
