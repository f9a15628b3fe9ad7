"""Requests and responses over real loopback HTTP: parsing, validation, errors, return values."""

from __future__ import annotations

import logging
import uuid

import pytest
from aiohttp import web
from flows.http_app import make_app

from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.requests import Request, WebSocket


@pytest.fixture(scope="module")
def client():
    with TestClient(make_app(), max_body=1024) as c:
        yield c


def test_path_and_query_are_converted_by_annotation(client):
    r = client.get("/items/5", params={"verbose": "true", "q": "x"})
    assert r.status_code == 200
    assert r.json() == {"item_id": 5, "verbose": True, "q": "x"}
    assert client.get("/items/5").json() == {"item_id": 5, "verbose": False, "q": None}
    key = uuid.uuid4()
    assert client.get(f"/uuid/{key}", params={"scale": "2.5"}).json() == {"key": str(key), "scale": 2.5}


def test_base_route_prefixes_endpoints(client):
    assert client.get("/api/kinds/fruit").json() == "fruit"
    assert client.get("/kinds/fruit").status_code == 404


def test_bad_path_and_query_values_are_422_naming_each_field(client):
    r = client.get("/items/abc", params={"verbose": "maybe"})
    assert r.status_code == 422
    locs = [e["loc"] for e in r.json()["detail"]]
    assert ["path", "item_id"] in locs and ["query", "verbose"] in locs
    r = client.get("/uuid/not-a-uuid")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "key"]


def test_required_query_and_repeated_keys(client):
    r = client.get("/need")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["query", "limit"], "msg": "Field required", "type": "missing"}]
    assert client.get("/need?limit=3&ids=1&ids=2").json() == {"limit": 3, "ids": [1, 2]}
    assert client.get("/need?limit=3&ids=x").status_code == 422


def test_dataclass_body_without_pydantic(client):
    r = client.post("/items", json={"name": "pen", "price": 2, "tags": ["a"]})
    assert r.status_code == 200
    assert r.json() == {"name": "pen", "price": 2.0, "tags": ["a"], "note": None}


def test_dataclass_body_errors_name_every_bad_field(client):
    r = client.post("/items", json={"price": "cheap", "tags": ["ok", 5]})
    assert r.status_code == 422
    errors = {tuple(e["loc"]): e["type"] for e in r.json()["detail"]}
    assert errors == {
        ("body", "name"): "missing",
        ("body", "price"): "float_parsing",
        ("body", "tags", 1): "string_type",
    }


def test_body_must_be_an_object(client):
    r = client.post("/items", json=[1, 2])
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body"]


def test_missing_body_is_422(client):
    r = client.post("/items")
    assert r.status_code == 422
    assert r.json()["detail"] == [{"loc": ["body"], "msg": "Field required", "type": "missing"}]


