"""``/docs`` (Swagger UI) and ``/redoc`` served by the flow's own server, rendered by a real
browser, and what the document they read says of the flow.

The browser tests run Debian's Chromium headless against ``bfctl serve`` over loopback, with
every host name but the server's made unresolvable, so a page that needed a CDN would render
nothing. Chromium is a test requirement (``.ci/run`` installs it): without it the tests fail.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

import pytest
from support import serving, write

from bfctl.runtime import openapi
from bfctl.testing import TestClient
from buildflow import Flow
from buildflow.io.duckdb import DuckDBTable

CHROMIUM_TIMEOUT = 120.0

SHOP = """\
from dataclasses import dataclass

from buildflow import Flow

app = Flow(flow_id="shop")
svc = app.service()
api = app.service(base_route="/api")


@dataclass
class Item:
    name: str
    price: float


@svc.endpoint("/items", method="GET")
def list_items(limit: int = 10) -> list[Item]:
    \"\"\"Every item.\"\"\"
    return []


@svc.endpoint("/items", method="POST")
def create_item(item: Item) -> Item:
    return item


@svc.endpoint("/items/{item_id}", method="GET")
def get_item(item_id: int) -> Item:
    return Item("pen", 1.5)


@svc.endpoint("/items/{item_id}", method="PUT")
def replace_item(item_id: int, item: Item) -> Item:
    return item


@svc.endpoint("/items/{item_id}", method="DELETE")
def delete_item(item_id: int) -> None:
    return None


@api.endpoint("/users/{user_id}/orders/{order_id}", method="GET")
def get_order(user_id: str, order_id: int) -> dict:
    return {"user": user_id, "order": order_id}
"""

SHOP_OPERATIONS = {
    ("GET", "/items"),
    ("POST", "/items"),
    ("GET", "/items/{item_id}"),
    ("PUT", "/items/{item_id}"),
    ("DELETE", "/items/{item_id}"),
    ("GET", "/api/users/{user_id}/orders/{order_id}"),
}


class _Operations(HTMLParser):
    """(method, path) of every element of class ``opblock``, as Swagger UI renders operations:
    the text of its ``.opblock-summary-method`` and ``.opblock-summary-path`` spans (the path
    broken by ``<wbr>``), and the path span's ``data-path``."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks: list[dict[str, str]] = []
        self._field: str | None = None  # the summary span being read
        self._depth = 0  # of spans inside it

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = (attributes.get("class") or "").split()
        if self._field is not None:
            self._depth += tag == "span"
        elif "opblock" in classes:
            self.blocks.append({"method": "", "path": "", "data-path": ""})
        elif self.blocks and tag == "span" and "opblock-summary-method" in classes:
            self._field, self._depth = "method", 1
        elif self.blocks and tag == "span" and "opblock-summary-path" in classes:
            self._field, self._depth = "path", 1
            self.blocks[-1]["data-path"] = attributes.get("data-path") or ""

    def handle_endtag(self, tag: str) -> None:
        if self._field is not None and tag == "span":
            self._depth -= 1
            if self._depth == 0:
                self._field = None

    def handle_data(self, data: str) -> None:
        if self._field is not None:
            self.blocks[-1][self._field] += data

    def operations(self) -> set[tuple[str, str]]:
        return {(b["method"].strip(), b["path"].strip()) for b in self.blocks}


class _Links(HTMLParser):
    """Every ``src`` and ``href`` of a page: what a browser would fetch from it."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def _chromium() -> str:
    """The Chromium binary; its absence fails the test (a skip would hide that /docs went unchecked)."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail(
            "chromium is not installed, so /docs cannot be checked in a browser: "
            "apt-get install -y chromium (.ci/run installs it when missing)"
        )
    return binary


def _rendered_dom(chromium: str, url: str, profile: Path) -> str:
    """The DOM Chromium holds once the page settled (virtual time runs the scripts to the end).

    ``--host-resolver-rules`` makes every host name but loopback fail to resolve, so the test
    passes only if the page needs nothing but the flow's server.
    """
    command = [
        chromium,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--dump-dom",
        "--virtual-time-budget=8000",
        url,
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=CHROMIUM_TIMEOUT)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"chromium did not finish within {CHROMIUM_TIMEOUT}s:\n{e.stderr!s}")
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr}"
    return result.stdout


