"""A parsed module with the lookups rules need: names, scopes, parents.

Rules never walk raw text; they ask this object what a call refers to
(``qualname``), whether a node runs at import time, and which function
encloses it. Everything is computed once per file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef
Scope = ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef


@dataclass(frozen=True)
class Options:
    """Rule settings read from configuration."""

    sleep_threshold_seconds: float = 10.0
    """A ``time.sleep`` at least this long is reported (SS204)."""


@dataclass
class ModuleContext:
    """One source file, parsed, with its name and scope tables."""

    path: str
    source: str
    tree: ast.Module
    options: Options = field(default_factory=Options)
    imports: dict[str, str] = field(init=False)
    """Local name -> dotted name it was imported as."""
    module_values: dict[str, ast.expr] = field(init=False)
    """Names bound at module level -> the last value assigned."""
    defined_functions: set[str] = field(init=False)
    """Names of functions and classes defined at module level."""
    import_time_calls: set[str] = field(init=False)
    """Names of module functions called (or used as decorators) at import."""
    _parents: dict[ast.AST, ast.AST] = field(init=False, repr=False)
    _locals: dict[ast.AST, frozenset[str]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._parents = {}
        for parent in ast.walk(self.tree):
            for child in ast.iter_child_nodes(parent):
                self._parents[child] = parent
        self._locals = {}
        self.imports = _collect_imports(self.tree)
        self.module_values = _collect_module_values(self.tree)
        self.defined_functions = {
            node.name
            for node in self.tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
        }
        self.import_time_calls = self._collect_import_time_calls()

    # -- names -------------------------------------------------------------

    def qualname(self, node: ast.expr) -> str | None:
        """The dotted name an expression refers to, imports resolved.

        ``t.sleep`` after ``import time as t`` is ``time.sleep``; a chain
        rooted at a call or subscript gives ``None``.
        """
        parts: list[str] = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            return None
        root = self.imports.get(node.id, node.id)
        return ".".join([root, *reversed(parts)])

    def call_name(self, call: ast.Call) -> str | None:
        """The resolved dotted name of what a call calls."""
        return self.qualname(call.func)

    # -- structure ---------------------------------------------------------

    def parent(self, node: ast.AST) -> ast.AST | None:
        """The node that directly contains ``node``."""
        return self._parents.get(node)

    def ancestors(self, node: ast.AST) -> Iterator[ast.AST]:
        """Containing nodes, innermost first."""
        current = self._parents.get(node)
        while current is not None:
            yield current
            current = self._parents.get(current)

    def enclosing_function(self, node: ast.AST) -> FunctionNode | None:
        """The innermost function (not lambda) containing ``node``."""
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                return ancestor
        return None

    def enclosing_functions(self, node: ast.AST) -> list[FunctionNode]:
        """All functions containing ``node``, innermost first."""
        return [
            a
            for a in self.ancestors(node)
            if isinstance(a, (ast.FunctionDef, ast.AsyncFunctionDef))
        ]

    def runs_at_import(self, node: ast.AST) -> bool:
        """True when ``node`` is not inside any function or lambda body."""
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, (ast.FunctionDef, ast.AsyncFunctionDef)):
                # Decorators and defaults are evaluated at definition time.
                return _in_definition_header(ancestor, node, self)
            if isinstance(ancestor, ast.Lambda):
                return False
        return True

    def functions(self) -> Iterator[FunctionNode]:
        """Every function and method in the file."""
        for node in ast.walk(self.tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield node

    def calls_in(self, node: ast.AST) -> Iterator[ast.Call]:
        """Calls inside ``node``, not descending into nested functions."""
        for child in walk_own(node):
            if isinstance(child, ast.Call):
                yield child

    # -- scopes ------------------------------------------------------------

    def local_names(self, func: FunctionNode) -> frozenset[str]:
        """Names bound in ``func`` itself (parameters included), minus
        those it declares ``global`` or ``nonlocal``."""
        cached = self._locals.get(func)
        if cached is not None:
            return cached
        bound: set[str] = {a.arg for a in _all_args(func.args)}
        declared: set[str] = set()
        for child in walk_own(func):
            if isinstance(child, (ast.Global, ast.Nonlocal)):
                declared.update(child.names)
            elif isinstance(child, ast.Name) and isinstance(
                child.ctx, (ast.Store, ast.Del)
            ):
                bound.add(child.id)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                for alias in child.names:
                    bound.add((alias.asname or alias.name).split(".")[0])
            elif (
                isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
                and child is not func
            ):
                bound.add(child.name)
        result = frozenset(bound - declared)
        self._locals[func] = result
        return result

    def declared_global(self, func: FunctionNode, name: str) -> bool:
        """True when ``func`` says ``global name``."""
        return any(
            isinstance(child, ast.Global) and name in child.names
            for child in walk_own(func)
        )

    def refers_to_module_name(self, node: ast.AST, name: str) -> bool:
        """True when ``name`` used at ``node`` is the module-level binding."""
        if name not in self.module_values:
            return False
        for func in self.enclosing_functions(node):
            if self.declared_global(func, name):
                return True
            if name in self.local_names(func):
                return False
        return True

    def in_import_time_function(self, node: ast.AST) -> bool:
        """True when ``node`` sits in a module function that is called, or
        used as a decorator, while the module is imported."""
        funcs = self.enclosing_functions(node)
        return bool(funcs) and funcs[-1].name in self.import_time_calls

    def _collect_import_time_calls(self) -> set[str]:
        names: set[str] = set()
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Call) and self.runs_at_import(node):
                target = node.func
                if isinstance(target, ast.Name):
                    names.add(target.id)
            elif isinstance(
                node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
            ):
                for decorator in node.decorator_list:
                    base = (
                        decorator.func if isinstance(decorator, ast.Call) else decorator
                    )
                    if isinstance(base, ast.Name):
                        names.add(base.id)
        return names & self.defined_functions


def walk_own(node: ast.AST) -> Iterator[ast.AST]:
    """Walk ``node`` without entering nested function, lambda or class bodies."""
    stack = list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        yield child
        if isinstance(
            child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
        ):
            continue
        stack.extend(ast.iter_child_nodes(child))


def _all_args(args: ast.arguments) -> list[ast.arg]:
    result = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg is not None:
        result.append(args.vararg)
    if args.kwarg is not None:
        result.append(args.kwarg)
    return result


def _in_definition_header(
    func: FunctionNode, node: ast.AST, ctx: ModuleContext
) -> bool:
    header: list[ast.AST] = [*func.decorator_list, *func.args.defaults]
    header.extend(d for d in func.args.kw_defaults if d is not None)
    for item in header:
        if item is node or any(a is item for a in ctx.ancestors(node)):
            return ctx.runs_at_import(func)
    return False


def _collect_imports(tree: ast.Module) -> dict[str, str]:
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    top = alias.name.split(".")[0]
                    names[top] = top
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                # A relative import: keep the bare name so rules still see it.
                names[alias.asname or alias.name] = alias.name
    return names


def _collect_module_values(tree: ast.Module) -> dict[str, ast.expr]:
    values: dict[str, ast.expr] = {}
    for stmt in _module_statements(tree.body):
        if isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    values[target.id] = stmt.value
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            if stmt.value is not None:
                values[stmt.target.id] = stmt.value
    return values


def _module_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Top-level statements, looking inside ``if``/``try``/``with`` blocks."""
    for stmt in body:
        yield stmt
        if isinstance(stmt, ast.If):
            yield from _module_statements(stmt.body)
            yield from _module_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _module_statements(stmt.body)
            for handler in stmt.handlers:
                yield from _module_statements(handler.body)
            yield from _module_statements(stmt.orelse)
            yield from _module_statements(stmt.finalbody)
        elif isinstance(stmt, ast.With):
            yield from _module_statements(stmt.body)


