"""Where in a value something went wrong, as a path like ``$.items[2].price``.

Walking code does not build path strings as it goes: that would cost every
value a string concatenation. Instead a failure raises :class:`Located`,
each container it unwinds through appends its own key or index, and the
caller that catches it at the top renders the path once.
"""

from __future__ import annotations

import json

__all__ = ["Located", "render_path"]


class Located(Exception):
    """A failure deep inside a value, collecting its path while it unwinds.

    Attributes:
        message: what went wrong (for encoding: the qualified type name).
        parts: keys and indexes from the innermost outwards.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.parts: list[str | int] = []


def render_path(parts: list[str | int]) -> str:
    """Render collected parts (innermost first) as ``$.a[0]["b c"]``."""
    rendered = ["$"]
    for part in reversed(parts):
        if isinstance(part, int):
            rendered.append(f"[{part}]")
        elif part.isidentifier():
            rendered.append(f".{part}")
        else:
            rendered.append(f"[{json.dumps(part)}]")
    return "".join(rendered)
