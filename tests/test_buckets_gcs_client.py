"""``BucketDependencyBuilder(bucket).bucket`` is google-cloud-storage's ``Bucket``, as in BuildFlow.

Locally the client talks to the stack's Cloud Storage emulator, which serves the bucket's folder:
what an endpoint uploads through the client, what a GCS sink writes and what a change stream
sees are one bucket, and it outlives a restart of the server and of the emulator. On gcp the
client is Cloud Storage's (only its credentials are stand-ins here).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import google.auth
import google.oauth2.credentials
import pytest
import requests
from google.cloud.storage import Bucket
from support import bfctl_run, run_bfctl, serving, take, wait_until, write

from bfctl.providers.local import LocalProvider
from bfctl.providers.local.services import DetachedService
from bfctl.runtime.buckets import RuntimeBucketOpener, storage_client
from bfctl.runtime.sinks import schema_from_type, writer_for
from bfctl.runtime.sources.files import bucket_folder_reader
from buildflow.dependencies.flow_dependencies import ResourceOutputs
from buildflow.io.gcp import GCSBucket, GCSFileChangeStream
from buildflow.types.gcp import GCSFileChangeEvent
from buildflow.types.portable import FileFormat

FLOW = """
import asyncio
import json

from buildflow import Flow
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.gcp import GCSBucket, GCSFileChangeStream
from buildflow.requests import UploadFile
from buildflow.types.gcp import GCSFileChangeEvent
from buildflow.types.portable import FileFormat
from google.cloud.exceptions import NotFound

app = Flow()
uploads = GCSBucket("my-project", "uploads").options(force_destroy=True)
events = GCSBucket("my-project", "events", file_path="rows/batch.json", file_format=FileFormat.JSON).options(
    force_destroy=True
)
seen = GCSBucket("my-project", "seen", file_path="seen/rows.json", file_format=FileFormat.JSON).options(
    force_destroy=True
)
app.manage(uploads, events, seen)
UploadsDep = BucketDependencyBuilder(uploads)
EventsDep = BucketDependencyBuilder(events)
service = app.service()


@service.endpoint("/upload", method="POST")
def upload(file: UploadFile, bucket_dep: UploadsDep) -> str:
    bucket_dep.bucket.blob(f"in/{file.filename}").upload_from_file(file.file)
    return file.filename


@service.endpoint("/files", method="GET")
def files(bucket_dep: UploadsDep) -> list:
    return [blob.name for blob in bucket_dep.bucket.list_blobs(prefix="in/")]


@service.endpoint("/file", method="GET")
async def read(name: str, bucket_dep: UploadsDep) -> str:
    try:
        return bucket_dep.bucket.blob(name).download_as_bytes().decode()
    except NotFound:
        return "missing"


@app.collector("/events", method="POST", sink=events)
def collect(rows: list[dict]) -> list[dict]:
    return rows


@service.endpoint("/events", method="GET")
def written(bucket_dep: EventsDep) -> list:
    blobs = bucket_dep.bucket.client.list_blobs(bucket_dep.bucket, prefix="rows/")
    return [json.loads(line) for blob in blobs for line in blob.download_as_bytes().splitlines()]


@app.consumer(source=GCSFileChangeStream(uploads), sink=seen)
def on_upload(event: GCSFileChangeEvent) -> dict:
    return {"name": event.file_path, "text": event.blob.decode()}
