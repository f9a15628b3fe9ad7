"""``AnalysisQuery`` on the local target: a DuckDB table, through the lock the sink writers share
the file with (``buildflow.storage.duckdb_access``), on a read-only attachment."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.analysis.base import QueryHandle, Rows
from bfctl.runtime.sinks.base import describe, local_path
from buildflow.dependencies.analysis import AnalysisQueryError
from buildflow.storage import ddl

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


def duckdb_query(primitive: Any, out: Mapping[str, Any], project_dir: Path) -> QueryHandle:
    """The handle of a table the target applied in a DuckDB file."""
    return DuckDBQuery(local_path(out["database"], project_dir), out["table"], describe(primitive, out))
