"""``Engine.PULSE``: a ``Pulse``'s items, the next one every ``pulse_interval_seconds``, cycling.

Items of bytes are delivered as message bytes, so the handler's annotation converts them as it
would a Pub/Sub message's (JSON into a dataclass, ``from_bytes``...); any other item is handed
over as it is (``Delivery.value``). A nacked item comes again before the next one; acks only
forget. ``pull`` never waits more than a second, so a pull loop notices a shutdown even when
the interval is long.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bfctl.runtime.sources.base import Delivery, SourceReader, source_name
from buildflow.io.local.pulse import Pulse

#: Longest a pull waits for the next pulse before returning nothing.
_MAX_WAIT = 1.0


class PulseReader(SourceReader):
    def __init__(self, pulse: Pulse, max_wait: float = _MAX_WAIT) -> None:
        self.description = source_name(pulse)
        self._items = list(pulse.items)
        self._interval = float(pulse.pulse_interval_seconds)
        self._max_wait = max_wait
        self._next_index = 0
        self._ids = itertools.count()
        #: Delivered, neither acked nor nacked: ack id → (item, attempt).
        self._unacked: dict[str, tuple[Any, int]] = {}
        #: Nacked: handed out again before the next item.
        self._again: collections.deque[tuple[Any, int]] = collections.deque()
        self._due = 0.0

    async def open(self) -> None:
        self._due = asyncio.get_running_loop().time() + self._interval

    async def pull(self, max_messages: int) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        wait = self._due - loop.time()
        if wait > 0:
            await asyncio.sleep(min(wait, self._max_wait))
            if self._due > loop.time():
                return []
        else:
            await asyncio.sleep(0)  # an interval of 0 still lets the worker's other tasks run
        self._due = max(self._due + self._interval, loop.time())  # late: the next is an interval away
        if self._again:
            item, attempt = self._again.popleft()
        else:
            item, attempt = self._items[self._next_index], 0
            self._next_index = (self._next_index + 1) % len(self._items)
        ack_id = str(next(self._ids))
        self._unacked[ack_id] = (item, attempt + 1)
        if isinstance(item, bytes):
            return [Delivery(ack_id, data=item, delivery_attempt=attempt + 1)]
        return [Delivery(ack_id, value=item, delivery_attempt=attempt + 1)]

    async def ack(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            self._unacked.pop(ack_id, None)

    async def nack(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            if (entry := self._unacked.pop(ack_id, None)) is not None:
                self._again.append(entry)


def pulse_reader(primitive: Any, outputs: Mapping[str, Any], project_dir: Path) -> PulseReader:
    """``Engine.PULSE``: nothing applied, the primitive holds the items."""
    return PulseReader(primitive)
