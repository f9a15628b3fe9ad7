"""The OpenAPI document of a flow, built from the compiled handlers, and a page to read it."""

from __future__ import annotations

import functools
import html
import importlib.metadata
import importlib.util
import inspect
import re
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bfctl.runtime.errors import StartupError
from bfctl.runtime.handlers import CompiledHandler
from bfctl.runtime.jsonschema import Schemas
from bfctl.runtime.params import FieldKind, form_kind

OPENAPI_ROUTE = "/openapi.json"
DOCS_ROUTE = "/docs"
#: Where the Swagger UI files are served; the package version follows, so they can be cached for good.
DOCS_STATIC_ROUTE = DOCS_ROUTE + "/static"
#: The distribution whose wheel carries Swagger UI 5's built files (``swagger_ui/static``).
SWAGGER_UI_DIST = "swagger-ui-py"
#: The files the page loads; the wheel also holds Swagger Editor and source maps, not served.
SWAGGER_UI_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "favicon-16x16.png")

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


def _operation(handler: CompiledHandler, schemas: Schemas) -> dict[str, Any]:
    doc = inspect.getdoc(handler.fn) or ""
    op: dict[str, Any] = {"operationId": handler.name.replace(".<locals>.", ".")}
    if doc:
        op["summary"] = doc.splitlines()[0]
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


def document(title: str, version: str, handlers: list[CompiledHandler]) -> dict[str, Any]:
    schemas = Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for handler in handlers:
        if handler.is_websocket:
            continue
        path = re.sub(r"\{(\w+):[^{}]*\}", r"{\1}", handler.route)
        paths.setdefault(path, {})[handler.method.lower()] = _operation(handler, schemas)
    doc: dict[str, Any] = {"openapi": "3.1.0", "info": {"title": title, "version": version}, "paths": paths}
    if schemas.components:
        doc["components"] = {"schemas": schemas.components}
    return doc


@dataclass(frozen=True)
class SwaggerUI:
    """The installed Swagger UI files and the URLs they are served under."""

    directory: Path
    version: str  # of the swagger-ui-py distribution: part of the URLs, so a new one is fetched anew

    @property
    def prefix(self) -> str:
        return f"{DOCS_STATIC_ROUTE}/{self.version}"

    def files(self) -> dict[str, Path]:
        """URL path -> file, for every file the page loads."""
        return {f"{self.prefix}/{name}": self.directory / name for name in SWAGGER_UI_FILES}


@functools.cache
def swagger_ui() -> SwaggerUI:
    """Find Swagger UI in the installed swagger-ui-py wheel, so ``/docs`` needs no network.

    ``find_spec`` locates the package without importing it (its ``__init__`` pulls in jinja2,
    PyYAML and its framework adapters, none of which is needed to serve files).
    """
    spec = importlib.util.find_spec("swagger_ui")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        directory = Path(location) / "static"
        if all((directory / name).is_file() for name in SWAGGER_UI_FILES):
            return SwaggerUI(directory, importlib.metadata.version(SWAGGER_UI_DIST))
    raise StartupError(
        f"/docs needs Swagger UI from the {SWAGGER_UI_DIST} package, which is missing or incomplete: "
        f"pip install '{SWAGGER_UI_DIST}>=25.7' (or reinstall bfctl with its dependencies)"
    )


def docs_page(title: str, ui: SwaggerUI) -> str:
    """Swagger UI reading ``/openapi.json``; every file it loads is served by this server."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)} - API</title>
<link rel="stylesheet" href="{ui.prefix}/swagger-ui.css">
<link rel="icon" type="image/png" href="{ui.prefix}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="{ui.prefix}/favicon-16x16.png" sizes="16x16"></head>
<body><div id="ui"></div>
<script src="{ui.prefix}/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{OPENAPI_ROUTE}", dom_id: "#ui", validatorUrl: null}});</script>
</body></html>"""
