"""Form bodies, as BuildFlow flows declared them with ``File``, ``Form`` and ``UploadFile``:
urlencoded and multipart, over real HTTP, with FastAPI's error shape for what does not fit."""

from __future__ import annotations

import pytest

from bfctl.runtime.app import FlowApp
from bfctl.runtime.errors import StartupError
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.requests import File, Form, Request, UploadFile


def upload_flow() -> Flow:
    app = Flow()
    service = app.service()

    @service.endpoint("/photos", method="POST")
    async def upload(photo: UploadFile, caption: str = Form(""), rating: int = Form(...)) -> dict:
        content = await photo.read()
        return {
            "filename": photo.filename,
            "type": photo.content_type,
            "size": photo.size,
            "bytes": len(content),
            "first": content[:5].decode(),
            "caption": caption,
            "rating": rating,
        }

    @service.endpoint("/many", method="POST")
    def many(files: list[UploadFile] = File(...), tags: list[str] = Form([]), raw: bytes = File(b"")) -> dict:
        return {
            "names": [f.filename for f in files],
            "sizes": [len(f.file.read()) for f in files],
            "tags": tags,
            "raw": raw.decode(),
        }

    @service.endpoint("/login", method="POST")
    def login(user: str = Form(..., alias="username"), remember: bool = Form(False)) -> dict:
        return {"user": user, "remember": remember}

    @service.endpoint("/optional", method="POST")
    async def optional(avatar: UploadFile | None = File(None)) -> dict:
        return {"avatar": None if avatar is None else avatar.filename}

    @service.endpoint("/echo", method="POST")
    async def echo(request: Request) -> dict:
        form = await request.form()
        return {"tags": form.getall("tag"), "file": form["doc"].filename}

    return app


def test_multipart_files_and_fields_reach_the_handler() -> None:
    big = b"hello" + b"x" * (2 << 20)  # over the inline read size: read in a thread
    with TestClient(upload_flow()) as client:
        answer = client.post(
            "/photos", data={"caption": "sea", "rating": "4"}, files={"photo": ("sea.jpg", big, "image/jpeg")}
        )
        assert answer.status_code == 200, answer.text
        assert answer.json() == {
            "filename": "sea.jpg",
            "type": "image/jpeg",
            "size": len(big),
            "bytes": len(big),
            "first": "hello",
            "caption": "sea",
            "rating": 4,
        }

        answer = client.post(
            "/many",
            data={"tags": ["a", "b"]},
            files={"files": [("1.txt", b"one", "text/plain"), ("2.txt", b"two!", "text/plain")], "raw": b"bytes"},
        )
        assert answer.json() == {"names": ["1.txt", "2.txt"], "sizes": [3, 4], "tags": ["a", "b"], "raw": "bytes"}

        answer = client.post("/echo", data={"tag": ["x", "y"]}, files={"doc": ("d.pdf", b"%PDF", "application/pdf")})
        assert answer.json() == {"tags": ["x", "y"], "file": "d.pdf"}


def test_urlencoded_fields_with_aliases_and_defaults() -> None:
    with TestClient(upload_flow()) as client:
        assert client.post("/login", data={"username": "ann", "remember": "true"}).json() == {
            "user": "ann",
            "remember": True,
        }
        assert client.post("/login", data={"username": "bob"}).json() == {"user": "bob", "remember": False}
        assert client.post("/optional", data={}).json() == {"avatar": None}
        sent = client.post("/optional", files={"avatar": ("me.png", b"png", "image/png")})
        assert sent.json() == {"avatar": "me.png"}


def test_what_does_not_fit_is_a_422_naming_the_field() -> None:
    with TestClient(upload_flow()) as client:
        missing = client.post("/photos", data={"caption": "no photo"})
        assert missing.status_code == 422
        assert missing.json()["detail"] == [
            {"loc": ["body", "photo"], "msg": "Field required", "type": "missing"},
            {"loc": ["body", "rating"], "msg": "Field required", "type": "missing"},
        ]
        wrong = client.post("/photos", data={"photo": "just text", "rating": "five"})
        assert wrong.status_code == 422
        assert [(e["loc"], e["type"]) for e in wrong.json()["detail"]] == [
            (["body", "photo"], "file_type"),
            (["body", "rating"], "int_parsing"),
        ]
        as_json = client.post("/login", json={"username": "ann"})  # not a form: no fields
        assert as_json.status_code == 422 and as_json.json()["detail"][0]["loc"] == ["body", "username"]
        for content_type in ("multipart/form-data", "multipart/form-data; boundary=xyz"):
            broken = client.post("/photos", content=b"garbage", headers={"Content-Type": content_type})
            assert broken.status_code == 400 and broken.json()["detail"].startswith("Malformed form body: ")
            broken = client.post("/echo", content=b"garbage", headers={"Content-Type": content_type})
            assert broken.status_code == 400 and broken.json()["detail"].startswith("Malformed form body: ")
        file_for_text = client.post("/login", files={"username": ("u.txt", b"ann", "text/plain")})
        assert file_for_text.status_code == 422
        assert file_for_text.json()["detail"][0]["msg"] == "Input should be a text field, not a file"


def test_an_upload_over_the_body_limit_is_a_413() -> None:
    with TestClient(upload_flow(), max_body=4096) as client:
        answer = client.post("/photos", data={"rating": "1"}, files={"photo": ("big.bin", b"x" * 8192, None)})
        assert answer.status_code == 413
        small = client.post("/photos", data={"rating": "1"}, files={"photo": ("small.bin", b"x" * 100, None)})
        assert small.status_code == 200 and small.json()["size"] == 100


def test_the_openapi_document_describes_the_forms() -> None:
    with TestClient(upload_flow()) as client:
        paths = client.get("/openapi.json").json()["paths"]
    photos = paths["/photos"]["post"]["requestBody"]
    assert photos["required"] is True
    schema = photos["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["photo"] == {"type": "string", "format": "binary"}
    assert schema["properties"]["rating"]["type"] == "integer"
    assert schema["required"] == ["photo", "rating"]
    many = paths["/many"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["properties"]
    assert many["files"] == {"type": "array", "items": {"type": "string", "format": "binary"}}
    login = paths["/login"]["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert set(login["properties"]) == {"username", "remember"} and login["required"] == ["username"]


def test_forms_that_cannot_work_are_refused_at_start_up() -> None:
    def refused(declare) -> str:  # type: ignore[no-untyped-def]
        app = Flow()
        declare(app.service())
        with pytest.raises(StartupError) as raised:
            FlowApp(app)
        return str(raised.value)

    def mixed(service) -> None:  # type: ignore[no-untyped-def]
        @service.endpoint("/x", method="POST")
        def x(photo: UploadFile, meta: dict) -> None: ...

    def validated(service) -> None:  # type: ignore[no-untyped-def]
        @service.endpoint("/x", method="POST")
        def x(name: str = Form(..., min_length=3)) -> None: ...

    def nested(service) -> None:  # type: ignore[no-untyped-def]
        @service.endpoint("/x", method="POST")
        def x(meta: dict = Form(...)) -> None: ...

    assert "cannot carry both a JSON body (meta) and a form (photo)" in refused(mixed)
    assert "does not apply the form options min_length" in refused(validated)
    assert "a form field is UploadFile, list[UploadFile], bytes, or text" in refused(nested)
