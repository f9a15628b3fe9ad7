"""The app of the HTTP tests: one route for each kind of request value, response and error
(test_http, test_fuzz and test_openapi_fuzz serve it)."""

from __future__ import annotations

import dataclasses
import uuid

import pydantic
from aiohttp import web

from buildflow import Flow
from buildflow.exceptions import HTTPException
from buildflow.requests import Request
from buildflow.responses import HTMLResponse, JSONResponse, RedirectResponse


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list[str] = dataclasses.field(default_factory=list)
    note: str | None = None


class PItem(pydantic.BaseModel):
    name: str
    qty: int


def make_app() -> Flow:
    app = Flow()
    svc = app.service()
    api = app.service(base_route="/api")

    @svc.endpoint("/items/{item_id}", method="GET")
    def get_item(item_id: int, verbose: bool = False, q: str | None = None):
        return {"item_id": item_id, "verbose": verbose, "q": q}

    @svc.endpoint("/uuid/{key}", method="GET")
    async def by_uuid(key: uuid.UUID, scale: float = 1.0):
        return {"key": str(key), "scale": scale}

    @svc.endpoint("/need", method="GET")
    def needs_query(limit: int, ids: list[int] = []):  # noqa: B006 - default is never mutated
        return {"limit": limit, "ids": ids}

    @svc.endpoint("/items", method="POST")
    def create(item: Item):
        return item

    @svc.endpoint("/pitems", method="POST")
    async def create_p(item: PItem):
        return item

    @svc.endpoint("/pair", method="POST")
    def pair(a: Item, b: PItem):
        return {"a": a.name, "b": b.qty}

    @api.endpoint("/kinds/{kind}", method="GET")
    def kinds(kind: str):
        return kind

    @svc.endpoint(route="/text", method="get")
    def text():
        return "plain"

    @svc.endpoint("/none")
    def none():
        return None

    @svc.endpoint("/bytes")
    def raw_bytes():
        return b"\x00\x01"

    @svc.endpoint("/list")
    async def a_list():
        return [Item("a", 1.0), {"x": 1}, 3]

    @svc.endpoint("/aio")
    def aio():
        return web.Response(text="custom", status=201, headers={"X-Custom": "1"})

    @svc.endpoint("/html")
    def html():
        return HTMLResponse("<b>hi</b>", headers={"X-H": "y"})

    @svc.endpoint("/jsonresp")
    def jsonresp():
        return JSONResponse({"ok": True}, status_code=202)

    @svc.endpoint("/redirect")
    def redirect():
        return RedirectResponse("/text")

    @svc.endpoint("/teapot")
    def teapot():
        raise HTTPException(418, "short and stout", headers={"X-Tea": "earl grey"})

    @svc.endpoint("/boom")
    def boom():
        raise RuntimeError("secret internals")

    @svc.endpoint("/unserializable")
    def unserializable():
        return object()

    @svc.endpoint("/whoami")
    async def whoami(request: Request, raw: web.Request):
        return {
            "ua": request.headers.get("User-Agent"),
            "path": request.url.path,
            "same": raw is request.raw,
            "q": request.query_params.get("x"),
        }

    @svc.endpoint("/echo", method="PUT")
    async def echo(request: Request):
        return {"body": (await request.body()).decode(errors="replace")}

    @svc.endpoint("/things/{tid}", method="DELETE")
    def delete_thing(tid: int):
        return {"deleted": tid}

    return app
