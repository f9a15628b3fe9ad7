"""BigQuery's table schema for a row type: nested records are RECORD fields, lists REPEATED.

BuildFlow made a ``BigQueryTable``'s schema this way and sent rows as nested JSON, so its
users query ``record.field`` and ``UNNEST(list)``. A column keeps BigQuery's JSON type when
BigQuery cannot give it a fixed shape: a part without one (a dict, ``Any``, a union of kinds),
a record that contains itself, a list of lists (an ARRAY cannot hold an ARRAY), a list whose
items may be None (an ARRAY cannot hold NULL), or more than 15 levels of records. One such
part makes the whole column JSON, as it does for DuckDB's STRUCT columns, so the local
stand-in and BigQuery agree on which columns nest.

Values of nested columns are checked with BigQuery's JSON input rules at every level and come
out as JSON data (timestamps as ISO text, bytes as base64), which both the insertAll body and
the DuckDB stand-in take.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from buildflow.types.fields import Kind, Shape, TypeNode
from buildflow.types.input_syntax import InputSyntax
from buildflow.types.schema import Column, column_check, raw_values, schema_from_type, to_jsonable

__all__ = ["MAX_DEPTH", "RECORD", "Field", "bigquery_columns", "nested_check", "table_fields", "table_schema"]

#: BigQuery's limit on levels of RECORD types in a schema.
MAX_DEPTH = 15
RECORD = "RECORD"


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of a BigQuery table schema; a RECORD has ``fields``."""

    name: str
    type: str
    mode: str
    fields: tuple[Field, ...] = ()
    #: The column it was made from: its values are checked as that column's.
    column: Column | None = dataclasses.field(default=None, compare=False, repr=False)

    def describe(self) -> str:
        """``"name TYPE"`` with the mode unless REQUIRED, as plans show a column; a RECORD lists
        its fields, e.g. ``"best RECORD(hour TIMESTAMP, stat INTEGER)"``."""
        parts = "(" + ", ".join(f.describe() for f in self.fields) + ")" if self.fields else ""
        return f"{self.name} {self.type}{parts}" + ("" if self.mode == "REQUIRED" else f" {self.mode}")

    def api(self) -> dict[str, Any]:
        """The field as BigQuery's REST API (and Pulumi's ``schema``) spells it."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.fields:
            out["fields"] = [f.api() for f in self.fields]
        return out


def table_fields(columns: list[Column]) -> list[Field]:
    return [_field(c) for c in columns]


def table_schema(row_type: Any) -> list[dict[str, Any]]:
    """The schema JSON of a table whose rows are ``row_type`` (a dataclass or pydantic model)."""
    return [f.api() for f in table_fields(schema_from_type(row_type))]


def _field(column: Column) -> Field:
    if column.kind is not Kind.JSON:
        return Field(column.name, column.kind.value, column.mode, column=column)
    nested = _nested(column, 1, frozenset())
    return nested if nested is not None else Field(column.name, Kind.JSON.value, column.mode, column=column)


def _nested(column: Column, depth: int, enclosing: frozenset[type]) -> Field | None:
    """The RECORD field of ``column``, or None when BigQuery cannot give it a fixed shape."""
    node = column.node
    if node is None:
        return None
    if node.shape is Shape.SEQUENCE:
        item = _list_item(node)
        if item is None or not item.is_record:
            return None
        return _record(column, item, "REPEATED", depth, enclosing)
    if node.is_record:
        return _record(column, node, column.mode, depth, enclosing)
    return None


def _list_item(node: TypeNode) -> TypeNode | None:
    if len(node.args) != 1 or node.args[0].nullable:
        return None
    return node.args[0]


def _record(column: Column, node: TypeNode, mode: str, depth: int, enclosing: frozenset[type]) -> Field | None:
    if depth > MAX_DEPTH or node.type in enclosing:
        return None
    try:
        columns = schema_from_type(node.type)
    except TypeError:  # a field no sink can store
        return None
    fields = []
    for part in columns:
        if part.kind is Kind.JSON:
            found = _nested(part, depth + 1, enclosing | {node.type})
            if found is None:
                return None
            fields.append(found)
        else:
            fields.append(_field(part))
    return Field(column.name, RECORD, mode, tuple(fields), column=column)


def bigquery_columns(columns: list[Column]) -> list[Column]:
    """``columns`` as the DuckDB stand-in for BigQuery makes them: a column BigQuery keeps as
    JSON forgets its annotation, so DuckDB keeps it as JSON too rather than a STRUCT or LIST."""
    return [
        c if c.kind is not Kind.JSON or _nested(c, 1, frozenset()) else dataclasses.replace(c, node=None)
        for c in columns
    ]


# -- values ----------------------------------------------------------------------------------------
Check = Callable[[Any], Any]


def nested_check(column: Column, syntax: InputSyntax) -> Check | None:
    """The check of a RECORD column's values under ``syntax`` (None for other columns): each
    part read by its own column's rules, the result as JSON data."""
    field = _nested(column, 1, frozenset()) if column.kind is Kind.JSON else None
    return None if field is None else _check(field, syntax)


def _check(field: Field, syntax: InputSyntax) -> Check:
    assert field.column is not None  # every field made here remembers its column
    if field.type != RECORD:
        leaf = column_check(field.column, syntax)
        return lambda v: to_jsonable(leaf(v))
    record = _record_check(field, syntax)
    if field.mode != "REPEATED":
        optional = field.mode == "NULLABLE"

        def one(v: Any) -> Any:
            if v is None:
                if optional:
                    return None
                raise ValueError("is required (not Optional) but is None")
            return record(v)

        return one
    nullable = field.column.nullable

    def many(v: Any) -> Any:
        if v is None and nullable:
            return None
        if not isinstance(v, (list, tuple)):
            raise ValueError(f"expected a list, got {type(v).__name__}")
        out = []
        for i, item in enumerate(v):
            if item is None:
                raise ValueError(f"[{i}] is None, and BigQuery's arrays cannot hold NULL")
            try:
                out.append(record(item))
            except ValueError as e:
                raise ValueError(f"[{i}]{e}") from None
        return out

    return many


def _record_check(field: Field, syntax: InputSyntax) -> Check:
    names = [f.name for f in field.fields]
    parts = [(f.name, _check(f, syntax)) for f in field.fields]

    def record(v: Any) -> dict[str, Any]:
        if isinstance(v, (str, bytes, int, float, list, tuple)):
            raise ValueError(f"expected a record, got {type(v).__name__}")
        out = {}
        for (name, check), value in zip(parts, raw_values(v, names), strict=True):
            try:
                out[name] = check(value)
            except ValueError as e:
                text = str(e)
                raise ValueError(f".{name}{text if text.startswith(('.', '[')) else ': ' + text}") from None
        return out

    return record
