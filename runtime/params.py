"""Handler arguments that come from the client: path, query, and a JSON or a form body.

Compiled once per handler; ``parse`` is the per-request part and does no reflection.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any, NamedTuple

import orjson

from bfctl.runtime.bodies import refuse_encoded, refuse_non_json
from bfctl.runtime.errors import ClientError
from bfctl.runtime.validation import REFUSED, Converter, compile_decoder, compile_node, compile_type
from buildflow.requests import as_upload
from buildflow.types.fields import Invalid, parse_type
from buildflow.uploads import FormParam, UploadFile

_MISSING = inspect.Parameter.empty


def _converter(annotation: Any) -> Converter:
    return compile_type(str if annotation is _MISSING else annotation)


class FieldKind(enum.Enum):
    UPLOAD = "an UploadFile"
    UPLOADS = "a list of UploadFile"
    BYTES = "the bytes of a file or field"
    VALUE = "a text field"
    VALUES = "a repeated text field"


class FormField(NamedTuple):
    """One parameter read from a form body."""

    param: str
    field: str
    kind: FieldKind
    convert: Converter | None  # text values (VALUE; VALUES: each item)
    default: Any


def _upload_kind(annotation: Any) -> FieldKind | None:
    """UPLOAD for ``UploadFile``, UPLOADS for a list of them (``X | None`` read as ``X``)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(args) == 1:
        annotation = args[0]
    if annotation is UploadFile:
        return FieldKind.UPLOAD
    sequence = typing.get_origin(annotation) in (list, tuple, collections.abc.Sequence)
    return FieldKind.UPLOADS if sequence and typing.get_args(annotation)[:1] == (UploadFile,) else None


def is_upload(annotation: Any) -> bool:
    """A parameter annotated so is read from a multipart form even without ``File()``."""
    return _upload_kind(annotation) is not None


def form_kind(annotation: Any) -> tuple[FieldKind, Converter | None]:
    """How a form parameter's annotation is read."""
    upload = _upload_kind(annotation)
    if upload is not None:
        return upload, None
    if annotation is bytes:
        return FieldKind.BYTES, None
    node = parse_type(str if annotation is _MISSING else annotation)
    if node.text_items is not None:
        return FieldKind.VALUES, compile_node(node.text_items)
    if node.is_text:
        return FieldKind.VALUE, compile_node(node)
    raise TypeError(f"a form field is UploadFile, list[UploadFile], bytes, or text (str, int, ...), not {annotation!r}")


class Params:
    def __init__(self) -> None:
        self.path: list[tuple[str, Converter]] = []
        self.query: list[tuple[str, Converter, Any, bool]] = []  # name, convert, default, repeated
        self.body: list[tuple[str, Converter, Any]] = []  # name, convert, default
        self.form: list[FormField] = []
        self.embed_body = False
        #: The body's one parameter read straight from the bytes, when its type allows.
        self.decode_body: Callable[[bytes], Any] | None = None
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
        self.decode_body = None if self.embed_body else compile_decoder(annotation)

    def add_form(self, name: str, annotation: Any, declared: FormParam | None) -> None:
        """A parameter of the form body: ``UploadFile`` (or a list of them), ``bytes``, or text
        converted as a query value is (a list: the field repeated)."""
        default = _MISSING if declared is None or declared.required else declared.default
        field = (declared.alias if declared else None) or name
        kind, convert = form_kind(annotation)
        self.form.append(FormField(name, field, kind, convert, default))
        self.described.append(("form", field, annotation, default is _MISSING))

    def names(self) -> set[str]:
        """The path and query parameters: the request's values that dispatcher functions may take."""
        return {name for name, _ in self.path} | {name for name, *_ in self.query}

    @property
    def empty(self) -> bool:
        return not (self.path or self.query or self.body or self.form)

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
                    _absent(out, errors, name, default, "query", name)
                    continue
                try:
                    out[name] = [convert(v) for v in query.getall(name)] if repeated else convert(query[name])
                except Invalid as e:
                    errors.extend(e.under("query", name).errors)
        if self.body:
            await self._parse_body(raw, out, errors)
        elif self.form:
            await self._parse_form(raw, out, errors)
        if errors:
            raise ClientError(422, {"detail": errors})
        return out

    async def _parse_body(self, raw: Any, out: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        if raw.body_exists:
            refuse_encoded(raw)
            refuse_non_json(raw)
        if self.decode_body is not None:
            body = await raw.read()
            value = self.decode_body(body)
            if value is not REFUSED:
                out[self.body[0][0]] = value
                return
            data = json_of(body)
        else:
            data = await read_json(raw)
        if not self.embed_body:
            name, convert, default = self.body[0]
            if data is _MISSING:
                _absent(out, errors, name, default, "body")
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
                _absent(out, errors, name, default, "body", name)
                continue
            try:
                out[name] = convert(fields[name])
            except Invalid as e:
                errors.extend(e.under("body", name).errors)

    async def _parse_form(self, raw: Any, out: dict[str, Any], errors: list[dict[str, Any]]) -> None:
        """Fields of a urlencoded or multipart body (aiohttp keeps each file in a temporary file,
        closed and removed with the request); any other body reads as no fields."""
        if raw.body_exists:
            refuse_encoded(raw)
        data = await raw.post()  # what breaks aiohttp's rules is answered by ``bfctl.runtime.bodies``
        for param, field, kind, convert, default in self.form:
            values = data.getall(field, [])
            if not values:
                _absent(out, errors, param, default, "body", field)
                continue
            try:
                out[param] = _form_value(kind, convert, values)
            except Invalid as e:
                errors.extend(e.under("body", field).errors)


def _absent(out: dict[str, Any], errors: list[dict[str, Any]], name: str, default: Any, *loc: str) -> None:
    """A value the request does not carry: its default, else a "Field required" error at ``loc``."""
    if default is _MISSING:
        errors.append({"loc": list(loc), "msg": "Field required", "type": "missing"})
    else:
        out[name] = default


def _form_value(kind: FieldKind, convert: Converter | None, values: list[Any]) -> Any:
    if kind is FieldKind.VALUES:
        assert convert is not None
        return [convert(_text(v)) for v in values]
    value = values[-1]
    if kind is FieldKind.VALUE:
        assert convert is not None
        return convert(_text(value))
    if kind is FieldKind.BYTES:
        return value.encode() if isinstance(value, str) else value.file.read()
    uploads = [_upload(v) for v in (values if kind is FieldKind.UPLOADS else [value])]
    return uploads if kind is FieldKind.UPLOADS else uploads[0]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise Invalid.one("Input should be a text field, not a file", "string_type")
    return value


def _upload(value: Any) -> UploadFile:
    if isinstance(value, str):
        raise Invalid.one("Input should be a file", "file_type")
    return as_upload(value)


async def read_json(raw: Any) -> Any:
    """The decoded JSON body; ``inspect.Parameter.empty`` when there is none (a body over the
    limit raises aiohttp's 413, which the handler's error mapping answers)."""
    return json_of(await raw.read())


def json_of(body: bytes) -> Any:
    """``read_json`` of bytes already read."""
    if not body or body.isspace():  # no copy of the body, as strip() would make
        return _MISSING
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ClientError(400, {"detail": f"Malformed JSON body: {e}"}) from None
