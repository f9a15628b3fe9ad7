"""Handler arguments that come from the client: path, query and JSON body.

Compiled once per handler; ``parse`` is the per-request part and does no reflection.
"""

from __future__ import annotations

import inspect
from typing import Any

import orjson

from buildflow.types.fields import Invalid, parse_type
from runtime.validation import Converter, compile_node, compile_type


class ClientError(Exception):
    """The client sent something unusable: answered with ``status`` and a JSON ``body``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status = status
        self.body = body
        self.headers = headers or {}


_MISSING = inspect.Parameter.empty


def _converter(annotation: Any) -> Converter:
    return compile_type(str if annotation is _MISSING else annotation)


class Params:
    def __init__(self) -> None:
        self.path: list[tuple[str, Converter]] = []
        self.query: list[tuple[str, Converter, Any, bool]] = []  # name, convert, default, repeated
        self.body: list[tuple[str, Converter, Any]] = []  # name, convert, default
        self.embed_body = False
        #: (where, name, annotation, required) of each parameter, for the OpenAPI document.
        self.described: list[tuple[str, str, Any, bool]] = []

    def add_path(self, name: str, annotation: Any) -> None:
        self.path.append((name, _converter(annotation)))
        self.described.append(("path", name, annotation, True))

    def add_query(self, name: str, annotation: Any, default: Any) -> None:
        self.described.append(("query", name, annotation, default is _MISSING))
        items = None if annotation is _MISSING else parse_type(annotation).text_items
        if items is not None:
            self.query.append((name, compile_node(items), default, True))
        else:
            self.query.append((name, _converter(annotation), default, False))

    def add_body(self, name: str, annotation: Any, default: Any) -> None:
        self.described.append(("body", name, annotation, default is _MISSING))
        self.body.append((name, compile_type(annotation), default))
        self.embed_body = len(self.body) > 1

    def names(self) -> set[str]:
        """The path and query parameters: the request's values that dispatcher functions may take."""
        return {name for name, _ in self.path} | {name for name, *_ in self.query}

    @property
    def empty(self) -> bool:
        return not (self.path or self.query or self.body)

    async def parse(self, raw: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        errors: list[dict[str, Any]] = []
        if self.path:
            match = raw.match_info
            for name, convert in self.path:
                try:
                    out[name] = convert(match[name])
                except Invalid as e:
                    errors.extend(e.under("path", name).errors)
        if self.query:
            query = raw.query
            for name, convert, default, repeated in self.query:
                if name not in query:
                    if default is _MISSING:
                        errors.append({"loc": ["query", name], "msg": "Field required", "type": "missing"})
                    else:
                        out[name] = default
                    continue
                try:
                    out[name] = [convert(v) for v in query.getall(name)] if repeated else convert(query[name])
                except Invalid as e:
                    errors.extend(e.under("query", name).errors)
        if self.body:
            await self._parse_body(raw, out, errors)
        if errors:
            raise ClientError(422, {"detail": errors})
        return out

    async def _parse_body(self, raw: Any, out: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        data = await read_json(raw)
        if not self.embed_body:
            name, convert, default = self.body[0]
            if data is _MISSING:
                if default is _MISSING:
                    errors.append({"loc": ["body"], "msg": "Field required", "type": "missing"})
                else:
                    out[name] = default
                return
            try:
                out[name] = convert(data)
            except Invalid as e:
                errors.extend(e.under("body").errors)
            return
        if data is _MISSING:
            fields: dict[str, Any] = {}
        elif isinstance(data, dict):
            fields = data
        else:
            errors.append({"loc": ["body"], "msg": "Input should be a JSON object", "type": "dict_type"})
            return
        for name, convert, default in self.body:
            if name not in fields:
                if default is _MISSING:
                    errors.append({"loc": ["body", name], "msg": "Field required", "type": "missing"})
                else:
                    out[name] = default
                continue
            try:
                out[name] = convert(fields[name])
            except Invalid as e:
                errors.extend(e.under("body", name).errors)


async def read_json(raw: Any) -> Any:
    """The decoded JSON body; ``inspect.Parameter.empty`` when there is none (a body over the
    limit raises aiohttp's 413, which the handler's error mapping answers)."""
    body = await raw.read()
    if not body or body.isspace():  # no copy of the body, as strip() would make
        return _MISSING
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ClientError(400, {"detail": f"Malformed JSON body: {e}"}) from None
