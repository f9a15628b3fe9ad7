"""Primitives BuildFlow had that bfctl does not make: AWS, Snowflake and ClickHouse.

They are declared so that flows written for BuildFlow import and construct unchanged; using
one (managed, as a sink or as a source) is refused by every target when it plans and by the
runtime when it starts, with the message below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

from buildflow.io.primitive import Primitive


class NotSupportedByBfctl(Primitive):
    """Mixin of the out-of-scope primitives: ``not_supported()`` says what to use instead."""

    #: Which family of services this belongs to, as the message names it.
    family: ClassVar[str] = ""
    #: What to use instead, as the message proposes it.
    instead: ClassVar[str] = ""

    def not_supported(self) -> str:
        """One sentence naming the primitive, saying bfctl does not support it and what to use."""
        return (
            f"{type(self).__name__} {self.primitive_id()!r} is not supported by bfctl ({self.family} "
            f"primitives are out of its scope): {self.instead}"
        )


def unsupported_message(primitive: object) -> str | None:
    """The refusal for an out-of-scope primitive, None for any other object."""
    return primitive.not_supported() if isinstance(primitive, NotSupportedByBfctl) else None


def processor_primitives(flow: Any) -> Iterator[Any]:
    """The sinks of ``flow``'s collectors, the sources and sinks of its consumers (None for none)."""
    for collector in flow.collectors:
        yield collector.sink_primitive
    for consumer in flow.consumers:
        yield consumer.source_primitive
        yield consumer.sink_primitive


def unsupported_in(flow: Any) -> list[NotSupportedByBfctl]:
    """The out-of-scope primitives ``flow``'s processors use, managed or not: a plan refuses them."""
    return [p for p in processor_primitives(flow) if isinstance(p, NotSupportedByBfctl)]
