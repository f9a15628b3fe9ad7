"""A consumer's input: each delivered message converted to its handler's parameter annotation.

Compiled once at start-up, in BuildFlow's order (an object the source made, a file change event
or a Pulse item, is handed over as it is; else no annotation → the raw payload, a type with
``from_bytes`` → that, ``bytes`` → the bytes, ``PubsubMessage`` → data, attributes and ack
id), and everything else is JSON read
into the annotation by the same validation endpoints use for bodies (dataclasses, pydantic
models, dicts, lists, ``Any``, scalars); ``str`` is the text itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import orjson

from bfctl.runtime.errors import one_line
from bfctl.runtime.sources.base import Delivery
from bfctl.runtime.validation import compile_node
from buildflow.types.fields import Invalid, Shape, parse_type
from buildflow.types.gcp import PubsubMessage
from buildflow.types.portable import FileChangeEvent

MessageConverter = Callable[[Delivery], Any]


class ConversionError(Exception):
    """A message that cannot become the handler's argument; ``str()`` says why (never its content)."""


def _pubsub_message(delivery: Delivery) -> PubsubMessage:
    return PubsubMessage(delivery.data, dict(delivery.attributes), delivery.ack_id)


def _data(delivery: Delivery) -> bytes:
    return delivery.data


def _text(delivery: Delivery) -> str:
    try:
        return delivery.data.decode()
    except UnicodeDecodeError as e:
        raise ConversionError(f"the message is not UTF-8 text ({e.reason} at byte {e.start})") from None


def _from_bytes(tp: Any) -> Callable[[Delivery], Any]:
    def convert(delivery: Delivery) -> Any:
        try:
            return tp.from_bytes(delivery.data)
        except Exception as e:
            raise ConversionError(f"{tp.__name__}.from_bytes failed: {one_line(e)}") from e

    return convert


def _json(annotation: Any) -> Callable[[Delivery], Any]:
    node = parse_type(annotation)
    validate = compile_node(node)
    name = node.name

    def convert(delivery: Delivery) -> Any:
        try:
            decoded = orjson.loads(delivery.data)
        except orjson.JSONDecodeError as e:
            raise ConversionError(f"the message is not JSON ({e})") from None
        try:
            return validate(decoded)
        except Invalid as e:
            problems = "; ".join(f"{'.'.join(map(str, err['loc'])) or 'value'}: {err['msg']}" for err in e.errors)
            raise ConversionError(f"the message does not fit {name}: {problems}") from None

    return convert


def _made_by_source(tp: type) -> Callable[[Delivery], Any]:
    """A type only a source makes (a file change event): a message of bytes cannot become one."""

    def convert(delivery: Delivery) -> Any:
        raise ConversionError(f"a {tp.__name__} comes from a file change stream, and this message is bytes")

    return convert


def reads_bytes(annotation: Any) -> bool:
    """``PubsubMessage``, or a class with ``from_bytes``: a message, never a dependency to inject."""
    return annotation is PubsubMessage or callable(getattr(annotation, "from_bytes", None))


def _payload_converter(annotation: Any, include_attributes: bool) -> Callable[[Delivery], Any]:
    if annotation is inspect.Parameter.empty or annotation is None:
        return _pubsub_message if include_attributes else _data
    if annotation is PubsubMessage:
        return _pubsub_message
    if callable(getattr(annotation, "from_bytes", None)):
        return _from_bytes(annotation)
    if annotation is bytes:
        return _data
    if annotation is str:
        return _text
    if isinstance(annotation, type) and issubclass(annotation, FileChangeEvent):
        return _made_by_source(annotation)
    if parse_type(annotation).shape is Shape.OPAQUE:
        raise TypeError(
            f"messages cannot be converted to {annotation!r}: annotate the parameter with bytes, str, dict, "
            "a dataclass or pydantic model (read from JSON), PubsubMessage, or a class with a from_bytes classmethod"
        )
    return _json(annotation)


def message_converter(annotation: Any, include_attributes: bool = False) -> MessageConverter:
    """What each delivery becomes for a handler parameter annotated ``annotation``.

    Raises ``TypeError`` (at start-up) for an annotation no message converts to; the converter
    raises ``ConversionError`` for a message that does not fit.
    """
    from_payload = _payload_converter(annotation, include_attributes)

    def convert(delivery: Delivery) -> Any:
        value = delivery.value
        return value if value is not None else from_payload(delivery)

    return convert
