"""Converters from decoded JSON / text values to annotated Python types.

Compiled once per type from the parsed tree (``buildflow.types.fields``). Records get a
converter generated for their exact fields, so a row costs one call and no loop over field
descriptions. Pydantic models are validated by pydantic itself. Errors use FastAPI's shape
(``{"loc": [...], "msg": ..., "type": ...}``) so clients already know it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from buildflow.types.fields import INT_MAX, INT_MIN, Invalid, Shape, TypeNode, parse_type

Converter = Callable[[Any], Any]

__all__ = ["REFUSED", "Converter", "Invalid", "compile_decoder", "compile_node", "compile_type"]


def _identity(v: Any) -> Any:
    return v


def _nullable(convert: Converter) -> Converter:
    def convert_or_none(v: Any) -> Any:
        return None if v is None else convert(v)

    return convert_or_none


def _enum(tp: Any) -> Converter:
    allowed = ", ".join(repr(m.value) for m in tp)

    def convert(v: Any) -> Any:
        try:
            return tp(v)
        except ValueError:
            for member in tp:  # query strings carry numbers as text
                if str(member.value) == v:
                    return member
        raise Invalid.one(f"Input should be {allowed}", "enum")

    return convert


def _literal(values: tuple[Any, ...]) -> Converter:
    message = f"Input should be one of {', '.join(map(repr, values))}"

    def convert(v: Any) -> Any:
        for value in values:
            if v == value or (isinstance(v, str) and str(value) == v):
                return value
        raise Invalid.one(message, "literal_error")

    return convert


def _union(options: list[Converter], nullable: bool) -> Converter:
    def convert(v: Any) -> Any:
        if v is None and nullable:
            return None
        errors: list[dict[str, Any]] = []
        for option in options:
            try:
                return option(v)
            except Invalid as e:
                errors.extend(e.errors)
        if v is None:
            raise Invalid.one("Input should not be null", "none_forbidden")
        raise Invalid(errors[:1] or [{"loc": [], "msg": "Invalid value", "type": "union"}])

    return convert


def _sequence(item: Converter, build: Callable[[list[Any]], Any]) -> Converter:
    def convert(v: Any) -> Any:
        if not isinstance(v, (list, tuple)):
            raise Invalid.one("Input should be a valid list", "list_type")
        try:  # every item fits: the common case, in one comprehension
            items = [item(x) for x in v]
        except Invalid:
            errors = []
            for i, x in enumerate(v):
                try:
                    item(x)
                except Invalid as e:
                    errors.extend(e.under(i).errors)
            raise Invalid(errors) from None
        return items if build is list else build(items)

    return convert


def _mapping(key: Converter, value: Converter) -> Converter:
    def convert(v: Any) -> Any:
        if not isinstance(v, dict):
            raise Invalid.one("Input should be a valid dictionary", "dict_type")
        out, errors = {}, []
        for k, x in v.items():
            try:
                out[key(k)] = value(x)
            except Invalid as e:
                errors.extend(e.under(k).errors)
        if errors:
            raise Invalid(errors)
        return out

    return convert


def _pydantic(tp: Any) -> Converter:
    from pydantic import ValidationError

    def convert(v: Any) -> Any:
        try:
            return tp.model_validate(v)
        except ValidationError as e:
            raise Invalid(
                [{"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]} for err in e.errors()]
            ) from None

    return convert


def _missing(errors: list[dict[str, Any]] | None, name: str) -> list[dict[str, Any]]:
    errors = errors or []
    errors.append({"loc": [name], "msg": "Field required", "type": "missing"})
    return errors


def _failed(errors: list[dict[str, Any]] | None, e: Invalid, name: str) -> list[dict[str, Any]]:
    errors = errors or []
    errors.extend(e.under(name).errors)
    return errors


def _exact_check(node: TypeNode, var: str) -> str | None:
    """A Python test that ``var`` already holds the field's value as is (no conversion)."""
    if node.scalar is None or not node.scalar.exact or node.shape is not Shape.SCALAR:
        return None
    name = node.scalar.type.__name__
    test = f"type({var}) is {name}"
    if node.scalar.type is int:
        test += f" and {INT_MIN} <= {var} <= {INT_MAX}"
    return f"{var} is None or ({test})" if node.nullable else test


def _record(node: TypeNode) -> Converter:
    """A converter generated for this dataclass's fields: one dict lookup, one exact-type test
    and (only when the type differs) one converter call per field, then the constructor."""
    tp = node.type
    fields = [f for f in node.fields if f.init]
    env: dict[str, Any] = {
        "tp": tp,
        "dict": dict,
        "Invalid": Invalid,
        "_missing": _missing,
        "_failed": _failed,
        "_not_object": f"Input should be an object ({tp.__name__})",
    }
    lines = [
        "def convert(v):",
        "    if type(v) is not dict:",
        "        if isinstance(v, tp):",
        "            return v",
        "        if not isinstance(v, dict):",
        "            raise Invalid.one(_not_object, 'model_type')",
        "    errors = None",
    ]
    positional, keywords = [], []
    for i, f in enumerate(fields):
        var, key = f"x{i}", repr(f.name)
        env[f"c{i}"] = compile_node(f.type)
        lines.append(f"    {var} = v.get({key}, _M)")
        lines.append(f"    if {var} is _M:")
        if f.required:
            lines.append(f"        errors = _missing(errors, {key})")
        elif f.default_factory is not None:
            env[f"d{i}"] = f.default_factory
            lines.append(f"        {var} = d{i}()")
        else:
            env[f"d{i}"] = f.default
            lines.append(f"        {var} = d{i}")
        if f.type.shape is not Shape.ANY:  # a field of any type takes the value as it is
            exact = _exact_check(f.type, var)
            lines.append(f"    elif not ({exact}):" if exact else "    else:")
            lines += [
                "        try:",
                f"            {var} = c{i}({var})",
                "        except Invalid as e:",
                f"            errors = _failed(errors, e, {key})",
            ]
        if f.kw_only:
            keywords.append(f"{f.name}={var}")
        else:
            positional.append(var)
    env["_M"] = _MISSING_KEY
    lines += ["    if errors:", "        raise Invalid(errors)", f"    return tp({', '.join(positional + keywords)})"]
    exec("\n".join(lines), env)  # noqa: S102 - code generated from the dataclass's own field names
    return env["convert"]


