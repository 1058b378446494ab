"""SS501, sagas: a business transaction spread over several services.

When the third of three writes fails, the first two have happened: stock
is held, the card is charged, and nothing undoes them. On serverless the
function may also simply be stopped between two writes.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

from stateshift.analyze._context import FunctionNode, ModuleContext, walk_own
from stateshift.analyze._model import RuleInfo, Severity
from stateshift.analyze.rules._base import Hit, Rule
from stateshift.analyze.rules._effects import payment_call, write_call
from stateshift.analyze.rules._vocab import is_durable_step, split_call

_UNDO = re.compile(
    r"refund|release|cancel|rollback|roll_back|compensat|undo|revert|void|"
    r"restock|unreserve|delete|remove|reverse",
    re.IGNORECASE,
)


class WritesWithoutCompensation(Rule):
    """SS501: writes to two or more services and no way back."""

    info = RuleInfo(
        rule_id="SS501",
        name="writes-without-compensation",
        title="Multi-step writes to several services with no compensation",
        severity=Severity.WARNING,
        why=(
            "If a later write fails, or the instance is stopped between two "
            "writes, the earlier ones stay done: stock reserved and a card "
            "charged for an order that never ships. Nothing records how far "
            "the function got."
        ),
        fix=(
            "Make the sequence a workflow of steps inside `ss.Saga()`: each step "
            "registers its compensation, and when a later step fails the "
            "compensations run durably, in reverse order."
        ),
        example=(
            "@app.workflow()\n"
            "def place_order(order: dict) -> None:\n"
            "    with ss.Saga() as saga:\n"
            '        reserve_stock(order["sku"])\n'
            '        saga.compensate(release_stock, order["sku"])\n'
            '        charge(order["id"], order["cents"])\n'
            '        saga.compensate(refund, order["id"])\n'
            '        ship(order["id"])'
        ),
    )

    def check(self, ctx: ModuleContext) -> Iterator[Hit]:
        for func in ctx.functions():
            if is_durable_step(ctx, func):
                continue
            services = _services_written(ctx, func)
            if len(services) < 2 or _compensates(ctx, func):
                continue
            listed = ", ".join(f"`{s}`" for s in services)
            yield Hit(
                func,
                f"`{func.name}()` writes to {listed} in turn; nothing undoes "
                "the earlier writes when a later one fails",
            )


def _services_written(ctx: ModuleContext, func: FunctionNode) -> list[str]:
    """Distinct services written by ``func``, in source order."""
    calls = sorted(ctx.calls_in(func), key=lambda c: (c.lineno, c.col_offset))
    services: list[str] = []
    for call in calls:
        service = write_call(ctx, call)
        if service is None and payment_call(ctx, call) is not None:
            parts = split_call(ctx, call)
            service = parts[0] if parts and parts[0] else None
        if service is not None and service not in services:
            services.append(service)
    return services


def _compensates(ctx: ModuleContext, func: FunctionNode) -> bool:
    """A saga, or a ``try`` whose ``except``/``finally`` undoes something."""
    for node in walk_own(func):
        if isinstance(node, ast.Name) and node.id == "Saga":
            return True
        if isinstance(node, ast.Attribute) and node.attr in ("Saga", "compensate"):
            return True
        if isinstance(node, ast.Try):
            cleanup: list[ast.stmt] = list(node.finalbody)
            for handler in node.handlers:
                cleanup.extend(handler.body)
            if any(_calls_undo(stmt) for stmt in cleanup):
                return True
    return False


def _calls_undo(stmt: ast.stmt) -> bool:
    for node in ast.walk(stmt):
        if isinstance(node, ast.Call):
            target = node.func
            name = target.attr if isinstance(target, ast.Attribute) else ""
            if isinstance(target, ast.Name):
                name = target.id
            if _UNDO.search(name):
                return True
    return False