def test_malformed_json_is_400(client):
    r = client.post("/items", content=b'{"name": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "Malformed JSON" in r.json()["detail"]


def test_pydantic_body_and_errors(client):
    assert client.post("/pitems", json={"name": "a", "qty": "3"}).json() == {"name": "a", "qty": 3}
    r = client.post("/pitems", json={"name": "a", "qty": "many"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "qty"]


def test_two_body_parameters_are_embedded_by_name(client):
    r = client.post("/pair", json={"a": {"name": "x", "price": 1}, "b": {"name": "y", "qty": 2}})
    assert r.json() == {"a": "x", "b": 2}
    r = client.post("/pair", json={"a": {"name": "x", "price": 1}})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "b"]


def test_body_over_the_limit_is_413_json(client):
    r = client.post(
        "/items", content=b'{"name": "' + b"x" * 4000 + b'", "price": 1}', headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert "1024" in r.json()["detail"]


def test_handler_reading_a_body_over_the_limit_is_413_json(caplog):
    """aiohttp raises its HTTP errors from ``read()``: they answer with their own status as JSON,
    whichever way the handler reads the body, and are not logged as server errors."""
    app = Flow()
    svc = app.service()

    @svc.endpoint("/body", method="POST")
    async def body(request: Request):
        return len(await request.body())

    @svc.endpoint("/json", method="POST")
    async def as_json(request: Request):
        return await request.json()

    @svc.endpoint("/text", method="PUT")
    async def as_text(request: Request):
        return await request.text()

    @svc.endpoint("/raw", method="POST")
    async def raw_read(raw: web.Request):
        return len(await raw.read())

    with TestClient(app, max_body=1024) as c, caplog.at_level(logging.ERROR, logger="buildflow.runtime"):
        assert c.post("/body", content=b"x" * 1024).json() == 1024
        for method, path in [("POST", "/body"), ("POST", "/json"), ("PUT", "/text"), ("POST", "/raw")]:
            r = c.request(
                method, path, content=b'{"a": "' + b"x" * 4000 + b'"}', headers={"Content-Type": "application/json"}
            )
            assert r.status_code == 413, (path, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json")
            assert set(r.json()) == {"detail"} and "1024" in r.json()["detail"]
    assert not caplog.records


def test_aiohttp_http_errors_keep_their_status_and_headers(caplog):
    """An aiohttp HTTP error raised in a handler, or by a failed WebSocket handshake, answers
    with its status and headers as JSON."""
    app = Flow()
    svc = app.service()

    @svc.endpoint("/slow-down")
    async def slow_down():
        raise web.HTTPTooManyRequests(headers={"Retry-After": "3"})

    @svc.endpoint("/ws", method="websocket")
    async def ws(websocket: WebSocket):
        await websocket.accept()  # a plain GET cannot be upgraded: aiohttp raises 400
        await websocket.send_text("never")

    with TestClient(app) as c, caplog.at_level(logging.ERROR, logger="buildflow.runtime"):
        r = c.get("/slow-down")
        assert (r.status_code, r.headers["Retry-After"], r.json()) == (429, "3", {"detail": "429: Too Many Requests"})
        assert r.headers["Content-Type"].startswith("application/json")
        r = c.get("/ws")
        assert r.status_code == 400 and r.headers["Content-Type"].startswith("application/json")
        assert "WebSocket" in r.json()["detail"]
    assert not caplog.records


def test_unknown_route_is_404_json(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {"detail": "No route for /nowhere"}


def test_wrong_method_is_405_with_allow(client):
    r = client.delete("/text")
    assert r.status_code == 405
    assert r.headers["Allow"] == "GET"
    assert "not allowed" in r.json()["detail"]


def test_return_values_follow_buildflow(client):
    r = client.get("/text")
    assert r.json() == "plain" and r.headers["Content-Type"] == "application/json"
    r = client.get("/none")
    assert r.status_code == 200 and r.content == b"null"
    r = client.get("/bytes")
    assert r.content == b"\x00\x01" and r.headers["Content-Type"] == "application/octet-stream"
    assert client.get("/list").json() == [{"name": "a", "price": 1.0, "tags": [], "note": None}, {"x": 1}, 3]
    assert client.post("/items", json={"name": "p", "price": 1}).headers["Content-Type"] == "application/json"


def test_responses_pass_through(client):
    r = client.get("/aio")
    assert (r.status_code, r.text, r.headers["X-Custom"]) == (201, "custom", "1")
    r = client.get("/html")
    assert r.text == "<b>hi</b>" and r.headers["Content-Type"].startswith("text/html") and r.headers["X-H"] == "y"
    r = client.get("/jsonresp")
    assert r.status_code == 202 and r.json() == {"ok": True}
    r = client.request("GET", "/redirect")
    assert r.json() == "plain"  # the client followed the 307


def test_http_exception_sets_status_body_and_headers(client):
    r = client.get("/teapot")
    assert r.status_code == 418
    assert r.json() == {"detail": "short and stout"}
    assert r.headers["X-Tea"] == "earl grey"


def test_handler_error_is_500_with_request_id_and_logged_traceback(client, caplog):
    with caplog.at_level(logging.ERROR, logger="buildflow.runtime"):
        r = client.get("/boom")
    assert r.status_code == 500
    body = r.json()
    assert body["detail"] == "Internal Server Error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    rid = body["request_id"]
    assert r.headers["X-Request-ID"] == rid
    logged = [rec for rec in caplog.records if rid in rec.getMessage()]
    assert logged and "secret internals" in str(logged[0].exc_info[1])


def test_incoming_request_id_is_kept(client):
    r = client.get("/boom", headers={"X-Request-ID": "abc123"})
    assert r.json()["request_id"] == "abc123"


def test_unserializable_return_is_500_not_a_crash(client):
    r = client.get("/unserializable")
    assert r.status_code == 500 and "request_id" in r.json()


def test_request_injection(client):
    r = client.get("/whoami?x=7", headers={"User-Agent": "tester"})
    assert r.json() == {"ua": "tester", "path": "/whoami", "same": True, "q": "7"}
    assert client.put("/echo", content=b"hello").json() == {"body": "hello"}
    assert client.delete("/things/9").json() == {"deleted": 9}


def test_health_route(client):
    r = client.get("/_bf/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_openapi_document_describes_routes_and_types(client):
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    get_item = doc["paths"]["/items/{item_id}"]["get"]
    params = {p["name"]: (p["in"], p["required"], p["schema"]) for p in get_item["parameters"]}
    assert params["item_id"] == ("path", True, {"type": "integer"})
    assert params["verbose"] == ("query", False, {"type": "boolean"})
    create = doc["paths"]["/items"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Item"}
    item = doc["components"]["schemas"]["Item"]
    assert item["required"] == ["name", "price"] and item["properties"]["tags"]["type"] == "array"
    assert "422" in create["responses"]
    assert doc["components"]["schemas"]["PItem"]["properties"]["qty"]["type"] == "integer"
    page = client.get("/docs")
    assert page.status_code == 200 and "/openapi.json" in page.text


def test_unmatched_paths_with_control_characters_are_json(client):
    r = client.get("/x%0Ay")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    r = client.request("POST", "/text%0A")  # another path than /text (GET only): no route, not 405
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")


def test_streaming_and_file_responses(tmp_path):
    from buildflow.responses import FileResponse, StreamingResponse

    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    app = Flow()
    svc = app.service()

    @svc.endpoint("/stream")
    async def stream():
        async def numbers():
            for i in range(3):
                yield f"{i}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

    @svc.endpoint("/file")
    def file():
        return FileResponse(report, media_type="text/csv", filename="report.csv")

    with TestClient(app) as c:
        r = c.get("/stream")
        assert r.text == "0\n1\n2\n" and r.headers["Content-Type"].startswith("text/plain")
        r = c.get("/file")
        assert r.text == "a,b\n1,2\n" and r.headers["Content-Type"].startswith("text/csv")
        assert r.headers["Content-Disposition"] == 'attachment; filename="report.csv"'


def test_metrics_are_not_served_on_cloud_run_unless_asked(monkeypatch):
    """A public Cloud Run service would show its route, sink and consumer names to anyone."""
    from bfctl.runtime.app import FlowApp
    from bfctl.runtime.errors import StartupError

    monkeypatch.setenv("K_SERVICE", "api")
    with TestClient(make_app()) as c:
        hidden = c.get("/_bf/metrics")
        assert hidden.status_code == 404 and hidden.json() == {"detail": "No route for /_bf/metrics"}
        assert c.get("/docs").status_code == 200  # the API's own description, as FastAPI serves it
    monkeypatch.setenv("BFCTL_METRICS", "on")
    with TestClient(make_app()) as c:
        assert "buildflow_requests_total" in c.get("/_bf/metrics").text
    monkeypatch.delenv("K_SERVICE")
    monkeypatch.setenv("BFCTL_METRICS", "off")
    with TestClient(make_app()) as c:
        assert c.get("/_bf/metrics").status_code == 404
    monkeypatch.setenv("BFCTL_METRICS", "maybe")
    with pytest.raises(StartupError, match="BFCTL_METRICS='maybe': use on or off"):
        FlowApp(make_app())
