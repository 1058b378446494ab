"""Building typed values from decoded JSON by a type hint.

The hint, never the stored data, says what to build: a dataclass, a pydantic
model, an Enum, a datetime, a tuple. Each hint is compiled once into a
converter function and cached, so decoding many values of one type pays for
the inspection of the type only once. Dataclass and TypedDict converters
compile their fields on first use, which lets a type refer to itself.
"""

from __future__ import annotations

import base64
import binascii
import collections.abc
import dataclasses
import sys
import types
import typing
from collections.abc import Callable
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Literal, TypeVar, Union, get_args, get_origin
from uuid import UUID

from stateshift.codec._paths import Located
from stateshift.errors import StateshiftError

__all__ = ["converter"]

Convert = Callable[[Any], Any]

_CACHE: dict[Any, Convert] = {}

_SEQUENCES = frozenset(
    {list, collections.abc.Sequence, collections.abc.MutableSequence}
)
_MAPPINGS = frozenset({dict, collections.abc.Mapping, collections.abc.MutableMapping})


def converter(hint: Any) -> Convert:
    """Return the function that builds a value of type ``hint`` from decoded JSON.

    The function raises :class:`Located` when the value does not fit.
    """
    try:
        return _CACHE[hint]
    except KeyError:
        pass
    except TypeError:  # an unhashable hint, like Annotated with a list in it
        return _build(hint)
    built = _build(hint)
    _CACHE[hint] = built
    return built


def _identity(value: Any) -> Any:
    return value


def _build(hint: Any) -> Convert:
    if hint is Any or hint is object:
        return _identity
    if hint is None or hint is type(None):
        return _expect_none
    if isinstance(hint, TypeVar):
        return _identity if hint.__bound__ is None else converter(hint.__bound__)
    if isinstance(hint, typing.NewType):
        return converter(hint.__supertype__)

    origin = get_origin(hint)
    args = get_args(hint)
    if origin is typing.Annotated:
        return converter(args[0])
    if origin is Union or origin is types.UnionType:
        return _union(hint, args)
    if origin is Literal:
        return _literal(hint, args)
    if origin in _SEQUENCES:
        return _list(converter(args[0]) if args else _identity)
    if origin is tuple:
        return _tuple(hint, args)
    if origin in _MAPPINGS:
        key, item = (converter(args[0]), converter(args[1])) if args else (None, None)
        return _dict(key or _identity, item or _identity)
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):
        parameters = getattr(origin, "__parameters__", ())
        return _Dataclass(origin, dict(zip(parameters, args, strict=False)))
    if isinstance(hint, type):
        return _build_class(hint)
    if isinstance(origin, type):
        return _instance_of(origin, _hint_name(hint))
    return _cannot(hint)


def _build_class(cls: type) -> Convert:
    simple = _SIMPLE.get(cls)
    if simple is not None:
        return simple
    if issubclass(cls, Enum):
        return _enum(cls)
    if dataclasses.is_dataclass(cls):
        return _Dataclass(cls, {})
    if typing.is_typeddict(cls):
        return _TypedDict(cls)
    if issubclass(cls, tuple) and hasattr(cls, "_fields"):
        return _NamedTuple(cls)
    pydantic = sys.modules.get("pydantic")
    if pydantic is not None and issubclass(cls, pydantic.BaseModel):
        return _model(cls)
    if cls is tuple:
        return _tuple(cls, ())
    return _instance_of(cls, _hint_name(cls))


def _hint_name(hint: Any) -> str:
    if isinstance(hint, type):
        return hint.__qualname__
    return repr(hint).replace("typing.", "")


def _mismatch(expected: str, value: Any) -> Located:
    return Located(f"expected {expected}, found {type(value).__name__}")


def _expect_none(value: Any) -> Any:
    if value is not None:
        raise _mismatch("None", value)
    return value


def _instance_of(cls: type, name: str) -> Convert:
    def convert(value: Any) -> Any:
        if not isinstance(value, cls):
            raise _mismatch(name, value)
        return value

    return convert


def _cannot(hint: Any) -> Convert:
    def convert(value: Any) -> Any:
        raise Located(f"cannot decode into the type hint {hint!r}")

    return convert


