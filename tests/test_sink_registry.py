"""The table of sink writers: every engine a target can name has a writer, found by the
plain strings older state files hold, and a writer's module is imported only when used."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bfctl.runtime.sinks import WRITERS, factory_of, writer_for
from bfctl.runtime.sinks.files import FileWriter
from buildflow.io.gcp import GCSBucket
from buildflow.io.local import File
from buildflow.storage.engines import SOURCE_ONLY, Engine
from buildflow.types.portable import FileFormat


def test_every_sink_engine_has_a_writer_factory() -> None:
    assert set(WRITERS) == set(Engine) - SOURCE_ONLY
    for engine in WRITERS:
        assert callable(factory_of(engine)), engine


def test_engines_are_the_strings_state_files_hold(tmp_path: Path) -> None:
    assert [e.value for e in Engine] == [
        "postgres", "duckdb", "file", "gcs", "folder", "pubsub", "log", "bigquery", "watch", "pulse",
    ]  # fmt: skip
    sink = File("out/rows.json", FileFormat.JSON)
    outputs = {sink.primitive_id(): {"engine": "file", "path": "elsewhere/rows.json", "format": "json"}}
    writer = writer_for(sink, None, outputs, tmp_path)
    assert isinstance(writer, FileWriter) and str(writer.path).startswith(str(tmp_path / "elsewhere" / "rows-"))


def test_an_unknown_engine_is_refused_with_the_sink_named(tmp_path: Path) -> None:
    bucket = GCSBucket("my-project", "my-bucket", file_path="rows.json", file_format=FileFormat.JSON)
    outputs = {bucket.primitive_id(): {"engine": "s3"}}
    with pytest.raises(NotImplementedError, match=r"no sink writer for GCSBucket .* with engine 's3' on this target"):
        writer_for(bucket, None, outputs, tmp_path)


def test_writer_modules_and_storage_drivers_load_only_when_used() -> None:
    code = (
        "import sys, bfctl.runtime.sinks, buildflow.storage.engines, buildflow.storage.ddl\n"
        "writers = ('files', 'postgres', 'duckdb_table', 'gcs', 'pubsub', 'bigquery')\n"
        "loaded = [m for m in (*(f'bfctl.runtime.sinks.{w}' for w in writers), 'duckdb', 'psycopg')\n"
        "          if m in sys.modules]\n"
        "print(loaded)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
