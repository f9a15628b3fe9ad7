"""File sinks: one file per worker, one synced append per batch, read back from disk."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import json
from pathlib import Path

import pytest

from bfctl.runtime.sinks import RowsRejected, row_converter, schema_from_type, writer_for
from bfctl.runtime.sinks.base import Row, SinkWriter
from buildflow.io.local import Empty, File
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Event:
    user: str
    n: int
    at: datetime.datetime
    score: float | None = None


AT = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.UTC)


def rows(count: int, start: int = 0) -> list[Row]:
    convert = row_converter(Event)
    return [convert(Event(f"u{i}", i, AT, i / 2 if i % 2 else None)) for i in range(start, start + count)]


async def write_batches(writer: SinkWriter, *batches: list[Row]) -> None:
    await writer.start()
    try:
        for batch in batches:
            await writer.write(batch)
    finally:
        await writer.stop()


def test_json_lines_one_file_per_worker(tmp_path: Path) -> None:
    sink = File("out/events.json", FileFormat.JSON)
    first = writer_for(sink, schema_from_type(Event), {}, tmp_path)
    second = writer_for(sink, schema_from_type(Event), {}, tmp_path)  # another worker

    async def both() -> None:
        await asyncio.gather(write_batches(first, rows(3), rows(2, 3)), write_batches(second, rows(4, 100)))

    asyncio.run(both())
    files = sorted((tmp_path / "out").glob("events-*.json"))
    assert len(files) == 2 and all(len(f.stem.split("-")[-1]) == 8 for f in files)
    by_file = {f: [json.loads(line) for line in f.read_text().splitlines()] for f in files}
    assert sorted(len(v) for v in by_file.values()) == [4, 5]
    mine = by_file[first.path]  # type: ignore[attr-defined]  # writer_for made a FileWriter
    assert [r["user"] for r in mine] == ["u0", "u1", "u2", "u3", "u4"]
    assert mine[1] == {"user": "u1", "n": 1, "at": "2024-05-01T12:30:00+00:00", "score": 0.5}


def test_csv_header_once_then_rows(tmp_path: Path) -> None:
    writer = writer_for(File("out/events.csv", FileFormat.CSV), schema_from_type(Event), {}, tmp_path)
    asyncio.run(write_batches(writer, rows(2), rows(1, 2)))
    (path,) = (tmp_path / "out").glob("events-*.csv")
    assert path.read_text().splitlines() == [
        '"user","n","at","score"',
        '"u0",0,2024-05-01 12:30:00.000000Z,',
        '"u1",1,2024-05-01 12:30:00.000000Z,0.5',
        '"u2",2,2024-05-01 12:30:00.000000Z,',
    ]


def test_a_refused_batch_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    writer = writer_for(File("out/loose.csv", FileFormat.CSV), None, {}, tmp_path)  # dict rows, no schema

    async def run() -> None:
        await writer.start()
        await writer.write([{"a": 1}])
        with pytest.raises(RowsRejected) as refused:
            await writer.write([{"a": 2}, {"a": 3, "b": 4}])
        assert refused.value.indexes == [1]
        await writer.write([{"a": 5}])
        await writer.stop()

    asyncio.run(run())
    (path,) = (tmp_path / "out").glob("loose-*.csv")
    assert path.read_text() == '"a"\n1\n5\n'


def test_parquet_one_complete_file_per_batch(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    writer = writer_for(File(str(tmp_path / "pq" / "events"), "parquet"), schema_from_type(Event), {}, tmp_path)
    asyncio.run(write_batches(writer, rows(3), rows(2, 3)))
    files = sorted((tmp_path / "pq").glob("events-*-*.parquet"))
    assert [f.name.rsplit("-", 1)[1] for f in files] == ["000000.parquet", "000001.parquet"]
    table = pq.read_table(files[0])
    assert table.schema.field("at").type.tz == "UTC" and not table.schema.field("n").nullable
    assert table.to_pylist()[1] == {"user": "u1", "n": 1, "at": AT, "score": 0.5}
    assert not list((tmp_path / "pq").glob(".*.tmp"))


def test_empty_discards(tmp_path: Path) -> None:
    asyncio.run(writer_for(Empty(), None, {}, tmp_path).write(rows(3)))
    assert list(tmp_path.iterdir()) == []


def test_a_torn_line_from_a_killed_worker_is_cut_when_the_next_starts(tmp_path: Path) -> None:
    sink = File("out/events.json", FileFormat.JSON)
    (tmp_path / "out").mkdir()
    dead = tmp_path / "out" / "events-0123abcd.json"
    dead.write_bytes(b'{"user":"u0","n":0}\n{"user":"u1","n":1}\n{"user":"u2","n"')

    async def run() -> None:
        alive = writer_for(sink, schema_from_type(Event), {}, tmp_path)
        await alive.start()
        await alive.write(rows(1))
        path = alive.path  # type: ignore[attr-defined]  # writer_for made a FileWriter
        path.write_bytes(path.read_bytes() + b'{"mid-append')  # as if caught in the middle of an append
        (tmp_path / "out" / "stray.json").write_bytes(b'{"half"')  # not one of this sink's files
        later = writer_for(sink, schema_from_type(Event), {}, tmp_path)
        await later.start()  # mends the dead worker's file, leaves the live one alone
        await later.stop()
        assert path.read_bytes().endswith(b'{"mid-append')
        await alive.stop()

    asyncio.run(run())
    assert dead.read_bytes() == b'{"user":"u0","n":0}\n{"user":"u1","n":1}\n'
    assert (tmp_path / "out" / "stray.json").read_bytes() == b'{"half"'
