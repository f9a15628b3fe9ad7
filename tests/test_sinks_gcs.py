"""GCSBucket sinks: one object per batch, in the bucket's local folder and through Cloud
Storage's JSON API (gcp-storage-emulator, the client code the cloud uses)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from fakes.cloudbuild import storage_emulator as serve_storage_emulator

from bfctl.providers.local import LocalProvider
from bfctl.runtime.sinks import row_converter, schema_from_type, writer_for
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCSBucket
from buildflow.types.portable import FileFormat


@dataclasses.dataclass
class Event:
    user: str
    n: int


def events(count: int, start: int = 0) -> list[dict[str, object]]:
    return [row_converter(Event)(Event(f"u{i}", i)) for i in range(start, start + count)]


def test_local_bucket_is_a_folder_of_whole_objects(tmp_path: Path) -> None:
    bucket = GCSBucket("my-project", "my-bucket", "events/rows.json", FileFormat.JSON)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([bucket]))
    writer = writer_for(bucket, schema_from_type(Event), ResourceOutputs(provider.outputs()), tmp_path)
    assert "Cloud Storage emulator (gcp-storage-emulator) on a folder" in writer.description

    async def run() -> None:
        await writer.start()
        await writer.write(events(2))
        await writer.write(events(1, 2))
        await writer.stop()

    asyncio.run(run())
    folder = tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "my-bucket" / "events"
    objects = sorted(folder.iterdir())
    assert [o.name.rsplit("-", 1)[1] for o in objects] == ["000000.json", "000001.json"]
    assert [json.loads(line)["n"] for o in objects for line in o.read_text().splitlines()] == [0, 1, 2]


@pytest.fixture
def storage_emulator(tmp_path: Path) -> Iterator[str]:
    with serve_storage_emulator(tmp_path) as url:
        yield url


def test_objects_through_the_cloud_storage_api(storage_emulator: str, tmp_path: Path) -> None:
    from gcloud.aio.storage import Storage

    bucket = GCSBucket("my-project", "api-bucket", "out/rows.csv", FileFormat.CSV)
    outputs = {bucket.primitive_id(): {"engine": "gcs", "bucket": "api-bucket", "api_root": storage_emulator}}
    writer = writer_for(bucket, schema_from_type(Event), outputs, tmp_path)

    async def run() -> list[str]:
        async with aiohttp.ClientSession() as session:
            made = await session.post(
                f"{storage_emulator}/storage/v1/b?project=my-project", json={"name": "api-bucket"}
            )
            assert made.status == 200
        await writer.start()
        await writer.write(events(2))
        await writer.write(events(1, 2))
        await writer.stop()
        async with Storage(api_root=storage_emulator) as storage:
            listing = await storage.list_objects("api-bucket")
            names = sorted(item["name"] for item in listing["items"])
            return [(await storage.download("api-bucket", name)).decode() for name in names]

    contents = asyncio.run(run())
    assert contents == ['"user","n"\n"u0",0\n"u1",1\n', '"user","n"\n"u2",2\n']
