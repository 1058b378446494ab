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


_IMPORT_TIME_METHODS = {"__init_subclass__", "__set_name__", "__class_getitem__"}


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
    memo: bool
    """True when the function only fills in a value it looked up first
    (``if key not in X: X[key] = compute(key)``): a cache."""


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
        if func is None or _registration(ctx, node, func):
            continue
        if not ctx.refers_to_module_name(node, name):
            continue
        key = (name, id(func))
        if key in seen:
            continue
        seen.add(key)
        yield Mutation(
            name=name,
            kind=kind,
            node=node,
            function=func,
            memo=_memoizes(func, name),
        )


def _registration(ctx: ModuleContext, node: ast.AST, func: FunctionNode) -> bool:
    """True for changes made while the program sets itself up: in functions
    run at import, class-creation hooks, ``register_*`` functions and
    decorators (functions that hand back the function they were given)."""
    if ctx.in_import_time_function(node) or func.name in _IMPORT_TIME_METHODS:
        return True
    for enclosing in ctx.enclosing_functions(node):
        if enclosing.name.lstrip("_").startswith(("register", "unregister")):
            return True
        params = {a.arg for a in enclosing.args.args}
        for child in ast.walk(enclosing):
            if (
                isinstance(child, ast.Return)
                and isinstance(child.value, ast.Name)
                and child.value.id in params
            ):
                return True
    return False


def _memoizes(func: FunctionNode, name: str) -> bool:
    """True when ``func`` fills in a computed value it looked up first and
    returns it: ``if key not in NAME: NAME[key] = compute(key)``, with
    ``NAME.get(key)`` or ``try: NAME[key] except KeyError`` as the lookup."""
    looked_up = False
    for node in ast.walk(func):
        if isinstance(node, ast.Compare) and any(
            isinstance(op, (ast.In, ast.NotIn)) for op in node.ops
        ):
            looked_up = looked_up or any(_is_name(c, name) for c in node.comparators)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and _is_name(node.func.value, name)
        ):
            looked_up = True
        elif isinstance(node, ast.Try) and any(
            _catches_key_error(h) for h in node.handlers
        ):
            looked_up = True
    return looked_up and _returns_computed(func, name)


def _returns_computed(func: FunctionNode, name: str) -> bool:
    """True when ``func`` stores a computed value (a call's result) under a
    key of ``name`` and returns ``NAME[key]`` or that value."""
    computed: set[str] = set()
    for node in ast.walk(func):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(
            node.value, ast.Call
        ):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            computed.update(t.id for t in targets if isinstance(t, ast.Name))
    stored: set[str] = set()
    stores_computed = False
    for node in ast.walk(func):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Subscript) and _is_name(t.value, name)
            for t in node.targets
        ):
            value = node.value
            if isinstance(value, ast.Call) or (
                isinstance(value, ast.Name) and value.id in computed
            ):
                stores_computed = True
                if isinstance(value, ast.Name):
                    stored.add(value.id)
                # ``context = CACHE[key] = built`` returns what it stored.
                stored.update(t.id for t in node.targets if isinstance(t, ast.Name))
    if not stores_computed:
        return False
    for node in ast.walk(func):
        if isinstance(node, ast.Return) and node.value is not None:
            value = node.value
            if isinstance(value, ast.Subscript) and _is_name(value.value, name):
                return True
            if isinstance(value, ast.Name) and value.id in stored:
                return True
    return False


def _is_name(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _catches_key_error(handler: ast.ExceptHandler) -> bool:
    caught = handler.type
    names = caught.elts if isinstance(caught, ast.Tuple) else [caught]
    return any(isinstance(n, ast.Name) and n.id == "KeyError" for n in names)


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
        if isinstance(node, ast.AugAssign) or _uses_old_value(node, name):
            if not _lazy_init(ctx, node, name):
                return (name, kinds.get(name, "value"))
    return None


def _uses_old_value(node: ast.Assign | ast.AnnAssign, name: str) -> bool:
    """``X = X + 1``: a rebinding that carries state from call to call.
    A plain ``X = value`` is set-up or configuration and is left alone."""
    value = node.value
    return value is not None and any(_is_name(n, name) for n in ast.walk(value))


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
