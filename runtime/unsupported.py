"""Refuse, before serving, a flow that uses a primitive bfctl does not support (AWS,
Snowflake, ClickHouse) as a sink, a source, or through a dependency."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from buildflow.flow import Flow
from buildflow.io.unsupported import processor_primitives, unsupported_message
from runtime.di.graph import Node
from runtime.errors import StartupError

#: Attributes by which dependencies name the primitive they use (sink and bucket builders).
_DEPENDENCY_PRIMITIVES = ("sink_primitive", "bucket_primitive")


def _used(flow: Flow, nodes: list[Node]) -> Iterator[Any]:
    yield from processor_primitives(flow)
    for node in nodes:
        for attr in _DEPENDENCY_PRIMITIVES:
            yield getattr(node.factory.target, attr, None)


def refuse_unsupported(flow: Flow, nodes: list[Node]) -> None:
    """StartupError naming the first primitive of ``flow`` (or of its dependencies ``nodes``)
    that bfctl does not support."""
    for primitive in _used(flow, nodes):
        if (message := unsupported_message(primitive)) is not None:
            raise StartupError(message)
