"""``Engine.LOG``: a subscription of the durable log standing in for a Pub/Sub topic.

The subscription's record (``buildflow.storage.log_subscription``) does the leasing; this
reader polls it (a log has no one to wake it), delays nacked messages by its ``backoff``, and
appends messages whose delivery attempts are used up to the dead-letter topic's log before
acking them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bfctl.runtime.redelivery import Backoff
from bfctl.runtime.sinks.base import describe, local_path
from bfctl.runtime.sinks.pubsub import TopicLog
from bfctl.runtime.sources.base import Delivery, InFlight, SourceReader
from buildflow.storage.log_subscription import Lease, LogSubscription

#: Seconds between looks at an idle log, and the longest a pull waits for messages.
POLL_SECONDS = 0.05
WAIT_SECONDS = 1.0
#: The longest ``close`` waits for the take a cancelled pull left (other processes hold its lock briefly).
_TAKE_TIMEOUT = 30.0


def _at_once(attempt: int) -> float:
    return 0.0


class LogReader(SourceReader):
    backoff: Backoff

    def __init__(self, subscription: LogSubscription, dead_letter: TopicLog | None, description: str) -> None:
        self.subscription = subscription
        self.dead_letter = dead_letter
        self.description = description
        self.lease_seconds = subscription.ack_deadline_seconds
        self._taking: InFlight[list[Lease]] = InFlight()
        self.backoff = Backoff.from_env(
            subscription.max_delivery_attempts if dead_letter is not None else None, "sent to the dead-letter topic"
        )

    async def open(self) -> None:
        if self.dead_letter is not None:
            await self.dead_letter.open()

    async def pull(self, max_messages: int) -> list[Delivery]:
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            leases = await self._taking.run(lambda: asyncio.to_thread(self.subscription.take, max_messages))
            dead = [lease for lease in leases if lease.dead]
            if dead:
                if self.dead_letter is None:
                    raise RuntimeError(f"{self.description}: messages to dead-letter, but no dead-letter topic")
                await self.dead_letter.publish([lease.data for lease in dead])
                await self.ack([lease.ack_id for lease in dead])
            live = [
                Delivery(lease.ack_id, lease.data, {}, lease.attempt, key=f"message at offset {lease.offset}")
                for lease in leases
                if not lease.dead
            ]
            if live or time.monotonic() >= deadline:
                return live
            await asyncio.sleep(POLL_SECONDS)

    async def ack(self, ack_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.subscription.ack, ack_ids)

    async def nack(self, ack_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.subscription.nack, ack_ids, self.backoff.delay)

    async def extend(self, ack_ids: Sequence[str], seconds: float) -> None:
        await asyncio.to_thread(self.subscription.extend, ack_ids, seconds)

    async def release(self, ack_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.subscription.nack, ack_ids, _at_once)

    async def close(self) -> None:
        try:  # never handed out: back at once (else after the ack deadline)
            await self.release([lease.ack_id for lease in await self._taking.left(_TAKE_TIMEOUT) or []])
        finally:
            if self.dead_letter is not None:
                await self.dead_letter.close()


def log_subscription(out: Mapping[str, Any], project_dir: Path) -> LogSubscription:
    """The subscription the outputs of a local ``GCPPubSubSubscription`` on the log name."""
    return LogSubscription(
        local_path(out["path"], project_dir),
        local_path(out["log"], project_dir),
        ack_deadline_seconds=out["ack_deadline_seconds"],
        max_delivery_attempts=out.get("max_delivery_attempts"),
    )


def log_reader(primitive: Any, out: Mapping[str, Any], project_dir: Path) -> LogReader:
    """``Engine.LOG``: the subscription's record next to its topic's log."""
    dead_letter = out.get("dead_letter_log")
    return LogReader(
        log_subscription(out, project_dir),
        TopicLog(local_path(dead_letter, project_dir)) if dead_letter else None,
        describe(primitive, out),
    )
