"""Sink writers: where collectors' rows go, one writer per sink per worker.

``writer_for`` picks the writer from what the target applied: every sink primitive's outputs
carry an ``engine`` saying what stands behind it on that target (see ``providers.local``), and
the rest of the outputs are what that writer needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.sinks.base import Row, RowsRejected, SinkWriter
from buildflow.types.schema import Column, RowConversionError, row_converter, schema_from_type, schema_or_none, to_row

__all__ = [
    "Column",
    "Row",
    "RowConversionError",
    "RowsRejected",
    "SinkWriter",
    "row_converter",
    "schema_from_type",
    "schema_or_none",
    "to_row",
    "writer_for",
]

#: The engine of a sink whose outputs do not name one (a cloud target's own service).
_DEFAULT_ENGINES = {"gcp.storage.Bucket": "gcs", "gcp.pubsub.Topic": "pubsub", "gcp.bigquery.Table": "bigquery"}


def _outputs_of(primitive: Any, outputs: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Any] | None:
    try:
        return outputs[primitive.primitive_id()]
    except LookupError:
        return None


def _table_columns(primitive: Any, schema: list[Column] | None) -> list[Column]:
    if schema is not None:
        return schema
    if getattr(primitive, "schema", None) is not None:
        return schema_from_type(primitive.schema)
    raise TypeError(
        f"{type(primitive).__name__} {primitive.primitive_id()} has no columns: return a dataclass or "
        "pydantic model from the collector (annotate its return type), or give the table .options(schema=RowType)"
    )


def _path(value: str, project_dir: Path) -> Path:
    path = Path(value)
    return path if path.is_absolute() else project_dir / path


def writer_for(
    primitive: Any, schema: list[Column] | None, outputs: Mapping[str, Mapping[str, Any]], project_dir: Path
) -> SinkWriter:
    """The writer of ``primitive`` for rows with columns ``schema`` (None: rows as they come).

    ``File`` and ``DuckDBTable`` also work when nothing was applied (their primitive says
    where they write); other sinks need ``bfctl apply`` first.
    """
    from buildflow.io.duckdb import DuckDBTable
    from buildflow.io.local import Empty, File

    if primitive is None or isinstance(primitive, Empty):
        from runtime.sinks.empty import EmptyWriter

        return EmptyWriter()
    out = _outputs_of(primitive, outputs)
    if out is None and isinstance(primitive, File):
        out = {"engine": "file", "path": primitive.file_path, "format": primitive.file_format.value}
    if out is None and isinstance(primitive, DuckDBTable):
        out = {"engine": "duckdb", "database": primitive.database, "table": primitive.table}
    if out is None:
        out = outputs[primitive.primitive_id()]  # not applied: raises the target's "run bfctl apply" error
    engine = out.get("engine") or _DEFAULT_ENGINES.get(primitive.resource_type)
    name = f"{type(primitive).__name__} {primitive.primitive_id()}"
    stand_in = f" ({out['stand_in']})" if out.get("stand_in") else ""

    if engine == "file":
        from buildflow.types.portable import FileFormat
        from runtime.sinks.files import FileWriter

        return FileWriter(_path(out["path"], project_dir), FileFormat(out["format"]), schema)
    if engine == "duckdb":
        from runtime.sinks.duckdb_table import DuckDBWriter

        columns = _table_columns(primitive, schema)
        return DuckDBWriter(_path(out["database"], project_dir), out["table"], columns, name + stand_in)
    if engine == "postgres":
        from runtime.sinks.postgres import PostgresWriter

        return PostgresWriter(
            host=out["host"],
            port=int(out["port"]),
            database=out["database"],
            user=out["user"],
            password_file=_path(out["password_file"], project_dir),
            table=out["table"],
            columns=_table_columns(primitive, schema),
            description=name,
        )
    if engine in ("gcs", "folder"):
        from runtime.sinks.gcs import CloudStorageObjects, FolderObjects, GCSWriter

        if primitive.file_path is None or primitive.file_format is None:
            raise TypeError(
                f"{name} is used as a sink, so it needs file_path and file_format: "
                "GCSBucket(project_id, bucket_name, file_path='events/rows.json', file_format=FileFormat.JSON)"
            )
        store = (
            FolderObjects(_path(out["path"], project_dir))
            if engine == "folder"
            else CloudStorageObjects(out.get("bucket", primitive.bucket_name), out.get("api_root"))
        )
        return GCSWriter(store, primitive.file_path, primitive.file_format, schema, name + stand_in)
    if engine in ("pubsub", "log"):
        from runtime.sinks.pubsub import PubSubPublisher, PubSubWriter, TopicLog

        publisher = (
            TopicLog(_path(out["path"], project_dir))
            if engine == "log"
            else PubSubPublisher(out.get("topic", primitive.primitive_id()), out.get("api_root"))
        )
        return PubSubWriter(publisher, name + stand_in)
    if engine == "bigquery":
        from runtime.sinks.bigquery import BigQueryWriter

        return BigQueryWriter(out["project"], out["dataset_id"], out["table_id"], name, out.get("api_root"))
    raise NotImplementedError(f"no sink writer for {name} with engine {engine!r} on this target")
