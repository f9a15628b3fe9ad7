"""What every engine's query handle shares: the SQL check and rewrite (``prepare``), BigQuery's
parameter types (the same values are accepted on every target), and the handle's interface
with its blocking form for sync handlers."""

from __future__ import annotations

import abc
import asyncio
import datetime
import decimal
import re
from typing import Any, TypeVar

from bfctl.runtime.blocking import wait_on_loop
from bfctl.runtime.validation import compile_type
from buildflow.dependencies.analysis import AnalysisQueryError, Params
from buildflow.types.fields import Invalid
from buildflow.types.schema import to_jsonable

R = TypeVar("R")
Rows = list[dict[str, Any]]

# What the scanner tells apart: text where a placeholder is only text (strings, quoted names,
# comments), the placeholders, statement ends, and words (the first says what the statement does).
_TOKENS = re.compile(
    r"""(?P<quoted>'[^']*'|"[^"]*"|`[^`]*`)
      |(?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
      |(?P<table>\{table\})
      |(?P<param>@[A-Za-z_][A-Za-z0-9_]*)
      |(?P<end>;)
      |(?P<word>[A-Za-z_][A-Za-z0-9_]*)""",
    re.DOTALL | re.VERBOSE,
)
_READING = frozenset({"select", "with"})

#: BigQuery's type of a parameter value, by Python type (checked in order: bool before int).
_SCALAR_TYPES: list[tuple[type, str]] = [
    (bool, "BOOL"),
    (int, "INT64"),
    (float, "FLOAT64"),
    (decimal.Decimal, "NUMERIC"),
    (str, "STRING"),
    (bytes, "BYTES"),
    (datetime.datetime, "TIMESTAMP"),  # DATETIME when naive
    (datetime.date, "DATE"),
    (datetime.time, "TIME"),
]


def parameter_type(name: str, value: Any) -> dict[str, Any]:
    """BigQuery's ``parameterType`` of ``value``; the same values are accepted on every target."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise AnalysisQueryError(f"the parameter {name!r} is an empty list, which has no type on BigQuery")
        return {"type": "ARRAY", "arrayType": parameter_type(name, value[0])}
    for python_type, bigquery_type in _SCALAR_TYPES:
        if isinstance(value, python_type):
            naive = isinstance(value, datetime.datetime) and value.tzinfo is None
            return {"type": "DATETIME" if naive else bigquery_type}
    if value is None:
        raise AnalysisQueryError(
            f"the parameter {name!r} is None, which has no type on BigQuery: write NULL (or IS NULL) in the SQL"
        )
    raise AnalysisQueryError(
        f"the parameter {name!r} is a {type(value).__name__}: parameters are bool, int, float, Decimal, str, "
        "bytes, datetime, date, time, or lists of one of them"
    )


def _more_than_one() -> AnalysisQueryError:
    return AnalysisQueryError("AnalysisQuery runs one statement at a time: the query goes on after its `;`")


def prepare(sql: str, params: Params | None, table: str, marker: str) -> tuple[str, dict[str, Any]]:
    """``sql`` with ``{table}`` replaced by ``table`` and each ``@name`` by ``marker + name``, and
    the parameters it uses; ``AnalysisQueryError`` for anything but one reading statement or a
    parameter missing from (or left over in) ``params``."""
    given = dict(params or {})
    pieces: list[str] = []
    used: dict[str, Any] = {}
    first_word: str | None = None
    end: int | None = None
    position = 0
    for match in _TOKENS.finditer(sql):
        kind, text = match.lastgroup, match.group()
        if end is not None and (kind != "comment" or sql[position : match.start()].strip()):
            raise _more_than_one()
        pieces.append(sql[position : match.start()])
        position = match.end()
        if kind == "table":
            text = table
        elif kind == "param":
            name = text[1:]
            if name not in given:
                raise AnalysisQueryError(f"the query uses @{name} but no parameter {name!r} was given")
            parameter_type(name, given[name])
            used[name] = given[name]
            text = marker + name
        elif kind == "end":
            end, text = match.start(), ""
        elif kind == "word" and first_word is None:
            first_word = text.lower()
        pieces.append(text)
    if first_word not in _READING:
        raise AnalysisQueryError(
            f"AnalysisQuery only reads: the query must start with `select` or `with`, not `{first_word or ''}`"
        )
    if end is not None and sql[position:].strip():
        raise _more_than_one()
    unused = sorted(set(given) - set(used))
    if unused:
        raise AnalysisQueryError(
            f"the parameter(s) {', '.join(map(repr, unused))} are not in the query: write @name where each goes"
        )
    pieces.append(sql[position:])
    return "".join(pieces), used


class SyncQuery:
    """The blocking form of a handle's methods, for sync handlers (which run in threads)."""

    def __init__(self, query: QueryHandle, loop: asyncio.AbstractEventLoop) -> None:
        self._query = query
        self._loop = loop

    def rows(self, sql: str, params: Params | None = None) -> Rows:
        return wait_on_loop(self._loop, self._query.rows(sql, params), "await query.rows(...)")

    def rows_as(self, row_type: type[R], sql: str, params: Params | None = None) -> list[R]:
        return wait_on_loop(self._loop, self._query.rows_as(row_type, sql, params), "await query.rows_as(...)")


class QueryHandle(abc.ABC):
    """Read-only SQL on one table (``buildflow.dependencies.analysis.TableQuery``); opened on
    the worker's event loop, which ``sync`` runs its calls on."""

    engine: str
    #: ``@name`` becomes this followed by the name.
    marker: str

    def __init__(self, table: str, description: str) -> None:
        self.table = table
        self.description = description
        self.sync = SyncQuery(self, asyncio.get_running_loop())

    async def open(self) -> None:
        """Connect (on the worker's event loop)."""

    async def close(self) -> None:
        """Release connections."""

    async def rows(self, sql: str, params: Params | None = None) -> Rows:
        text, values = prepare(sql, params, self.table, self.marker)
        return await self.run(text, values)

    async def rows_as(self, row_type: type[R], sql: str, params: Params | None = None) -> list[R]:
        read = compile_type(row_type)
        rows = await self.rows(sql, params)
        try:
            return [read(to_jsonable(row)) for row in rows]
        except Invalid as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'row'}: {err['msg']}" for err in e.errors)
            name = getattr(row_type, "__name__", repr(row_type))
            raise AnalysisQueryError(f"a row of the query does not fit {name}: {problems}") from None

    @abc.abstractmethod
    async def run(self, sql: str, params: dict[str, Any]) -> Rows:
        """Rows of ``sql`` in this engine's dialect, with its parameters."""
