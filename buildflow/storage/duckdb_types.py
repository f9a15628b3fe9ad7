"""DuckDB's STRUCT and LIST types for sink columns that the other stores keep as JSON.

A column of nested records or lists (``list[Item]``, ``Item``, ``list[list[int]]``) is JSON in
PostgreSQL, BigQuery and files. BuildFlow's DuckDB sink appended a pandas DataFrame and DuckDB
inferred nested types from it, so user code reading the table got lists of dicts back; a
DuckDB table made here has the same types. A column with a part of no fixed shape (a dict,
``Any``, a union of kinds) or a record that contains itself stays JSON.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
from typing import Any

from buildflow.storage.ddl import existing_columns, quote, scalar_type
from buildflow.types.fields import Kind, Shape, TypeNode
from buildflow.types.schema import Column, part_column, schema_from_type
from buildflow.types.value_steps import Step, each_field, each_item


@dataclasses.dataclass(frozen=True)
class NestedType:
    sql: str
    #: What a value as ``to_jsonable`` made it needs before DuckDB's appender takes it, if
    #: anything: bytes arrive as base64 text and timestamps as ISO text (naive ones are UTC).
    adapt: Step | None = None


def nested_type(column: Column) -> NestedType | None:
    """The STRUCT/LIST type of a JSON column, or None when it stays JSON."""
    if column.kind is not Kind.JSON or column.node is None:
        return None
    return _node_type(column.node, frozenset())


def _node_type(node: TypeNode, enclosing: frozenset[type]) -> NestedType | None:
    if node.is_record:
        if node.type in enclosing:
            return None
        try:
            fields = schema_from_type(node.type)
        except TypeError:  # a field no sink can store: the whole column stays JSON
            return None
        parts = [(f.name, _column_type(f, enclosing | {node.type})) for f in fields]
        found = [(name, part) for name, part in parts if part is not None]
        if len(found) < len(parts):
            return None
        sql = "STRUCT(" + ", ".join(f"{quote(name)} {part.sql}" for name, part in found) + ")"
        adapters = [(name, part.adapt) for name, part in found if part.adapt is not None]
        return NestedType(sql, each_field(adapters) if adapters else None)
    if node.shape is Shape.SEQUENCE and node.args:
        try:
            item = part_column("item", node.args[0], "list")
        except TypeError:
            return None
        inner = _column_type(item, enclosing)
        if inner is None:
            return None
        return NestedType(f"{inner.sql}[]", each_item(inner.adapt) if inner.adapt else None)
    return None


def _column_type(column: Column, enclosing: frozenset[type]) -> NestedType | None:
    if column.kind is Kind.JSON:
        return _node_type(column.node, enclosing) if column.node is not None else None
    leaf = NestedType(scalar_type("duckdb", column.kind), _LEAF_ADAPTERS.get(column.kind))
    if not column.repeated:
        return leaf
    return NestedType(f"{leaf.sql}[]", each_item(leaf.adapt) if leaf.adapt else None)


def _bytes(value: Any) -> Any:
    return base64.b64decode(value, validate=True) if isinstance(value, str) else value


def _timestamp(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    moment = datetime.datetime.fromisoformat(value)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=datetime.UTC)


_LEAF_ADAPTERS: dict[Kind, Step] = {Kind.BYTES: _bytes, Kind.TIMESTAMP: _timestamp}


def mismatched_columns(connection: Any, table: str, columns: list[Column]) -> list[str]:
    """What is wrong with the nested columns of an existing ``table``: one sentence per column
    whose type is not the one its rows need (a JSON column made by an earlier bfctl, say)."""
    existing = dict(connection.execute(existing_columns(table, with_types=True)).fetchall())
    problems = []
    for column in columns:
        nested = nested_type(column)
        if nested is None or column.name not in existing:
            continue
        wanted = connection.execute(f"SELECT typeof(CAST(NULL AS {nested.sql}))").fetchone()[0]
        if existing[column.name] == wanted:
            continue
        name, had = quote(column.name), existing[column.name]
        why = " (earlier versions stored nested records and lists as JSON text)" if had == "JSON" else ""
        problems.append(
            f"column {column.name} is {had}, but its rows need {wanted}{why}: convert it with `ALTER TABLE "
            f"{quote(table)} ALTER {name} SET DATA TYPE {nested.sql} USING CAST({name} AS {nested.sql})`, "
            "or drop the table"
        )
    return problems
