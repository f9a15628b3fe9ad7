"""The one parsed type model, and the readers compiled from it: validation, JSON Schema, columns."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import uuid
from typing import Annotated, Any, Literal, Optional

import pydantic
import pytest

from bfctl.runtime.jsonschema import Schemas
from bfctl.runtime.validation import compile_type
from buildflow.types.fields import SCALARS, Invalid, Kind, Shape, parse_type
from buildflow.types.schema import Column, row_converter, schema_from_type


class Size(enum.Enum):
    S = "s"
    L = "l"


@dataclasses.dataclass
class Tree:
    label: str
    children: list[Tree] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Options:
    name: str
    size: Size = Size.S
    tags: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None
    strict: bool = dataclasses.field(default=False, kw_only=True)


class Model(pydantic.BaseModel):
    a: int
    b: str | None = None


MARKER = object()


@pytest.mark.parametrize(
    ("annotation", "shape", "nullable"),
    [
        (int, Shape.SCALAR, False),
        (Optional[int], Shape.SCALAR, True),  # noqa: UP045 - typing.Optional is parsed too
        (int | str, Shape.UNION, False),
        (int | str | None, Shape.UNION, True),
        (Literal["a", "b"], Shape.LITERAL, False),
        (Size, Shape.ENUM, False),
        (list[int], Shape.SEQUENCE, False),
        (tuple[int, ...], Shape.SEQUENCE, False),
        (dict[str, int], Shape.MAPPING, False),
        (Tree, Shape.RECORD, False),
        (Model, Shape.MODEL, False),
        (Any, Shape.ANY, False),
        (Annotated[Tree | None, MARKER], Shape.RECORD, True),
        (object(), Shape.OPAQUE, False),
    ],
)
def test_annotations_parse_into_one_tree(annotation: Any, shape: Shape, nullable: bool) -> None:
    node = parse_type(annotation)
    assert (node.shape, node.nullable) == (shape, nullable)


def test_parsing_is_cached_and_keeps_annotated_metadata() -> None:
    assert parse_type(list[Tree]) is parse_type(list[Tree])
    assert parse_type(Annotated[int, MARKER, "doc"]).metadata == (MARKER, "doc")
    assert parse_type(list[int]).text_items is parse_type(int)
    assert parse_type(list[Tree]).is_body and not parse_type(list[int]).is_body


def test_every_scalar_is_described_once_for_every_reader() -> None:
    """A scalar's row in SCALARS is what validation, JSON Schema and columns all use."""

    @dataclasses.dataclass
    class Row:
        value: Any

    for scalar in SCALARS:
        assert Schemas().of(scalar.type) == dict(scalar.json_schema)
        assert compile_type(scalar.type) is scalar.parse
        row = dataclasses.make_dataclass("Row", [("value", scalar.type)])
        if scalar.kind is None:
            with pytest.raises(TypeError, match="a sink cannot store"):
                schema_from_type(row)
        else:
            assert schema_from_type(row) == [Column("value", scalar.kind)]


def test_recursive_records_validate_and_describe() -> None:
    convert = compile_type(Tree)
    tree = convert({"label": "root", "children": [{"label": "leaf", "children": []}, {"label": "bare"}]})
    assert tree == Tree("root", [Tree("leaf"), Tree("bare")])
    with pytest.raises(Invalid) as caught:
        convert({"label": "root", "children": [{"label": 3}]})
    assert caught.value.errors[0]["loc"] == ["children", 0, "label"]
    schemas = Schemas()
    assert schemas.of(Tree) == {"$ref": "#/components/schemas/Tree"}
    assert schemas.components["Tree"]["properties"]["children"]["items"] == {"$ref": "#/components/schemas/Tree"}


def test_generated_record_converter_follows_the_dataclass() -> None:
    convert = compile_type(Options)
    made = convert({"name": "x", "strict": True})
    assert made == Options("x", strict=True)
    assert made.tags == [] and made.tags is not convert({"name": "y"}).tags  # a fresh default each time
    assert convert({"name": "x", "size": "l", "note": None}).size is Size.L
    with pytest.raises(Invalid) as caught:
        convert({"size": "m", "tags": [1]})
    locs = [e["loc"] for e in caught.value.errors]
    assert locs == [["name"], ["size"], ["tags", 0]]
    counted = dataclasses.make_dataclass("Counted", [("n", int)])
    with pytest.raises(Invalid, match="64-bit"):
        compile_type(counted)({"n": 2**64})  # an int of the right type is still range-checked


def test_columns_and_row_conversion_come_from_the_same_tree() -> None:
    columns = schema_from_type(Options)
    assert [c.describe() for c in columns] == [
        "name STRING",
        "size STRING",
        "tags STRING REPEATED",
        "note STRING NULLABLE",
        "strict BOOLEAN",
    ]
    convert = row_converter(Options)
    assert convert(Options("x", Size.L, ["a"])) == {
        "name": "x",
        "size": "l",
        "tags": ["a"],
        "note": None,
        "strict": False,
    }
    assert convert({"name": "d", "size": "s", "tags": [], "strict": True})["strict"] is True
    assert schema_from_type(Model) == [Column("a", Kind.INTEGER), Column("b", Kind.STRING, nullable=True)]


def test_time_values_convert_from_text() -> None:
    assert compile_type(dt.datetime)("2024-01-02T03:04:05") == dt.datetime(2024, 1, 2, 3, 4, 5)  # noqa: DTZ001 - naive in, naive out
    assert compile_type(uuid.UUID)(str(uuid.UUID(int=5))) == uuid.UUID(int=5)
