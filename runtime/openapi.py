"""The OpenAPI document of a flow, built from the compiled handlers, and a page to read it."""

from __future__ import annotations

import contextlib
import functools
import html
import importlib.metadata
import importlib.util
import inspect
import re
import tomllib
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bfctl.runtime.errors import StartupError
from bfctl.runtime.handlers import CompiledHandler
from bfctl.runtime.jsonschema import Schemas
from bfctl.runtime.params import FieldKind, form_kind
from buildflow.flow import DEFAULT_FLOW_ID
from buildflow.service import GeneratedServiceId, Service

OPENAPI_ROUTE = "/openapi.json"
DOCS_ROUTE = "/docs"
REDOC_ROUTE = "/redoc"
#: The distribution whose wheel carries Swagger UI 5's built files (``swagger_ui/static``).
SWAGGER_UI_DIST = "swagger-ui-py"
#: The files the page loads; the wheel also holds Swagger Editor and source maps, not served.
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png")
#: ReDoc's standalone bundle ships inside bfctl (MIT: its licence files sit beside it), as no
#: PyPI package carries it without a web framework; its version is part of the asset URLs.
REDOC_VERSION = "2.5.4"
REDOC_DIRECTORY = Path(__file__).parent / "static" / "redoc"
REDOC_BUNDLE = "redoc.standalone.js"
#: The version a flow's API documents when its project states none.
DEFAULT_API_VERSION = "0.1.0"
#: The tag of every collector's operation; an endpoint's is its service's.
COLLECTORS_TAG = "collectors"

