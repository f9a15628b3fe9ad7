"""Sink writers: where collectors' rows go, one writer per sink per worker.

``writer_for`` picks the writer from what the target applied: every sink primitive's outputs
carry an ``engine`` (``buildflow.storage.engines.Engine``) saying what stands behind it on that
target, and the rest of the outputs are what that engine's writer needs. ``WRITERS`` names
each engine's ``WriterFactory``, whose module is imported only when a sink uses it: a new
kind of sink is one writer module and one line there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.factories import load_factory
from bfctl.runtime.sinks.base import Row, RowsRejected, SinkSchemaError, SinkWriter, WriterFactory, sink_name
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.gcp import BigQueryTable, GCPPubSubTopic, GCSBucket
from buildflow.io.local import Empty, File
from buildflow.storage.engines import Engine
from buildflow.types.schema import Column, RowConversionError, row_converter, schema_from_type, schema_or_none, to_row

__all__ = [
    "WRITERS",
    "Column",
    "Row",
    "RowConversionError",
    "RowsRejected",
    "SinkSchemaError",
    "SinkWriter",
    "row_converter",
    "schema_from_type",
    "schema_or_none",
    "to_row",
    "writer_for",
]

#: Each engine's writer factory, as ``module:function``.
WRITERS: dict[Engine, str] = {
    Engine.FILE: "bfctl.runtime.sinks.files:file_writer",
    Engine.DUCKDB: "bfctl.runtime.sinks.duckdb_table:duckdb_writer",
    Engine.POSTGRES: "bfctl.runtime.sinks.postgres:postgres_writer",
    Engine.GCS: "bfctl.runtime.sinks.gcs:cloud_storage_writer",
    Engine.FOLDER: "bfctl.runtime.sinks.gcs:folder_writer",
    Engine.PUBSUB: "bfctl.runtime.sinks.pubsub:pubsub_writer",
    Engine.LOG: "bfctl.runtime.sinks.pubsub:log_writer",
    Engine.BIGQUERY: "bfctl.runtime.sinks.bigquery:bigquery_writer",
}

#: The engine of a sink whose outputs name none, per primitive type: a cloud target's own service.
_DEFAULT_ENGINES: dict[str, Engine] = {
    GCSBucket.resource_type: Engine.GCS,
    GCPPubSubTopic.resource_type: Engine.PUBSUB,
    BigQueryTable.resource_type: Engine.BIGQUERY,
}

#: Sinks that need nothing applied, per primitive type: the outputs their primitive implies.
_UNAPPLIED_OUTPUTS: dict[str, Callable[[Any], dict[str, Any]]] = {
    File.resource_type: lambda f: {"engine": Engine.FILE, "path": f.file_path, "format": f.file_format.value},
    DuckDBTable.resource_type: lambda t: {"engine": Engine.DUCKDB, "database": t.database, "table": t.table},
}


def factory_of(engine: str) -> WriterFactory | None:
    """The writer factory of ``engine`` (importing its module), None for an unknown engine.

    ``engine`` is an ``Engine``, or its plain string when the outputs were read from a state file.
    """
    factory: WriterFactory | None = load_factory(WRITERS, engine)
    return factory


def applied_outputs(primitive: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any]:
    """What the stack applied for ``primitive``, or what it implies when it needs nothing applied
    (``File``, ``DuckDBTable``); else the target's "run bfctl apply" error."""
    out = outputs.get(primitive.primitive_id())
    if out is None and primitive.resource_type in _UNAPPLIED_OUTPUTS:
        return _UNAPPLIED_OUTPUTS[primitive.resource_type](primitive)
    return out if out is not None else outputs[primitive.primitive_id()]


def writer_for(
    primitive: Any, schema: list[Column] | None, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path
) -> SinkWriter:
    """The writer of ``primitive`` for rows with columns ``schema`` (None: rows as they come).

    ``File`` and ``DuckDBTable`` also work when nothing was applied (their primitive says
    where they write); other sinks need ``bfctl apply`` first.
    """
    if primitive is None or isinstance(primitive, Empty):
        from bfctl.runtime.sinks.empty import EmptyWriter

        return EmptyWriter()
    out = applied_outputs(primitive, outputs)
    engine = out.get("engine") or _DEFAULT_ENGINES.get(primitive.resource_type)
    factory = factory_of(engine) if engine else None
    if factory is None:
        raise NotImplementedError(f"no sink writer for {sink_name(primitive)} with engine {engine!r} on this target")
    return factory(primitive, out, schema, project_dir)
