"""JSON Schema of parsed annotations, for the OpenAPI document (start-up only)."""

from __future__ import annotations

from typing import Any

from buildflow.types.fields import Shape, TypeNode, parse_type

_NULL = {"type": "null"}


class Schemas:
    """Collects named component schemas (dataclasses, models) while describing types."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {}

    def of(self, tp: Any) -> dict[str, Any]:
        """The schema of an annotation; ``{}`` (anything) for one that is not data."""
        return self.node(parse_type(tp))

    def node(self, node: TypeNode) -> dict[str, Any]:
        schema = self._shape(node)
        if node.nullable and node.shape is not Shape.NONE and schema:
            return {"anyOf": [schema, _NULL]}
        return schema

    def _shape(self, node: TypeNode) -> dict[str, Any]:
        shape = node.shape
        if shape in (Shape.ANY, Shape.OPAQUE):
            return {}
        if shape is Shape.NONE:
            return dict(_NULL)
        if shape is Shape.SCALAR:
            return dict(node.scalar.json_schema)  # type: ignore[union-attr]  # a SCALAR node has its scalar
        if shape is Shape.ENUM:
            return {"enum": [m.value for m in node.type]}
        if shape is Shape.LITERAL:
            return {"enum": list(node.values)}
        if shape is Shape.UNION:
            return {"anyOf": [self.node(a) for a in node.args]}
        if shape is Shape.SEQUENCE:
            return {"type": "array", "items": self.node(node.args[0]) if node.args else {}}
        if shape is Shape.MAPPING:
            return {"type": "object", "additionalProperties": self.node(node.args[1]) if node.args else {}}
        if shape is Shape.RECORD:
            return self._record(node)
        return self._model(node.type)

    def _ref(self, name: str) -> dict[str, Any]:
        return {"$ref": f"#/components/schemas/{name}"}

    def _record(self, node: TypeNode) -> dict[str, Any]:
        name = node.type.__name__
        if name not in self.components:
            self.components[name] = {}  # placeholder first: recursive types end here
            fields = [f for f in node.fields if f.init]
            schema: dict[str, Any] = {
                "type": "object",
                "title": name,
                "properties": {f.name: self.node(f.type) for f in fields},
            }
            required = [f.name for f in fields if f.required]
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
