"""Group commit: rows from concurrent requests written to a sink together.

While one batch is being written, rows from new requests queue up and go out in the next
write, so under load every write carries many requests' rows and a lone request waits for
nothing but its own write (plus ``max_wait``, 0 by default). Each request learns the fate of
its own rows: durable, rejected (422) or not written (503).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Any

from bfctl.runtime.metrics import BATCH_BOUNDS, Histogram
from bfctl.runtime.sinks.base import Row, RowsRejected, SinkWriter

log = logging.getLogger("buildflow.runtime")


class QueueFull(Exception):
    """More rows are waiting than the bound allows: the client should retry later."""


class SinkUnavailable(Exception):
    """The batch holding the request's rows could not be written."""


@dataclasses.dataclass
class BatchOptions:
    #: Most rows in one write.
    batch_size: int = 1000
    #: Seconds the flusher waits for more rows after the first before writing (0: never).
    max_wait: float = 0.0
    #: Most rows waiting to be written; beyond it requests get 503 at once.
    max_queued_rows: int = 100_000
    #: Seconds one write may take before its requests get 503 (the rows may still land).
    write_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_queued_rows < self.batch_size:
            raise ValueError("batch_size must be >= 1 and max_queued_rows >= batch_size")
        if self.max_wait < 0 or self.write_timeout <= 0:
            raise ValueError("max_wait must be >= 0 and write_timeout > 0")


#: The write a request's rows went out in: its number in this batcher, its rows and its requests.
Commit = tuple[int, int, int]
_Pending = tuple[list[Row], "asyncio.Future[Commit]"]


class Batcher:
    """One per sink per worker; ``submit`` returns once the rows are durable."""

    def __init__(self, writer: SinkWriter, options: BatchOptions | None = None) -> None:
        self.writer = writer
        self.options = options or BatchOptions()
        self._pending: collections.deque[_Pending] = collections.deque()
        self._queued = 0
        self._wakeup = asyncio.Event()
        #: Set whenever queued rows were taken for a write (or on closing): room may have appeared.
        self._taken = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches_written = 0
        self.rows_written = 0
        #: For ``/_bf/metrics``: rows per successful write, and failed writes by reason.
        self.batch_rows = Histogram(BATCH_BOUNDS)
        self.write_errors = {"rejected": 0, "unavailable": 0}

    @property
    def queued(self) -> int:
        """Rows waiting to be written."""
        return self._queued

    async def start(self) -> None:
        await self.writer.start()
        self._task = asyncio.get_running_loop().create_task(
            self._flush_forever(), name=f"flush {self.writer.description}"
        )

    async def submit(self, rows: list[Row], hold: bool = False) -> Commit:
        """Queue ``rows`` and return once they are written. Over the queue's bound it refuses
        (``QueueFull``), or with ``hold`` waits for room first, as consumers' pull loops do (rows
        that could never fit are refused all the same)."""
        if hold and len(rows) <= self.options.max_queued_rows:
            await self._room(len(rows))
        if self._closing:
            raise SinkUnavailable("the server is shutting down")
        if self._queued + len(rows) > self.options.max_queued_rows:
            raise QueueFull(f"{self._queued} rows are already waiting for {self.writer.description}")
        future: asyncio.Future[Commit] = asyncio.get_running_loop().create_future()
        self._pending.append((rows, future))
        self._queued += len(rows)
        self._wakeup.set()
        return await future

    async def submit_each(self, rows: list[list[Row]], hold: bool = False) -> list[Commit | Exception]:
        """``submit`` of several messages' rows at once (a consumer's pulled batch), each with a
        fate of its own: when it is written, its commit, else the error ``submit`` would raise.
        They are queued together and waited on in turn, so no message costs a task, a
        coroutine or a wake-up of its own."""
        loop = asyncio.get_running_loop()
        bound = self.options.max_queued_rows
        queued: list[asyncio.Future[Commit] | Exception] = []
        for item in rows:
            if hold and self._queued + len(item) > bound >= len(item):
                self._wakeup.set()  # the rows queued before these must be taken for room to come
                await self._room(len(item))
            if self._closing:
                queued.append(SinkUnavailable("the server is shutting down"))
            elif self._queued + len(item) > bound:
                queued.append(QueueFull(f"{self._queued} rows are already waiting for {self.writer.description}"))
            else:
                future: asyncio.Future[Commit] = loop.create_future()
                self._pending.append((item, future))
                self._queued += len(item)
                queued.append(future)
        self._wakeup.set()
        fates: list[Commit | Exception] = []
        for waited in queued:
            if isinstance(waited, Exception):
                fates.append(waited)
                continue
            try:
                fates.append(await waited)
            except Exception as e:
                fates.append(e)
        return fates

    async def _room(self, rows: int) -> None:
        """Wait until ``rows`` more fit under the bound (or the batcher is closing)."""
        while self._queued + rows > self.options.max_queued_rows and not self._closing:
            self._taken.clear()
            await self._taken.wait()

    async def stop(self) -> None:
        """Write everything still queued, then close the writer."""
        self._closing = True
        self._wakeup.set()
        self._taken.set()
        if self._task is not None:
            await self._task
        await self.writer.stop()

    async def _flush_forever(self) -> None:
        """Write batches, up to ``writer.concurrent_writes`` at once; each batch is taken when a
        write may start, so it holds every row queued until then."""
        loop = asyncio.get_running_loop()
        slots = asyncio.Semaphore(self.writer.concurrent_writes)
        writing: set[asyncio.Task[None]] = set()
        while True:
            if not self._pending:
                if self._closing:
                    break
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            if self.options.max_wait and self._queued < self.options.batch_size and not self._closing:
                await asyncio.sleep(self.options.max_wait)
            await slots.acquire()
            task = loop.create_task(self._write_in(slots, self._take()))
            writing.add(task)
            task.add_done_callback(writing.discard)
        if writing:
            await asyncio.wait(writing)

    async def _write_in(self, slots: asyncio.Semaphore, batch: list[_Pending]) -> None:
        try:
            await self._write(batch)
        finally:
            slots.release()

    def _take(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = 0
        while self._pending and (not taken or rows + len(self._pending[0][0]) <= self.options.batch_size):
            item = self._pending.popleft()
            taken.append(item)
            rows += len(item[0])
        self._queued -= rows
        self._taken.set()
        return taken

    async def _write(self, batch: list[_Pending]) -> None:
        rows = [row for item_rows, _ in batch for row in item_rows]
        try:
            async with asyncio.timeout(self.options.write_timeout):  # no task per write, as wait_for makes
                await self.writer.write(rows)
        except RowsRejected as e:
            if len(batch) == 1:
                self.write_errors["rejected"] += 1
                _fail(batch[0][1], e)
            else:  # find whose rows were refused: every other request still succeeds
                for item in batch:
                    await self._write([item])
            return
        except Exception as e:  # unreachable sink, timeout: nobody in the batch is acknowledged
            log.warning("writing %d rows to %s failed: %s", len(rows), self.writer.description, e)
            self.write_errors["unavailable"] += 1
            for _, future in batch:
                _fail(future, SinkUnavailable(str(e) or type(e).__name__))
            return
        self.batches_written += 1
        self.rows_written += len(rows)
        self.batch_rows.observe(len(rows))
        commit = (self.batches_written, len(rows), len(batch))
        for _, future in batch:
            if not future.done():
                future.set_result(commit)


def _fail(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc)
