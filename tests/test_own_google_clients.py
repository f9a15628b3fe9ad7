"""A client the flow's own code makes (``storage.Client()``, as BuildFlow projects that read
their bucket without a dependency did) reaches, on the local target, the same bucket the flow's
primitives name: ``bfctl serve`` points Google's libraries at the stack's emulator, unless the
shell already chose another."""

from __future__ import annotations

import json
from pathlib import Path

from support import run_bfctl, serving, write

FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.gcp import GCSBucket
from buildflow.types.portable import FileFormat
from google.cloud import storage

app = Flow()
reports = GCSBucket("acme-project", "acme-reports", file_path="daily/rows.json", file_format=FileFormat.JSON)
app.manage(reports.options(force_destroy=True))
service = app.service()


@dataclasses.dataclass
class Reading:
    meter: str
    kwh: float


@app.collector("/readings", method="POST", sink=reports)
def collect(reading: Reading) -> Reading:
    return reading


@service.endpoint("/stored", method="GET")
def stored() -> list:
    client = storage.Client()
    return [
        line
        for blob in client.list_blobs("acme-reports", prefix="daily/")
        for line in blob.download_as_bytes().decode().splitlines()
    ]
"""


def test_a_storage_client_the_flow_makes_reads_what_its_sink_wrote(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    write(tmp_path / "main.py", FLOW)
    env = {k: v for k, v in bfctl_env.items() if k != "STORAGE_EMULATOR_HOST"}
    try:
        with serving(["main:app", "--apply", "--port", "0", "--no-access-log"], tmp_path, env) as server:
            assert server.call("POST", "/readings", b'{"meter": "m-1", "kwh": 2.5}')[0] == 200
            status, body = server.get("/stored")
            assert status == 200, body
            assert [json.loads(line) for line in json.loads(body)] == [{"meter": "m-1", "kwh": 2.5}]
            assert server.stop() == 0
        assert "STORAGE_EMULATOR_HOST=http://127.0.0.1:" in server.output
    finally:
        assert run_bfctl(["destroy", "--yes"], tmp_path, env)[0] == 0