def test_docs_render_every_operation_in_chromium(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    chromium = _chromium()
    write(tmp_path / "shop.py", SHOP)
    ui = openapi.swagger_ui()

    with serving(["shop.py:app", "--port", "0"], tmp_path, bfctl_env) as server:
        status, page = server.get("/docs")
        document = json.loads(server.get("/openapi.json")[1])
        dom = _rendered_dom(chromium, server.url + "/docs", tmp_path / "chromium-profile")
        code = server.stop()

    assert code == 0, server.output
    assert status == 200
    links = _Links()
    links.feed(page)
    assert links.urls, page
    assert all(url.startswith("/") and not url.startswith("//") for url in links.urls), links.urls
    documented = {(m.upper(), p) for p, ops in document["paths"].items() for m in ops}
    assert documented == SHOP_OPERATIONS

    rendered = _Operations()
    rendered.feed(dom)
    assert len(rendered.blocks) == len(SHOP_OPERATIONS), dom
    assert all(b["path"] == b["data-path"] for b in rendered.blocks), rendered.blocks
    assert rendered.operations() == SHOP_OPERATIONS, dom
    assert "OAS 3.1" in dom  # Swagger UI read the document as OpenAPI 3.1
    assert "/redoc" in links.urls  # the page links to ReDoc
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        fetched = rf'"GET {re.escape(ui.prefix)}/{re.escape(name)} HTTP/1\.1" 200 '
        assert re.search(fetched, server.output), server.output


def _flow(*routes: str) -> Flow:
    app = Flow()
    svc = app.service()
    for route in routes:
        svc.endpoint(route, method="GET")(lambda: "mine")
    return app


class _Text(HTMLParser):
    """The text a page shows, outside its scripts and styles."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def test_redoc_renders_every_operation_offline_in_chromium(tmp_path: Path, bfctl_env: dict[str, str]) -> None:
    chromium = _chromium()
    write(tmp_path / "shop.py", SHOP.replace('Flow(flow_id="shop")', "Flow()"))
    write(tmp_path / "pyproject.toml", BOOKSHOP)

    with serving(["shop.py:app", "--port", "0"], tmp_path, bfctl_env) as server:
        status, page = server.get("/redoc")
        dom = _rendered_dom(chromium, server.url + "/redoc", tmp_path / "chromium-profile")
        code = server.stop()

    assert code == 0, server.output
    assert status == 200
    links = _Links()
    links.feed(page)
    assert links.urls == [f"/redoc/static/{openapi.REDOC_VERSION}/redoc.standalone.js"], page
    assert re.search(rf'"GET {re.escape(links.urls[0])} HTTP/1\.1" 200 ', server.output), server.output
    shown = _Text()
    shown.feed(dom)
    text = " | ".join(shown.parts)
    assert "bookshop | (2.3.0)" in text, text  # ReDoc's heading: the project's name and version
    assert "/api | The service at /api" in text, text  # a section per service
    # every operation, under its summary: the docstring's first line, else the function's name
    for summary in ("Every item.", "Create Item", "Get Item", "Replace Item", "Delete Item", "Get Order"):
        assert summary in shown.parts, text
    assert "/api/users/{user_id}/orders/{order_id}" in text, text


BOOKSHOP = '[project]\nname = "bookshop"\nversion = "2.3.0"\n'
#: case -> (pyproject.toml or None, Flow's keyword arguments, (title, version) documented)
PROJECTS: dict[str, tuple[str | None, dict[str, str], tuple[str, str]]] = {
    "no pyproject.toml": (None, {}, ("buildflow-app", "0.1.0")),
    "the project's name and version": (BOOKSHOP, {}, ("bookshop", "2.3.0")),
    "the flow's own name wins": (BOOKSHOP, {"flow_id": "shop"}, ("shop", "2.3.0")),
    "[tool.buildflow] version wins": (
        BOOKSHOP + '[tool.buildflow]\napp = "main:app"\nversion = "2026.12"\n',
        {},
        ("bookshop", "2026.12"),
    ),
    "a dynamic version": ('[project]\nname = "bookshop"\ndynamic = ["version"]\n', {}, ("bookshop", "0.1.0")),
    "a pyproject.toml that does not parse": ("[project\n", {}, ("buildflow-app", "0.1.0")),
}


@pytest.mark.parametrize("case", PROJECTS)
def test_document_is_named_by_the_flow_or_its_project(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pyproject, flow_kwargs, (title, version) = PROJECTS[case]
    if pyproject is not None:
        write(tmp_path / "pyproject.toml", pyproject)
    monkeypatch.chdir(tmp_path)
    app = Flow(**flow_kwargs)
    app.service().endpoint("/hello")(lambda: "hi")
    with TestClient(app) as client:
        info = client.get("/openapi.json").json()["info"]
        page = client.get("/docs").text
    assert info == {"title": title, "version": version}
    assert f"<title>{title} - API</title>" in page


@dataclass
class Event:
    name: str


def test_operations_have_summaries_and_are_tagged_by_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    app = Flow(flow_id="shop")
    root = app.service()
    store = app.service(base_route="/store", service_id="storefront")
    api = app.service(base_route="/api")

    @root.endpoint("/bob")
    def bob() -> str:
        return "bob"

    @store.endpoint("/orders/{order_id}")
    def get_order(order_id: int) -> dict[str, int]:
        """One order, by its number.

        The rest of the docstring is the operation's description, not its summary.
        """
        return {"order": order_id}

    class OrderLookup:
        def process(self, order_id: int) -> int:
            return order_id

    api.endpoint("/lookup")(OrderLookup)
    api.endpoint("/anonymous")(lambda: "hi")

    @app.collector("/events", method="POST", sink=DuckDBTable(database="rows.duckdb", table="events"))
    def record_event(name: str) -> Event:
        return Event(name)

    with TestClient(app) as client:
        document = client.get("/openapi.json").json()

    operations = {path: next(iter(ops.values())) for path, ops in document["paths"].items()}
    summaries = {path: op.get("summary") for path, op in operations.items()}
    assert summaries == {
        "/bob": "Bob",
        "/store/orders/{order_id}": "One order, by its number.",
        "/api/lookup": "Order Lookup",
        "/api/anonymous": None,  # a lambda has no name to make one from
        "/events": "Record Event",
    }
    tags = {path: op["tags"] for path, op in operations.items()}
    assert tags == {
        "/bob": ["/"],
        "/store/orders/{order_id}": ["storefront"],
        "/api/lookup": ["/api"],
        "/api/anonymous": ["/api"],
        "/events": ["collectors"],
    }
    assert [t["name"] for t in document["tags"]] == ["/", "storefront", "/api", "collectors"]
    assert document["tags"][1]["description"] == "Service storefront at /store"


def test_swagger_ui_files_are_served_with_long_cache_headers() -> None:
    ui = openapi.swagger_ui()
    assert ui.prefix == f"/docs/static/{ui.version}"
    with TestClient(_flow("/hello")) as client:
        bundle = client.get(f"{ui.prefix}/swagger-ui-bundle.js")
        css = client.get(f"{ui.prefix}/swagger-ui.css")
        not_served = client.get(f"{ui.prefix}/swagger-editor.js")
        head = client.request("HEAD", f"{ui.prefix}/swagger-ui.css")

    assert bundle.status_code == 200 and b"SwaggerUIBundle" in bundle.content
    assert re.search(rb'"5\.\d+\.\d+"', bundle.content)  # Swagger UI 5: it renders OpenAPI 3.1
    assert "javascript" in bundle.headers["Content-Type"]
    assert css.status_code == 200 and css.headers["Content-Type"].startswith("text/css")
    for response in (bundle, css):
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert head.status_code == 200
    assert not_served.status_code == 404


def test_redoc_bundle_is_served_with_its_licence_beside_it_in_the_package() -> None:
    redoc = openapi.redoc()
    with TestClient(_flow("/hello")) as client:
        bundle = client.get(f"/redoc/static/{openapi.REDOC_VERSION}/redoc.standalone.js")
    assert bundle.status_code == 200 and b'getAttribute("spec-url")' in bundle.content
    # the version in the URLs is the bundle's, which its licence notices name
    notices = (redoc.directory / "redoc.standalone.js.LICENSE.txt").read_text()
    assert "ReDoc - OpenAPI/Swagger-generated API Reference Documentation" in notices
    assert f'Version: "{openapi.REDOC_VERSION}"' in notices
    assert bundle.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "MIT License" in (redoc.directory / "LICENSE").read_text()


def test_docs_routes_give_way_to_the_flow_routes() -> None:
    ui = openapi.swagger_ui()
    # the flow's route matches the asset URLs: they are not registered, so it keeps its requests
    with TestClient(_flow("/docs/{rest:.*}")) as client:
        asset = client.get(f"{ui.prefix}/swagger-ui.css")
        docs = client.get("/docs")
    assert (asset.status_code, asset.json()) == (200, "mine")
    assert docs.status_code == 404
    # the flow declares /docs itself: neither the page nor its files are added
    with TestClient(_flow("/docs")) as client:
        assert client.get("/docs").json() == "mine"
        assert client.get(f"{ui.prefix}/swagger-ui.css").status_code == 404
        assert client.get("/redoc").status_code == 200
    # the flow declares /redoc: /docs does not link to ReDoc
    with TestClient(_flow("/redoc")) as client:
        assert client.get("/redoc").json() == "mine"
        assert 'href="/redoc"' not in client.get("/docs").text
