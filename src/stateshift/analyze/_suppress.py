"""``# stateshift: ignore[SS101]`` comments that silence findings on a line."""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Mapping

ALL = frozenset({"*"})
"""Marker for a bare ``# stateshift: ignore``: every rule on the line."""

_COMMENT = re.compile(
    r"#\s*stateshift:\s*ignore(?:\[(?P<rules>[^\]]*)\])?(?![\w\[-])", re.IGNORECASE
)


def suppressions(source: str) -> Mapping[int, frozenset[str]]:
    """Line number -> rule ids silenced there (``ALL`` for every rule).

    Comments are found with the tokenizer, so the text inside a string
    literal never silences anything. A source the tokenizer rejects has
    no suppressions (the parse error is reported on its own).
    """
    found: dict[int, frozenset[str]] = {}
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return found
    for token in tokens:
        if token.type != tokenize.COMMENT:
            continue
        match = _COMMENT.search(token.string)
        if match is None:
            continue
        rules = match.group("rules")
        line = token.start[0]
        if rules is None:
            found[line] = ALL
        else:
            ids = {r.strip().upper() for r in rules.split(",") if r.strip()}
            found[line] = found.get(line, frozenset()) | ids
    return found


def is_suppressed(
    table: Mapping[int, frozenset[str]], rule_id: str, lines: range
) -> bool:
    """True when any line in ``lines`` silences ``rule_id``."""
    for line in lines:
        ids = table.get(line)
        if ids is not None and (ids is ALL or rule_id in ids):
            return True
    return False
