"""What a parameter is: one reading of a callable's parameters for every kind of processor."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Annotated

from bfctl.runtime.parameters import Kind, Source, parameters
from buildflow.dependencies import Scope, dependency
from buildflow.requests import Request
from buildflow.types.gcp import PubsubMessage
from buildflow.uploads import File, UploadFile


@dependency(Scope.REPLICA)
class Store:
    pass


@dataclasses.dataclass
class Order:
    item: str


class Parsed:
    """A plain class, but read from a message's bytes: a consumer's message, not a dependency."""

    @classmethod
    def from_bytes(cls, data: bytes) -> Parsed:
        return cls()


def _kinds(fn: object, **reads: object) -> dict[str, Kind]:
    return {p.name: p.kind for p in parameters(fn, "test", **reads)}  # type: ignore[arg-type]


def test_a_handlers_parameters_are_read_by_the_route_the_dispatcher_and_their_annotation() -> None:
    def handler(
        order_id: int,
        request: Request,
        store: Store,
        named: Annotated[object, Store],
        total,  # unannotated and named like a dispatcher function
        order: Order,
        page: int = 1,
        tags: list[str] | None = None,
        picture: UploadFile | None = None,
        note: str = File(None),
        queue: asyncio.Queue[bytes] | None = None,
    ) -> None:
        pass

    found = parameters(handler, "test", path={"order_id"}, results={"total"}.__contains__)

    assert {p.name: p.kind for p in found} == {
        "order_id": Kind.PATH,
        "request": Kind.REQUEST,
        "store": Kind.DEPENDENCY,
        "named": Kind.DEPENDENCY,
        "total": Kind.RESULT,
        "order": Kind.BODY,
        "page": Kind.QUERY,
        "tags": Kind.QUERY,
        "picture": Kind.FORM,
        "note": Kind.FORM,
        "queue": Kind.OTHER,
    }
    assert found[1].source is Source.REQUEST
    assert found[2].target is Store and found[3].target is Store


def test_a_consumers_data_is_its_message_and_a_message_type_is_never_a_dependency() -> None:
    def consumer(message: PubsubMessage, parsed: Parsed, store: Store, total, order: Order) -> None:
        pass

    assert _kinds(consumer, messages=True, results={"total"}.__contains__) == {
        "message": Kind.MESSAGE,
        "parsed": Kind.MESSAGE,
        "store": Kind.DEPENDENCY,
        "total": Kind.RESULT,
        "order": Kind.MESSAGE,
    }


def test_an_object_with_call_is_read_by_its_calls_annotations_without_self() -> None:
    class Handler:
        async def __call__(self, store: Store, page: int = 1) -> None:
            pass

    class Processor:
        def process(self, store: Store, page: int = 1) -> None:
            pass

    expected = {"store": Kind.DEPENDENCY, "page": Kind.QUERY}
    assert _kinds(Handler()) == expected
    assert _kinds(Processor.process, method=True) == expected
