"""The interface between consumers and the streams they read.

A consumer's worker runs pull loops; each loop has its own ``SourceReader``. A reader hands out
``Delivery``s and is told, per delivery, whether it was handled: ``ack`` only after everything
its handler returned is durable in the sink, ``nack`` when the handler or the write failed (the
message comes again after its ``backoff`` delay, while the others go on; after its last attempt
it goes to the dead-letter topic or is set aside: that is the source's business). While a
delivery is still being worked on, ``extend`` keeps its lease.
"""

from __future__ import annotations

import abc
import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from bfctl.runtime.redelivery import Backoff

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One message as the source delivered it."""

    #: What ``ack``/``nack``/``extend`` take back (unique among the reader's unacked deliveries).
    ack_id: str
    #: The message's bytes (a file change or a Pulse item has none: see ``value``).
    data: bytes = b""
    attributes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: How many times the message was delivered, this time included (None: the source cannot say).
    delivery_attempt: int | None = None
    #: An object the source made already (a file change event, a Pulse item); converters use it
    #: instead of ``data`` when it is set.
    value: Any = None
    #: Names the message across its deliveries, for the log (a file's path, a message id; never
    #: its content); empty when the source has no such name.
    key: str = ""


class InFlight(Generic[T]):
    """The request of a ``pull`` that may be cancelled (a worker whose grace period ended) while
    the request goes on: what it brings goes to the next ``pull``, or to ``close`` to give back,
    never nowhere (leased to no one until the lease ends)."""

    def __init__(self) -> None:
        self._future: asyncio.Future[T] | None = None

    async def run(self, start: Callable[[], Awaitable[T]]) -> T:
        """The result of the request left by a cancelled call, else of one ``start`` makes."""
        if self._future is None:
            self._future = asyncio.ensure_future(start())
        try:
            result = await asyncio.shield(self._future)
        except Exception:  # not a cancellation: that leaves the request running
            self._future = None
            raise
        self._future = None
        return result

    async def left(self, seconds: float) -> T | None:
        """What the request a cancelled call left brings within ``seconds`` (None: there is none)."""
        future, self._future = self._future, None
        return None if future is None else await asyncio.wait_for(future, seconds)


class SourceReader(abc.ABC):
    """One per pull loop; used from the worker's event loop only."""

    #: What the source is, for messages and metrics (e.g. "GCPPubSubSubscription my-project/events").
    description: str = ""
    #: Seconds a delivery's lease lasts from when it is delivered or extended (``extend`` is
    #: called well before it runs out); None when leases never run out.
    lease_seconds: float | None = None
    #: How a nacked delivery comes again; None: at once (a Pulse's items come again anyway).
    backoff: Backoff | None = None

    async def open(self) -> None:
        """Connect (on the worker's event loop)."""

    @abc.abstractmethod
    async def pull(self, max_messages: int) -> list[Delivery]:
        """Up to ``max_messages`` deliveries; waits a little for some (at most a second or so)
        and returns an empty list when there are none, so the loop can notice a shutdown."""

    @abc.abstractmethod
    async def ack(self, ack_ids: Sequence[str]) -> None:
        """These were handled and their results are durable: never deliver them again."""

    @abc.abstractmethod
    async def nack(self, ack_ids: Sequence[str]) -> None:
        """These were not handled: deliver them again after ``backoff``'s delay, or give them up
        after its last attempt (dead-letter them, or set them aside)."""

    async def extend(self, ack_ids: Sequence[str], seconds: float) -> None:
        """Keep the lease of these for ``seconds`` more (no-op where leases never run out)."""

    async def release(self, ack_ids: Sequence[str]) -> None:
        """These were handed out to a worker that stops before it finished them: deliver them
        again now rather than when their lease ends (a nack where the source has no faster way)."""
        await self.nack(ack_ids)

    async def close(self) -> None:
        """Release connections; what a pull cancelled meanwhile still brings is given back
        (``InFlight``); deliveries neither acked nor nacked come again when their lease ends."""


#: Makes the reader of one source for one pull loop: (its primitive, the outputs the target
#: applied for it, the project directory). One per engine, in the engine's reader module;
#: ``bfctl.runtime.sources.READERS`` names them.
ReaderFactory = Callable[[Any, Mapping[str, Any], Path], SourceReader]


def source_name(primitive: Any) -> str:
    """``GCPPubSubSubscription my-project/events``: the source as messages name it."""
    return f"{type(primitive).__name__} {primitive.primitive_id()}"