def constant_seconds(node: ast.expr, ctx: ModuleContext) -> float | None:
    """Evaluate a number of seconds written as constants, or ``None``.

    Handles literals, arithmetic on them, module-level constant names and
    ``timedelta(...)`` (with ``.total_seconds()``).
    """
    return _evaluate(node, ctx, depth=0)


def _evaluate(node: ast.expr, ctx: ModuleContext, depth: int) -> float | None:
    if depth > 8:
        return None
    if isinstance(node, ast.Constant):
        value = node.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None
    if isinstance(node, ast.Name) and ctx.refers_to_module_name(node, node.id):
        return _evaluate(ctx.module_values[node.id], ctx, depth + 1)
    if isinstance(node, ast.BinOp):
        left = _evaluate(node.left, ctx, depth + 1)
        right = _evaluate(node.right, ctx, depth + 1)
        if left is None or right is None:
            return None
        return _arithmetic(node.op, left, right)
    if isinstance(node, ast.Call):
        return _evaluate_call(node, ctx, depth)
    return None


def _arithmetic(op: ast.operator, left: float, right: float) -> float | None:
    if isinstance(op, ast.Add):
        return left + right
    if isinstance(op, ast.Sub):
        return left - right
    if isinstance(op, ast.Mult):
        return left * right
    if isinstance(op, ast.Div) and right:
        return left / right
    return None


_TIMEDELTA_UNITS = {
    "weeks": 604_800.0,
    "days": 86_400.0,
    "hours": 3_600.0,
    "minutes": 60.0,
    "seconds": 1.0,
    "milliseconds": 0.001,
}


def _evaluate_call(node: ast.Call, ctx: ModuleContext, depth: int) -> float | None:
    func = node.func
    if (
        isinstance(func, ast.Attribute)
        and func.attr == "total_seconds"
        and isinstance(func.value, ast.Call)
    ):
        return _evaluate_call(func.value, ctx, depth + 1)
    name = ctx.call_name(node)
    if name not in ("datetime.timedelta", "timedelta"):
        return None
    total = 0.0
    positional = ["days", "seconds", "microseconds", "milliseconds", "minutes"]
    pairs = list(zip(positional, node.args, strict=False))
    pairs += [(kw.arg or "", kw.value) for kw in node.keywords]
    for unit, value_node in pairs:
        value = _evaluate(value_node, ctx, depth + 1)
        if value is None:
            return None
        total += value * _TIMEDELTA_UNITS.get(unit, 0.000001)
    return total
