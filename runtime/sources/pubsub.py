"""``Engine.PUBSUB``: a Pub/Sub subscription, on the service or on Google's emulator.

Pulls, acks, nacks and lease extensions go through gcloud-aio-pubsub's ``SubscriberClient``
(aiohttp), as sinks publish with its ``PublisherClient``; the outputs' ``api_root`` points it at
the emulator.

A nack is not an ack deadline of 0 (the message would come back at once, and a message that
always fails would spin): it sets the deadline to the ``Backoff`` delay of its delivery attempt,
so the service delivers it again that much later and the other messages meanwhile. The service
counts attempts only on a subscription with a dead-letter policy (the emulator too, checked); on
others the reader counts the deliveries it saw of each message id (one process's view: a
message redelivered to another worker starts again at the shortest delay). A subscription's
``retryPolicy`` would do the same on the service, but the emulator follows it only loosely (with
5 s to 20 s it gave a nacked message back at once, then after about 7 s and 8 s), so the
reader sets the delays itself, the same way on both.

A pull the service holds while no message comes (the emulator holds one about 90 s) outlives a
worker that stops meanwhile: the connection closed, the service may still hand the next
messages to that pull, and they wait out the ack deadline (600 s) before anyone else gets them.
So every pull asks to be answered at once (``returnImmediately``; the client's ``pull`` has no
such flag), an idle reader asks again after a pause that grows to ``IDLE_MOST_SECONDS`` (the
first empty answer after messages is asked again at once: a draining backlog never waits), and
``close`` waits for a pull still in flight (a cancelled ``pull`` leaves it running) and gives
back what it brought at once (ack deadline 0).

When the outputs say the subscription carries Cloud Storage notifications (a
``GCSFileChangeStream`` on gcp), each delivery's value is a ``GCSFileChangeEvent`` whose ``blob``
downloads the object through gcloud-aio-storage.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bfctl.runtime.redelivery import Backoff
from bfctl.runtime.sinks.base import describe
from bfctl.runtime.sources.base import Delivery, InFlight, SourceReader
from buildflow.io.gcp import GCPPubSubSubscription
from buildflow.types.gcp import GCSChangeStreamEventType, GCSFileChangeEvent

#: The longest a ``pull`` call waits for messages.
WAIT_SECONDS = 1.0
#: Pauses between pulls while none brings messages (after an immediate retry): the first, doubling up to the longest.
IDLE_FIRST_SECONDS, IDLE_MOST_SECONDS = 0.05, 0.5
#: The longest one pull request may take.
_PULL_TIMEOUT = 10
#: Ack ids per acknowledge or modifyAckDeadline request (Pub/Sub takes requests up to 512 kB).
_IDS_PER_REQUEST = 1000
#: Pub/Sub's longest ack deadline.
_MAX_DEADLINE = 600
#: Message ids whose deliveries a reader counts (the most recently seen).
_COUNTED = 10_000


class StorageDownloads:
    """Downloads of notified objects; ``read`` is synchronous, for the handler that asks for a
    ``blob`` (from a worker thread, or from the event loop itself in an async handler)."""

    def __init__(self, api_root: str | None) -> None:
        self.api_root = api_root
        self._storage: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> Any:
        from gcloud.aio.storage import Storage

        return Storage(api_root=self.api_root) if self.api_root else Storage()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._storage = self._client()

    def read(self, bucket: str, name: str) -> bytes:
        if self._loop is None:
            raise RuntimeError("the object downloads were not opened")
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:  # an async handler: block like a sync client, on a thread of its own
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                return pool.submit(asyncio.run, self._download_once(bucket, name)).result()
        future = asyncio.run_coroutine_threadsafe(self._storage.download(bucket, name), self._loop)
        data: bytes = future.result()
        return data

    async def _download_once(self, bucket: str, name: str) -> bytes:
        storage = self._client()
        try:
            data: bytes = await storage.download(bucket, name)
            return data
        finally:
            await storage.close()

    async def close(self) -> None:
        if self._storage is not None:
            await self._storage.close()

    def event(self, attributes: Mapping[str, str]) -> GCSFileChangeEvent | None:
        """The file change a Cloud Storage notification's attributes describe (None when they
        are not one: the handler then gets the message itself)."""
        try:
            bucket, name = attributes["bucketId"], attributes["objectId"]
            event_type = GCSChangeStreamEventType[attributes["eventType"]]
        except KeyError:
            return None
        return GCSFileChangeEvent(name, event_type, dict(attributes), functools.partial(self.read, bucket, name))


def _subscriber(api_root: str | None) -> Any:
    """gcloud-aio's ``SubscriberClient`` with a pull the service answers at once."""
    from gcloud.aio.pubsub import SubscriberClient, SubscriberMessage

    class Subscriber(SubscriberClient):
        async def pull_now(self, subscription: str, max_messages: int) -> list[SubscriberMessage]:
            body = json.dumps({"maxMessages": max_messages, "returnImmediately": True}).encode()
            url = f"{self._api_root}/{subscription}:pull"
            response = await self.session.post(url, data=body, headers=await self._headers(), timeout=_PULL_TIMEOUT)
            data = await response.json()
            return [SubscriberMessage.from_repr(m) for m in data.get("receivedMessages", [])]

    return Subscriber(api_root=api_root) if api_root else Subscriber()


