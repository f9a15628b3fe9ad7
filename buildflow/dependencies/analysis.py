"""``AnalysisQuery``: read a table that collectors write to, with the same SQL on every target.

```python
views = AnalysisQuery(page_views)      # an AnalysisTable, a BigQueryTable or a DuckDBTable

@service.endpoint("/counts", method="GET")
async def counts(q: views, limit: int = 20) -> list[dict[str, Any]]:
    return await q.rows(
        "select page, count(*) as views from {table} group by page order by views desc limit @limit",
        {"limit": limit},
    )
```

``{table}`` stands for the table as the applied stack names it (a DuckDB table locally, the
BigQuery table on gcp) and ``@name`` for the parameter ``name`` (BigQuery's own syntax; sent to
DuckDB as ``$name``), so the query text never holds a target's names. Queries only read: one
``select`` (or ``with ... select``) statement. The local target runs them on DuckDB, in the file
the sinks write to, and gcp on BigQuery: a function or syntax only one of them knows fails with
an ``AnalysisQueryError`` naming the engine and the construct.

Values come back as Python values on both: ``int``, ``float``, ``bool``, ``str``, ``bytes``,
``decimal.Decimal``, ``datetime`` (aware for timestamps), ``date``, ``time``; JSON columns as
their text. ``rows_as(RowType, ...)`` reads each row into a dataclass or pydantic model.

No postponed annotations: the dependency class is built inside a function.
"""

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

from buildflow.dependencies.scopes import Scope, dependency

R = TypeVar("R")
#: Query parameters by name (``@name`` in the SQL).
Params = Mapping[str, Any]


class AnalysisQueryError(Exception):
    """A query that cannot run: ``str()`` says on which engine, and why."""


class SyncTableQuery(Protocol):
    """The blocking form of ``TableQuery``, for sync handlers (never on the event loop)."""

    def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]: ...
    def rows_as(self, row_type: type[R], sql: str, params: Params | None = None) -> list[R]: ...


class TableQuery(Protocol):
    """Read-only SQL against one table, on the engine that stands behind it on this target."""

    #: ``"duckdb"`` or ``"bigquery"``.
    engine: str
    #: What ``{table}`` becomes in this target's SQL.
    table: str

    @property
    def sync(self) -> SyncTableQuery:
        """The same methods, blocking: for sync handlers."""

    async def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """The result rows, each a dict by column name."""

    async def rows_as(self, row_type: type[R], sql: str, params: Params | None = None) -> list[R]:
        """The result rows, each read into ``row_type`` (a dataclass or pydantic model)."""

    async def close(self) -> None:
        """Release connections (the runtime calls it when the worker stops)."""


@dependency(Scope.GLOBAL)
class QueryOpener:
    """Opens the query handle of a table. This default has none, so a flow can be built
    without the runtime; the runtime replaces it with one that reads the applied outputs."""

    async def open(self, primitive: Any) -> TableQuery:
        raise LookupError(
            f"no query engine for the table {primitive.primitive_id()!r}: AnalysisQuery dependencies are "
            "served by `bfctl serve` (or bfctl.testing), which opens them from the applied infrastructure"
        )


def AnalysisQuery(table: Any) -> type:
    """A REPLICA dependency with ``await q.rows(sql, params)``, ``await q.rows_as(RowType, sql,
    params)`` and, for sync handlers, ``q.sync.rows(...)``/``q.sync.rows_as(...)``, on ``table``
    (an ``AnalysisTable``, ``BigQueryTable`` or ``DuckDBTable``). Opened once per worker."""
    primitive_id = table.primitive_id()

    @dependency(Scope.REPLICA)
    class TableQueryDependency:
        #: Read by the targets before anything runs: the table's service account roles follow from it.
        query_primitive = table

        async def __init__(self, opener: QueryOpener) -> None:  # type: ignore[misc]  # the graph awaits an async __init__
            self._query = await opener.open(table)
            self.primitive = table
            self.engine = self._query.engine
            self.table = self._query.table
            self.sync = self._query.sync

        async def rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
            """The result rows, each a dict by column name."""
            return await self._query.rows(sql, params)

        async def rows_as(self, row_type: type[R], sql: str, params: Params | None = None) -> list[R]:
            """The result rows, each read into ``row_type`` (a dataclass or pydantic model)."""
            return await self._query.rows_as(row_type, sql, params)

        async def teardown(self) -> None:
            await self._query.close()

    TableQueryDependency.__qualname__ = TableQueryDependency.__name__ = f"AnalysisQuery[{primitive_id}]"
    return TableQueryDependency


__all__ = ["AnalysisQuery", "AnalysisQueryError", "Params", "QueryOpener", "SyncTableQuery", "TableQuery"]
