"""Sink columns from row types, row conversion, and the file encodings (no I/O)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from typing import Any

import pydantic
import pytest

from bfctl.runtime.sinks.formats import csv_header, csv_rows, encode_file, json_lines
from buildflow.storage import ddl
from buildflow.types.portable import FileFormat
from buildflow.types.schema import (
    Column,
    Kind,
    RowConversionError,
    row_converter,
    schema_from_type,
    schema_or_none,
    to_row,
)


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Inner:
    a: int


@dataclasses.dataclass
class Everything:
    s: str
    i: int
    f: float
    b: bool
    at: datetime.datetime
    day: datetime.date
    raw: bytes
    id: uuid.UUID
    color: Color
    maybe: int | None
    tags: list[str]
    inner: Inner
    inners: list[Inner]
    extra: dict[str, Any]
    later: int = None  # type: ignore[assignment]  # a default of None makes it nullable


class Model(pydantic.BaseModel):
    user: str
    score: float | None = None
    seen: list[int] = []


def test_columns_from_a_dataclass() -> None:
    columns = {c.name: c for c in schema_from_type(Everything)}
    assert [c.name for c in schema_from_type(Everything)][:3] == ["s", "i", "f"]
    assert {n: c.kind for n, c in columns.items()} == {
        "s": Kind.STRING, "i": Kind.INTEGER, "f": Kind.FLOAT, "b": Kind.BOOLEAN, "at": Kind.TIMESTAMP,
        "day": Kind.DATE, "raw": Kind.BYTES, "id": Kind.STRING, "color": Kind.STRING, "maybe": Kind.INTEGER,
        "tags": Kind.STRING, "inner": Kind.JSON, "inners": Kind.JSON, "extra": Kind.JSON, "later": Kind.INTEGER,
    }  # fmt: skip
    assert columns["maybe"].nullable and columns["later"].nullable and not columns["s"].nullable
    assert columns["tags"].repeated and columns["tags"].mode == "REPEATED"
    assert [columns[n].describe() for n in ("s", "maybe", "tags")] == [
        "s STRING",
        "maybe INTEGER NULLABLE",
        "tags STRING REPEATED",
    ]


def test_columns_from_a_pydantic_model() -> None:
    assert schema_from_type(Model) == [
        Column("user", Kind.STRING),
        Column("score", Kind.FLOAT, nullable=True),
        Column("seen", Kind.INTEGER, repeated=True),
    ]


def test_types_a_sink_cannot_take_are_refused_with_the_field() -> None:
    @dataclasses.dataclass
    class Bad:
        amount: complex

    with pytest.raises(TypeError, match=r"Bad\.amount: a sink cannot store"):
        schema_from_type(Bad)
    with pytest.raises(TypeError, match="dataclasses or pydantic models"):
        schema_from_type(int)
    assert schema_or_none(dict) is None and schema_or_none(dict[str, int]) is None


def test_rows_are_checked_and_normalised() -> None:
    naive = datetime.datetime(2024, 1, 1)  # noqa: DTZ001 - naive means UTC (checked below)
    value = Everything(
        "s", 1, 2, True, naive, datetime.date(2024, 1, 2), b"x", uuid.UUID(int=1),
        Color.RED, None, ["a"], Inner(1), [Inner(2)], {"when": datetime.date(2024, 1, 3)},
    )  # fmt: skip
    row = row_converter(Everything)(value)
    assert row["at"] == datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)  # naive means UTC
    assert row["f"] == 2.0 and isinstance(row["f"], float)
    assert row["id"] == "00000000-0000-0000-0000-000000000001" and row["color"] == "red"
    assert row["inner"] == {"a": 1} and row["inners"] == [{"a": 2}] and row["extra"] == {"when": "2024-01-03"}
    assert row_converter(Model)(Model(user="u")) == {"user": "u", "score": None, "seen": []}
    assert row_converter(Everything)(dataclasses.asdict(value))["inner"] == {"a": 1}  # a dict of the type
    with pytest.raises(RowConversionError, match="field `i`: expected an integer, got str 'x'"):
        row_converter(Everything)(dataclasses.replace(value, i="x"))
    with pytest.raises(RowConversionError, match="field `s`: is required"):
        row_converter(Everything)(dataclasses.replace(value, s=None))
    assert to_row({"a": 1}) == {"a": 1} and row_converter(dict)({"a": 1}) == {"a": 1}


def test_csv_is_what_buildflow_wrote() -> None:
    @dataclasses.dataclass
    class Output:
        val: int = 11

    data = encode_file([row_converter(Output)(Output())], FileFormat.CSV, schema_from_type(Output))
    assert data.decode().splitlines(keepends=True) == ['"val"\n', "11\n"]  # BuildFlow's own test
    row = {"s": 'a"b,c', "f": 1.0, "g": 2.5, "b": True, "n": None, "d": datetime.date(2024, 1, 2)}
    assert (csv_header(list(row)) + csv_rows([row], list(row))).decode() == (
        '"s","f","g","b","n","d"\n"a""b,c",1,2.5,true,,2024-01-02\n'
    )


def test_json_lines_and_ddl() -> None:
    at = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
    assert json_lines([{"at": at, "raw": b"\x00"}]) == b'{"at":"2024-01-01T00:00:00+00:00","raw":"AA=="}\n'
    columns = schema_from_type(Model)
    assert ddl.create_table("postgres", "my table", columns) == (
        'CREATE TABLE IF NOT EXISTS "my table" ("user" text NOT NULL, "score" double precision, "seen" bigint[])'
    )
    assert ddl.add_column("duckdb", "t", columns[0]) == 'ALTER TABLE "t" ADD COLUMN "user" VARCHAR'
