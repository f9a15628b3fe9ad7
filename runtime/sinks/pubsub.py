"""``GCPPubSubTopic``: each row is published as one message whose data is the row as JSON.

Messages go through a ``Publisher``: Pub/Sub's REST API (gcloud-aio-pubsub, on aiohttp; pass
``api_root`` to use the emulator), where a message is durable once the publish call returns
its id, or on the local target without the emulator a durable log standing in for the topic.
A batch larger than one publish call allows is sent as several calls, so when one fails the
others may have been published: Pub/Sub delivery is at least once in any case.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bfctl.runtime.sinks.base import Row, RowsRejected, SinkWriter, describe, local_path
from bfctl.runtime.sinks.formats import json_bytes
from buildflow.storage import durable
from buildflow.types.schema import Column, has_hook

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # no fcntl on Windows: callers check for None

log = logging.getLogger("buildflow.runtime")

#: Appends tried before a publish into a log deleted or emptied again each time fails.
_APPEND_TRIES = 3
# Pub/Sub limits per publish request: 1,000 messages and 10 MB (data travels base64-encoded).
_MAX_MESSAGES = 1000
_MAX_REQUEST_BYTES = 9 * 1024 * 1024


def _chunks(payloads: list[bytes]) -> list[list[bytes]]:
    chunks: list[list[bytes]] = [[]]
    size = 0
    for payload in payloads:
        encoded = len(payload) * 4 // 3 + 64
        if chunks[-1] and (len(chunks[-1]) >= _MAX_MESSAGES or size + encoded > _MAX_REQUEST_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(payload)
        size += encoded
    return chunks


class Publisher(abc.ABC):
    async def open(self) -> None:
        """Connect (on the worker's event loop)."""

    @abc.abstractmethod
    async def publish(self, payloads: list[bytes]) -> None:
        """Publish every payload; durable when this returns."""

    async def close(self) -> None:
        """Release connections."""


class PubSubPublisher(Publisher):
    def __init__(self, topic: str, api_root: str | None = None) -> None:
        self.topic = topic
        self.api_root = api_root
        self._client: Any = None

    async def open(self) -> None:
        from gcloud.aio.pubsub import PublisherClient

        self._client = PublisherClient(api_root=self.api_root) if self.api_root else PublisherClient()

    async def publish(self, payloads: list[bytes]) -> None:
        from gcloud.aio.pubsub import PubsubMessage

        chunks = _chunks(payloads)
        responses = await asyncio.gather(
            *(self._client.publish(self.topic, [PubsubMessage(p) for p in chunk]) for chunk in chunks)
        )
        for chunk, response in zip(chunks, responses, strict=True):
            acknowledged = len(response.get("messageIds", []))
            if acknowledged != len(chunk):
                raise RuntimeError(f"Pub/Sub acknowledged {acknowledged} of {len(chunk)} messages")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()


class TopicLog(Publisher):
    """A JSON-lines file standing in for a topic: one append and one fdatasync per batch,
    under a file lock, since every worker appends to the same log.

    The file may be deleted or emptied by hand while in use (``rm``, ``: >``). An append into a
    deleted file would be acknowledged and never read, and subscriptions count offsets in the
    file, so before and after each append the log checks that its path still names the file it
    holds, at least as long as it left it: a deleted log is made again, an emptied one is
    copied to a new file in its place (a new inode, which every subscription notices, where a
    size alone may grow back past their offsets), one line says so, and the batch goes into the
    file subscribers read before the publish returns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        #: The file's size after this log's last append (or when it opened it).
        self._end = 0

    async def open(self) -> None:
        await asyncio.to_thread(self._open)

    def _open(self) -> None:
        durable.make_dirs(self.path.parent)
        try:
            fd = durable.create_exclusive(self.path)
        except FileExistsError:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        old, self._fd = self._fd, fd  # the old file closed only now: the new one cannot get its inode
        if old is not None:
            os.close(old)
        with self._locked() as fd:
            durable.cut_torn_tail(fd)
            self._end = os.fstat(fd).st_size

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        if self._fd is None:
            raise RuntimeError(f"the log {self.path} is not open")
        if fcntl is not None:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield self._fd
        finally:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    async def publish(self, payloads: list[bytes]) -> None:
        torn = [i for i, payload in enumerate(payloads) if b"\n" in payload]
        if torn:  # JSON rows never hold one; bytes a handler publishes as they are may
            raise RowsRejected(
                f"the local log standing in for the topic ({self.path}) keeps one message a line, so a "
                "message cannot hold a newline byte; Google's emulator (gcloud's pubsub-emulator "
                "component) takes any bytes",
                torn,
            )
        await asyncio.to_thread(self._append, b"".join(p + b"\n" for p in payloads))

    def _append(self, data: bytes) -> None:
        for _ in range(_APPEND_TRIES):
            with self._locked() as fd:
                mishap = self._mishap(fd)
                if mishap is None:
                    durable.append(fd, data)
                    self._end = os.fstat(fd).st_size
                    mishap = self._mishap(fd)  # deleted or emptied as it was written: again, elsewhere
                    if mishap is None:
                        return
                if mishap == "emptied":  # what it holds now, in a new file: subscriptions notice an inode
                    durable.replace_file(self.path, os.pread(fd, os.fstat(fd).st_size, 0))
            log.warning(
                "the local log standing in for the topic (%s) was %s while in use: publishing into the "
                "file now at its path; the messages it held before are gone",
                self.path,
                mishap,
            )
            self._open()
        raise OSError(f"the log {self.path} was deleted or emptied again on every try: the messages were not published")

    def _mishap(self, fd: int) -> str | None:
        """What befell the file since this log's last append: "deleted or replaced" (its path
        names another file, or none), "emptied" (shorter than this log left it), or None."""
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return "deleted or replaced"
        held = os.fstat(fd)
        if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
            return "deleted or replaced"
        return "emptied" if held.st_size < self._end else None

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class PubSubWriter(SinkWriter):
    def __init__(self, publisher: Publisher, description: str) -> None:
        self.publisher = publisher
        self.description = description

    async def start(self) -> None:
        await self.publisher.open()

    def converter_for(self, row_type: Any) -> Callable[[Any], Any]:
        """BuildFlow published ``bytes`` as they are and what a class's ``to_bytes()`` made
        (before any other conversion); other rows go as JSON."""
        if row_type is bytes:
            return bytes
        if has_hook(row_type, "to_bytes"):
            return lambda obj: obj.to_bytes()
        return super().converter_for(row_type)

    async def write(self, rows: list[Row | bytes]) -> None:
        await self.publisher.publish([row if isinstance(row, bytes) else json_bytes(row) for row in rows])

    async def stop(self) -> None:
        await self.publisher.close()


def pubsub_writer(
    primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path
) -> PubSubWriter:
    """``Engine.PUBSUB``: the topic itself (the emulator's when the outputs give an ``api_root``)."""
    publisher = PubSubPublisher(out.get("topic", primitive.primitive_id()), out.get("api_root"))
    return PubSubWriter(publisher, describe(primitive, out))


def log_writer(primitive: Any, out: Mapping[str, Any], schema: list[Column] | None, project_dir: Path) -> PubSubWriter:
    """``Engine.LOG``: the durable log standing in for the topic (``log`` when the outputs are
    also a subscription's, as a portable ``Queue``'s are, whose ``path`` is its record)."""
    return PubSubWriter(TopicLog(local_path(out.get("log") or out["path"], project_dir)), describe(primitive, out))
