"""``BucketDependencyBuilder`` on a portable ``Bucket``: google-cloud-storage's ``Bucket``,
through a real ``bfctl serve`` (the local target's emulator over the bucket's folder)."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_bfctl, serving, write

from bfctl.providers.local.services import DetachedService

FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.dependencies.bucket import BucketDependencyBuilder
from buildflow.io.portable import Bucket
from google.cloud.exceptions import NotFound

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
    dep.bucket.blob(report.name).upload_from_string(report.text)
    return "stored"


@service.endpoint("/reports", method="GET")
async def names(prefix: str, dep: Reports) -> list:
    return [blob.name for blob in dep.bucket.list_blobs(prefix=prefix)]


@service.endpoint("/report", method="GET")
def read(name: str, dep: Reports) -> str:
    try:
        return dep.bucket.blob(name).download_as_bytes().decode()
    except NotFound:
        return f"missing: {name}"


@service.endpoint("/report/delete", method="POST")
def delete(report: Report, dep: Reports) -> str:
    dep.bucket.delete_blob(report.name)
    return "deleted"
"""


def test_an_endpoint_writes_and_reads_objects_of_a_portable_bucket(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    try:
        with serving(["main:app", "--apply", "--port", "0", "--no-access-log"], tmp_path, bfctl_env) as server:
            for name, text in (("2026/jan.txt", "cold"), ("2026/feb.txt", "colder"), ("2025/dec.txt", "old")):
                body = json.dumps({"name": name, "text": text}).encode()
                assert server.call("POST", "/reports", body) == (200, '"stored"')
            assert server.call("POST", "/reports", b'{"name": "2026/jan.txt", "text": "mild"}')[0] == 200  # replaced

            assert json.loads(server.get("/reports?prefix=2026/")[1]) == ["2026/feb.txt", "2026/jan.txt"]
            assert json.loads(server.get("/report?name=2026/jan.txt")[1]) == "mild"
            assert server.call("POST", "/report/delete", b'{"name": "2026/feb.txt", "text": ""}')[0] == 200
            assert json.loads(server.get("/reports?prefix=")[1]) == ["2025/dec.txt", "2026/jan.txt"]
            assert json.loads(server.get("/report?name=2026/feb.txt")[1]) == "missing: 2026/feb.txt"
            assert server.stop() == 0

        folder = tmp_path / ".buildflow" / "local" / "dev" / "gcs" / "reports"
        assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
            "2025/dec.txt",
            "2026/jan.txt",
        ]
        assert (folder / "2026" / "jan.txt").read_text() == "mild"
    finally:
        code, output = run_bfctl(["destroy", "--yes"], tmp_path, bfctl_env)
        DetachedService(tmp_path / ".buildflow" / "local" / "dev" / "storage-emulator", "storage-emulator").stop()
    assert code != 0 and "holds 2 object(s)" in output  # as Cloud Storage: no force_destroy, kept