_VALIDATION_ERROR = {
    "type": "object",
    "properties": {
        "detail": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        }
    },
}
_ERROR = {"type": "object", "properties": {"detail": {}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@dataclass(frozen=True)
class ApiInfo:
    """The document's ``info``: what a reader of ``/docs`` sees the API called."""

    title: str
    version: str


def api_info(flow_id: str, project_dir: Path) -> ApiInfo:
    """The flow's name (``Flow(flow_id=...)``, else ``[project] name``) and the version of
    ``[tool.buildflow] version``, else ``[project] version``, from ``project_dir``'s pyproject.toml.

    A pyproject.toml that does not parse leaves the defaults: the loader reports it where it matters.
    """
    pyproject: dict[str, Any] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        pyproject = tomllib.loads((project_dir / "pyproject.toml").read_text(encoding="utf-8"))
    project = _table(pyproject, "project")
    settings = _table(_table(pyproject, "tool"), "buildflow")
    title = flow_id if flow_id != DEFAULT_FLOW_ID else _text(project, "name") or flow_id
    version = _text(settings, "version") or _text(project, "version") or DEFAULT_API_VERSION
    return ApiInfo(title, version)


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def _text(table: dict[str, Any], key: str) -> str:
    value = table.get(key)
    return value.strip() if isinstance(value, str) else ""


def summary_of(name: str) -> str:
    """A handler's summary from its name, as FastAPI makes one: ``get_order`` is "Get Order"
    (``OrderLookup`` is "Order Lookup"); a name that is no identifier (a lambda) gives none."""
    if not name.isidentifier():
        return ""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").split()
    return " ".join(word[:1].upper() + word[1:] for word in words)


def service_tag(service: Service) -> tuple[str, str]:
    """A service's tag and its description: named by its ``service_id`` if it was given one."""
    if isinstance(service.service_id, GeneratedServiceId):
        return service.base_route, f"The service at {service.base_route}"
    return service.service_id, f"Service {service.service_id} at {service.base_route}"


def _operation(handler: CompiledHandler, schemas: Schemas) -> dict[str, Any]:
    doc = inspect.getdoc(handler.fn) or ""
    op: dict[str, Any] = {"operationId": handler.name.replace(".<locals>.", ".")}
    summary = doc.splitlines()[0] if doc else summary_of(handler.name.rpartition(".")[2])
    if summary:
        op["summary"] = summary
    if handler.tag:
        op["tags"] = [handler.tag]
    parameters, body, form = [], [], []
    for where, name, annotation, required in handler.params.described:
        if where == "form":
            form.append((name, *_form_schema(annotation, schemas), required))
            continue
        schema = schemas.of(str if annotation is inspect.Parameter.empty else annotation)
        if where == "body":
            body.append((name, schema, required))
        else:
            parameters.append({"name": name, "in": where, "required": required, "schema": schema})
    if parameters:
        op["parameters"] = parameters
    if body:
        if len(body) == 1:
            schema = body[0][1]
        else:
            schema = {
                "type": "object",
                "properties": {n: s for n, s, _ in body},
                "required": [n for n, _, r in body if r],
            }
        op["requestBody"] = {"required": any(r for *_, r in body), "content": {"application/json": {"schema": schema}}}
    if form:
        media = "multipart/form-data" if any(f for _, _, f, _ in form) else "application/x-www-form-urlencoded"
        properties = {n: s for n, s, _, _ in form}
        schema = {"type": "object", "properties": properties, "required": [n for n, _, _, r in form if r]}
        op["requestBody"] = {"required": any(r for *_, r in form), "content": {media: {"schema": schema}}}
    if handler.is_collector:
        ok = _json({"type": "object", "properties": {"success": {"type": "boolean"}}}, "Rows written")
    else:
        returned = _return_annotation(handler)
        ok = _json(schemas.of(returned) if returned is not None else {}, "OK")
    op["responses"] = {"200": ok}
    if handler.params.described:
        op["responses"]["422"] = _json(_VALIDATION_ERROR, "Invalid input")
    op["responses"]["500"] = _json(_ERROR, "Server error (the body holds a request id)")
    return op


def _form_schema(annotation: Any, schemas: Schemas) -> tuple[dict[str, Any], bool]:
    """A form field's schema, and whether it is a file: files (and bytes) as binary strings."""
    binary = {"type": "string", "format": "binary"}
    kind = form_kind(annotation)[0]
    if kind is FieldKind.UPLOADS:
        return {"type": "array", "items": binary}, True
    if kind in (FieldKind.UPLOAD, FieldKind.BYTES):
        return binary, True
    return schemas.of(str if annotation is inspect.Parameter.empty else annotation), False


def _return_annotation(handler: CompiledHandler) -> Any:
    try:
        return typing.get_type_hints(handler.fn).get("return")
    except Exception:  # an annotation that does not resolve documents as "anything"
        return None


def document(info: ApiInfo, handlers: list[CompiledHandler], tags: dict[str, str]) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``tags`` maps each tag to its description, in the order shown."""
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for handler in handlers:
        if handler.is_websocket:
            continue
        path = re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", handler.route)
        paths.setdefault(path, {})[handler.method.lower()] = _operation(handler, schemas)
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": info.title, "version": info.version}}
    used = {tag for operations in paths.values() for op in operations.values() for tag in op.get("tags", ())}
    if used:
        doc["tags"] = [{"name": name, "description": text} for name, text in tags.items() if name in used]
    doc["paths"] = paths
    if schemas.components:
        doc["components"] = {"schemas": schemas.components}
    return doc


@dataclass(frozen=True)
class Assets:
    """The files a documentation page loads and the URLs they are served under."""

    directory: Path
    route: str  # the page's: its files are under <route>/static/<version>/
    version: str  # part of the URLs, so a new one is fetched anew and an old one may be kept for good
    names: tuple[str, ...]

    @property
    def prefix(self) -> str:
        return f"{self.route}/static/{self.version}"

    def files(self) -> dict[str, Path]:
        """URL path -> file, for every file the page loads."""
        return {f"{self.prefix}/{name}": self.directory / name for name in self.names}


@dataclass(frozen=True)
class DocsPage:
    """A page that renders ``/openapi.json`` from files this server serves: no CDN, works offline."""

    route: str
    body: bytes
    files: dict[str, Path]


@functools.cache
def swagger_ui() -> Assets:
    """Find Swagger UI in the installed swagger-ui-py wheel, so ``/docs`` needs no network.

    ``find_spec`` locates the package without importing it (its ``__init__`` pulls in jinja2,
    PyYAML and its framework adapters, none of which is needed to serve files).
    """
    spec = importlib.util.find_spec("swagger_ui")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        directory = Path(location) / "static"
        if all((directory / name).is_file() for name in SWAGGER_UI_FILES):
            return Assets(directory, DOCS_ROUTE, importlib.metadata.version(SWAGGER_UI_DIST), SWAGGER_UI_FILES)
    raise StartupError(
        f"/docs needs Swagger UI from the {SWAGGER_UI_DIST} package, which is missing or incomplete: "
        f"pip install '{SWAGGER_UI_DIST}>=25.7' (or reinstall bfctl with its dependencies)"
    )


def redoc() -> Assets:
    return Assets(REDOC_DIRECTORY, REDOC_ROUTE, REDOC_VERSION, (REDOC_BUNDLE,))


def docs_pages(title: str, taken: set[str]) -> list[DocsPage]:
    """``/docs`` (Swagger UI, linking to ReDoc) and ``/redoc``, each unless the flow declares its route."""
    pages = []
    if DOCS_ROUTE not in taken:
        ui = swagger_ui()
        link = "" if REDOC_ROUTE in taken else f'<p class="bf-links"><a href="{REDOC_ROUTE}">ReDoc</a></p>'
        pages.append(DocsPage(DOCS_ROUTE, _swagger_page(title, ui, link).encode(), ui.files()))
    if REDOC_ROUTE not in taken:
        assets = redoc()
        pages.append(DocsPage(REDOC_ROUTE, _redoc_page(title, assets).encode(), assets.files()))
    return pages


def _swagger_page(title: str, ui: Assets, link: str) -> str:
    """Swagger UI reading ``/openapi.json``."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)} - API</title>
<link rel="stylesheet" href="{ui.prefix}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ui.prefix}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{ui.prefix}/favicon-16x16.png" sizes="16x16">
<style>.bf-links {{font-family: sans-serif; max-width: 1460px; margin: 12px auto 0; padding: 0 20px}}</style></head>
<body>{link}<div id="ui"></div>
<script src="{ui.prefix}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{OPENAPI_ROUTE}", dom_id: "#ui", validatorUrl: null}});</script>
</body></html>"""


def _redoc_page(title: str, assets: Assets) -> str:
    """ReDoc reading ``/openapi.json``."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)} - API</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><redoc spec-url="{OPENAPI_ROUTE}"></redoc>
<script src="{assets.prefix}/{REDOC_BUNDLE}"></script>
</body></html>"""
