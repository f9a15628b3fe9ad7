"""Refuse, before serving, a flow that uses a primitive bfctl does not support (AWS,
Snowflake, ClickHouse) as a sink, a source, or through a dependency, or that reads a portable
``Topic`` (which has no subscription to read from)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from bfctl.runtime.di.graph import Node
from bfctl.runtime.errors import StartupError
from buildflow.dependencies.primitives import named_primitives
from buildflow.flow import Flow
from buildflow.io.portable import Topic
from buildflow.io.unsupported import processor_primitives, unsupported_message


def _used(flow: Flow, nodes: list[Node]) -> Iterator[Any]:
    yield from processor_primitives(flow)
    for node in nodes:
        yield from named_primitives(node.factory.target)


def refuse_unsupported(flow: Flow, nodes: list[Node]) -> None:
    """StartupError naming the first primitive of ``flow`` (or of its dependencies ``nodes``)
    that bfctl does not support."""
    for primitive in _used(flow, nodes):
        if (message := unsupported_message(primitive)) is not None:
            raise StartupError(message)
    for consumer in flow.consumers:
        if isinstance(consumer.source_primitive, Topic):
            raise StartupError(
                f"consumer `{consumer.name}`: a portable Topic is written to, not read; consume a "
                f"Queue({consumer.source_primitive.topic_id!r}) instead (a topic and its subscription)"
            )
