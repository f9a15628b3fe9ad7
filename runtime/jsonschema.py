"""JSON Schema of Python annotations, for the OpenAPI document (start-up only)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import enum
import typing
import uuid
from typing import Any

from runtime.validation import is_pydantic_model

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    bytes: {"type": "string", "format": "binary"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    dt.datetime: {"type": "string", "format": "date-time"},
    dt.date: {"type": "string", "format": "date"},
    dt.time: {"type": "string", "format": "time"},
    decimal.Decimal: {"type": "number"},
}


class Schemas:
    """Collects named component schemas (dataclasses, models) while describing types."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, tp: Any) -> dict[str, Any]:
        if tp is Any or tp is object or tp is typing.Any:
            return {}
        if tp is None or tp is type(None):
            return {"type": "null"}
        if tp in _SCALARS:
            return dict(_SCALARS[tp])
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is typing.Annotated:
            return self.of(args[0])
        if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
            options = [self.of(a) for a in args if a is not type(None)]
            schema = options[0] if len(options) == 1 else {"anyOf": options}
            return {"anyOf": [schema, {"type": "null"}]} if type(None) in args else schema
        if origin is typing.Literal:
            return {"enum": list(args)}
        if origin in (list, set, frozenset, tuple) or tp in (list, set, frozenset, tuple):
            return {"type": "array", "items": self.of(args[0]) if args else {}}
        if origin is dict or tp is dict:
            return {"type": "object", "additionalProperties": self.of(args[1]) if len(args) == 2 else {}}
        if isinstance(tp, type):
            if issubclass(tp, enum.Enum):
                return {"enum": [m.value for m in tp]}
            if dataclasses.is_dataclass(tp):
                return self._dataclass(tp)
            if is_pydantic_model(tp):
                return self._model(tp)
        return {}

    def _ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def _dataclass(self, tp: type) -> dict[str, Any]:
        name = tp.__name__
        if name not in self.components:
            self.components[name] = {}  # placeholder first: recursive types end here
            hints = typing.get_type_hints(tp)
            required = [
                f.name for f in dataclasses.fields(tp)
                if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            ]
            schema: dict[str, Any] = {
                "type": "object",
                "title": name,
                "properties": {f.name: self.of(hints.get(f.name, Any)) for f in dataclasses.fields(tp) if f.init},
            }
            if required:
                schema["required"] = required
            self.components[name] = schema
        return self._ref(name)

    def _model(self, tp: Any) -> dict[str, Any]:
        schema = tp.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            self.components.setdefault(name, definition)
        self.components[tp.__name__] = schema
        return self._ref(tp.__name__)
