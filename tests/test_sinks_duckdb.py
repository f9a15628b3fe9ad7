"""DuckDB sinks: appender batches, refused rows, and several worker processes on one file."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bfctl.runtime.sinks import RowsRejected, SinkSchemaError, SinkWriter, schema_from_type, writer_for
from buildflow.io.duckdb import DuckDBTable
from buildflow.storage.duckdb_access import duckdb_connection

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Event:
    user: str
    n: int
    at: datetime.datetime
    tags: list[str]
    extra: dict[str, Any]
    score: float | None = None


AT = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)


def events(count: int, start: int = 0) -> list[Event]:
    return [Event(f"u{i}", i, AT, ["a", "b"], {"k": i}) for i in range(start, start + count)]


def rows(writer: SinkWriter, objects: list[Any]) -> list[Any]:
    """Objects as the writer takes them: what its converter makes, as the runtime does."""
    convert = writer.converter_for(Event)
    return [convert(o) for o in objects]


def test_batches_land_with_their_types(tmp_path: Path) -> None:
    sink = DuckDBTable("data/app.duckdb", "events")
    writer = writer_for(sink, schema_from_type(Event), {}, tmp_path)

    async def run() -> None:
        await writer.start()
        await writer.write(rows(writer, events(3)))
        await writer.write(rows(writer, events(2, 3)))
        await writer.stop()

    asyncio.run(run())
    with duckdb_connection(tmp_path / "data" / "app.duckdb") as connection:
        got = connection.execute(
            'SELECT "user", n, "at", tags, extra::VARCHAR, score FROM events ORDER BY n'
        ).fetchall()
        types = dict(connection.execute("SELECT column_name, data_type FROM information_schema.columns").fetchall())
    assert len(got) == 5 and got[1] == ("u1", 1, AT, ["a", "b"], '{"k":1}', None)
    assert types == {"user": "VARCHAR", "n": "BIGINT", "at": "TIMESTAMP WITH TIME ZONE", "tags": "VARCHAR[]",
                     "extra": "JSON", "score": "DOUBLE"}  # fmt: skip


def test_a_refused_batch_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "keyed.duckdb"
    with duckdb_connection(path) as connection:  # the user's own table, with a key
        connection.execute(
            'CREATE TABLE events ("user" VARCHAR PRIMARY KEY, n BIGINT NOT NULL, "at" TIMESTAMPTZ NOT NULL, '
            "tags VARCHAR[], extra JSON, score DOUBLE)"
        )
    writer = writer_for(DuckDBTable(str(path), "events"), schema_from_type(Event), {}, tmp_path)

    async def run() -> None:
        await writer.start()
        await writer.write(rows(writer, events(2)))
        with pytest.raises(RowsRejected, match=r"(?i)duplicate key"):
            await writer.write(rows(writer, events(1, 5) + events(1, 1)))
        await writer.write(rows(writer, events(1, 6)))
        await writer.stop()

    asyncio.run(run())
    with duckdb_connection(path) as connection:
        assert connection.execute("SELECT n FROM events ORDER BY n").fetchall() == [(0,), (1,), (6,)]


def test_a_table_missing_a_declared_column_stops_the_writer_at_start(tmp_path: Path) -> None:
    path = tmp_path / "old.duckdb"
    with duckdb_connection(path) as connection:
        connection.execute('CREATE TABLE events ("user" VARCHAR)')
    writer = writer_for(DuckDBTable(str(path), "events"), schema_from_type(Event), {}, tmp_path)
    with pytest.raises(SinkSchemaError, match="has no column n, at, tags, extra, score; run `bfctl apply`"):
        asyncio.run(writer.start())


WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    from buildflow.io.duckdb import DuckDBTable
    from bfctl.runtime.sinks import writer_for
    from buildflow.types.schema import Column, Kind

    async def main():
        columns = [Column("worker", Kind.STRING), Column("n", Kind.INTEGER)]
        writer = writer_for(DuckDBTable(sys.argv[2], "rows"), columns, {}, Path.cwd())
        await writer.start()
        convert = writer.converter_for(None)
        for batch in range(40):
            await writer.write([convert({"worker": sys.argv[3], "n": batch * 10 + i}) for i in range(10)])
        await writer.stop()

    asyncio.run(main())
    """
)


def test_worker_processes_take_turns_on_one_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.duckdb"
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(ROOT), str(path), name], cwd=tmp_path)
        for name in ("a", "b", "c")
    ]
    seen = []
    while any(w.poll() is None for w in workers):  # a reader takes its turns too
        if path.exists():
            with duckdb_connection(path) as connection:
                if connection.execute("SELECT count(*) FROM information_schema.tables").fetchone()[0]:
                    seen.append(connection.execute("SELECT count(*) FROM rows").fetchone()[0])
    assert [w.returncode for w in workers] == [0, 0, 0]
    with duckdb_connection(path) as connection:
        counts = connection.execute(
            "SELECT worker, count(DISTINCT n) FROM rows GROUP BY worker ORDER BY worker"
        ).fetchall()
    assert counts == [("a", 400), ("b", 400), ("c", 400)]
    assert seen == sorted(seen)  # every read saw whole batches only, never fewer than before
