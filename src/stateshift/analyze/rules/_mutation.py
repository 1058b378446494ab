"""Finding where module-level mutable values are changed by functions.

Shared by the state, cache and session rules, which differ only in which
names they care about and what they recommend.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from stateshift.analyze._context import FunctionNode, ModuleContext

_CONTAINER_CALLS = {
    "dict": "dict",
    "list": "list",
    "set": "set",
    "bytearray": "list",
    "collections.defaultdict": "dict",
    "collections.OrderedDict": "dict",
    "collections.Counter": "dict",
    "collections.deque": "deque",
    "defaultdict": "dict",
    "OrderedDict": "dict",
    "Counter": "dict",
    "deque": "deque",
    "queue.Queue": "queue",
    "queue.SimpleQueue": "queue",
    "queue.LifoQueue": "queue",
    "queue.PriorityQueue": "queue",
    "weakref.WeakValueDictionary": "dict",
}

_MUTATORS = frozenset(
    {
        "append",
        "appendleft",
        "extend",
        "extendleft",
        "insert",
        "pop",
        "popleft",
        "popitem",
        "remove",
        "clear",
        "update",
        "setdefault",
        "add",
        "discard",
        "difference_update",
        "intersection_update",
        "symmetric_difference_update",
        "sort",
        "reverse",
        "rotate",
    }
)
_QUEUE_MUTATORS = frozenset({"put", "put_nowait", "get", "get_nowait"})


@dataclass(frozen=True)
class Mutation:
    """One place where a function changes a module-level value."""

    name: str
    """The module-level name."""
    kind: str
    """``dict``, ``list``, ``set``, ``deque``, ``queue`` or ``value``."""
    node: ast.AST
    """The statement or call that changes it."""
    function: FunctionNode


def container_kind(ctx: ModuleContext, value: ast.expr) -> str | None:
    """The kind of mutable container a module-level value is, if any."""
    if isinstance(value, (ast.Dict, ast.DictComp)):
        return "dict"
    if isinstance(value, (ast.List, ast.ListComp)):
        return "list"
    if isinstance(value, (ast.Set, ast.SetComp)):
        return "set"
    if isinstance(value, ast.Call):
        name = ctx.call_name(value)
        if name is not None:
            return _CONTAINER_CALLS.get(name)
    return None


def module_mutations(ctx: ModuleContext) -> Iterator[Mutation]:
    """Every change to module-level state made from inside a function.

    Covers item assignment and deletion, mutating methods, augmented
    assignment, and rebinding through ``global``. Left out on purpose:
    functions that run while the module is imported (registration
    decorators, set-up calls) and lazy initialisation guarded by
    ``if NAME is None``. One mutation is reported per name and function.
    """
    kinds = {
        name: kind
        for name, value in ctx.module_values.items()
        if not name.startswith("__")
        and (kind := container_kind(ctx, value)) is not None
    }
    seen: set[tuple[str, int]] = set()
    for node in ast.walk(ctx.tree):
        found = _mutated_name(ctx, node, kinds)
        if found is None:
            continue
        name, kind = found
        func = ctx.enclosing_function(node)
        if func is None or ctx.in_import_time_function(node):
            continue
        if not ctx.refers_to_module_name(node, name):
            continue
        key = (name, id(func))
        if key in seen:
            continue
        seen.add(key)
        yield Mutation(name=name, kind=kind, node=node, function=func)


def _mutated_name(
    ctx: ModuleContext, node: ast.AST, kinds: dict[str, str]
) -> tuple[str, str] | None:
    if isinstance(node, (ast.Subscript, ast.Attribute)) and isinstance(
        node.ctx, (ast.Store, ast.Del)
    ):
        root = _root_name(node)
        if root in kinds:
            return (root, kinds[root])
        return None
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        root = _root_name(node.func.value)
        if root not in kinds:
            return None
        method = node.func.attr
        if method in _MUTATORS or (
            kinds[root] == "queue" and method in _QUEUE_MUTATORS
        ):
            return (root, kinds[root])
        return None
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        return _global_rebinding(ctx, node, kinds)
    return None


def _global_rebinding(
    ctx: ModuleContext,
    node: ast.Assign | ast.AugAssign | ast.AnnAssign,
    kinds: dict[str, str],
) -> tuple[str, str] | None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    func = ctx.enclosing_function(node)
    if func is None:
        return None
    for target in targets:
        if not isinstance(target, ast.Name):
            continue
        name = target.id
        if name.startswith("__") or not ctx.declared_global(func, name):
            continue
        if isinstance(node, ast.AugAssign) or not _lazy_init(ctx, node, name):
            return (name, kinds.get(name, "value"))
    return None


def _lazy_init(ctx: ModuleContext, node: ast.AST, name: str) -> bool:
    """True when an assignment sits under ``if name is None`` (or ``not name``),
    the once-per-instance initialisation that serverless code should use."""
    for ancestor in ctx.ancestors(node):
        if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return False
        if isinstance(ancestor, ast.If) and any(
            isinstance(n, ast.Name) and n.id == name for n in ast.walk(ancestor.test)
        ):
            return True
    return False


def _root_name(node: ast.AST) -> str | None:
    while True:
        if isinstance(node, (ast.Subscript, ast.Attribute)):
            node = node.value
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            # ``CARTS.setdefault(user, []).append(item)`` changes CARTS.
            node = node.func.value
        elif isinstance(node, ast.Name):
            return node.id
        else:
            return None
