"""Rows encoded as the bytes of a file or an object: JSON lines, CSV, Parquet.

CSV follows pyarrow's ``write_csv`` (what BuildFlow used): a quoted header, strings quoted,
numbers and booleans bare, null empty, so files match what BuildFlow wrote; it needs no
pyarrow. Parquet needs pyarrow (the ``parquet`` extra).
"""

from __future__ import annotations

import base64
import datetime
import io
from collections.abc import Sequence
from typing import Any

import orjson

from bfctl.runtime.errors import StartupError
from bfctl.runtime.sinks.base import Row, RowsRejected
from buildflow.types.portable import FileFormat
from buildflow.types.schema import Column, Kind, to_jsonable

CONTENT_TYPES = {
    FileFormat.JSON: "application/x-ndjson",
    FileFormat.CSV: "text/csv",
    FileFormat.PARQUET: "application/vnd.apache.parquet",
}


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    return to_jsonable(value)


def json_text(value: Any) -> str:
    """A JSON column's value as the text a table stores (DuckDB, BigQuery's insertAll)."""
    return orjson.dumps(value).decode()


def json_bytes(row: Row) -> bytes:
    """One row as JSON (timestamps RFC 3339, bytes base64, as BigQuery reads them)."""
    return orjson.dumps(row, default=_json_default, option=orjson.OPT_NON_STR_KEYS)


def json_line(row: Row) -> bytes:
    return orjson.dumps(row, default=_json_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE)


def json_lines(rows: Sequence[Row]) -> bytes:
    return b"".join(json_line(row) for row in rows)


# -- CSV ---------------------------------------------------------------------------------------
def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        text = repr(value)
        return text.removesuffix(".0")
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value.astimezone(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S.%fZ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _quoted(base64.b64encode(bytes(value)).decode("ascii"))
    return _quoted(orjson.dumps(value, default=_json_default).decode())


def csv_header(names: Sequence[str]) -> bytes:
    return (",".join(_quoted(n) for n in names) + "\n").encode()


def csv_rows(rows: Sequence[Row], names: Sequence[str]) -> bytes:
    """The rows as CSV lines with these columns; a row with other fields is refused, since
    the header cannot hold them."""
    known = set(names)
    out = io.StringIO()
    for i, row in enumerate(rows):
        extra = [k for k in row if k not in known]
        if extra:
            raise RowsRejected(f"row has fields {extra} that are not columns of the CSV file {list(names)}", [i])
        out.write(",".join(_csv_value(row.get(n)) for n in names))
        out.write("\n")
    return out.getvalue().encode()


def column_names(columns: list[Column] | None, rows: Sequence[Row]) -> list[str]:
    """The columns of a file: the schema's, else the fields of the first row."""
    if columns is not None:
        return [c.name for c in columns]
    return list(rows[0]) if rows else []


# -- Parquet -----------------------------------------------------------------------------------
def _arrow_type(column: Column) -> Any:
    import pyarrow as pa

    base = {
        Kind.STRING: pa.string(),
        Kind.INTEGER: pa.int64(),
        Kind.FLOAT: pa.float64(),
        Kind.BOOLEAN: pa.bool_(),
        Kind.TIMESTAMP: pa.timestamp("us", tz="UTC"),
        Kind.DATE: pa.date32(),
        Kind.BYTES: pa.binary(),
        Kind.JSON: pa.string(),  # JSON text, as BigQuery exports JSON columns to Parquet
    }[column.kind]
    return pa.list_(base) if column.repeated else base


def require_parquet(description: str) -> None:
    """Refuse to serve a sink that writes Parquet without pyarrow (an optional extra): found at
    its first batch instead, every request writing to it would fail."""
    try:
        import pyarrow.parquet  # noqa: F401 - imported once here, used by each batch's file
    except ImportError:
        raise StartupError(
            f"{description}: writing Parquet needs pyarrow, an optional extra that is not installed: "
            "run `pip install 'bfctl[parquet]'` (or `make install` in a checkout) and serve again"
        ) from None


def parquet_file(rows: Sequence[Row], columns: list[Column] | None) -> bytes:
    """A complete Parquet file (one row group) holding ``rows`` (its writer made sure of pyarrow)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if columns is None:
        table = pa.Table.from_pylist(list(rows))
    else:
        json_columns = [c.name for c in columns if c.kind is Kind.JSON]
        if json_columns:
            rows = [
                {**r, **{n: None if r.get(n) is None else orjson.dumps(r[n]).decode() for n in json_columns}}
                for r in rows
            ]
        schema = pa.schema([pa.field(c.name, _arrow_type(c), nullable=c.nullable or c.repeated) for c in columns])
        try:
            table = pa.Table.from_pylist(list(rows), schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise RowsRejected(f"rows do not fit the Parquet schema: {e}") from None
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def encode_file(rows: Sequence[Row], file_format: FileFormat, columns: list[Column] | None) -> bytes:
    """``rows`` as one complete file (an object of a bucket): CSV with its header."""
    if file_format is FileFormat.JSON:
        return json_lines(rows)
    if file_format is FileFormat.CSV:
        names = column_names(columns, rows)
        return csv_header(names) + csv_rows(rows, names)
    return parquet_file(rows, columns)
