"""Public names imported on first use, for a light ``import stateshift``.

A package lists where each of its names lives; its module ``__getattr__``
(PEP 562) imports the defining module the first time a name is asked for
and keeps the value in the package's globals, so later lookups are plain
attribute reads. ``from package import name`` goes through the same hook.
Type checkers see the names through the package's ``TYPE_CHECKING`` imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_getattr(
    package: str, namespace: dict[str, Any], homes: Mapping[str, str]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that imports ``homes[name]`` for ``name``.

    Args:
        package: the package's ``__name__``, for error messages.
        namespace: the package's ``globals()``, where values are kept.
        homes: public name -> the module that defines it.
    """

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(home), name)
        namespace[name] = value
        return value

    return __getattr__