def _parsing(kind: type, parse: Callable[[Any], Any], *sources: type) -> Convert:
    """A converter for a scalar that may also arrive as text (from HTTP)."""
    name = kind.__qualname__

    def convert(value: Any) -> Any:
        if isinstance(value, kind):
            return value
        if isinstance(value, sources) and type(value) is not bool:
            try:
                return parse(value)
            except (ValueError, TypeError, ArithmeticError, binascii.Error) as exc:
                raise Located(f"expected {name}: {exc}") from None
        raise _mismatch(name, value)

    return convert


def _str(value: Any) -> Any:
    if type(value) is not str:
        raise _mismatch("str", value)
    return value


def _bool(value: Any) -> Any:
    if type(value) is not bool:
        raise _mismatch("bool", value)
    return value


def _int(value: Any) -> Any:
    if type(value) is not int:
        raise _mismatch("int", value)
    return value


def _float(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        return float(value)
    raise _mismatch("float", value)


def _parse_decimal(value: Any) -> Decimal:
    try:
        return Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise ValueError("not a decimal number") from None


_SIMPLE: dict[type, Convert] = {
    str: _str,
    bool: _bool,
    int: _int,
    float: _float,
    bytes: _parsing(bytes, lambda text: base64.b64decode(text, validate=True), str),
    bytearray: _parsing(bytearray, bytearray, bytes),
    datetime: _parsing(datetime, datetime.fromisoformat, str),
    date: _parsing(date, date.fromisoformat, str),
    time: _parsing(time, time.fromisoformat, str),
    UUID: _parsing(UUID, UUID, str),
    Decimal: _parsing(Decimal, _parse_decimal, str, int, float),
    list: _instance_of(list, "list"),
    dict: _instance_of(dict, "dict"),
}


def _union(hint: Any, args: tuple[Any, ...]) -> Convert:
    options = [(arg, converter(arg)) for arg in args]
    name = _hint_name(hint)

    def convert(value: Any) -> Any:
        # A value already of one member type is kept: in float | int an int
        # must not become a float.
        kind = type(value)
        for arg, _ in options:
            if kind is arg or (value is None and arg is type(None)):
                return value
        for _, option in options:
            try:
                return option(value)
            except Located:
                continue
        raise _mismatch(name, value)

    return convert


def _literal(hint: Any, args: tuple[Any, ...]) -> Convert:
    name = _hint_name(hint)

    def convert(value: Any) -> Any:
        for allowed in args:
            if type(allowed) is type(value) and allowed == value:
                return allowed
            if isinstance(allowed, Enum) and allowed.value == value:
                return allowed
        raise Located(f"expected {name}, found {_short(value)}")

    return convert


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _list(item: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise _mismatch("list", value)
        if item is _identity:
            return value
        return _convert_items(value, item)

    return convert


def _convert_items(values: list[Any], item: Convert) -> list[Any]:
    converted = []
    for index, element in enumerate(values):
        try:
            converted.append(item(element))
        except Located as exc:
            exc.parts.append(index)
            raise
    return converted


def _tuple(hint: Any, args: tuple[Any, ...]) -> Convert:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        variadic = _list(converter(args[0]) if args else _identity)
        return lambda value: tuple(variadic(value))
    if args == ((),):  # tuple[()]
        args = ()
    items = [converter(arg) for arg in args]
    name = _hint_name(hint)

    def convert(value: Any) -> Any:
        if type(value) is not list or len(value) != len(items):
            raise Located(f"expected {name}, found {_describe(value)}")
        converted = []
        for index, (element, item) in enumerate(zip(value, items, strict=True)):
            try:
                converted.append(item(element))
            except Located as exc:
                exc.parts.append(index)
                raise
        return tuple(converted)

    return convert


def _describe(value: Any) -> str:
    if type(value) is list:
        return f"a list of {len(value)}"
    return type(value).__name__


def _dict(key: Convert, item: Convert) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise _mismatch("dict", value)
        if key is _identity and item is _identity:
            return value
        converted = {}
        for name, element in value.items():
            try:
                converted[key(name)] = item(element)
            except Located as exc:
                exc.parts.append(name)
                raise
        return converted

    return convert


def _enum(cls: type[Enum]) -> Convert:
    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except (ValueError, TypeError):
            pass
        if type(value) is list:  # an Enum whose values are tuples
            try:
                return cls(tuple(value))
            except (ValueError, TypeError):
                pass
        raise Located(f"{_short(value)} is not a value of {cls.__qualname__}")

    return convert


def _model(cls: Any) -> Convert:
    def convert(value: Any) -> Any:
        if isinstance(value, cls):
            return value
        try:
            return cls.model_validate(value)
        except Exception as exc:
            raise Located(
                f"does not validate as {cls.__qualname__}: {_model_errors(exc)}"
            ) from None

    return convert


def _model_errors(exc: Exception) -> str:
    # Leave the input values out: they may be personal data bound for logs.
    errors = getattr(exc, "errors", None)
    if errors is None:
        return str(exc)
    parts = []
    for error in errors(include_url=False, include_input=False)[:5]:
        location = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{location or '(model)'}: {error.get('msg')}")
    return "; ".join(parts)


def _type_hints(cls: type) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls)
    except Exception as exc:
        raise Located(
            f"cannot resolve the annotations of {cls.__qualname__} ({exc})"
        ) from None


def _substitute(hint: Any, bound: dict[Any, Any]) -> Any:
    """Replace the type variables of a generic dataclass by its arguments."""
    if not bound:
        return hint
    if isinstance(hint, TypeVar):
        return bound.get(hint, Any)
    parameters = getattr(hint, "__parameters__", ())
    if parameters:
        return hint[tuple(bound.get(parameter, Any) for parameter in parameters)]
    return hint


class _Dataclass:
    """Builds a dataclass from a dict of its fields; unknown keys are ignored."""

    def __init__(self, cls: type, bound: dict[Any, Any]) -> None:
        self.cls = cls
        self.bound = bound
        self.plan: list[tuple[str, Convert, bool, bool]] | None = None

    def compile(self) -> list[tuple[str, Convert, bool, bool]]:
        hints = _type_hints(self.cls)
        plan = []
        for field in dataclasses.fields(self.cls):
            hint = _substitute(hints.get(field.name, Any), self.bound)
            required = (
                field.init
                and field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            plan.append((field.name, converter(hint), field.init, required))
        self.plan = plan
        return plan

    def __call__(self, value: Any) -> Any:
        if isinstance(value, self.cls):
            return value
        name = self.cls.__qualname__
        if type(value) is not dict:
            raise _mismatch(name, value)

        arguments = {}
        later = []
        for field, convert, init, required in self.plan or self.compile():
            if field in value:
                try:
                    converted = convert(value[field])
                except Located as exc:
                    exc.parts.append(field)
                    raise
                if init:
                    arguments[field] = converted
                else:
                    later.append((field, converted))
            elif required:
                raise Located(f"missing field {field!r} of {name}")

        built = _construct(self.cls, arguments)
        for field, converted in later:
            object.__setattr__(built, field, converted)  # frozen ones too
        return built


def _construct(cls: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    try:
        return cls(**arguments)
    except StateshiftError:
        raise
    except Exception as exc:
        name = getattr(cls, "__qualname__", repr(cls))
        raise Located(f"{name}() raised {type(exc).__name__}: {exc}") from exc


class _TypedDict:
    """Checks and converts the known keys of a TypedDict."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.fields: dict[str, Convert] | None = None

    def __call__(self, value: Any) -> Any:
        name = self.cls.__qualname__
        if type(value) is not dict:
            raise _mismatch(name, value)
        if self.fields is None:
            hints = _type_hints(self.cls)
            self.fields = {key: converter(hint) for key, hint in hints.items()}

        for key in self.cls.__required_keys__:
            if key not in value:
                raise Located(f"missing key {key!r} of {name}")
        converted = dict(value)
        for key, convert in self.fields.items():
            if key in value:
                try:
                    converted[key] = convert(value[key])
                except Located as exc:
                    exc.parts.append(key)
                    raise
        return converted


class _NamedTuple:
    """Builds a NamedTuple from the list its tuple was stored as."""

    def __init__(self, cls: Any) -> None:
        self.cls = cls
        self.items: list[Convert] | None = None

    def __call__(self, value: Any) -> Any:
        if isinstance(value, self.cls):
            return value
        if type(value) is not list:
            raise _mismatch(self.cls.__qualname__, value)
        if self.items is None:
            hints = _type_hints(self.cls)
            self.items = [converter(hints.get(f, Any)) for f in self.cls._fields]
        if len(value) > len(self.items):
            raise Located(f"expected {self.cls.__qualname__}, found {_describe(value)}")

        converted = []
        for index, (element, item) in enumerate(zip(value, self.items, strict=False)):
            try:
                converted.append(item(element))
            except Located as exc:
                exc.parts.append(index)
                raise
        return _construct(
            self.cls, dict(zip(self.cls._fields, converted, strict=False))
        )
