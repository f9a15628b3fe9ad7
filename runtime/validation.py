"""Converters from JSON / text values to annotated Python types, compiled once per type.

Dataclasses work without pydantic; pydantic models are validated by pydantic itself. Errors
use FastAPI's shape (``{"loc": [...], "msg": ..., "type": ...}``) so clients already know it.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import datetime as dt
import decimal
import enum
import types
import typing
import uuid
from typing import Any, Callable

Converter = Callable[[Any], Any]


class Invalid(Exception):
    """One or more values did not fit; ``errors`` locate each one."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def one(cls, msg: str, kind: str) -> "Invalid":
        return cls([{"loc": [], "msg": msg, "type": kind}])

    def under(self, *loc: Any) -> "Invalid":
        return Invalid([{**e, "loc": [*loc, *e["loc"]]} for e in self.errors])


_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _to_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise Invalid.one("Input should be a valid string", "string_type")


#: ``int`` values are 64-bit: what databases, JSON encoders and most clients handle.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


def _to_int(v: Any) -> int:
    value: int | None = None
    if isinstance(v, int) and not isinstance(v, bool):
        value = v
    elif isinstance(v, float) and v.is_integer():
        value = int(v)
    elif isinstance(v, str) and len(v) < 64:
        try:
            value = int(v.strip())
        except ValueError:
            pass
    if value is None:
        raise Invalid.one("Input should be a valid integer", "int_parsing")
    if not INT_MIN <= value <= INT_MAX:
        raise Invalid.one("Input should be a 64-bit integer", "int_range")
    return value


def _to_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            pass
    raise Invalid.one("Input should be a valid number", "float_parsing")


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in _TRUE | _FALSE:
        return v.lower() in _TRUE
    if v in (0, 1) and not isinstance(v, float):
        return bool(v)
    raise Invalid.one("Input should be a valid boolean", "bool_parsing")