class PubSubReader(SourceReader):
    backoff: Backoff

    def __init__(
        self,
        subscription: str,
        api_root: str | None,
        lease_seconds: float,
        description: str,
        backoff: Backoff,
        downloads: StorageDownloads | None = None,
    ) -> None:
        self.subscription = subscription
        self.api_root = api_root
        self.lease_seconds = lease_seconds
        self.description = description
        self.backoff = backoff
        self.downloads = downloads
        self._client: Any = None
        self._pending: InFlight[list[Any]] = InFlight()
        self._idle = 0.0
        #: message id -> deliveries this reader saw (where the service does not count them)
        self._seen: collections.OrderedDict[str, int] = collections.OrderedDict()
        #: ack id -> (message id, attempt) of what was handed out and not settled
        self._handed: dict[str, tuple[str, int]] = {}

    async def open(self) -> None:
        self._client = _subscriber(self.api_root)
        if self.downloads is not None:
            await self.downloads.open()

    async def _pull(self, max_messages: int) -> list[Any]:
        return await self._pending.run(lambda: self._client.pull_now(self.subscription, max_messages))

    async def pull(self, max_messages: int) -> list[Delivery]:
        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            messages = await self._pull(max_messages)
            if messages:
                self._idle = 0.0
                return [self._delivery(m) for m in messages]
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return []
            await self._rest(min(self._idle, left))
            self._idle = min(max(self._idle * 2, IDLE_FIRST_SECONDS), IDLE_MOST_SECONDS)

    async def _rest(self, seconds: float) -> None:
        """The pause before pulling again after an empty pull: none after one that brought
        messages (an answer given at once may be empty while a backlog drains), then growing."""
        await asyncio.sleep(seconds)

    def _delivery(self, message: Any) -> Delivery:
        attributes = message.attributes or {}
        attempt = message.delivery_attempt or self._count(message.message_id)
        self._handed[message.ack_id] = (message.message_id, attempt)
        return Delivery(
            ack_id=message.ack_id,
            data=message.data or b"",
            attributes=attributes,
            delivery_attempt=attempt,
            value=self.downloads.event(attributes) if self.downloads is not None else None,
            key=f"message {message.message_id}",
        )

    def _count(self, message_id: str) -> int:
        attempt = self._seen.pop(message_id, 0) + 1
        self._seen[message_id] = attempt
        if len(self._seen) > _COUNTED:
            self._seen.popitem(last=False)
        return attempt

    async def _each_request(self, ack_ids: Sequence[str], deadline: int | None = None) -> None:
        for start in range(0, len(ack_ids), _IDS_PER_REQUEST):
            ids = list(ack_ids[start : start + _IDS_PER_REQUEST])
            if deadline is None:
                await self._client.acknowledge(self.subscription, ids)
            else:
                await self._client.modify_ack_deadline(self.subscription, ids, deadline)

    async def ack(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            message_id, _ = self._handed.pop(ack_id, ("", 0))
            self._seen.pop(message_id, None)
        await self._each_request(ack_ids)

    async def nack(self, ack_ids: Sequence[str]) -> None:
        """Each comes again after its attempt's delay: one request per delay."""
        by_delay: dict[int, list[str]] = {}
        for ack_id in ack_ids:
            _, attempt = self._handed.pop(ack_id, ("", 1))
            delay = min(_MAX_DEADLINE, math.ceil(self.backoff.delay(attempt)))
            by_delay.setdefault(delay, []).append(ack_id)
        for delay, ids in sorted(by_delay.items()):
            await self._each_request(ids, delay)

    async def extend(self, ack_ids: Sequence[str], seconds: float) -> None:
        await self._each_request(ack_ids, min(_MAX_DEADLINE, math.ceil(seconds)))

    async def release(self, ack_ids: Sequence[str]) -> None:
        for ack_id in ack_ids:
            self._handed.pop(ack_id, None)
        await self._each_request(ack_ids, 0)

    async def close(self) -> None:
        with contextlib.suppress(Exception):  # never handed out: back at once (else after their deadline)
            await self.release([m.ack_id for m in await self._pending.left(_PULL_TIMEOUT) or []])
        if self._client is not None:
            await self._client.close()
        if self.downloads is not None:
            await self.downloads.close()


def pubsub_reader(primitive: Any, out: Mapping[str, Any], project_dir: Path) -> PubSubReader:
    """``Engine.PUBSUB``: the subscription itself (the emulator's when the outputs give an
    ``api_root``); Cloud Storage notifications when they say ``notifications``."""
    downloads = StorageDownloads(out.get("storage_api_root")) if out.get("notifications") else None
    attempts = primitive.max_delivery_attempts if isinstance(primitive, GCPPubSubSubscription) else None
    return PubSubReader(
        out["subscription"],
        out.get("api_root"),
        float(out["ack_deadline_seconds"]),
        describe(primitive, out),
        Backoff.from_env(attempts, "sent to the dead-letter topic"),
        downloads,
    )