_MISSING_KEY = object()
#: id(node) → (node, converter); the node is kept so its id stays unique.
_compiled: dict[int, tuple[TypeNode, Converter]] = {}
#: Nodes being compiled: a record that contains itself refers to its converter by lookup.
_compiling: set[int] = set()


def _compile(node: TypeNode) -> Converter:
    shape = node.shape
    if shape in (Shape.ANY, Shape.NONE):
        return _identity
    if shape is Shape.OPAQUE:
        raise TypeError(f"cannot validate values of type {node.annotation!r}")
    if shape is Shape.SCALAR:
        convert = node.scalar.parse  # type: ignore[union-attr]  # a SCALAR node has its scalar
    elif shape is Shape.ENUM:
        convert = _enum(node.type)
    elif shape is Shape.LITERAL:
        convert = _literal(node.values)
    elif shape is Shape.UNION:
        return _union([compile_node(a) for a in node.args], node.nullable)
    elif shape is Shape.SEQUENCE:
        item = compile_node(node.args[0]) if node.args else _identity
        convert = _sequence(item, list if node.type not in (tuple, set, frozenset) else node.type)
    elif shape is Shape.MAPPING:
        key, value = (compile_node(node.args[0]), compile_node(node.args[1])) if node.args else (_identity, _identity)
        convert = _mapping(key, value)
    elif shape is Shape.RECORD:
        convert = _record(node)
    else:
        convert = _pydantic(node.type)
    return _nullable(convert) if node.nullable else convert


def compile_node(node: TypeNode) -> Converter:
    """A function that converts a decoded value to ``node``'s type or raises ``Invalid``."""
    key = id(node)
    cached = _compiled.get(key)
    if cached is not None:
        return cached[1]
    if key in _compiling:
        return lambda v: _compiled[key][1](v)  # noqa: PLW0108 - looked up when called: the type is still compiling
    _compiling.add(key)
    try:
        convert = _compile(node)
    finally:
        _compiling.discard(key)
    _compiled[key] = (node, convert)
    return convert


def compile_type(tp: Any) -> Converter:
    """``compile_node`` of an annotation (TypeError for a type requests cannot carry)."""
    return compile_node(parse_type(tp))


#: What a compiled decoder returns for a body it does not take: the converters decide.
REFUSED = object()
_DECODED_SCALARS = (str, int, float, bool)


def _plain_record(node: TypeNode) -> bool:
    """A dataclass built by its generated ``__init__`` whose fields are str, int, float or bool
    (each may be optional), with nothing ``Annotated``: msgspec builds it as the converters do."""
    params = getattr(node.type, "__dataclass_params__", None)
    return (
        node.shape is Shape.RECORD
        and not node.nullable
        and not node.metadata
        and params is not None
        and params.init
        and all(
            f.init and f.type.shape is Shape.SCALAR and f.type.type in _DECODED_SCALARS and not f.type.metadata
            for f in node.fields
        )
    )


def _int_check(record: TypeNode, many: bool) -> Callable[[Any], bool] | None:
    """msgspec reads integers outside the 64-bit signed range exactly, the converters read them
    otherwise (refused, or rounded through a float as the JSON reader does): a test generated
    for the record's int fields that they are inside it (None: it has none)."""
    tests = [
        f"(o.{f.name} is None or L <= o.{f.name} <= M)" if f.type.nullable else f"L <= o.{f.name} <= M"
        for f in record.fields
        if f.type.type is int
    ]
    if not tests:
        return None
    test = " and ".join(tests)
    source = (
        f"def fits(v):\n    for o in v:\n        if not ({test}):\n            return False\n    return True"
        if many
        else f"def fits(o):\n    return {test}"
    )
    env: dict[str, Any] = {"L": INT_MIN, "M": INT_MAX}
    exec(source, env)  # noqa: S102 - code generated from the dataclass's own field names
    fits: Callable[[Any], bool] = env["fits"]
    return fits


def compile_decoder(tp: Any) -> Callable[[bytes], Any] | None:
    """A decoder from a JSON body straight to ``tp`` in C (msgspec), with no decoded dicts in
    between, for the types it reads exactly as ``compile_type``'s converter does: a plain
    dataclass of scalars (``_plain_record``) or a list of them. None for any other type.

    It takes less than the converters (``1.0`` for an int, text for a number, a missing
    field): for such a body it returns ``REFUSED`` and the converters read it, accept it or
    build the 422, so every answer stays theirs."""
    node = parse_type(tp)
    many = node.shape is Shape.SEQUENCE and node.type is list and not node.nullable and len(node.args) == 1
    record = node.args[0] if many else node
    if not _plain_record(record) or node.metadata:
        return None
    import msgspec

    decode = msgspec.json.Decoder(list[record.type] if many else record.type).decode  # type: ignore[name-defined]
    fits = _int_check(record, many)
    refused = (msgspec.ValidationError, msgspec.DecodeError)

    def decode_or_refuse(body: bytes) -> Any:
        try:
            value = decode(body)
        except refused:
            return REFUSED
        return value if fits is None or fits(value) else REFUSED

    return decode_or_refuse
