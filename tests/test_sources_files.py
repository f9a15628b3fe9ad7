"""Readers of file change streams on real folders, watched with watchfiles: the declared events
only, files that arrived while no reader ran, acks that survive a restart, nacks redelivered,
files still being written held back, objects the GCS sink writes, and two readers sharing one
folder. Nothing here sleeps: each wait is for deliveries, with a deadline."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from support import take
from watchfiles import Change

from bfctl.providers.local import LocalProvider
from bfctl.runtime.sinks import schema_from_type, writer_for
from bfctl.runtime.sources.base import Delivery, SourceReader
from bfctl.runtime.sources.files import bucket_folder_reader, watch_reader
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCSBucket, GCSFileChangeStream
from buildflow.io.local import LocalFileChangeStream
from buildflow.types.gcp import GCSChangeStreamEventType, GCSFileChangeEvent
from buildflow.types.local import FileChangeStreamEventType, LocalFileChangeEvent
from buildflow.types.portable import FileFormat

CREATED, MODIFIED, DELETED = (
    FileChangeStreamEventType.CREATED,
    FileChangeStreamEventType.MODIFIED,
    FileChangeStreamEventType.DELETED,
)
DEADLINE = 20.0


def applied(tmp_path: Path, *types: FileChangeStreamEventType) -> tuple[LocalFileChangeStream, dict[str, Any]]:
    stream = LocalFileChangeStream(str(tmp_path / "inbox"), types)
    provider = LocalProvider(tmp_path, "dev")
    return stream, provider.apply(provider.plan([stream]))[stream.primitive_id()]


async def opened(stream: Any, outputs: Mapping[str, Any], tmp_path: Path) -> SourceReader:
    reader = watch_reader(stream, outputs, tmp_path)
    await reader.open()
    return reader


def names(deliveries: list[Delivery]) -> list[tuple[str, Any]]:
    return [(Path(d.value.file_path).name, d.value.event_type) for d in deliveries]


def test_created_modified_and_deleted_events_with_blob(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED, MODIFIED, DELETED)
    inbox = Path(outputs["path"])

    async def run() -> None:
        reader = await opened(stream, outputs, tmp_path)
        (inbox / "sub").mkdir()
        (inbox / "sub" / "a.csv").write_text("one\n")
        [created] = await take(reader, 1)
        event = created.value
        assert isinstance(event, LocalFileChangeEvent)
        assert (event.file_path, event.event_type) == (str(inbox / "sub" / "a.csv"), CREATED)
        assert event.metadata == {"event_type": Change.added, "src_path": str(inbox / "sub" / "a.csv")}
        assert event.blob == b"one\n"
        assert created.delivery_attempt == 1
        await reader.ack([created.ack_id])

        (inbox / "sub" / "a.csv").write_text("one\ntwo\n")
        [modified] = await take(reader, 1)
        assert (modified.value.event_type, modified.value.blob) == (MODIFIED, b"one\ntwo\n")
        assert modified.value.metadata["event_type"] == Change.modified
        await reader.ack([modified.ack_id])

        (inbox / "sub" / "a.csv").unlink()
        [deleted] = await take(reader, 1)
        assert (deleted.value.event_type, deleted.value.metadata["event_type"]) == (DELETED, Change.deleted)
        with pytest.raises(ValueError, match="was deleted"):
            _ = deleted.value.blob
        await reader.ack([deleted.ack_id])
        await reader.close()

    asyncio.run(run())


def test_only_the_declared_event_types_are_delivered(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED, DELETED)
    inbox = Path(outputs["path"])

    async def run() -> None:
        reader = await opened(stream, outputs, tmp_path)
        (inbox / "a.txt").write_text("1")
        [created] = await take(reader, 1)
        await reader.ack([created.ack_id])
        (inbox / "a.txt").write_text("2")  # modified: not declared
        (inbox / ".b.txt.0123abcd.tmp").write_text("half")  # an atomic write's temporary file
        (inbox / "notes.swp").write_text("editor")  # watchfiles' default filter, as in BuildFlow
        (inbox / "a.txt").unlink()
        [deleted] = await take(reader, 1)
        assert names([deleted]) == [("a.txt", DELETED)]
        await reader.ack([deleted.ack_id])
        (inbox / "marker").write_text("")
        assert names(await take(reader, 1)) == [("marker", CREATED)]  # nothing came in between
        await reader.close()

    asyncio.run(run())


def test_files_from_before_the_start_come_once_and_acked_ones_never_again(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED)
    inbox = Path(outputs["path"])
    for i in range(3):
        (inbox / f"early-{i}.json").write_text(f'{{"i": {i}}}')

    async def first() -> None:
        reader = await opened(stream, outputs, tmp_path)
        early = await take(reader, 3)
        assert sorted(names(early)) == [(f"early-{i}.json", CREATED) for i in range(3)]
        await reader.ack([d.ack_id for d in early])
        (inbox / "late.json").write_text("{}")
        [late] = await take(reader, 1)
        await reader.close()  # neither acked nor nacked: comes again
        assert names([late]) == [("late.json", CREATED)]

    async def after_restart() -> None:
        reader = await opened(stream, outputs, tmp_path)
        [late] = await take(reader, 1)
        assert names([late]) == [("late.json", CREATED)]
        assert late.delivery_attempt == 2
        await reader.ack([late.ack_id])
        (inbox / "marker").write_text("")
        assert names(await take(reader, 1)) == [("marker", CREATED)]
        await reader.close()

    asyncio.run(first())
    asyncio.run(after_restart())


def test_a_nacked_event_is_delivered_again(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED)
    (Path(outputs["path"]) / "x.bin").write_bytes(b"\x00\x01")

    async def run() -> None:
        reader = await opened(stream, outputs, tmp_path)
        [first] = await take(reader, 1)
        await reader.nack([first.ack_id])
        [again] = await take(reader, 1)
        assert (again.value.file_path, again.value.blob, again.delivery_attempt) == (
            first.value.file_path,
            b"\x00\x01",
            2,
        )
        await reader.ack([again.ack_id])
        await reader.close()

    asyncio.run(run())


def test_a_file_still_open_for_writing_waits_for_its_writer(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED)
    inbox = Path(outputs["path"])
    outputs = {**outputs, "settle_seconds": 3600.0}  # only the writer's close says "written"

    async def run() -> None:
        reader = await opened(stream, outputs, tmp_path)
        with (inbox / "big.csv").open("w") as writer:
            writer.write("a,b\n")
            writer.flush()
            (inbox / "small.csv").write_text("c,d\n")
            assert names(await take(reader, 1)) == [("small.csv", CREATED)]
            writer.write("1,2\n")
        [big] = await take(reader, 1)
        assert (Path(big.value.file_path).name, big.value.blob) == ("big.csv", b"a,b\n1,2\n")
        await reader.close()

    asyncio.run(run())


def test_two_readers_never_hand_out_the_same_event(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED)
    inbox = Path(outputs["path"])
    for i in range(30):
        (inbox / f"{i:02}.txt").write_text(str(i))

    async def run() -> None:
        one, two = await opened(stream, outputs, tmp_path), await opened(stream, outputs, tmp_path)
        got: dict[str, list[str]] = {"one": [], "two": []}
        deadline = time.monotonic() + DEADLINE

        async def loop(name: str, reader: SourceReader) -> None:
            while sum(map(len, got.values())) < 30 and time.monotonic() < deadline:
                batch = await reader.pull(4)
                got[name] += [Path(d.value.file_path).name for d in batch]
                await reader.ack([d.ack_id for d in batch])

        await asyncio.gather(loop("one", one), loop("two", two))
        assert sorted(got["one"] + got["two"]) == [f"{i:02}.txt" for i in range(30)]  # each once
        await one.close()
        await two.close()

    asyncio.run(run())


@dataclasses.dataclass
class Row:
    n: int


def test_objects_the_gcs_sink_writes_into_the_bucket_stand_in_are_events(tmp_path: Path) -> None:
    bucket = GCSBucket("my-project", "uploads", "rows/batch.json", FileFormat.JSON)
    stream = GCSFileChangeStream(
        bucket, [GCSChangeStreamEventType.OBJECT_FINALIZE, GCSChangeStreamEventType.OBJECT_DELETE]
    )
    provider = LocalProvider(tmp_path, "dev")
    outputs = ResourceOutputs(provider.apply(provider.plan([bucket, stream])))
    folder = Path(outputs[bucket.primitive_id()]["path"])
    sink = writer_for(bucket, schema_from_type(Row), outputs, tmp_path)

    async def run() -> None:
        reader = bucket_folder_reader(stream, outputs[stream.primitive_id()], tmp_path)
        await reader.open()
        await sink.start()
        await sink.write([{"n": 1}, {"n": 2}])
        [written] = await take(reader, 1)
        event = written.value
        assert isinstance(event, GCSFileChangeEvent)
        [stored] = list((folder / "rows").iterdir())
        assert event.file_path == f"rows/{stored.name}"
        assert event.event_type == GCSChangeStreamEventType.OBJECT_FINALIZE
        assert event.metadata == {"bucketId": "uploads", "objectId": event.file_path, "eventType": "OBJECT_FINALIZE"}
        assert event.blob == stored.read_bytes() == b'{"n":1}\n{"n":2}\n'
        await reader.ack([written.ack_id])

        stored.unlink()
        [gone] = await take(reader, 1)
        assert (gone.value.file_path, gone.value.event_type) == (
            event.file_path,
            GCSChangeStreamEventType.OBJECT_DELETE,
        )
        await reader.ack([gone.ack_id])
        await sink.stop()
        await reader.close()

    asyncio.run(run())


CLAIM_ONE = """
import asyncio, json, sys
from pathlib import Path
from buildflow.io.local import LocalFileChangeStream
from bfctl.runtime.sources.files import watch_reader

async def main():
    outputs = json.loads(sys.argv[1])
    reader = watch_reader(LocalFileChangeStream(outputs["path"]), outputs, Path(sys.argv[2]))
    await reader.open()
    while not (batch := await reader.pull(1)):
        pass
    print("claimed", Path(batch[0].value.file_path).name, flush=True)
    sys.stdin.read()  # holds the delivery until killed

asyncio.run(main())
"""


def test_a_delivery_held_by_a_killed_process_comes_to_another_reader(tmp_path: Path) -> None:
    stream, outputs = applied(tmp_path, CREATED)
    (Path(outputs["path"]) / "job.txt").write_text("work")
    holder = subprocess.Popen(
        [sys.executable, "-c", CLAIM_ONE, json.dumps(outputs), str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline() == "claimed job.txt\n"
    finally:
        holder.kill()
        holder.wait()

    async def run() -> None:
        reader = await opened(stream, outputs, tmp_path)
        [job] = await take(reader, 1)  # at once: its lease has not run out, its process has
        assert (names([job]), job.delivery_attempt) == ([("job.txt", CREATED)], 2)
        await reader.ack([job.ack_id])
        await reader.close()

    asyncio.run(run())
