"""The OpenAPI document of a flow, built from the compiled handlers, and a page to read it."""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from runtime.handlers import CompiledHandler
from runtime.jsonschema import Schemas

OPENAPI_ROUTE = "/openapi.json"
DOCS_ROUTE = "/docs"

_VALIDATION_ERROR = {
    "type": "object",
    "properties": {"detail": {"type": "array", "items": {
        "type": "object",
        "properties": {"loc": {"type": "array", "items": {}}, "msg": {"type": "string"}, "type": {"type": "string"}},
    }}},
}
_ERROR = {"type": "object", "properties": {"detail": {}}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _operation(handler: CompiledHandler, schemas: Schemas) -> dict[str, Any]:
    doc = inspect.getdoc(handler.fn) or ""
    op: dict[str, Any] = {"operationId": handler.name.replace(".<locals>.", ".")}
    if doc:
        op["summary"] = doc.splitlines()[0]
    parameters, body = [], []
    for where, name, annotation, required in handler.params.described:
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
            schema = {"type": "object", "properties": {n: s for n, s, _ in body},
                      "required": [n for n, _, r in body if r]}
        op["requestBody"] = {"required": any(r for *_, r in body), "content": {"application/json": {"schema": schema}}}
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


def docs_page(title: str) -> str:
    """Swagger UI reading ``/openapi.json`` (its scripts come from the jsDelivr CDN)."""
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{title} - API</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css"></head>
<body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({{url: "{OPENAPI_ROUTE}", dom_id: "#ui"}});</script>
</body></html>"""