"""


def _seen(project: Path) -> list[dict[str, Any]]:
    folder = project / ".buildflow" / "local" / "dev" / "gcs" / "seen"
    return [json.loads(line) for path in sorted(folder.rglob("*.json")) for line in path.read_text().splitlines()]


def test_uploads_sink_rows_and_change_events_are_one_bucket_and_survive_restarts(
    tmp_path: Path, bfctl_env: dict[str, str]
) -> None:
    write(tmp_path / "main.py", FLOW)
    serve = ["main:app", "--port", "0", "--no-access-log"]
    try:
        with serving([*serve, "--apply"], tmp_path, bfctl_env) as server:
            answer = requests.post(server.url + "/upload", files={"file": ("note.txt", b"hello bucket")}, timeout=30)
            assert (answer.status_code, answer.json()) == (200, "note.txt")
            assert json.loads(server.get("/files")[1]) == ["in/note.txt"]
            assert json.loads(server.get("/file?name=in/note.txt")[1]) == "hello bucket"
            assert json.loads(server.get("/file?name=in/other.txt")[1]) == "missing"

            # a GCS sink's objects, read back through the client
            rows = [{"user": "ann", "n": 1}, {"user": "bob", "n": 2}]
            assert server.call("POST", "/events", json.dumps(rows).encode())[0] == 200
            assert json.loads(server.get("/events")[1]) == rows

            # the change stream saw the object the endpoint uploaded through the client
            wait_until(lambda: _seen(tmp_path) == [{"name": "in/note.txt", "text": "hello bucket"}])
            assert server.stop() == 0

        # as after a reboot: the emulator stopped too; serving starts it on the same data
        DetachedService(tmp_path / ".buildflow" / "local" / "dev" / "storage-emulator", "storage-emulator").stop()
        with serving(serve, tmp_path, bfctl_env) as server:
            assert json.loads(server.get("/files")[1]) == ["in/note.txt"]
            assert json.loads(server.get("/file?name=in/note.txt")[1]) == "hello bucket"
            assert json.loads(server.get("/events")[1]) == rows
            assert server.stop() == 0
        assert _seen(tmp_path) == [{"name": "in/note.txt", "text": "hello bucket"}]  # not delivered twice
    finally:
        assert run_bfctl(["destroy", "--yes"], tmp_path, bfctl_env)[0] == 0
    assert not (tmp_path / ".buildflow" / "local" / "dev" / "gcs").exists()


def _client_bucket(outputs: ResourceOutputs, bucket: GCSBucket) -> Bucket:
    return storage_client(outputs[bucket.primitive_id()]["api_root"], "my-project", None).bucket(bucket.bucket_name)


def test_the_client_the_sink_and_the_change_stream_share_the_folder(tmp_path: Path) -> None:
    from dataclasses import dataclass

    @dataclass
    class Row:
        n: int

    files = GCSBucket("my-project", "files", "rows/batch.json", FileFormat.JSON).options(force_destroy=True)
    other = GCSBucket("my-project", "other").options(force_destroy=True)
    stream = GCSFileChangeStream(files)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([files, other, stream]))
    outputs = ResourceOutputs(provider.ensure_running())
    bucket = _client_bucket(outputs, files)
    try:
        bucket.blob("in/a.txt").upload_from_string("from the client", content_type="text/x-note")
        sink = writer_for(files, schema_from_type(Row), outputs, tmp_path)

        async def run() -> str:
            reader = bucket_folder_reader(stream, outputs[stream.primitive_id()], tmp_path)
            await reader.open()
            try:
                [uploaded] = await take(reader, 1)
                assert isinstance(uploaded.value, GCSFileChangeEvent)
                assert (uploaded.value.file_path, uploaded.value.blob) == ("in/a.txt", b"from the client")
                await reader.ack([uploaded.ack_id])
            finally:
                await reader.close()
            await sink.start()
            await sink.write([{"n": 1}, {"n": 2}])
            await sink.stop()
            [written] = list((Path(outputs[files.primitive_id()]["path"]) / "rows").iterdir())
            return f"rows/{written.name}"

        written = asyncio.run(run())
        listed = {blob.name: blob for blob in bucket.list_blobs()}
        assert sorted(listed) == ["in/a.txt", written]
        assert listed["in/a.txt"].content_type == "text/x-note"  # what the upload said, kept
        assert listed[written].content_type == "application/json"
        assert listed[written].download_as_bytes() == b'{"n":1}\n{"n":2}\n'  # checksums verified
        assert bucket.blob(written).download_as_bytes() == b'{"n":1}\n{"n":2}\n'

        odd = "in/what?#1 é"
        bucket.blob(odd).upload_from_string("odd")
        assert [b.download_as_bytes() for b in bucket.list_blobs(prefix="in/w")] == [b"odd"]  # by its media link
        bucket.delete_blob(odd)

        bucket.blob("in/a.txt").delete()
        assert bucket.get_blob("in/a.txt") is None
        assert not (Path(outputs[files.primitive_id()]["path"]) / "in").exists()  # a bucket has no folders

        # removing a bucket from the flow removes it from the running emulator, with its objects
        bucket.client.bucket("other").blob("typed").upload_from_string("x", content_type="text/x-typed")
        provider.apply(provider.plan([files, stream]))
        assert bucket.client.lookup_bucket("other") is None
        assert not (tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "_objects" / "other").exists()
        assert bucket.client.lookup_bucket("files") is not None
    finally:
        provider.destroy()


def test_uploads_do_not_rewrite_a_list_of_every_object(tmp_path: Path) -> None:
    """The emulator's own store rewrites one file listing every object on each upload, so
    uploads slow down as objects accumulate; here that file holds only the buckets."""
    files = GCSBucket("my-project", "files").options(force_destroy=True)
    provider = LocalProvider(tmp_path, "dev")
    provider.apply(provider.plan([files]))
    bucket = _client_bucket(ResourceOutputs(provider.ensure_running()), files)
    meta = tmp_path / ".buildflow" / "local" / "dev" / "gcs" / ".meta"
    try:
        bucket.blob("first").upload_from_string("1")
        before = meta.stat()
        for i in range(30):
            bucket.blob(f"many/{i}").upload_from_string(str(i))
        assert (meta.stat().st_ino, meta.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert len(list(bucket.list_blobs(prefix="many/"))) == 30
    finally:
        provider.destroy()


@pytest.fixture
def stand_in_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Application default credentials, as on a machine logged in to gcp."""

    def default(scopes: Any = None, **kwargs: Any) -> tuple[Any, str]:
        return google.oauth2.credentials.Credentials(token="stand-in"), "adc-project"

    monkeypatch.setattr(google.auth, "default", default)


