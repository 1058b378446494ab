"""What every rule is: a description plus a check over one module."""

from __future__ import annotations

import abc
import ast
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from stateshift.analyze._context import ModuleContext
from stateshift.analyze._model import RuleInfo


@dataclass(frozen=True)
class Hit:
    """A place a rule matched, before severity and suppression apply."""

    node: ast.AST
    """The node whose position is reported."""
    message: str
    """What was found here, naming the code involved."""


class Rule(abc.ABC):
    """A check for one hazard. Subclasses set ``info`` and ``check``."""

    info: ClassVar[RuleInfo]

    @abc.abstractmethod
    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        """Yield every place in ``ctx`` where the hazard is present."""
