"""``BucketDependencyBuilder``: an object-store handle that works the same on both targets.

Locally through a real ``bfctl serve`` (the folder standing in for the bucket), and the
Cloud Storage handle through Storage's JSON API (gcp-storage-emulator, real HTTP).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from fakes.cloudbuild import storage_emulator as serve_storage_emulator
from support import serving, write

from runtime.buckets import CloudStorageBucket

FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.portable import Bucket

app = Flow()
reports = Bucket("reports")
app.manage(reports)
Reports = BucketDependencyBuilder(reports)
service = app.service()


@dataclasses.dataclass
class Report:
    name: str
    text: str


@service.endpoint("/reports", method="POST")
async def put(report: Report, dep: Reports) -> str:
    await dep.bucket.upload(report.name, report.text)
    return "stored"


@service.endpoint("/reports", method="GET")
async def names(prefix: str, dep: Reports) -> list:
    return await dep.bucket.list(prefix)


@service.endpoint("/report", method="GET")
def read(name: str, dep: Reports) -> str:
    try:
        return dep.bucket.sync.download(name).decode()
    except FileNotFoundError as e:
        return f"missing: {e}"


@service.endpoint("/report/delete", method="POST")
def delete(report: Report, dep: Reports) -> str:
    dep.bucket.sync.delete(report.name)
    return "deleted"
"""


def test_an_endpoint_writes_and_reads_objects_of_a_portable_bucket(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    with serving(["main:app", "--apply", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
        for name, text in (("2026/jan.txt", "cold"), ("2026/feb.txt", "colder"), ("2025/dec.txt", "old")):
            body = json.dumps({"name": name, "text": text}).encode()
            assert server.call("POST", "/reports", body) == (200, '"stored"')
        assert server.call("POST", "/reports", b'{"name": "2026/jan.txt", "text": "mild"}')[0] == 200  # replaced

        assert json.loads(server.get("/reports?prefix=2026/")[1]) == ["2026/feb.txt", "2026/jan.txt"]
        assert json.loads(server.get("/report?name=2026/jan.txt")[1]) == "mild"
        assert server.call("POST", "/report/delete", b'{"name": "2026/feb.txt", "text": ""}')[0] == 200
        assert json.loads(server.get("/reports?prefix=")[1]) == ["2025/dec.txt", "2026/jan.txt"]
        assert json.loads(server.get("/report?name=2026/feb.txt")[1]) == (
            "missing: no object '2026/feb.txt' in the bucket reports"
        )
        assert server.stop() == 0

    folder = tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "reports"
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "2025/dec.txt",
        "2026/jan.txt",
    ]
    assert (folder / "2026" / "jan.txt").read_text() == "mild"


@pytest.fixture
def storage_emulator(tmp_path: Path) -> Iterator[str]:
    with serve_storage_emulator(tmp_path) as url:
        yield url


def test_the_cloud_storage_handle(storage_emulator: str) -> None:
    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            made = await session.post(f"{storage_emulator}/storage/v1/b?project=my-project", json={"name": "files"})
            assert made.status == 200
        bucket = CloudStorageBucket("files", storage_emulator)
        await bucket.open()
        try:
            await bucket.upload("a/one.txt", '{"n": 1}')
            await bucket.upload("a/two.bin", b"\x00\x01")
            await bucket.upload("b/three.txt", "3")
            await bucket.upload("a/one.txt", '{"n": 2}')
            assert await bucket.list("a/") == ["a/one.txt", "a/two.bin"]
            assert await bucket.list() == ["a/one.txt", "a/two.bin", "b/three.txt"]
            assert await bucket.download("a/one.txt") == b'{"n": 2}'
            await bucket.delete("a/two.bin")
            assert await bucket.list("a/") == ["a/one.txt"]
            with pytest.raises(FileNotFoundError, match=r"no object 'a/two\.bin' in the bucket files"):
                await bucket.download("a/two.bin")
            with pytest.raises(FileNotFoundError):
                await bucket.delete("a/two.bin")
            # the blocking form, from a thread as a sync handler runs
            assert await asyncio.to_thread(bucket.sync.download, "b/three.txt") == b"3"
            with pytest.raises(TypeError, match="await bucket"):
                bucket.sync.list()
        finally:
            await bucket.close()

    asyncio.run(run())
