"""Columns of a sink, derived from the row type a collector returns.

One description drives every sink: the DDL of PostgreSQL and DuckDB tables, the schema of a
BigQuery table, the header of a CSV file, the Arrow schema of a Parquet file. Rows are
checked against it when they are converted (``row_converter``), so a row that does not fit is
refused for its own request, before it joins a batch; a value not of its column's type is read
as the sink's engine reads it (``buildflow.types.input_syntax``).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import enum
import functools
import keyword
import uuid
from collections.abc import Callable, Mapping
from typing import Any

from buildflow.types.fields import FieldNode, Kind, Scalar, Shape, TypeNode, parse_type, scalar_of
from buildflow.types.input_syntax import InputSyntax, fallback

Row = dict[str, Any]

__all__ = [
    "Column",
    "Kind",
    "Row",
    "RowConversionError",
    "row_converter",
    "schema_from_type",
    "schema_or_none",
    "to_jsonable",
    "to_row",
    "values_converter",
]


@dataclasses.dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    nullable: bool = False
    #: A list of ``kind`` values (BigQuery mode REPEATED, a SQL array).
    repeated: bool = False
    #: The parsed annotation the column was made from: stores with nested types (DuckDB's
    #: STRUCT and LIST) read a JSON column's shape from it.
    node: TypeNode | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def mode(self) -> str:
        """BigQuery's field mode: REPEATED, NULLABLE or REQUIRED."""
        return "REPEATED" if self.repeated else "NULLABLE" if self.nullable else "REQUIRED"

    def describe(self, type_name: str | None = None) -> str:
        """``"name KIND"``, with the mode when it is not REQUIRED: how plans show a column
        (``type_name`` instead of the kind when the store gives the column a type of its own)."""
        return f"{self.name} {type_name or self.kind.value}" + ("" if self.mode == "REQUIRED" else f" {self.mode}")


class RowConversionError(ValueError):
    """A row does not fit its sink's columns; the message names the field and the problem."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"field `{field}`: {message}")
        self.field = field


# -- types ---------------------------------------------------------------------------------------
def is_record_type(tp: Any) -> bool:
    """A dataclass or a pydantic model class: something with named, typed fields."""
    return isinstance(tp, type) and parse_type(tp).is_record


def _stored_kind(node: TypeNode) -> Kind | None:
    """The scalar column kind of values of ``node`` (Optional aside), if it has one."""
    if node.shape is Shape.SCALAR:
        return node.scalar.kind  # type: ignore[union-attr]  # a SCALAR node has its scalar
    if node.shape is Shape.LITERAL:
        return _shared_kind(scalar_of(type(v)) for v in node.values)
    if node.shape is Shape.ENUM:
        return _shared_kind(scalar_of(type(m.value)) for m in node.type)
    if node.shape is Shape.UNION:  # X | Y: one column only if both are stored alike
        return _shared_kind(_stored_kind(a) for a in node.args) if node.args else None
    return None


def _shared_kind(kinds: Any) -> Kind | None:
    found = {k.kind if isinstance(k, Scalar) else k for k in kinds}
    return found.pop() if len(found) == 1 else None


def _column(name: str, node: TypeNode, owner: str) -> Column:
    nullable = node.nullable
    if node.shape is Shape.ANY:
        return Column(name, Kind.JSON, True)
    kind = _stored_kind(node)
    if kind is not None:
        return Column(name, kind, nullable)
    if node.shape is Shape.UNION:
        return Column(name, Kind.JSON, nullable)
    if node.shape is Shape.SEQUENCE:
        item = _stored_kind(node.args[0]) if node.args and not node.args[0].nullable else None
        return Column(name, item, nullable, repeated=True) if item else Column(name, Kind.JSON, nullable)
    if node.shape in (Shape.MAPPING, Shape.RECORD, Shape.MODEL):
        return Column(name, Kind.JSON, nullable)
    raise TypeError(
        f"{owner}.{name}: a sink cannot store {node.annotation!r}; use str, int, float, bool, bytes, "
        "datetime, date, uuid.UUID, an Enum, a list of those, or a dict/dataclass/model (stored as JSON)"
    )


def _field_column(field: FieldNode, owner: str) -> Column:
    column = part_column(field.name, field.type, owner)
    if field.defaults_to_none and not column.nullable and not column.repeated:
        column = dataclasses.replace(column, nullable=True)
    return column


def part_column(name: str, node: TypeNode, owner: str) -> Column:
    """The column values of ``node`` make, remembering ``node``: a record's field, or what a
    store with nested types makes of a list's items."""
    return dataclasses.replace(_column(name, node, owner), node=node)


