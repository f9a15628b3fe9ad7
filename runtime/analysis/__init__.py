"""The query handles of ``AnalysisQuery`` dependencies (``buildflow.dependencies.analysis``).

A handle is opened once per worker from what the target applied for its table: DuckDB on the
local target (``duckdb``), or BigQuery's REST API on gcp (``bigquery``). ``QUERIES`` names each
engine's handle factory, whose module is imported only when a query uses it. Both take the same
SQL: ``base.prepare`` puts the table's name in for ``{table}``, each engine's parameter syntax
for ``@name``, and refuses what is plainly not one reading statement, before either engine sees
the query. The engines are what keep it read-only (a ``select`` can hide a ``delete ...
returning`` in a CTE): DuckDB runs it on a read-only attachment that reaches no other file,
BigQuery only after a dry run says it is a ``SELECT``. Values are always parameters, never SQL text.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.analysis.base import QueryHandle
from bfctl.runtime.errors import StartupError
from bfctl.runtime.factories import load_factory
from bfctl.runtime.sinks import applied_outputs
from bfctl.runtime.sinks.base import sink_name
from buildflow.dependencies.analysis import QueryOpener
from buildflow.io.gcp import BigQueryTable
from buildflow.storage.engines import Engine

#: A handle on a table from its primitive, its applied outputs and the project's folder.
QueryFactory = Callable[[Any, Mapping[str, Any], Path], QueryHandle]

#: Each engine's handle factory, as ``module:function``.
QUERIES: dict[Engine, str] = {
    Engine.DUCKDB: "bfctl.runtime.analysis.duckdb:duckdb_query",
    Engine.BIGQUERY: "bfctl.runtime.analysis.bigquery:bigquery_query",
}


class RuntimeQueryOpener(QueryOpener):
    """The ``QueryOpener`` the runtime injects: handles from the applied outputs."""

    def __init__(self, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path) -> None:
        self._outputs = outputs
        self._project_dir = project_dir

    async def open(self, primitive: Any) -> QueryHandle:
        out = applied_outputs(primitive, self._outputs)
        engine = out.get("engine") or (Engine.BIGQUERY if isinstance(primitive, BigQueryTable) else None)
        factory: QueryFactory | None = load_factory(QUERIES, engine)
        if factory is None:
            raise StartupError(
                f"{sink_name(primitive)} cannot be queried (its engine here is {engine!r}): AnalysisQuery reads "
                "an AnalysisTable, a BigQueryTable or a DuckDBTable"
            )
        handle = factory(primitive, out, self._project_dir)
        await handle.open()
        return handle
