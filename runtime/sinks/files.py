"""The ``File`` sink: each worker appends batches to its own file.

``out/events.json`` becomes ``out/events-<8 hex>.json`` for one worker's life (BuildFlow wrote
one such file per replica), so concurrent workers never interleave and a CSV header is
written once per file. JSON lines and CSV get one append and one fdatasync per batch;
Parquet files cannot be appended to, so each batch is its own complete file
``events-<8 hex>-<batch number>.parquet``, written to a temporary name, synced and linked in.
A worker killed in the middle of an append leaves half a line at the end of its file; the
next worker to start cuts it (those rows were never acknowledged).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from bfctl.runtime.sinks.base import Row, local_path
from bfctl.runtime.sinks.formats import (
    column_names,
    csv_header,
    csv_rows,
    json_lines,
    parquet_file,
    require_parquet,
)
from bfctl.runtime.sinks.threaded import ThreadedWriter
from buildflow.storage import durable
from buildflow.types.portable import FileFormat
from buildflow.types.schema import Column

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: callers check for None


def split_name(file_path: str, file_format: FileFormat) -> tuple[str, str]:
    """(path without extension, extension): the user's extension when there is one."""
    suffix = PurePosixPath(file_path).suffix
    if suffix and len(suffix) > 1:
        return file_path[: -len(suffix)], suffix
    return file_path, file_format.extension


def batch_name(stem: str, suffix: str, token: str, number: int) -> str:
    """The name of one batch's file or object: unique per writer (token) and batch."""
    return f"{stem}-{token}-{number:06d}{suffix}"


class FileWriter(ThreadedWriter):
    def __init__(self, path: Path, file_format: FileFormat, columns: list[Column] | None) -> None:
        super().__init__()
        self.file_format = file_format
        self.columns = columns
        self._stem, self._suffix = split_name(str(path), file_format)
        self._token = secrets.token_hex(4)
        self._fd: int | None = None
        self._names: list[str] | None = None
        self._batches = 0
        self.description = f"File {path} ({file_format.name})"
        if file_format is FileFormat.PARQUET:
            require_parquet(self.description)

    @property
    def path(self) -> Path:
        """This worker's file (JSON and CSV)."""
        return Path(f"{self._stem}-{self._token}{self._suffix}")

    def open(self) -> None:
        durable.make_dirs(Path(self._stem).parent)
        if self.file_format is not FileFormat.PARQUET:
            self._mend_abandoned_files()

    def _mend_abandoned_files(self) -> None:
        """A worker killed mid-append leaves half a line at the end of its file (rows never
        acknowledged): cut it. A live worker holds a lock on its file, so its file is skipped."""
        if fcntl is None:
            return
        stem = Path(self._stem)
        for path in stem.parent.glob(f"{stem.name}-{'[0-9a-f]' * 8}{self._suffix}"):
            try:
                fd = os.open(path, os.O_RDWR)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                durable.cut_torn_tail(fd)
            except BlockingIOError:
                pass  # its writer is alive
            finally:
                os.close(fd)

    def write_blocking(self, rows: list[Row]) -> None:
        if not rows:
            return
        if self.file_format is FileFormat.PARQUET:
            name = batch_name(self._stem, self._suffix, self._token, self._batches)
            durable.write_new_file(Path(name), parquet_file(rows, self.columns))
            self._batches += 1
            return
        if self.file_format is FileFormat.JSON:
            data = json_lines(rows)
        else:
            self._names = self._names or column_names(self.columns, rows)
            data = csv_rows(rows, self._names)
        if self._fd is None:
            self._fd = durable.create_exclusive(self.path)
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)  # held for the writer's life: "alive"
        if self.file_format is FileFormat.CSV and os.fstat(self._fd).st_size == 0:
            data = csv_header(self._names or []) + data  # with the first batch that lands
        durable.append(self._fd, data)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def file_writer(primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path) -> FileWriter:
    """``Engine.FILE``: the file the outputs name, in their format."""
    return FileWriter(local_path(out["path"], project_dir), FileFormat(out["format"]), schema)
