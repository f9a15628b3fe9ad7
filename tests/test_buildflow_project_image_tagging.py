"""BuildFlow 0.3 projects shaped like the published image-classification walkthroughs: a
folder watched by a consumer that labels each new picture with a model loaded once per
replica, rows with nested lists written to DuckDB, and a service that takes uploads and reads
the table back; and their MotherDuck variant, which bfctl refuses."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path

import pytest
from support import make_project, run_bfctl, serving, wait_until

TAGGER = """
import dataclasses
import datetime
import os
from typing import List

import duckdb
from buildflow import Flow, Service, consumer
from buildflow.dependencies import Scope, dependency
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.local import LocalFileChangeStream
from buildflow.requests import UploadFile
from buildflow.types.local import FileChangeEvent

inbox = LocalFileChangeStream(file_path="photos")
tags = DuckDBTable(database="tags.duckdb", table="photo_tags")


@dataclasses.dataclass
class Tag:
    label: str
    score: float


@dataclasses.dataclass
class PhotoTags:
    photo: str
    tagged_at: str
    tagger: int
    tags: List[Tag]


@dependency(scope=Scope.REPLICA)
class Tagger:
    def __init__(self) -> None:
        self.loaded_at = id(self)

    def tag(self, path: str) -> list:
        size = len(open(path, "rb").read())
        return [("cat", 0.75), ("bytes-%d" % size, 0.25)]


@consumer(source=inbox, sink=tags)
def tag_photo(event: FileChangeEvent, tagger: Tagger) -> PhotoTags:
    found = [Tag(label, score) for label, score in tagger.tag(event.file_path)]
    return PhotoTags(
        photo=os.path.basename(event.file_path),
        tagged_at=datetime.datetime.utcnow().isoformat(),
        tagger=tagger.loaded_at,
        tags=found,
    )


service = Service(service_id="photo-tags")


@service.endpoint("/photos", method="POST")
async def add_photo(photo: UploadFile):
    with open(os.path.join("photos", photo.filename), "wb") as f:
        f.write(await photo.read())


@service.endpoint("/tags", method="GET")
def photo_tags():
    conn = duckdb.connect(database=tags.database, read_only=True)
    rows = conn.execute(f"SELECT photo, tagger, tags FROM {tags.table} ORDER BY tagged_at").fetchall()
    return [{"photo": p, "tagger": t, "tags": list(found)} for p, t, found in rows]


app = Flow()
app.add_service(service)
app.add_consumer(tag_photo)
"""


def _multipart(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A form with one file, as a browser's upload form sends it: (body, content type)."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            f"Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_uploaded_photos_are_tagged_into_duckdb_and_read_back_by_the_service(
    tmp_path: Path, bfctl_env: dict[str, str], destroyed: list[Path]
) -> None:
    project = make_project(
        tmp_path / "tagger", {"main.py": TAGGER, "buildflow.yaml": "app: tagger\nentry_point: main:app\n"}
    )
    (project / "photos").mkdir()
    destroyed.append(project)
    assert run_bfctl(["apply", "--yes"], project, bfctl_env)[0] == 0

    with serving(["--port", "0", "--no-access-log"], project, bfctl_env) as served:
        for name, size in (("first.jpg", 3), ("second.jpg", 5)):
            body, content_type = _multipart("photo", name, b"\xff" * size)
            request = urllib.request.Request(
                served.url + "/photos", data=body, method="POST", headers={"Content-Type": content_type}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200

        def both_photos_are_tagged() -> bool:
            return len(json.loads(served.get("/tags")[1])) == 2

        wait_until(both_photos_are_tagged)
        first, second = json.loads(served.get("/tags")[1])
        assert served.stop() == 0

    assert (first["photo"], second["photo"]) == ("first.jpg", "second.jpg")
    assert first["tags"] == [{"label": "cat", "score": 0.75}, {"label": "bytes-3", "score": 0.25}]
    assert second["tags"][1] == {"label": "bytes-5", "score": 0.25}
    assert first["tagger"] == second["tagger"]  # the model is loaded once per replica


MOTHERDUCK_FLOW = """
import dataclasses

from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable
from buildflow.io.local import LocalFileChangeStream
from buildflow.types.local import FileChangeEvent

app = Flow()
warehouse = {declaration}


@dataclasses.dataclass
class Scan:
    path: str


@app.consumer(source=LocalFileChangeStream(file_path="scans"), sink=warehouse)
def archive(event: FileChangeEvent) -> Scan:
    return Scan(event.file_path)
"""


@pytest.mark.parametrize(
    "declaration",
    [
        'DuckDBTable(database="md:photo_archive?motherduck_token=md-token-do-not-print", table="scans")',
        # BuildFlow 0.3.0 and 0.3.1 took the token as a keyword
        'DuckDBTable(database="md:photo_archive", table="scans", motherduck_token="md-token-do-not-print")',
    ],
)
def test_a_motherduck_table_is_refused_without_showing_its_token(
    tmp_path: Path, bfctl_env: dict[str, str], declaration: str
) -> None:
    project = make_project(tmp_path / "archive", {"main.py": MOTHERDUCK_FLOW.replace("{declaration}", declaration)})
    (project / "scans").mkdir()
    for command in (["plan", "main.py"], ["apply", "--yes", "main.py"], ["serve", "--port", "0", "main.py"]):
        code, output = run_bfctl(command, project, bfctl_env)
        assert code == 1, output
        assert "duckdb:md:photo_archive:scans" in output, output
        assert "MotherDuck" in output and "not supported by bfctl" in output, output
        assert "Traceback" not in output and "md-token-do-not-print" not in output, output
    assert sorted(p.name for p in project.iterdir() if not p.name.startswith(".")) == ["main.py", "scans"]