def _from_text(parse: Callable[[str], Any], what: str) -> Converter:
    def convert(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return parse(v)
            except (ValueError, decimal.InvalidOperation):
                pass
        raise Invalid.one(f"Input should be a valid {what}", f"{what.replace(' ', '_')}_parsing")

    return convert


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    raise Invalid.one("Input should be a valid string", "bytes_type")


_SCALARS: dict[Any, Converter] = {
    str: _to_str,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    bytes: _to_bytes,
    uuid.UUID: _from_text(uuid.UUID, "UUID"),
    dt.datetime: _from_text(dt.datetime.fromisoformat, "datetime"),
    dt.date: _from_text(dt.date.fromisoformat, "date"),
    dt.time: _from_text(dt.time.fromisoformat, "time"),
    decimal.Decimal: lambda v: v if isinstance(v, decimal.Decimal) else _from_text(decimal.Decimal, "decimal")(
        str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v
    ),
}


def is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


def is_scalar(tp: Any) -> bool:
    """Types that travel as one text value (path and query parameters)."""
    tp = strip_optional(tp)
    return tp in _SCALARS or (isinstance(tp, type) and issubclass(tp, enum.Enum)) or typing.get_origin(tp) is typing.Literal


def strip_optional(tp: Any) -> Any:
    if _is_union(tp):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _enum(tp: type[enum.Enum]) -> Converter:
    allowed = ", ".join(repr(m.value) for m in tp)

    def convert(v: Any) -> Any:
        try:
            return tp(v)
        except ValueError:
            for member in tp:  # query strings carry numbers as text
                if str(member.value) == v:
                    return member
        raise Invalid.one(f"Input should be {allowed}", "enum")

    return convert


def _literal(values: tuple[Any, ...]) -> Converter:
    def convert(v: Any) -> Any:
        for value in values:
            if v == value or (isinstance(v, str) and str(value) == v):
                return value
        raise Invalid.one(f"Input should be one of {', '.join(map(repr, values))}", "literal_error")

    return convert


def _union(args: tuple[Any, ...]) -> Converter:
    optional = type(None) in args
    options = [compile_type(a) for a in args if a is not type(None)]

    def convert(v: Any) -> Any:
        if v is None and optional:
            return None
        errors: list[dict[str, Any]] = []
        for option in options:
            try:
                return option(v)
            except Invalid as e:
                errors.extend(e.errors)
        if v is None:
            raise Invalid.one("Input should not be null", "none_forbidden")
        raise Invalid(errors[:1] or [{"loc": [], "msg": "Invalid value", "type": "union"}])

    return convert


def _sequence(item: Converter, build: Callable[[list[Any]], Any]) -> Converter:
    def convert(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise Invalid.one("Input should be a valid list", "list_type")
        out, errors = [], []
        for i, x in enumerate(v):
            try:
                out.append(item(x))
            except Invalid as e:
                errors.extend(e.under(i).errors)
        if errors:
            raise Invalid(errors)
        return build(out)

    return convert


def _mapping(key: Converter, value: Converter) -> Converter:
    def convert(v: Any) -> Any:
        if not isinstance(v, dict):
            raise Invalid.one("Input should be a valid dictionary", "dict_type")
        out, errors = {}, []
        for k, x in v.items():
            try:
                out[key(k)] = value(x)
            except Invalid as e:
                errors.extend(e.under(k).errors)
        if errors:
            raise Invalid(errors)
        return out

    return convert


#: Field types whose values need no conversion when JSON already gave exactly that type.
_EXACT_OK = frozenset({str, int, float, bool})


def _dataclass(tp: type) -> Converter:
    hints = typing.get_type_hints(tp)
    fields = []
    for f in dataclasses.fields(tp):
        if not f.init:
            continue
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        hint = hints.get(f.name, Any)
        fields.append((f.name, compile_type(hint), required, hint if hint in _EXACT_OK else None))

    def convert(v: Any) -> Any:
        if isinstance(v, tp):
            return v
        if not isinstance(v, dict):
            raise Invalid.one(f"Input should be an object ({tp.__name__})", "model_type")
        kwargs, errors = {}, []
        for name, conv, required, exact in fields:
            if name in v:
                value = v[name]
                if type(value) is exact and (exact is not int or INT_MIN <= value <= INT_MAX):
                    kwargs[name] = value  # already what the field holds: skip the converter
                    continue
                try:
                    kwargs[name] = conv(value)
                except Invalid as e:
                    errors.extend(e.under(name).errors)
            elif required:
                errors.append({"loc": [name], "msg": "Field required", "type": "missing"})
        if errors:
            raise Invalid(errors)
        return tp(**kwargs)

    return convert


def _pydantic(tp: Any) -> Converter:
    from pydantic import ValidationError

    def convert(v: Any) -> Any:
        try:
            return tp.model_validate(v)
        except ValidationError as e:
            raise Invalid(
                [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]
            ) from None

    return convert


def _identity(v: Any) -> Any:
    return v


def compile_type(tp: Any) -> Converter:
    """A function that converts a decoded value to ``tp`` or raises ``Invalid``."""
    if tp is Any or tp is object or tp is None:
        return _identity
    if tp in _SCALARS:
        return _SCALARS[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        return compile_type(args[0])
    if _is_union(tp):
        return _union(args)
    if origin is typing.Literal:
        return _literal(args)
    if origin in (list, typing.List, set, frozenset, tuple) or tp in (list, set, tuple, frozenset):
        base = origin or tp
        if base is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        item = compile_type(args[0]) if len(args) == 1 else _identity
        return _sequence(item, base if base is not list else list)
    if origin is dict or tp is dict or origin is collections.abc.Mapping:
        key = compile_type(args[0]) if args else _identity
        value = compile_type(args[1]) if len(args) == 2 else _identity
        return _mapping(key, value)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return _enum(tp)
        if dataclasses.is_dataclass(tp):
            return _dataclass(tp)
        if is_pydantic_model(tp):
            return _pydantic(tp)
    raise TypeError(f"cannot validate values of type {tp!r}")


def is_body_type(tp: Any) -> bool:
    """Types read from the JSON body rather than from the URL."""
    tp = strip_optional(tp)
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return is_body_type(typing.get_args(tp)[0])
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or is_pydantic_model(tp)):
        return True
    if tp is dict or origin is dict or tp is list:
        return True
    if origin is list:
        return not is_scalar(typing.get_args(tp)[0])
    return False


def scalar_list_item(tp: Any) -> Any | None:
    """``list[int]`` → ``int``: such parameters are read from repeated query keys."""
    tp = strip_optional(tp)
    if typing.get_origin(tp) is list and is_scalar(typing.get_args(tp)[0]):
        return typing.get_args(tp)[0]
    return None
