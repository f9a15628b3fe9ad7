"""The query handles of ``AnalysisQuery`` dependencies (``buildflow.dependencies.analysis``).

A handle is opened once per worker from what the target applied for its table: DuckDB on the
local target, through the lock the sink writers share the file with
(``buildflow.storage.duckdb_access``), or BigQuery's REST API on gcp
(``bfctl.runtime.analysis_bigquery``). Both take the same SQL: ``prepare`` puts the table's name in
for ``{table}``, each engine's parameter syntax for ``@name``, and refuses what is plainly not
one reading statement, before either engine sees the query. The engines are what keep it
read-only (a ``select`` can hide a ``delete ... returning`` in a CTE): DuckDB runs it on a
read-only attachment that reaches no other file, BigQuery only after a dry run says it is a
``SELECT``. Values are always parameters, never SQL text.
"""

from __future__ import annotations

import abc
import asyncio
import datetime
import decimal
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from bfctl.runtime.blocking import wait_on_loop
from bfctl.runtime.errors import StartupError
from bfctl.runtime.sinks import applied_outputs
from bfctl.runtime.sinks.base import describe, local_path, sink_name
from bfctl.runtime.validation import compile_type
from buildflow.dependencies.analysis import AnalysisQueryError, Params, QueryOpener
from buildflow.io.gcp import BigQueryTable
from buildflow.storage import ddl
from buildflow.storage.engines import Engine
from buildflow.types.fields import Invalid
from buildflow.types.schema import to_jsonable

T = TypeVar("T")
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


# What DuckDB says when a query uses what it does not have: a function, or syntax.
_MISSING_FUNCTION = re.compile(r"(?:Function|Macro) with name (\S+) does not exist")
_SYNTAX = re.compile(r"syntax error at or near (.+?)\s*$", re.MULTILINE)
_MISSING_TABLE = re.compile(r"Table with name (\S+) does not exist")


class DuckDBQuery(QueryHandle):
    """A table in a DuckDB file the sinks may be writing to: each query holds the file's lock
    for its own run only, on a read-only attachment with external access off
    (``buildflow.storage.duckdb_access``), and only select statements run."""

    engine = "duckdb"
    marker = "$"

    def __init__(self, database: Path, table: str, description: str) -> None:
        super().__init__(ddl.quote(table), description)
        self.database = database
        self.table_name = table

    async def run(self, sql: str, params: dict[str, Any]) -> Rows:
        return await asyncio.to_thread(self._run, sql, params)

    def _run(self, sql: str, params: dict[str, Any]) -> Rows:
        import duckdb

        from buildflow.storage.duckdb_access import duckdb_connection

        if not self.database.exists():
            raise self._no_table()
        with duckdb_connection(self.database, read_only=True) as connection:
            try:
                kinds = {s.type for s in connection.extract_statements(sql)}
                if kinds != {duckdb.StatementType.SELECT}:
                    raise AnalysisQueryError("AnalysisQuery only reads: DuckDB found a statement that is not a select")
                cursor = connection.execute(sql, params)
                names = [column[0] for column in cursor.description]
                values = cursor.fetchall()
            except duckdb.Error as e:
                raise self._refused(e) from None
        return [dict(zip(names, row, strict=True)) for row in values]

    def _no_table(self) -> AnalysisQueryError:
        return AnalysisQueryError(
            f"{self.description} has no table yet: it is made by `bfctl apply` when the table declares its "
            "schema (.options(schema=RowType)), else by the first writer to it"
        )

    def _refused(self, error: Exception) -> AnalysisQueryError:
        """DuckDB's error, saying what the local engine lacks or refuses when that is the cause."""
        import duckdb

        message = str(error)
        table = _MISSING_TABLE.search(message)
        if table and table.group(1) == self.table_name:
            return self._no_table()
        if isinstance(error, duckdb.PermissionException):
            return AnalysisQueryError(
                f"AnalysisQuery reads only the tables of its database ({self.database.name}): functions that read "
                "or write other files (read_csv, read_text, glob, COPY ... TO) are off.\n" + message
            )
        function, syntax = _MISSING_FUNCTION.search(message), _SYNTAX.search(message)
        if function or syntax:
            construct = f"the function {function.group(1)}" if function else f"the syntax at {syntax.group(1)}"  # type: ignore[union-attr]  # one of them matched
            return AnalysisQueryError(
                f"DuckDB, which runs this query on the local target, does not know {construct}. The query runs "
                "on DuckDB locally and on BigQuery on gcp: write it with functions and syntax both have.\n" + message
            )
        return AnalysisQueryError(f"DuckDB could not run the query on {self.description}: {message}")


class RuntimeQueryOpener(QueryOpener):
    """The ``QueryOpener`` the runtime injects: handles from the applied outputs."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path) -> None:
        self._outputs = outputs
        self._project_dir = project_dir

    async def open(self, primitive: Any) -> QueryHandle:
        out = applied_outputs(primitive, self._outputs)
        engine = out.get("engine") or (Engine.BIGQUERY if isinstance(primitive, BigQueryTable) else None)
        handle: QueryHandle
        if engine == Engine.DUCKDB:
            handle = DuckDBQuery(local_path(out["database"], self._project_dir), out["table"], describe(primitive, out))
        elif engine == Engine.BIGQUERY:
            from bfctl.runtime.analysis_bigquery import BigQueryQuery
            from bfctl.runtime.sinks.bigquery import table_name

            handle = BigQueryQuery(
                out["project"], out["dataset_id"], table_name(out), describe(primitive, out), out.get("api_root")
            )
        else:
            raise StartupError(
                f"{sink_name(primitive)} cannot be queried (its engine here is {engine!r}): AnalysisQuery reads "
                "an AnalysisTable, a BigQueryTable or a DuckDBTable"
            )
        await handle.open()
        return handle