def test_on_gcp_the_bucket_is_cloud_storage_billed_to_the_quota_project(stand_in_credentials: None) -> None:
    bucket = GCSBucket("my-project", f"b-{uuid.uuid4().hex[:8]}")
    outputs = {bucket.primitive_id(): {"bucket_name": bucket.bucket_name, "bucket_url": bucket.bucket_url}}
    opener = RuntimeBucketOpener(outputs)

    billed = asyncio.run(opener.open(bucket, "quota-project"))
    assert isinstance(billed, Bucket)
    assert (billed.name, billed.client.project) == (bucket.bucket_name, "quota-project")
    assert billed.client._credentials.quota_project_id == "quota-project"
    assert billed.client._connection.API_BASE_URL == "https://storage.googleapis.com"

    plain = asyncio.run(opener.open(bucket, None))
    assert (plain.name, plain.client.project) == (bucket.bucket_name, "my-project")
    assert plain.client._credentials.quota_project_id is None


S3_FLOW = """
from buildflow import Flow
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.aws import S3Bucket

app = Flow()
Files = BucketDependencyBuilder(S3Bucket("my-bucket"), aws_region="us-east-1")
service = app.service()


@service.endpoint("/files", method="GET")
def files(dep: Files) -> list:
    return [o.key for o in dep.bucket.objects.all()]
"""


def test_an_s3_bucket_dependency_is_refused_with_a_clear_error(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", S3_FLOW)
    result = bfctl_run(["serve", "main:app", "--port", "0"], tmp_path, bfctl_env)
    assert result.returncode == 1
    assert "S3Bucket 's3://my-bucket' is not supported by bfctl (AWS primitives are out of its scope)" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