def schema_from_type(tp: Any) -> list[Column]:
    """The columns of a row type (a dataclass or a pydantic model), in field order.

    ``Optional[X]`` (or a default of ``None``) makes a nullable column; ``list[scalar]`` a
    repeated one; nested records, dicts and lists of non-scalars are JSON.
    """
    node = parse_type(tp)
    if not node.is_record or node.nullable:
        raise TypeError(
            f"the rows of a sink with a schema must be dataclasses or pydantic models, not {tp!r}; "
            "annotate the collector's return type, or give the sink .options(schema=RowType)"
        )
    columns = [_field_column(f, node.name) for f in node.fields]
    if not columns:
        raise TypeError(f"{node.name} has no fields, so a sink cannot make columns from it")
    return columns


def schema_or_none(tp: Any) -> list[Column] | None:
    """``schema_from_type`` for record types; None for rows without a fixed shape (``dict``,
    ``Mapping``, ``Any``, no annotation, ``bytes``, a class that is not a record but has
    BuildFlow's ``to_json`` or ``to_bytes`` hook), which only schemaless sinks (files, topics)
    take."""
    if tp is None or tp is Any or tp is bytes:
        return None
    node = parse_type(tp)
    if node.shape is Shape.MAPPING or (not node.is_record and (has_hook(tp, "to_json") or has_hook(tp, "to_bytes"))):
        return None
    return schema_from_type(tp)


def has_hook(tp: Any, name: str) -> bool:
    """Whether the class ``tp`` says how its objects are stored (``to_json``) or published
    (``to_bytes``), as BuildFlow let it; ``int``'s own ``to_bytes`` is not such a hook."""
    return isinstance(tp, type) and not issubclass(tp, int) and callable(getattr(tp, name, None))


# -- values ----------------------------------------------------------------------------------------
def to_jsonable(value: Any) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, int, float, bool, None)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, enum.Enum):
        return to_jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump(mode="json")
    raise TypeError(f"{type(value).__name__} cannot be stored as JSON")


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


#: How each kind of column is named in "expected ..., got ..." messages.
_EXPECTED = {
    Kind.STRING: "a string",
    Kind.INTEGER: "an integer",
    Kind.FLOAT: "a number",
    Kind.BOOLEAN: "true or false",
    Kind.TIMESTAMP: "a datetime",
    Kind.DATE: "a date",
    Kind.BYTES: "bytes",
}


def _otherwise(kind: Kind, syntax: InputSyntax) -> Callable[[Any], Any]:
    """What a column of ``kind`` does with a value not of its type: what the sink's engine
    reads (``input_syntax.fallback``), else a refusal naming the value."""
    expected = _EXPECTED.get(kind, "a value")
    engine = fallback(syntax, kind)
    if engine is None:

        def refuse(v: Any) -> Any:
            raise ValueError(f"expected {expected}, got {_describe(v)}")

        return refuse

    def read(v: Any) -> Any:
        try:
            return engine(v)
        except ValueError as e:
            raise ValueError(f"expected {expected} ({e}), got {_describe(v)}") from None

    return read


