"""One parsed model of Python annotations, shared by everything that reads types.

An annotation is parsed once into a small tree of ``TypeNode`` (records hold ``FieldNode``
children). Request validation, JSON Schema, sink columns and row conversion are all compiled
from that tree, so they cannot disagree about what a type means, and a new supported scalar is
one line of ``SCALARS``. Parsing is pure and cached; nothing here does I/O.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import datetime as dt
import decimal
import enum
import functools
import types
import typing
import uuid
from collections.abc import Callable, Mapping
from typing import Any


class Invalid(Exception):
    """One or more values did not fit; ``errors`` locate each one (FastAPI's error shape)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def one(cls, msg: str, kind: str) -> Invalid:
        return cls([{"loc": [], "msg": msg, "type": kind}])

    def under(self, *loc: Any) -> Invalid:
        return Invalid([{**e, "loc": [*loc, *e["loc"]]} for e in self.errors])


class Kind(enum.StrEnum):
    """Column types of sinks, named as BigQuery names them."""

    STRING = "STRING"
    INTEGER = "INTEGER"
    FLOAT = "FLOAT"
    BOOLEAN = "BOOLEAN"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    BYTES = "BYTES"
    #: Nested records, dicts, lists of non-scalars, ``Any``: stored as a JSON document.
    JSON = "JSON"


# -- scalars: everything a type means, in one row each ---------------------------------------
#: ``int`` values are 64-bit: what databases, JSON encoders and most clients handle.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _parse_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise Invalid.one("Input should be a valid string", "string_type")


def _parse_int(v: Any) -> int:
    value: int | None = None
    if isinstance(v, int) and not isinstance(v, bool):
        value = v
    elif isinstance(v, float) and v.is_integer():
        value = int(v)
    elif isinstance(v, str) and len(v) < 64:
        with contextlib.suppress(ValueError):
            value = int(v.strip())
    if value is None:
        raise Invalid.one("Input should be a valid integer", "int_parsing")
    if not INT_MIN <= value <= INT_MAX:
        raise Invalid.one("Input should be a 64-bit integer", "int_range")
    return value


def _parse_float(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            pass
    raise Invalid.one("Input should be a valid number", "float_parsing")


def _parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in _TRUE | _FALSE:
        return v.lower() in _TRUE
    if v in (0, 1) and not isinstance(v, float):
        return bool(v)
    raise Invalid.one("Input should be a valid boolean", "bool_parsing")


def _parse_bytes(v: Any) -> bytes:
    if isinstance(v, str):
        return v.encode()
    raise Invalid.one("Input should be a valid string", "bytes_type")


def _from_text(parse: Callable[[str], Any], what: str) -> Callable[[Any], Any]:
    error = (f"Input should be a valid {what}", f"{what.replace(' ', '_')}_parsing")

    def convert(v: Any) -> Any:
        if isinstance(v, str):
            try:
                return parse(v)
            except (ValueError, decimal.InvalidOperation):
                pass
        raise Invalid.one(*error)

    return convert


_decimal_from_text = _from_text(decimal.Decimal, "decimal")


#: Past this magnitude a Unix timestamp counts milliseconds, as pydantic reads it.
_UNIX_MILLIS_BEYOND = 2e10


def _parse_datetime(v: Any) -> dt.datetime:
    """ISO-8601 text, or a Unix timestamp (a number or its digits, in UTC): BuildFlow read request
    bodies with pydantic, so clients of its collectors may send either."""
    if isinstance(v, str):
        with contextlib.suppress(ValueError):
            return dt.datetime.fromisoformat(v)
        with contextlib.suppress(ValueError):
            v = float(v)
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        with contextlib.suppress(OverflowError, ValueError, OSError):
            return dt.datetime.fromtimestamp(v / 1000 if abs(v) > _UNIX_MILLIS_BEYOND else v, dt.UTC)
    raise Invalid.one("Input should be a valid datetime", "datetime_parsing")


def _parse_decimal(v: Any) -> decimal.Decimal:
    if isinstance(v, decimal.Decimal):
        return v
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        v = str(v)
    return _decimal_from_text(v)  # type: ignore[no-any-return]  # Decimal(str) returns a Decimal


@dataclasses.dataclass(frozen=True)
class Scalar:
    """A type that travels as one JSON value or one text value (path, query)."""

    type: type
    #: Converts a decoded JSON or text value, or raises ``Invalid``.
    parse: Callable[[Any], Any]
    json_schema: Mapping[str, Any]
    #: How a sink stores it; None when sinks cannot store it.
    kind: Kind | None
    #: Decoded JSON of exactly this type needs no conversion (``type(v) is`` check).
    exact: bool = False


#: Subclasses come before their bases: ``bool`` is an ``int``, ``datetime`` is a ``date``.
SCALARS: tuple[Scalar, ...] = (
    Scalar(bool, _parse_bool, {"type": "boolean"}, Kind.BOOLEAN, exact=True),
    Scalar(int, _parse_int, {"type": "integer"}, Kind.INTEGER, exact=True),
    Scalar(float, _parse_float, {"type": "number"}, Kind.FLOAT, exact=True),
    Scalar(str, _parse_str, {"type": "string"}, Kind.STRING, exact=True),
    Scalar(bytes, _parse_bytes, {"type": "string", "format": "binary"}, Kind.BYTES),
    Scalar(uuid.UUID, _from_text(uuid.UUID, "UUID"), {"type": "string", "format": "uuid"}, Kind.STRING),
    Scalar(
        dt.datetime,
        _parse_datetime,
        {"type": "string", "format": "date-time"},
        Kind.TIMESTAMP,
    ),
    Scalar(dt.date, _from_text(dt.date.fromisoformat, "date"), {"type": "string", "format": "date"}, Kind.DATE),
    Scalar(dt.time, _from_text(dt.time.fromisoformat, "time"), {"type": "string", "format": "time"}, None),
    Scalar(decimal.Decimal, _parse_decimal, {"type": "number"}, None),
)
_BY_TYPE = {s.type: s for s in SCALARS}


def scalar_of(tp: Any) -> Scalar | None:
    """The scalar ``tp`` is or derives from (a ``str`` subclass is a string)."""
    found = _BY_TYPE.get(tp)
    if found is not None or not isinstance(tp, type):
        return found
    return next((s for s in SCALARS if issubclass(tp, s.type)), None)


# -- the tree ---------------------------------------------------------------------------------
class Shape(enum.Enum):
    ANY = "any"  # Any, object, no annotation: whatever JSON holds
    NONE = "none"  # None: only null
    SCALAR = "scalar"
    ENUM = "enum"
    LITERAL = "literal"
    UNION = "union"  # two or more options other than None
    SEQUENCE = "sequence"  # list, tuple, set, frozenset
    MAPPING = "mapping"  # dict, Mapping
    RECORD = "record"  # a dataclass
    MODEL = "model"  # a pydantic model, which validates and describes itself
    OPAQUE = "opaque"  # anything else: no part of BuildFlow reads it as data


#: Shapes that travel as one text value: path parameters and query values.
TEXT_SHAPES = frozenset({Shape.SCALAR, Shape.ENUM, Shape.LITERAL})


@dataclasses.dataclass(frozen=True, eq=False)
class FieldNode:
    """One field of a record or model."""

    name: str
    type: TypeNode
    #: No default: a value must be given.
    required: bool
    #: Its default is None, so a missing value is stored as NULL.
    defaults_to_none: bool
    #: Taken by the constructor (a dataclass field with ``init=False`` is not).
    init: bool = True
    #: Passed by keyword only (``kw_only`` dataclass fields).
    kw_only: bool = False
    #: The default value of a field that is not required (unless it has a factory).
    default: Any = None
    #: Makes the default value, when the field has a factory.
    default_factory: Callable[[], Any] | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class TypeNode:
    """One annotation, parsed."""

    annotation: Any
    shape: Shape
    #: The class behind it: the scalar, enum, record or model class, or the container type.
    type: Any = None
    #: ``Optional[...]``: None is accepted too.
    nullable: bool = False
    #: Union options; a sequence's item; a mapping's key and value. Empty: items of any type.
    args: tuple[TypeNode, ...] = ()
    #: A Literal's values.
    values: tuple[Any, ...] = ()
    scalar: Scalar | None = None
    #: ``Annotated`` extras, outermost first (dependency markers, say).
    metadata: tuple[Any, ...] = ()

    @functools.cached_property
    def fields(self) -> tuple[FieldNode, ...]:
        """A record's or model's fields, parsed on first use so recursive types terminate."""
        if self.shape is Shape.RECORD:
            hints = typing.get_type_hints(self.type, include_extras=True)
            return tuple(
                FieldNode(
                    f.name,
                    parse_type(hints.get(f.name, Any)),
                    required=f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING,
                    defaults_to_none=f.default is None,
                    init=f.init,
                    kw_only=bool(f.kw_only),
                    default=None if f.default is dataclasses.MISSING else f.default,
                    default_factory=None if f.default_factory is dataclasses.MISSING else f.default_factory,
                )
                for f in dataclasses.fields(self.type)
            )
        if self.shape is Shape.MODEL:
            return tuple(
                FieldNode(name, parse_type(f.annotation), required=f.is_required(), defaults_to_none=f.default is None)
                for name, f in self.type.model_fields.items()
            )
        return ()

    @property
    def is_text(self) -> bool:
        """Travels as one text value (a path parameter, a query value)."""
        return self.shape in TEXT_SHAPES

    @property
    def text_items(self) -> TypeNode | None:
        """``list[int]`` → ``int``: such a parameter is read from repeated query keys."""
        if self.shape is Shape.SEQUENCE and len(self.args) == 1 and self.args[0].is_text:
            return self.args[0]
        return None

    @property
    def is_body(self) -> bool:
        """Read from the JSON body rather than from the URL."""
        if self.shape in (Shape.RECORD, Shape.MODEL, Shape.MAPPING):
            return True
        return self.shape is Shape.SEQUENCE and self.text_items is None

    @property
    def is_data(self) -> bool:
        """Client data of some kind (a path or query value, a body), not something to inject."""
        return self.is_text or self.is_body or self.text_items is not None

    @property
    def is_record(self) -> bool:
        """Named, typed fields: a dataclass or a pydantic model."""
        return self.shape in (Shape.RECORD, Shape.MODEL)

    @property
    def name(self) -> str:
        return getattr(self.type, "__name__", None) or repr(self.annotation)


def is_pydantic_model(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "model_validate") and hasattr(tp, "model_fields")


_UNIONS = (typing.Union, types.UnionType)
_SEQUENCES = (
    list,
    tuple,
    set,
    frozenset,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Set,
    collections.abc.Iterable,
)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)


def _parse(tp: Any) -> TypeNode:
    if tp is Any or tp is object:
        return TypeNode(tp, Shape.ANY)
    if tp is None or tp is type(None):
        return TypeNode(tp, Shape.NONE, nullable=True)
    scalar = _BY_TYPE.get(tp)
    if scalar is not None:
        return TypeNode(tp, Shape.SCALAR, tp, scalar=scalar)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        inner = parse_type(args[0])
        return dataclasses.replace(inner, annotation=tp, metadata=(*args[1:], *inner.metadata))
    if origin in _UNIONS:
        options = tuple(parse_type(a) for a in args if a is not type(None))
        nullable = len(options) < len(args)
        if len(options) == 1:
            return dataclasses.replace(options[0], annotation=tp, nullable=True)
        return TypeNode(tp, Shape.UNION, nullable=nullable, args=options)
    if origin is typing.Literal:
        return TypeNode(tp, Shape.LITERAL, values=args)
    base = origin or tp
    if base in _SEQUENCES:
        if base is tuple and len(args) == 2 and args[1] is Ellipsis:
            args = args[:1]
        items = (parse_type(args[0]),) if len(args) == 1 else ()
        return TypeNode(tp, Shape.SEQUENCE, base, args=items)
    if base in _MAPPINGS:
        kv = (parse_type(args[0]), parse_type(args[1])) if len(args) == 2 else ()
        return TypeNode(tp, Shape.MAPPING, base, args=kv)
    if isinstance(tp, type):
        if issubclass(tp, enum.Enum):
            return TypeNode(tp, Shape.ENUM, tp)
        if dataclasses.is_dataclass(tp):
            return TypeNode(tp, Shape.RECORD, tp)
        if is_pydantic_model(tp):
            return TypeNode(tp, Shape.MODEL, tp)
        scalar = scalar_of(tp)
        if scalar is not None:
            return TypeNode(tp, Shape.SCALAR, tp, scalar=scalar)
    return TypeNode(tp, Shape.OPAQUE, tp if isinstance(tp, type) else None)


@functools.lru_cache(maxsize=1024)
def _parse_cached(tp: Any) -> TypeNode:
    return _parse(tp)


def parse_type(tp: Any) -> TypeNode:
    """The parsed tree of ``tp``, cached per annotation (each reader decides what to do with
    an ``OPAQUE`` part)."""
    try:
        return _parse_cached(tp)
    except TypeError:  # an unhashable annotation (Annotated with a dict, say)
        return _parse(tp)
