"""Conversions of the nested parts of a JSON value, as ``to_jsonable`` made it.

A store may need some leaves of a row in another form than JSON's (DuckDB's appender takes
bytes and datetimes, BigQuery's insertAll wants INT64 as text): a conversion of a record
applies its fields' conversions, one of a list its items', so only the parts that need one are
walked. A value of another kind than expected is passed on as it is, for the store to refuse
with its own message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Step = Callable[[Any], Any]


def each_field(steps: list[tuple[str, Step]]) -> Step:
    """A record's conversion: a copy with each named field's step applied where it is not null."""

    def convert(value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        for name, step in steps:
            if value.get(name) is not None:
                value[name] = step(value[name])
        return value

    return convert


def each_item(step: Step) -> Step:
    """A list's conversion: ``step`` applied to each item that is not null."""

    def convert(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [None if item is None else step(item) for item in value]

    return convert