def _scalar_check(kind: Kind, syntax: InputSyntax) -> Callable[[Any], Any]:
    """A function that returns the value as the column stores it, or raises ValueError; a value
    that is not of the column's type is left to what the sink's engine reads (``_otherwise``)."""
    otherwise = _otherwise(kind, syntax)
    if kind is Kind.STRING:

        def check(v: Any) -> Any:
            if isinstance(v, str):
                return v.value if isinstance(v, enum.Enum) else v
            if isinstance(v, uuid.UUID):
                return str(v)
            if isinstance(v, enum.Enum) and isinstance(v.value, str):
                return v.value
            return otherwise(v)

    elif kind is Kind.INTEGER:

        def check(v: Any) -> Any:
            if isinstance(v, int) and not isinstance(v, bool):
                return int(v)
            if isinstance(v, enum.Enum) and isinstance(v.value, int):
                return v.value
            return otherwise(v)

    elif kind is Kind.FLOAT:

        def check(v: Any) -> Any:
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return float(v)
            return otherwise(v)

    elif kind is Kind.BOOLEAN:

        def check(v: Any) -> Any:
            if isinstance(v, bool):
                return v
            return otherwise(v)

    elif kind is Kind.TIMESTAMP:

        def check(v: Any) -> Any:
            if isinstance(v, datetime.datetime):
                # A naive timestamp is taken as UTC, as BigQuery takes it.
                return v if v.tzinfo is not None else v.replace(tzinfo=datetime.UTC)
            return otherwise(v)

    elif kind is Kind.DATE:

        def check(v: Any) -> Any:
            if isinstance(v, datetime.date) and not isinstance(v, datetime.datetime):
                return v
            return otherwise(v)

    elif kind is Kind.BYTES:

        def check(v: Any) -> Any:
            if isinstance(v, (bytes, bytearray, memoryview)):
                return bytes(v)
            return otherwise(v)

    else:

        def check(v: Any) -> Any:
            try:
                return to_jsonable(v)
            except TypeError as e:
                raise ValueError(str(e)) from None

    return check


#: Values that need no conversion for a column of each kind: checked by exact type first.
_EXACT = {Kind.STRING: str, Kind.INTEGER: int, Kind.FLOAT: float, Kind.BOOLEAN: bool}


def column_check(column: Column, syntax: InputSyntax) -> Callable[[Any], Any]:
    """The check of one column's values: the value as the column stores it, or ValueError."""
    if syntax is InputSyntax.BIGQUERY and column.kind is Kind.JSON:
        from buildflow.types.bigquery_fields import nested_check  # it builds on this module

        nested = nested_check(column, syntax)
        if nested is not None:  # a RECORD column: BigQuery's rules apply inside it too
            return nested
    scalar = _scalar_check(column.kind, syntax)
    exact = _EXACT.get(column.kind)
    if column.repeated:

        def check(v: Any) -> Any:
            if v is None and column.nullable:
                return None
            if not isinstance(v, (list, tuple, set, frozenset)):
                raise ValueError(f"expected a list, got {_describe(v)}")
            return [scalar(item) for item in v]

        return check

    def check_scalar(v: Any) -> Any:
        if type(v) is exact:  # the common case, without the general checks
            return v
        if v is None:
            if column.nullable:
                return None
            raise ValueError("is required (not Optional) but is None")
        return scalar(v)

    return check_scalar


def raw_values(obj: Any, names: list[str]) -> list[Any]:
    """The values of ``names`` in a row object: a dict, a ``to_json`` object or attributes."""
    if isinstance(obj, Mapping):
        return [obj.get(name) for name in names]
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):  # BuildFlow's hook: an object may say how it is stored
        data = to_json()
        return [data.get(name) for name in names]
    return [getattr(obj, name, None) for name in names]


def _general_converter(columns: list[Column], syntax: InputSyntax) -> Callable[[Any], Row]:
    """Rows from dicts, ``to_json`` objects, or any object with the columns as attributes."""
    names = [c.name for c in columns]
    pairs = [(c.name, column_check(c, syntax)) for c in columns]

    def convert(obj: Any) -> Row:
        row: Row = {}
        for (name, check), value in zip(pairs, raw_values(obj, names), strict=True):
            try:
                row[name] = check(value)
            except ValueError as e:
                raise RowConversionError(name, str(e)) from None
        return row

    return convert


