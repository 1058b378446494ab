"""Rebuilding a recorded step error as the same type, without trusting data.

A step's exception is stored as its qualified type name and message. On
replay the name is looked up among types this process has seen raised, then
among classes of modules already imported (nothing is imported because the
database says so). Only subclasses of ``Exception`` built from one message
qualify; anything else replays as :class:`~stateshift.errors.StepError`.
"""

from __future__ import annotations

import ast
import sys
import threading

from stateshift.errors import StepError

__all__ = ["rebuild", "remember", "type_name"]

_seen: dict[str, type[Exception]] = {}
_lock = threading.Lock()


def type_name(kind: type[BaseException]) -> str:
    """``module.QualName`` of an exception type (``builtins.ValueError``)."""
    return f"{kind.__module__}.{kind.__qualname__}"


def remember(kind: type[BaseException]) -> None:
    """Note a type raised live in this process, so replay can rebuild it."""
    if issubclass(kind, Exception):
        with _lock:
            _seen.setdefault(type_name(kind), kind)


def _imported(name: str) -> type[Exception] | None:
    if "<" in name:  # classes defined inside functions have no stable name
        return None
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        module = sys.modules.get(".".join(parts[:split]))
        if module is None:
            continue
        found: object = module
        for attribute in parts[split:]:
            found = getattr(found, attribute, None)
            if found is None:
                return None
        if isinstance(found, type) and issubclass(found, Exception):
            return found
        return None
    return None


def rebuild(workflow_id: str, name: str, message: str) -> Exception:
    """An exception of the recorded type and message, or a ``StepError``."""
    kind = _seen.get(name) or _imported(name)
    if kind is not None:
        for argument in _arguments(message):
            try:
                rebuilt = kind(argument)
            except Exception:
                continue
            if str(rebuilt) == message:
                return rebuilt
    return StepError(workflow_id, name, message)


def _arguments(message: str) -> list[str]:
    # KeyError shows its argument quoted: str(KeyError("k")) == "'k'".
    candidates = [message]
    if len(message) >= 2 and message[0] == message[-1] and message[0] in "'\"":
        try:
            inner = ast.literal_eval(message)
        except (ValueError, SyntaxError):
            inner = None
        if isinstance(inner, str):
            candidates.append(inner)
    return candidates