def _record_converter(
    columns: list[Column],
    record_type: type,
    general: Callable[[Any], Any],
    encode_json: Callable[[Any], Any] | None,
    syntax: InputSyntax,
) -> Callable[[Any], Any]:
    """A converter generated for ``record_type``'s own attributes: per column one attribute
    read and one exact-type test, and a check only when the type is not already the stored one.

    It returns a ``Row`` dict, or with ``encode_json`` the tuple of column values a table's
    driver takes (JSON columns encoded by it): one step from the handler's object to the sink.
    """
    env: dict[str, Any] = {
        "tp": record_type,
        "general": general,
        "RowConversionError": RowConversionError,
        "enc": encode_json,
    }
    lines = ["def convert(obj):", "    if type(obj) is not tp:", "        return general(obj)"]
    for i, column in enumerate(columns):
        var, key = f"x{i}", repr(column.name)
        env[f"k{i}"] = column_check(column, syntax)
        exact = None if column.repeated else _EXACT.get(column.kind)
        lines.append(f"    {var} = obj.{column.name}")
        indent = "    "
        if exact is not None:
            lines.append(f"    if type({var}) is not {exact.__name__}:")
            indent = "        "
        lines += [
            f"{indent}try:",
            f"{indent}    {var} = k{i}({var})",
            f"{indent}except ValueError as e:",
            f"{indent}    raise RowConversionError({key}, str(e)) from None",
        ]
        if encode_json is not None and column.kind is Kind.JSON:
            lines += [f"    if {var} is not None:", f"        {var} = enc({var})"]
    if encode_json is None:
        lines.append("    return {" + ", ".join(f"{c.name!r}: x{i}" for i, c in enumerate(columns)) + "}")
    else:
        lines.append("    return (" + "".join(f"x{i}, " for i in range(len(columns))) + ")")
    exec("\n".join(lines), env)  # noqa: S102 - code generated from the record's own field names
    convert: Callable[[Any], Any] = env["convert"]
    return convert


def converter_for_columns(
    columns: list[Column], record_type: Any = None, syntax: InputSyntax = InputSyntax.PYTHON
) -> Callable[[Any], Row]:
    """Turn a row object (record or dict) into a checked ``Row`` with exactly these columns,
    reading values not of their column's type as the sink's engine does (``syntax``).

    Objects of exactly ``record_type`` (without BuildFlow's ``to_json`` hook) take a converter
    generated for that type; anything else takes the general one.
    """
    general = _general_converter(columns, syntax)
    if _generated(columns, record_type):
        return _record_converter(columns, record_type, general, None, syntax)
    return general


def values_converter(
    columns: list[Column],
    record_type: Any,
    encode_json: Callable[[Any], Any],
    syntax: InputSyntax = InputSyntax.PYTHON,
) -> Callable[[Any], tuple[Any, ...]]:
    """``converter_for_columns`` for tables: a row object becomes the tuple of its checked
    column values in column order, JSON columns encoded by ``encode_json`` (the driver's JSON
    wrapper), with no ``Row`` dict in between."""
    as_dict = _general_converter(columns, syntax)
    names = [c.name for c in columns]
    json_at = [i for i, c in enumerate(columns) if c.kind is Kind.JSON]

    def general(obj: Any) -> tuple[Any, ...]:
        row = as_dict(obj)
        values = [row[name] for name in names]
        for i in json_at:
            if values[i] is not None:
                values[i] = encode_json(values[i])
        return tuple(values)

    if _generated(columns, record_type):
        return _record_converter(columns, record_type, general, encode_json, syntax)
    return general


def _generated(columns: list[Column], record_type: Any) -> bool:
    """Objects of ``record_type`` can take a generated converter: a class without BuildFlow's
    ``to_json`` hook, whose columns are attribute names."""
    return (
        isinstance(record_type, type)
        and not hasattr(record_type, "to_json")
        and all(c.name.isidentifier() and not keyword.iskeyword(c.name) for c in columns)
    )


def _as_is(obj: Any) -> Row:
    if isinstance(obj, Mapping):
        return dict(obj)
    return to_row(obj)


@functools.lru_cache(maxsize=256)
def row_converter(tp: Any, syntax: InputSyntax = InputSyntax.PYTHON) -> Callable[[Any], Row]:
    """The compiled converter of rows of type ``tp`` (cached per type and input syntax).

    A dataclass or pydantic model gives a dict of its columns, values checked and normalised
    (naive datetimes become UTC, UUIDs and enums their values, nested records plain JSON
    data, other values read as the sink's engine reads them); a ``dict`` row type keeps rows
    as they are.
    """
    columns = schema_or_none(tp)
    return _as_is if columns is None else converter_for_columns(columns, tp, syntax)


def to_row(obj: Any) -> Row:
    """One row from any object a collector may return: a record, a dict, or an object with
    BuildFlow's ``to_json()``."""
    if isinstance(obj, Mapping):
        return dict(obj)
    if is_record_type(type(obj)):
        return row_converter(type(obj))(obj)  # type: ignore[arg-type]  # a class is hashable
    to_json = getattr(obj, "to_json", None)
    if callable(to_json):
        return dict(to_json())
    raise TypeError(f"cannot write a {type(obj).__name__} to a sink; return dicts, dataclasses or pydantic models")
